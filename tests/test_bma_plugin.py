import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dreamgeo import BMALoss
from dreamgeo.models import MODELS, build_model
from dreamgeo.train import TrainConfig, Trainer
from tests.conftest import make_random_data

BMA_PLUGIN_MODELS = tuple(name for name, info in MODELS.items() if info.bma_plugin)

K = 3
TAU, INTRA, INTER = 0.3, 0.05, 0.02
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bma_plugin.py"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny tensors: OpenMP hand-offs on a shared 2-core machine cost more than the work
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data():
    return make_random_data()


def _build(name, data, bma):
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 8, "bma": bma}
    if name in ("freedom", "mgcn"):
        kwargs["knn_k"] = K
    return build_model(name, data, **kwargs)


def _batch(data, size=16):
    generator = torch.Generator().manual_seed(0)
    edge_index = data["user", "interacts", "item"].edge_index
    users, pos = edge_index[:, torch.randperm(edge_index.size(1), generator=generator)[:size]]
    return users, pos, torch.randint(0, data["item"].num_nodes, (size,), generator=generator)


def _info_nce(anchor, positive, tau):
    logits = F.normalize(anchor, dim=1) @ F.normalize(positive, dim=1).t() / tau
    return (torch.logsumexp(logits, dim=1) - logits.diag()).mean()


def _reference_bma(user_behavior, item_behavior, user_modal, item_modal):
    """DREAM Eq. 9-11 with in-batch negatives, written out independently of BMALoss."""
    intra = _info_nce(user_behavior, item_behavior, TAU) + _info_nce(user_modal, item_modal, TAU)
    inter = _info_nce(user_behavior, user_modal, TAU) + _info_nce(item_behavior, item_modal, TAU)
    return INTRA * intra + INTER * inter


def _user_mean_dense(data):
    u, i = data["user", "interacts", "item"].edge_index
    r = torch.zeros(data["user"].num_nodes, data["item"].num_nodes)
    r[u, i] = 1.0
    return r / r.sum(1, keepdim=True).clamp(min=1)


@pytest.mark.parametrize("name", BMA_PLUGIN_MODELS)
def test_bma_on_and_off_differ_only_in_the_loss(data, name):
    off = _build(name, data, None)
    on = _build(name, data, BMALoss(TAU, INTRA, INTER))

    # same initialization and identical representations
    state_off, state_on = off.state_dict(), on.state_dict()
    assert state_off.keys() == state_on.keys()
    assert all(torch.equal(state_off[key], state_on[key]) for key in state_off)
    off.eval(), on.eval()  # LGMRec samples Gumbel noise in training mode
    for a, b in zip(off(), on()):
        assert torch.equal(a, b)
    for a, b in zip(off.dual_representations(), on.dual_representations()):
        assert torch.equal(a, b)
    off.train(), on.train()

    users, pos, neg = _batch(data)
    torch.manual_seed(1)  # FREEDOM's pruning and BM3's dropout draw from it
    loss_off, parts_off = off.loss(users, pos, neg)
    torch.manual_seed(1)
    loss_on, parts_on = on.loss(users, pos, neg)
    assert "bma" not in parts_off and set(parts_on) == set(parts_off) | {"bma"}
    for key in parts_off:
        assert torch.equal(parts_on[key], parts_off[key]), key

    torch.manual_seed(1)  # the same random draws as in the loss (LGMRec)
    user_behavior, item_behavior, user_modal, item_modal = on.dual_representations()
    if name == "freedom":  # its training loss runs on the pruned graph
        user_behavior, item_behavior = on.behavior(on.pruned_conv, on.pruned_edge_index)
    expected = _reference_bma(
        user_behavior[users], item_behavior[pos], user_modal[users], item_modal[pos]
    )
    torch.testing.assert_close(loss_on - loss_off, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts_on["bma"], expected.detach(), rtol=1e-5, atol=1e-6)

    # the BMA term is the only difference in the gradients too
    params_off, params_on = list(off.parameters()), list(on.parameters())
    grads_off = torch.autograd.grad(loss_off, params_off, allow_unused=True)
    grads_on = torch.autograd.grad(loss_on, params_on, retain_graph=True, allow_unused=True)
    grads_bma = torch.autograd.grad(expected, params_on, allow_unused=True)
    for g_off, g_on, g_bma in zip(grads_off, grads_on, grads_bma):
        if g_bma is None:
            assert (g_on is None and g_off is None) or torch.equal(g_on, g_off)
        else:
            base = torch.zeros_like(g_bma) if g_off is None else g_off
            torch.testing.assert_close(g_on, base + g_bma, rtol=1e-4, atol=1e-6)


def test_vbpr_split_is_id_factors_versus_visual_factors(data):
    model = _build("vbpr", data, None)
    rep = model.dual_representations()
    features = torch.cat([data["item"].x_image, data["item"].x_text], dim=1)
    assert torch.equal(rep.user_behavior, model.user_embedding.weight)
    assert torch.equal(rep.item_behavior, model.item_embedding.weight)
    assert torch.equal(rep.user_modal, model.user_visual_embedding.weight)
    torch.testing.assert_close(rep.item_modal, model.projection(features))
    user, item = model()
    torch.testing.assert_close(user, torch.cat([rep.user_behavior, rep.user_modal], 1))
    torch.testing.assert_close(item, torch.cat([rep.item_behavior, rep.item_modal], 1))


def test_bm3_modal_side_is_mean_projected_features_averaged_to_users(data):
    model = _build("bm3", data, None)
    rep = model.dual_representations()
    item_modal = (
        model.projections["image"](data["item"].x_image)
        + model.projections["text"](data["item"].x_text)
    ) / 2
    torch.testing.assert_close(rep.item_modal, item_modal, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rep.user_modal, _user_mean_dense(data) @ item_modal)
    user, item = model()
    torch.testing.assert_close(user, model.predictor(rep.user_behavior))
    torch.testing.assert_close(item, model.predictor(rep.item_behavior))


def test_freedom_and_mgcn_scores_are_behaviour_plus_modal(data):
    freedom = _build("freedom", data, None)
    rep = freedom.dual_representations()
    user, item = freedom()
    torch.testing.assert_close(user, rep.user_behavior)
    torch.testing.assert_close(item, rep.item_behavior + rep.item_modal)
    torch.testing.assert_close(rep.user_modal, _user_mean_dense(data) @ rep.item_modal)

    mgcn = _build("mgcn", data, None)
    rep = mgcn.dual_representations()
    user, item = mgcn()
    torch.testing.assert_close(user, rep.user_behavior + rep.user_modal)
    torch.testing.assert_close(item, rep.item_behavior + rep.item_modal)


def _replayed_bma(name, model, users, pos, neg, weights, rng):
    """The hand-computed BMA term of the training step that just ran on ``model``: its
    representations at the step's ``weights``, replaying its random draws (``rng``: the
    global generator's state before the step). The model is left as it was."""
    params = dict(model.named_parameters())
    after = {key: value.detach().clone() for key, value in params.items()}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for key, value in weights.items():
            params[key].copy_(value)
        torch.set_rng_state(rng)  # the same draws as in the step (LGMRec)
        user_behavior, item_behavior, user_modal, item_modal = model.dual_representations()
        if name == "freedom":  # the step trained on the pruned graph it drew
            user_behavior, item_behavior = model.behavior(
                model.pruned_conv, model.pruned_edge_index
            )
        expected = _reference_bma(
            user_behavior[users], item_behavior[pos], user_modal[users], item_modal[pos]
        )
        for key, value in after.items():
            params[key].copy_(value)
    return expected


def _fit_recording_steps(name, data, bma):
    """Trains 2 epochs through :class:`Trainer`, recording for each step its epoch, batch,
    the weights it started from, its loss and parts, and (with ``bma``) the
    hand-computed BMA term."""
    model = _build(name, data, bma)
    config = TrainConfig(
        epochs=2, batch_size=16, lr=1e-2, ks=(5, 10), stopping_metric="recall@10", progress=False
    )
    trainer = Trainer(model, data, config)
    steps = []
    train_step = trainer.train_step

    def recording_step(users, pos, neg, epoch=0):
        weights = {key: value.detach().clone() for key, value in model.named_parameters()}
        rng = torch.get_rng_state()
        loss, parts = train_step(users, pos, neg, epoch)
        expected = (
            None if bma is None else _replayed_bma(name, model, users, pos, neg, weights, rng)
        )
        steps.append(
            (epoch, (users, pos, neg), weights, float(loss.detach()), dict(parts), expected)
        )
        return loss, parts

    trainer.train_step = recording_step
    torch.manual_seed(1)
    history = trainer.fit().history
    return steps, history


@pytest.mark.parametrize("name", BMA_PLUGIN_MODELS)
def test_trainer_trains_on_and_logs_the_bma_term(data, name):
    steps_off, history_off = _fit_recording_steps(name, data, None)
    steps_on, history_on = _fit_recording_steps(name, data, BMALoss(TAU, INTRA, INTER))
    assert len(steps_on) == len(steps_off) == 2 * 4  # 60 training triples, batches of 16

    # every step's logged "bma" is the hand-computed Eq. 9-11 term of that step's batch
    for *_, parts, expected in steps_on:
        torch.testing.assert_close(parts["bma"], expected, rtol=1e-5, atol=1e-6)
    # and each epoch's row of the history is the mean over its steps
    for row in history_on:
        values = [float(step[-1]) for step in steps_on if step[0] == row["epoch"]]
        assert row["bma"] == pytest.approx(sum(values) / len(values), rel=1e-5)
    assert [row["epoch"] for row in history_on] == [1, 2]
    assert all("bma" not in row for row in history_off)

    # the same weights, batch and random draws at the first step: the plug-in adds
    # exactly its term to the loss that is optimized ...
    _, batch_off, weights_off, loss_off, _, _ = steps_off[0]
    _, batch_on, weights_on, loss_on, _, expected = steps_on[0]
    assert all(torch.equal(a, b) for a, b in zip(batch_off, batch_on))
    assert weights_on.keys() == weights_off.keys()
    assert all(torch.equal(weights_on[key], weights_off[key]) for key in weights_on)
    assert loss_on - loss_off == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    # ... and its gradient moves the weights: the second step starts elsewhere
    weights_off, weights_on = steps_off[1][2], steps_on[1][2]
    assert any(not torch.allclose(weights_on[key], weights_off[key]) for key in weights_on)


def test_example_prints_a_table_with_and_without_bma(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bma_plugin_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = ["--preset", "tiny", "--epochs", "3", "--batch-size", "512", "--lr", "5e-3"]
    rows = example.main([*args, "--data-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| model | valid R@20 | valid N@20 | test R@20 | test N@20 | best epoch |" in out
    assert "epoch 1/3" in out  # one line per epoch
    assert [row["model"].endswith(("without BMA", "with BMA")) for row in rows] == [True, True]
    assert "without BMA" in rows[0]["model"] and "with BMA" in rows[1]["model"]
    for row in rows:
        assert 1 <= row["best_epoch"] <= 3 and 0 < row["recall@20"] <= 1
        assert f"{row['recall@20']:.4f}" in out

    # the example's model: behaviour from PyG's LightGCN, the BMA part only when plugged in
    data = make_random_data()
    for bma in (None, BMALoss()):
        torch.manual_seed(0)
        model = example.LightGCNWithModalEncoder(data, embedding_dim=8)
        model.bma = bma
        _, parts = model.loss(*_batch(data))
        assert ("bma" in parts) == (bma is not None)
