"""DREAM's declared options (issue 15): each builds and trains, each changes (or removes)
its part of the computation, the paper preset reproduces Eq. 8-11 on a hand-computed
4-row batch, and the declared defaults are the documented winner."""

import copy
import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dreamgeo import DREAM
from dreamgeo.models.dream import PAPER_OPTIONS
from dreamgeo.nn import BMALoss, S3Loss, SampledSoftmaxLoss
from tests.conftest import make_random_data

#: Every declared option and the values that are not its default.
OPTION_VALUES = {
    "s3_distance": ["norm"],
    "s3_reduction": ["sum"],
    "ablation_scope": ["modality"],
    "gate_input": ["behavior"],
    "feature_norm": ["l2", "standardize", "whiten"],
    "bma_direction": ["both"],
    "bma_similarity": ["dot"],
    "fusion": ["concat", "learnable"],
    "relation_graph_sides": ["item", "user"],
    "num_modal_layers": [2],
    "user_modal": ["items"],
    "modality_dropout": [0.5],
    "edge_dropout": [0.5],
    "rec_loss": ["softmax"],
    "train_features": [True],
    "bma_decay": [0.5],
    "negative_candidates": [4],
    "item_bias": [True],
}

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: DREAM's options study: one table per round, a "default" row (the declared defaults)
#: and one row per variant with its overrides and its change of valid Recall@20.
OPTIONS_STUDY = RESULTS / "dream-options-scientific.md"
#: DREAM's tuning study on planted baby, whose first trial is the declared defaults.
BABY_TRIALS = RESULTS / "tuning" / "planted_baby-dream-trials.csv"


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    data = make_random_data()
    DREAM(data, knn_k=3)  # builds and stores the relation graphs once
    return data


def _build(data, seed=0, **kwargs):
    torch.manual_seed(seed)
    # fixed weights: the random features agree with no interaction, and agreement
    # weights would switch S3 off (tests/test_modality_agreement.py covers that rule)
    kwargs.setdefault("modal_weighting", "fixed")
    return DREAM(copy.copy(data), knn_k=3, **kwargs)


def _batch(data, seed=0):
    gen = torch.Generator().manual_seed(seed)
    users, pos = data["user", "interacts", "item"].edge_index
    neg = torch.randint(data["item"].num_nodes, (users.numel(),), generator=gen)
    return users, pos, neg


def _one_epoch(model, data):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    users, pos, neg = _batch(data)
    model.train()
    for start in range(0, users.numel(), 16):
        part = slice(start, start + 16)
        loss, parts = model.loss(users[part], pos[part], neg[part])
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        user, item = model()
    assert user.shape[0] == data["user"].num_nodes and item.shape[0] == data["item"].num_nodes
    assert torch.isfinite(user @ item.t()).all()
    return parts


def test_every_option_is_declared_with_choices():
    declared = set(DREAM.HPARAMS)
    assert set(OPTION_VALUES) <= declared
    for name, values in OPTION_VALUES.items():
        param = DREAM.HPARAMS[name]
        if param.type is str:
            assert param.choices is not None and param.default in param.choices
            assert set(values) <= set(param.choices)
        for value in values:
            param.check(value, "test")


def _trained_scores(data, **kwargs):
    """Every user's scores after one epoch from seed 0's weights, with the same batches
    and random draws for every option. The epoch is the second: ``bma_decay``'s factor
    delta^(t-1) is 1 in the first."""
    model = _build(data, **kwargs)
    model.start_epoch(2)
    torch.manual_seed(1)  # modality and edge dropout draw from it
    _one_epoch(model, data)
    return _scores(model)


#: ``ablation_scope`` only acts on a plain modality: its runs, and their reference, have one.
SCOPE_KWARGS = {"plain_modalities": ("image",)}


@pytest.fixture(scope="module")
def default_trained(data):
    return {scope: _trained_scores(data, **kw) for scope, kw in ((False, {}), (True, SCOPE_KWARGS))}


def test_one_epoch_is_reproducible(data, default_trained):
    # what makes "differs from the default" below the option's doing, not noise
    assert torch.equal(_trained_scores(data), default_trained[False])


@pytest.mark.parametrize(
    "option,value", [(k, v) for k, values in OPTION_VALUES.items() for v in values]
)
def test_option_builds_trains_and_changes_the_trained_model(data, default_trained, option, value):
    kwargs = SCOPE_KWARGS if option == "ablation_scope" else {}
    changed = _trained_scores(data, **kwargs, **{option: value})
    base = default_trained[option == "ablation_scope"]
    assert changed.shape == base.shape
    # the same start, batches and draws: an ignored option would give the same scores
    assert not torch.allclose(changed, base), f"{option}={value} changed nothing"


def test_paper_preset_trains_and_differs_from_the_defaults(data, default_trained):
    assert not torch.allclose(_trained_scores(data, **PAPER_OPTIONS), default_trained[False])


def _loss_parts(model, data):
    users, pos, neg = _batch(data)
    model.train()
    return model.loss(users, pos, neg)[1]


def _scores(model):
    model.eval()
    with torch.no_grad():
        user, item = model()
    return user @ item.t()


@pytest.mark.parametrize(
    "option,value,part",
    [
        ("s3_distance", "norm", "s3"),
        ("s3_reduction", "sum", "s3"),
        ("bma_direction", "both", "intra"),
        ("bma_direction", "both", "inter"),
        ("bma_similarity", "dot", "intra"),
        ("bma_similarity", "dot", "inter"),
    ],
)
def test_loss_options_change_their_term(data, option, value, part):
    base = _loss_parts(_build(data), data)
    changed = _loss_parts(_build(data, **{option: value}), data)
    assert not torch.allclose(base[part], changed[part])
    assert torch.allclose(base["bpr"], changed["bpr"])  # same model, only the loss differs


@pytest.mark.parametrize(
    "option,value",
    [
        ("gate_input", "behavior"),
        ("feature_norm", "l2"),
        ("feature_norm", "standardize"),
        ("feature_norm", "whiten"),
        ("fusion", "concat"),
        ("relation_graph_sides", "item"),
        ("relation_graph_sides", "user"),
        ("num_modal_layers", 2),
        ("user_modal", "items"),
        ("ablation_scope", "modality"),
    ],
)
def test_model_options_change_the_scores(data, option, value):
    kwargs = {"plain_modalities": ("image",)} if option == "ablation_scope" else {}
    base = _scores(_build(data, **kwargs))
    changed = _scores(_build(data, **kwargs, **{option: value}))
    assert base.shape == changed.shape
    assert not torch.allclose(base, changed)


def test_fusion_learnable_starts_at_sum_and_learns(data):
    base, model = _build(data), _build(data, fusion="learnable")
    assert torch.allclose(_scores(base), _scores(model))  # w = 1 at start: Eq. 12
    _one_epoch(model, data)
    assert model.fusion_weight.item() != 1.0


def test_relation_graph_sides_remove_the_other_graph(data):
    item_only = _build(data, relation_graph_sides="item")
    assert len(item_only.modal_line.user_graphs) == 0 and len(item_only.modal_line.item_graphs) == 2
    user_only = _build(data, relation_graph_sides="user")
    assert len(user_only.modal_line.item_graphs) == 0 and len(user_only.modal_line.user_graphs) == 2
    items_users = _build(data, user_modal="items")
    assert len(items_users.modal_line.user_graphs) == 0
    user, item = items_users.modal()
    assert torch.allclose(user, items_users.user_mean(item))


def test_ablation_scope_modality_removes_the_whole_modality(data):
    encoder = _build(data, plain_modalities=("text",))
    assert (
        "text" in encoder.modal_line.encoders and not encoder.modal_line.encoders["text"].use_gate
    )
    whole = _build(data, plain_modalities=("text",), ablation_scope="modality")
    assert list(whole.modal_line.encoders) == ["image"] and whole.modal_weights == {"image": 1.0}
    assert whole.s3.item_factor.size(1) == data["item"].x_image.size(1)
    with pytest.raises(ValueError, match="every modality"):
        _build(data, plain_modalities=("text", "image"), ablation_scope="modality")


def test_modality_dropout_only_while_training(data):
    base, model = _build(data), _build(data, modality_dropout=0.5)
    assert torch.allclose(_scores(base), _scores(model))  # eval: no dropout
    model.train()
    torch.manual_seed(1)
    seen = {tuple(sorted(m for m, w in model.modal_line.step_weights().items() if w > 0))}
    for _ in range(30):
        seen.add(tuple(sorted(m for m, w in model.modal_line.step_weights().items() if w > 0)))
    assert ("image",) in seen and ("text",) in seen and () not in seen


def test_edge_dropout_prunes_the_training_graph_only(data):
    base, model = _build(data), _build(data, edge_dropout=0.5)
    assert base.behavior_line.pruning is None
    assert torch.allclose(_scores(base), _scores(model))  # ranking: the full graph
    edges = base.seen_edge_index.size(1)
    model.train()
    users, pos, neg = _batch(data)
    torch.manual_seed(3)
    model.loss(users[:8], pos[:8], neg[:8])
    first = model.behavior_line.pruning.pruned_edge_index
    assert first.size(1) == edges // 2
    assert {tuple(e) for e in first.t().tolist()} <= {
        tuple(e) for e in base.seen_edge_index.t().tolist()
    }
    # the loss is computed on the pruned graph: it differs from the full graph's
    torch.manual_seed(3)
    pruned_loss = model.loss(users[:8], pos[:8], neg[:8])[0]
    torch.manual_seed(3)
    full_loss = base.loss(users[:8], pos[:8], neg[:8])[0]
    assert not torch.isclose(pruned_loss, full_loss)
    model.loss(users, pos, neg)  # an epoch's triples have passed: a new graph next step
    model.loss(users[:8], pos[:8], neg[:8])
    assert model.behavior_line.pruning.pruned_edge_index is not first


def test_bma_decay_scales_only_the_alignment_per_epoch(data):
    users, pos, neg = _batch(data)
    base, model = _build(data), _build(data, bma_decay=0.5)
    base.train()
    model.train()
    base_loss, parts = base.loss(users, pos, neg)
    alignment = 0.01 * parts["intra"] + 0.01 * parts["inter"]  # alpha, beta at defaults
    for epoch, factor in ((1, 1.0), (3, 0.25)):
        model.start_epoch(epoch)
        loss, changed = model.loss(users, pos, neg)
        torch.testing.assert_close(loss, base_loss - (1.0 - factor) * alignment)
        for name in ("bpr", "intra", "inter", "s3"):  # logged parts stay unweighted
            torch.testing.assert_close(changed[name], parts[name])
    base.start_epoch(7)  # the default (1) keeps Eq. 14's constant weights
    torch.testing.assert_close(base.loss(users, pos, neg)[0], base_loss)
    with pytest.raises(ValueError, match="bma_decay must be"):
        _build(data, bma_decay=0.0)


def test_trainer_starts_each_epoch_of_the_model(data):
    from dreamgeo.train import TrainConfig, Trainer

    model = _build(data, bma_decay=0.5)
    config = TrainConfig(
        epochs=3, batch_size=16, lr=1e-2, ks=(5,), stopping_metric="recall@5", progress=False
    )
    Trainer(model, copy.copy(data), config).fit()
    assert model.bma.scale == 0.25  # set for epoch 3: 0.5^2


def test_rec_loss_softmax_replaces_only_the_ranking_term(data):
    base = _loss_parts(_build(data), data)
    model = _build(data, rec_loss="softmax", rec_tau=0.5)
    changed = _loss_parts(model, data)
    assert not torch.allclose(base["bpr"], changed["bpr"])
    for part in ("s3", "intra", "inter", "reg"):
        assert torch.allclose(base[part], changed[part]), part
    # the ranking term is the sampled softmax of the fused rows
    users, pos, neg = _batch(data)
    user, item = model()
    expected = SampledSoftmaxLoss(0.5)(user[users], item[pos], item[neg], pos, neg)
    assert torch.allclose(changed["bpr"], expected)


def test_negative_candidates_train_on_the_hardest_non_interacted_item(data):
    users, pos, neg = _batch(data)
    model = _build(data, negative_candidates=8)
    torch.manual_seed(5)
    changed = _loss_parts(model, data)
    base = _loss_parts(_build(data), data)
    # only BPR and its L2 term see the negative; the hardest of 8 raises BPR's loss
    assert changed["bpr"] > base["bpr"]
    assert not torch.allclose(base["reg"], changed["reg"])
    for part in ("s3", "intra", "inter"):
        assert torch.allclose(base[part], changed[part]), part
    # the chosen negative, redrawn from the same seed, scores at least as high as the
    # sampler's and is never a training item of its user
    torch.manual_seed(5)
    user, item = model()
    chosen = model.negatives(users, neg, lambda u, i: (user[u].unsqueeze(1) * item[i]).sum(-1))
    train = set(zip(*(t.tolist() for t in data["user", "interacts", "item"].edge_index)))
    moved = chosen != neg
    assert moved.any()
    assert all((u, i) not in train for u, i in zip(users[moved].tolist(), chosen[moved].tolist()))
    assert ((user[users] * item[chosen]).sum(-1) >= (user[users] * item[neg]).sum(-1)).all()


def test_item_bias_adds_b_i_to_every_score(data):
    base = _build(data)
    model = _build(data, item_bias=True)
    assert base.item_bias is None
    assert torch.equal(model.item_bias.weight, torch.zeros(data["item"].num_nodes, 1))
    torch.manual_seed(3)
    bias = torch.randn(data["item"].num_nodes)
    with torch.no_grad():
        model.item_bias.weight.copy_(bias.view(-1, 1))
    user, item = model()
    plain_user, plain_item = base()
    # the same weights otherwise: every score is the plain inner product plus b_i
    assert torch.allclose(user @ item.t(), plain_user @ plain_item.t() + bias, atol=1e-5)
    users, pos, neg = _batch(data)
    parts = _loss_parts(model, data)
    pos_score = (plain_user[users] * plain_item[pos]).sum(-1) + bias[pos]
    neg_score = (plain_user[users] * plain_item[neg]).sum(-1) + bias[neg]
    assert torch.allclose(parts["bpr"], -F.logsigmoid(pos_score - neg_score).mean(), atol=1e-6)
    # b_i is in the L2 term with the item embeddings
    base_parts = _loss_parts(base, data)
    extra = (bias[pos].pow(2).sum() + bias[neg].pow(2).sum()) / (2 * users.numel())
    assert torch.allclose(parts["reg"], base_parts["reg"] + extra, atol=1e-6)
    for part in ("s3", "intra", "inter"):
        assert torch.allclose(base_parts[part], parts[part]), part
    # and it learns
    before = model.item_bias.weight.detach().clone()
    _one_epoch(model, data)
    assert not torch.equal(model.item_bias.weight, before)


def test_feature_norm_is_the_encoder_input_only(data):
    model = _build(data, feature_norm="l2")
    assert torch.allclose(model.modal_line.features("image").norm(dim=-1), torch.ones(20))
    base = _build(data)
    assert torch.equal(model.s3.item_factor, base.s3.item_factor)


def test_train_features_fine_tunes_the_encoder_input_only(data):
    model = _build(data, train_features=True, feature_norm="l2")
    base = _build(data, feature_norm="l2")
    names = {name for name, _ in model.named_parameters()}
    assert {"modal_line.features_image", "modal_line.features_text"} <= names
    assert not {"modal_line.features_image", "modal_line.features_text"} & {
        n for n, _ in base.named_parameters()
    }
    start = {m: model.modal_line.features(m).detach().clone() for m in ("image", "text")}
    assert all(torch.equal(start[m], base.modal_line.features(m)) for m in start)  # same start
    s3_target = model.s3.item_factor.clone()
    graph = model.modal_line.item_graphs["image"].matrix.to_dense().clone()
    _one_epoch(model, data)
    for m in start:
        assert not torch.allclose(
            model.modal_line.features(m), start[m]
        )  # the optimizer moved them
    assert torch.equal(model.s3.item_factor, s3_target)  # S3 still targets raw features
    assert torch.equal(model.modal_line.item_graphs["image"].matrix.to_dense(), graph)
    with pytest.raises(ValueError, match="train_features=True needs feature_dtype='float32'"):
        _build(data, train_features=True, feature_dtype="bfloat16")


def test_invalid_option_values_are_refused(data):
    for option in ("s3_distance", "fusion", "gate_input", "relation_graph_sides"):
        with pytest.raises(ValueError, match=option):
            _build(data, **{option: "nope"})


# ---------------------------------------------------------------- paper equations by hand


def _hand_s3(rep, feats, weights):
    """Eq. 8 as printed: || P - T ||_2 over the batch's pairs, P and T cosine matrices,
    divided by B like every other term of Eq. 14 (norm / mean)."""
    b = rep.size(0)
    total = 0.0
    for a in range(b):
        for c in range(b):
            p = torch.dot(rep[a], rep[c]) / (rep[a].norm() * rep[c].norm())
            t = sum(
                w * torch.dot(x[a], x[c]) / (x[a].norm() * x[c].norm())
                for x, w in zip(feats, weights)
            )
            total = total + (p - t) ** 2
    return {
        ("norm", "mean"): total.sqrt() / b,
        ("norm", "sum"): total.sqrt(),
        ("squared", "mean"): total / b**2,
        ("squared", "sum"): total,
    }


def _hand_info_nce(anchor, positive, tau, normalize):
    """Eq. 9-11: mean over k of -log exp(a_k.p_k / tau) / sum_j exp(a_k.p_j / tau)."""
    if normalize:
        anchor, positive = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    b = anchor.size(0)
    total = 0.0
    for k in range(b):
        logits = [torch.dot(anchor[k], positive[j]) / tau for j in range(b)]
        total = total - (logits[k] - torch.logsumexp(torch.stack(logits), 0))
    return total / b


@pytest.mark.parametrize("distance", ["norm", "squared"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_s3_readings_match_eq8_by_hand(distance, reduction):
    torch.manual_seed(0)
    rep = torch.randn(4, 5, dtype=torch.float64)
    feats = [torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)]
    weights = [0.3, 0.7]
    expected = _hand_s3(rep, feats, weights)[(distance, reduction)]
    for constant in (True, False):  # the norm readings always add the constant
        loss = S3Loss(constant or distance == "norm", distance, reduction)
        if not loss.include_constant:
            continue
        assert torch.allclose(loss(rep, feats, weights), expected, atol=1e-6, rtol=0)
        table = S3Loss.target_factor(feats, weights)
        got = loss.gathered(rep, table, torch.arange(4))
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("direction", ["one", "both"])
def test_bma_readings_match_eq9_11_by_hand(normalize, direction):
    torch.manual_seed(0)
    ub, ib, um, im = (0.5 * torch.randn(4, 6, dtype=torch.float64) for _ in range(4))
    bma = BMALoss(0.2, 0.01, 0.03, direction=direction, normalize=normalize)

    def term(a, p):
        one = _hand_info_nce(a, p, 0.2, normalize)
        return one if direction == "one" else 0.5 * (one + _hand_info_nce(p, a, 0.2, normalize))

    parts = bma.parts(ub, ib, um, im)
    assert abs(float(parts.bia - term(ub, ib))) < 1e-6
    assert abs(float(parts.mia - term(um, im))) < 1e-6
    assert abs(float(parts.inter_user - term(ub, um))) < 1e-6
    assert abs(float(parts.inter_item - term(ib, im))) < 1e-6
    expected = 0.01 * (term(ub, ib) + term(um, im)) + 0.03 * (term(ub, um) + term(ib, im))
    assert abs(float(bma(ub, ib, um, im) - expected)) < 1e-6


def test_paper_preset_loss_terms_match_the_equations_on_a_4_row_batch(data):
    model = _build(data, **PAPER_OPTIONS)
    users = torch.tensor([0, 3, 5, 7])
    pos = torch.stack(
        [
            data["user", "interacts", "item"].edge_index[1][
                data["user", "interacts", "item"].edge_index[0] == u
            ][0]
            for u in users
        ]
    )
    neg = torch.tensor([1, 2, 3, 4])
    model.train()
    _, parts = model.loss(users, pos, neg)
    with torch.no_grad():
        rep = model.representations()
    ub, um = rep.user_behavior[users].double(), rep.user_modal[users].double()
    ib, im = rep.item_behavior[pos].double(), rep.item_modal[pos].double()
    tau = model.bma.tau
    intra = _hand_info_nce(ub, ib, tau, False) + _hand_info_nce(um, im, tau, False)
    inter = _hand_info_nce(ub, um, tau, False) + _hand_info_nce(ib, im, tau, False)
    assert abs(float(parts["intra"]) - float(intra)) < 1e-5 * max(1.0, float(intra))
    assert abs(float(parts["inter"]) - float(inter)) < 1e-5 * max(1.0, float(inter))
    # S3 on items (raw features) and users (mean of their training items' features)
    names, weights = model.modalities, [model.modal_weights[m] for m in model.modalities]
    raw = {m: data["item"][f"x_{m}"].double() for m in names}
    user_raw = {m: model.user_mean.matrix.double() @ raw[m] for m in names}
    s3 = _hand_s3(im, [raw[m][pos] for m in names], weights)[("norm", "mean")]
    s3 = s3 + _hand_s3(um, [user_raw[m][users] for m in names], weights)[("norm", "mean")]
    assert math.isclose(float(parts["s3"]), float(s3), abs_tol=1e-5)


def _options_study_rows(path):
    """(variant, {option: value as text}, change of valid R@20 in %) of every row of the
    tables headed ``| variant | overrides |`` in the committed options study."""
    rows, columns = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| variant | overrides |"):
            columns = cells
        elif columns is None or not line.startswith("|"):
            columns = None
        elif not set(line) <= set("|-"):
            row = dict(zip(columns, cells, strict=True))
            pairs = [] if row["overrides"] == "—" else row["overrides"].split(", ")
            delta = float(row["Δ valid R@20"].rstrip("%").replace("−", "-"))
            rows.append((row["variant"], dict(pair.split("=", 1) for pair in pairs), delta))
    return rows


def test_defaults_are_the_documented_winner():
    from dreamgeo.models import get_model

    dream = get_model("dream")
    defaults = dream.resolve()  # the declared defaults, training settings included
    rows = _options_study_rows(OPTIONS_STUDY)
    assert len(rows) > 50 and sum(variant == "default" for variant, _, _ in rows) >= 5

    # the reference rows override nothing, and every variant row moves at least one
    # value off today's declared defaults: no alternative the study tried and did not
    # adopt (its verdicts: "Defaults: unchanged", "Not a default"; tau 0.1, +2.8 % in
    # round 1, stays out because it collapses on planted baby) is what DREAM declares
    for variant, overrides, _ in rows:
        if variant == "default":
            assert overrides == {}
            continue
        config = dream.resolve((variant, overrides))
        assert any(config[name] != defaults[name] for name in overrides), variant

    # the paper row lists every ambiguous option at its literal reading: the defaults
    # keep that reading except the two the study measured as worse on valid (the norm
    # S3 of Eq. 8, the dot-product InfoNCE of Eq. 9-11), in every row that tried them
    (paper,) = [overrides for variant, overrides, _ in rows if variant == "paper"]
    paper_config = dream.resolve(("paper", paper))
    assert {name: paper_config[name] for name in paper} == {
        name: PAPER_OPTIONS[name] for name in paper
    }
    moved = {name for name in paper if paper_config[name] != defaults[name]}
    assert moved == {"s3_distance", "bma_similarity"}
    for name in moved:
        deltas = [d for _, o, d in rows if o.get(name) == paper[name]]
        assert len(deltas) >= 2 and all(d < 0 for d in deltas), (name, deltas)

    # the weights the tuner searches: its trial labelled "declared defaults" ran these
    with BABY_TRIALS.open(newline="") as file:
        (trial,) = [row for row in csv.DictReader(file) if "declared defaults" in row["note"]]
    searched = ("image_weight", "tau", "intra_weight", "inter_weight", "s3_weight")
    assert dream.resolve(("trial", {name: trial[name] for name in searched})) == defaults


def test_paper_config_is_the_papers_setting():
    # configs/paper/dream.yaml: Section 4.1's fixed settings (d 64, lr 1e-3, L = 2
    # behaviour layers, 1 modal layer, lambda 1e-4, B 2048, tau 0.2, alpha = beta = 0.01,
    # gamma 0.1, alpha_V 0.3, k 10 as MMRec's relation graphs) and every ambiguous
    # option at its literal reading (PAPER_OPTIONS), whatever the declared defaults are
    from dreamgeo.config import load_config
    from dreamgeo.models import get_model

    path = Path(__file__).resolve().parents[1] / "configs" / "paper" / "dream.yaml"
    model, values = load_config(path)
    assert model == "dream"
    resolved = get_model("dream").resolve((str(path), values))
    paper = {
        "embedding_dim": 64,
        "lr": 0.001,
        "batch_size": 2048,
        "num_layers": 2,
        "num_modal_layers": 1,
        "reg_weight": 1e-4,
        "tau": 0.2,
        "intra_weight": 0.01,
        "inter_weight": 0.01,
        "s3_weight": 0.1,
        "image_weight": 0.3,
        "knn_k": 10,
    }
    for name, value in {**paper, **PAPER_OPTIONS}.items():
        assert resolved[name] == value, name
