import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamgeo import DREAM
from dreamgeo.models import ABLATIONS
from dreamgeo.nn import BMALoss, S3Loss
from dreamgeo.nn import bma_loss as bma_module
from tests.conftest import make_random_data

K = 3


def _knn_dense(x, k):
    """Brute-force top-k cosine graph (self included), D^-1/2 S D^-1/2 with row degree."""
    x = F.normalize(x, dim=-1)
    sim = x @ x.t()
    sim.fill_diagonal_(2.0)  # self first
    top = sim.topk(k, dim=1).indices
    adj = torch.zeros(x.size(0), x.size(0))
    adj.scatter_(1, top, 1.0)
    deg = adj.sum(1)
    return adj / torch.sqrt(deg[:, None] * deg[None, :])


def _user_features_dense(data, x):
    m = data["user"].num_nodes
    r = torch.zeros(m, x.size(0))
    u, i = data["user", "interacts", "item"].edge_index
    r[u, i] = 1.0
    return (r / r.sum(1, keepdim=True)) @ x


def _with_graphs(data):
    graphs = {}
    for name in [key[2:] for key in data["item"].keys() if key.startswith("x_")]:
        x = data["item"][f"x_{name}"]
        for node, feats in (("item", x), ("user", _user_features_dense(data, x))):
            dense = _knn_dense(feats, K)
            index = dense.nonzero().t()
            store = data[node, f"sim_{name}", node]
            store.edge_index = index
            store.edge_weight = dense[index[0], index[1]]
            graphs[(node, name)] = dense
    return data, graphs


@pytest.fixture
def setup():
    torch.manual_seed(0)
    return _with_graphs(make_random_data())


def _reference_modal(model, data, graphs, use_gate=True, use_graph=True):
    """Modal line computed densely, straight from Eq. 4-7 with explicit user features."""
    u0, i0 = model.user_embedding.weight, model.item_embedding.weight
    user_out = item_out = 0
    for name, weight in model.modal_weights.items():
        lin = model.modal_line.encoders[name].projection
        x_item = data["item"][f"x_{name}"]
        x_user = _user_features_dense(data, x_item)
        hi, hu = lin(x_item), lin(x_user)
        if use_gate:
            hi, hu = torch.sigmoid(hi) * i0, torch.sigmoid(hu) * u0
        if use_graph:
            hi, hu = graphs[("item", name)] @ hi, graphs[("user", name)] @ hu
        user_out = user_out + weight * hu
        item_out = item_out + weight * hi
    return user_out, item_out


def test_modal_line_matches_dense_equations_and_linearity_shortcut(setup):
    data, graphs = setup
    model = DREAM(data, knn_k=K, embedding_dim=8)
    user_modal, item_modal = model.modal()
    ref_user, ref_item = _reference_modal(model, data, graphs)
    torch.testing.assert_close(user_modal, ref_user, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(item_modal, ref_item, rtol=1e-4, atol=1e-5)


def test_modal_line_with_three_named_modalities_is_the_weighted_sum_of_eq_4_to_6():
    # the paper's two-modality equations, one encoder, gate and graph pair per modality,
    # fused by weights summing to 1
    torch.manual_seed(0)
    data, graphs = _with_graphs(make_random_data(dims={"image": 12, "text": 6, "audio": 5}))
    weights = {"image": 0.5, "text": 0.2, "audio": 0.3}
    model = DREAM(data, knn_k=K, embedding_dim=8, modal_weights=weights)
    assert model.modalities == ["image", "text", "audio"]
    user_modal, item_modal = model.modal()
    ref_user, ref_item = _reference_modal(model, data, graphs)
    torch.testing.assert_close(user_modal, ref_user, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(item_modal, ref_item, rtol=1e-4, atol=1e-5)


def test_two_modalities_reproduce_the_numbers_from_before_the_parts_refactor():
    # tests/data/dream_two_modality_reference.json was written by the DREAM of commit
    # 87b9b16 (one 284-line constructor) on this data, seed and batch; the composition
    # of parts must give the same loss, parts and scores
    import json
    from pathlib import Path

    from dreamgeo.models.dream import PAPER_OPTIONS

    path = Path(__file__).parent / "data" / "dream_two_modality_reference.json"
    reference = json.loads(path.read_text())
    # "defaults" are the declared defaults of 87b9b16 (fixed modality weights and
    # in-batch BMA negatives since)
    before = {"modal_weighting": "fixed", "bma_negatives": "batch"}
    for label, options in (("defaults", before), ("paper", dict(PAPER_OPTIONS))):
        torch.manual_seed(7)
        model = DREAM(make_random_data(), knn_k=3, embedding_dim=8, **options)
        users, pos, neg = torch.arange(12), torch.arange(12) % 20, (torch.arange(12) * 7 + 3) % 20
        total, parts = model.loss(users, pos, neg)
        user, item = model()
        expected = reference[label]
        assert total.item() == pytest.approx(expected["loss"], rel=1e-5)
        assert {k: v.item() for k, v in parts.items()} == pytest.approx(expected["parts"], rel=1e-5)
        assert (user[0] @ item.t()).tolist() == pytest.approx(
            expected["scores_row0"], rel=1e-4, abs=1e-6
        )
        assert user.abs().sum().item() == pytest.approx(expected["user_abs_sum"], rel=1e-5)
        assert item.abs().sum().item() == pytest.approx(expected["item_abs_sum"], rel=1e-5)


def test_ablations_name_any_modality():
    data = make_random_data(dims={"image": 12, "text": 6, "audio": 5})
    model = DREAM(data, knn_k=3, embedding_dim=8, ablation="no_audio_encoder")
    encoders = model.modal_line.encoders
    assert not encoders["audio"].use_gate and not encoders["audio"].use_graph
    assert encoders["image"].use_gate and encoders["text"].use_graph
    assert "audio" not in model.modal_line.item_graphs and "image" in model.modal_line.item_graphs
    with pytest.raises(ValueError, match=r"no_video_encoder.*no_audio_encoder"):
        DREAM(data, knn_k=3, embedding_dim=8, ablation="no_video_encoder")


def test_user_gate_shortcut_equals_direct_computation(setup):
    data, _ = setup
    model = DREAM(data, knn_k=K, embedding_dim=8)
    lin = model.modal_line.encoders["image"].projection
    x_item = data["item"].x_image
    direct = torch.sigmoid(lin(_user_features_dense(data, x_item)))
    shortcut = torch.sigmoid(model.user_mean(lin(x_item)))
    torch.testing.assert_close(shortcut, direct, rtol=1e-5, atol=1e-6)


def test_behavior_line_and_final_scores(setup):
    data, _ = setup
    model = DREAM(data, knn_k=K, embedding_dim=8)
    from dreamgeo.models import LightGCN

    lightgcn = LightGCN.from_data(data, embedding_dim=8)
    lightgcn.user_embedding.weight.data.copy_(model.user_embedding.weight)
    lightgcn.item_embedding.weight.data.copy_(model.item_embedding.weight)
    rep = model.representations()
    expected_user, expected_item = lightgcn()
    torch.testing.assert_close(rep.user_behavior, expected_user)
    torch.testing.assert_close(rep.item_behavior, expected_item)
    user, item = model()
    assert user.shape == (30, 8) and item.shape == (20, 8)
    torch.testing.assert_close(user, rep.user_behavior + rep.user_modal)


def test_loss_equals_independent_sum_of_parts(setup):
    data, _ = setup
    model = DREAM(
        data,
        knn_k=K,
        embedding_dim=8,
        tau=0.2,
        intra_weight=0.03,
        inter_weight=0.02,
        s3_weight=0.5,
        reg_weight=1e-3,
        modal_weighting="fixed",
    )
    users, pos, neg = (
        torch.tensor([0, 1, 2, 3]),
        torch.tensor([1, 2, 3, 4]),
        torch.tensor([5, 6, 7, 8]),
    )
    total, parts = model.loss(users, pos, neg)
    rep = model.representations()
    ug = (rep.user_behavior + rep.user_modal)[users]
    ip = (rep.item_behavior + rep.item_modal)[pos]
    ineg = (rep.item_behavior + rep.item_modal)[neg]
    bpr = torch.mean(-torch.log(torch.sigmoid((ug * ip).sum(1) - (ug * ineg).sum(1))))
    reg = (
        model.user_embedding.weight[users].pow(2).sum()
        + model.item_embedding.weight[pos].pow(2).sum()
        + model.item_embedding.weight[neg].pow(2).sum()
    ) / 8
    bma = BMALoss(0.2, 0.03, 0.02)(
        rep.user_behavior[users], rep.item_behavior[pos], rep.user_modal[users], rep.item_modal[pos]
    )
    names = ["image", "text"]
    w = [0.3, 0.7]
    s3_exact = S3Loss()(rep.item_modal[pos], [data["item"][f"x_{m}"][pos] for m in names], w)
    uf = [_user_features_dense(data, data["item"][f"x_{m}"])[users] for m in names]
    s3_exact = s3_exact + S3Loss()(rep.user_modal[users], uf, w)
    # the model skips the parameter-free constant mean(T^2) of each S3 term
    const = sum(
        torch.mean(
            (
                sum(
                    wm * F.normalize(x, dim=-1) @ F.normalize(x, dim=-1).t()
                    for wm, x in zip(w, feats)
                )
            )
            ** 2
        )
        for feats in ([data["item"][f"x_{m}"][pos] for m in names], uf)
    )
    expected = bpr + 1e-3 * reg + bma + 0.5 * (s3_exact - const)
    assert total.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)
    assert set(parts) == {"bpr", "reg", "intra", "inter", "s3"}


def test_unseen_negatives_exclude_the_training_interactions(setup):
    data, _ = setup
    edges = data["user", "interacts", "item"].edge_index
    # a batch of training pairs in which some users appear with several of their items
    users, pos = edges[:, :24]
    neg = torch.arange(24) % data["item"].num_nodes
    options = dict(knn_k=K, embedding_dim=8, use_s3=False, intra_weight=0.05, inter_weight=0.0)
    torch.manual_seed(1)
    unseen = DREAM(data, bma_negatives="unseen", **options)
    torch.manual_seed(1)
    distinct = DREAM(data, bma_negatives="distinct", **options)
    _, parts = unseen.loss(users, pos, neg)
    _, distinct_parts = distinct.loss(users, pos, neg)
    rep = unseen.representations()
    reference = BMALoss(0.2, 0.05, 0.0, negatives="unseen")
    reference.set_interactions(edges, data["user"].num_nodes, data["item"].num_nodes)
    want = reference.parts(
        rep.user_behavior[users],
        rep.item_behavior[pos],
        rep.user_modal[users],
        rep.item_modal[pos],
        users,
        pos,
    )
    assert parts["intra"].item() == pytest.approx(want.intra.item(), rel=1e-5)
    # the batch holds other training items of its users: they left the denominators
    assert parts["intra"].item() < distinct_parts["intra"].item()


def test_gradient_reaches_every_parameter(setup):
    data, _ = setup
    model = DREAM(data, knn_k=K, embedding_dim=8)
    users, pos, neg = torch.arange(10), torch.arange(10) % 20, (torch.arange(10) + 7) % 20
    total, _ = model.loss(users, pos, neg)
    total.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert not any(b.requires_grad for b in model.buffers())


def _count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_each_ablation_really_removes_its_part(setup, monkeypatch, ablation):
    data, graphs = setup
    info_calls = _count_calls(monkeypatch, bma_module, "info_nce")
    s3_calls = _count_calls(monkeypatch, S3Loss, "gathered")
    # fixed weights: random features agree with nothing, and agreement would drop S3
    options = dict(knn_k=K, embedding_dim=8, modal_weighting="fixed")
    model = DREAM.from_ablation(ablation, data, **options)
    users, pos, neg = torch.arange(6), torch.arange(6), torch.arange(6) + 6
    _, parts = model.loss(users, pos, neg)
    spec = ABLATIONS[ablation]
    plain = set(spec.get("plain_modalities", ()))
    gate_on = spec.get("use_filter_gate", True)
    graph_on = spec.get("use_relation_graphs", True)
    for name, encoder in model.modal_line.encoders.items():
        assert encoder.use_gate == (gate_on and name not in plain)
        assert encoder.use_graph == (graph_on and name not in plain)
        assert (name in model.modal_line.item_graphs) == encoder.use_graph
        assert (name in model.modal_line.user_graphs) == encoder.use_graph
    # the modal line equals the reference with the same parts removed
    for name in model.modal_weights:
        one = {m: float(m == name) for m in model.modal_weights}
        single = DREAM.from_ablation(ablation, data, **options, modal_weights=one)
        single.load_state_dict(model.state_dict())
        enc = single.modal_line.encoders[name]
        ref_user, _ = _reference_modal(single, data, graphs, enc.use_gate, enc.use_graph)
        torch.testing.assert_close(single.modal()[0], ref_user, rtol=1e-4, atol=1e-5)
    # without a gate the modal line does not depend on the ID embeddings
    if not gate_on:
        grad = torch.autograd.grad(
            model.modal()[1].sum(), model.item_embedding.weight, allow_unused=True
        )[0]
        assert grad is None or grad.abs().sum() == 0
    use_s3 = spec.get("use_s3", True)
    intra, inter = spec.get("use_intra", True), spec.get("use_inter", True)
    assert ("s3" in parts) == use_s3
    assert ("intra" in parts) == intra and ("inter" in parts) == inter
    assert (model.s3 is None) != use_s3
    assert (model.bma is None) == (not intra and not inter)
    # S3 runs once for users and once for items; each alignment is two InfoNCE terms
    assert len(s3_calls) == (2 if use_s3 else 0)
    assert len(info_calls) == 2 * intra + 2 * inter


def test_no_relation_graphs_never_builds_graphs(monkeypatch):
    import dreamgeo.nn.modal_line as modal_line_module

    monkeypatch.setattr(
        modal_line_module,
        "_ensure_relation_graphs",
        lambda *a, **k: pytest.fail("graphs were built"),
    )
    data = make_random_data()
    model = DREAM.from_ablation("no_relation_graphs", data, embedding_dim=8)
    assert len(model.modal_line.item_graphs) == 0 and len(model.modal_line.user_graphs) == 0
    assert not any(et[1].startswith("sim_") for et in data.edge_types)


def test_bad_arguments(setup):
    data, _ = setup
    with pytest.raises(ValueError, match="sum to 1"):
        DREAM(data, modal_weights={"image": 0.5, "text": 0.6})
    with pytest.raises(ValueError, match="exactly the modalities"):
        DREAM(data, modal_weights={"image": 1.0})
    with pytest.raises(ValueError, match="knn_k"):
        DREAM(data, knn_k=0)
    with pytest.raises(ValueError, match="s3_weight"):
        DREAM(data, s3_weight=-1.0)
    with pytest.raises(ValueError, match="ablation must be one of full, .*no_s3"):
        DREAM.from_ablation("no_such_thing", data)
    with pytest.raises(ValueError, match="unknown ablation .no_video_encoder"):
        DREAM.from_ablation("no_video_encoder", data)
    with pytest.raises(ValueError, match="plain_modalities"):
        DREAM(data, plain_modalities=("audio",))


def test_any_number_of_modalities():
    data = make_random_data(dims={"image": 10, "text": 5, "audio": 7})
    model = DREAM.from_ablation(
        "no_relation_graphs", data, embedding_dim=8, modal_weighting="fixed"
    )
    assert model.modalities == ["image", "text", "audio"]
    assert model.modal_weights == pytest.approx({"image": 1 / 3, "text": 1 / 3, "audio": 1 / 3})
    assert model.modal_line.encoders["audio"].projection.in_features == 7
    total, parts = model.loss(torch.arange(5), torch.arange(5), torch.arange(5) + 5)
    assert torch.isfinite(total) and "s3" in parts


def test_explicit_inputs_equal_heterodata(setup):
    data, _ = setup
    torch.manual_seed(1)
    a = DREAM(data, knn_k=K, embedding_dim=8)
    graphs = {
        (node, m): (
            data[node, f"sim_{m}", node].edge_index,
            data[node, f"sim_{m}", node].edge_weight,
        )
        for node in ("user", "item")
        for m in ("image", "text")
    }
    torch.manual_seed(1)
    b = DREAM(
        num_users=30,
        num_items=20,
        edge_index=data["user", "interacts", "item"].edge_index,
        features={"image": data["item"].x_image, "text": data["item"].x_text},
        relation_graphs=graphs,
        knn_k=K,
        embedding_dim=8,
    )
    for x, y in zip(a(), b()):
        torch.testing.assert_close(x, y)
    with pytest.raises(ValueError, match="either a HeteroData"):
        DREAM(num_users=3)
    assert np.isfinite(a.loss(torch.arange(3), torch.arange(3), torch.arange(3) + 3)[0].item())


def test_bfloat16_features_match_float32_and_halve_memory(setup):
    data, _ = setup
    full = DREAM(data, knn_k=K, embedding_dim=8, modal_weighting="fixed")
    half = DREAM(data, knn_k=K, embedding_dim=8, feature_dtype="bfloat16", modal_weighting="fixed")
    half.load_state_dict(full.state_dict())
    for m in ("image", "text"):
        assert half.modal_line.features(m).dtype == torch.bfloat16
        assert half.modal_line.features(m).nbytes * 2 == full.modal_line.features(m).nbytes
    assert half.s3.item_factor.dtype == half.s3.user_factor.dtype == torch.bfloat16
    assert half.modal_line.feature_dtype == torch.bfloat16
    users, pos, neg = torch.arange(12), torch.arange(12) % 20, (torch.arange(12) + 7) % 20
    losses, grads = [], []
    for model in (full, half):
        total, _ = model.loss(users, pos, neg)
        losses.append(total.item())
        weight = model.modal_line.encoders["image"].projection.weight
        grads.append(torch.autograd.grad(total, weight)[0])
        assert grads[-1].dtype == torch.float32  # parameters and their gradients stay float32
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)
    assert F.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0) > 0.99
    with pytest.raises(ValueError, match="feature_dtype"):
        DREAM(data, knn_k=K, feature_dtype="float16")
