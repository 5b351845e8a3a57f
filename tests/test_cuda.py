"""The same code on a CUDA device; skipped cleanly where there is none."""

import pytest
import torch

from dreamgeo import DREAM, BMALoss
from dreamgeo.graph import knn_graph_cosine
from dreamgeo.models.registry import MODELS, build_model
from dreamgeo.train import TrainConfig, Trainer
from tests.conftest import make_random_data

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_dream_trains_and_matches_cpu_forward():
    data = make_random_data()
    torch.manual_seed(0)
    cpu = DREAM(data, knn_k=3, embedding_dim=8)
    gpu = DREAM(data, knn_k=3, embedding_dim=8)
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    for a, b in zip(cpu(), gpu()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-5)
    result = Trainer(
        gpu,
        data,
        TrainConfig(epochs=2, batch_size=32, ks=(5, 10, 20), device="cuda", progress=False),
    ).fit()
    # two epochs on the GPU lower the loss, and the ranking is evaluated on all users
    assert len(result.history) == 2
    assert result.history[1]["loss"] < result.history[0]["loss"]
    assert 0 < result.valid["recall@20"] <= 1


#: Settings that keep each model's loss free of random draws, so that it can be compared
#: between devices (their random streams differ): BM3's target dropout and FREEDOM's
#: pruning off; LGMRec's Gumbel noise and hypergraph dropout are off in eval mode.
#: (DREAM: 3 neighbours among the 20 items, as above.)
SETTINGS = {"bm3": {"dropout": 0.0}, "freedom": {"dropout": 0.0}, "dream": {"knn_k": 3}}
EVAL_LOSS = {"lgmrec"}


def _seeded_model(name, data, device):
    torch.manual_seed(0)
    kwargs = dict(SETTINGS.get(name, {}))
    if MODELS[name].bma_plugin:  # DREAM's BMA as a plug-in, so that it runs on CUDA too
        kwargs["bma"] = BMALoss()
    model = build_model(name, data, **kwargs).to(device)
    model.train(name not in EVAL_LOSS)
    return model


def _loss_and_grads(model, batch):
    loss, parts = model.loss(*batch)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return loss, parts, dict(zip(params, grads))


def _same_model_on(name, device, lr=1e-2):
    """The same seeded model on the CPU and on ``device``: scores, loss parts and
    gradients of one batch on each, then both after one SGD step on that batch."""
    data = make_random_data()
    edge_index = data["user", "interacts", "item"].edge_index[:, :16]
    batch = (edge_index[0], edge_index[1], torch.arange(16) % data["item"].num_nodes)
    results = []
    for where in ("cpu", device):
        model = _seeded_model(name, data, where)
        on = tuple(t.to(where) for t in batch)
        loss, parts, grads = _loss_and_grads(model, on)
        with torch.no_grad():
            for key, param in model.named_parameters():
                if grads[key] is not None:
                    param -= lr * grads[key]
        after, _, _ = _loss_and_grads(model, on)
        model.eval()
        with torch.no_grad():
            user, item = model()
        results.append(
            {
                "loss": loss.detach(),
                "parts": parts,
                "grads": grads,
                "after": after.detach(),
                "scores": user @ item.t(),
            }
        )
    return results


def _assert_same(cpu, other, rtol=1e-4, atol=1e-5):
    torch.testing.assert_close(other["loss"].cpu(), cpu["loss"], rtol=rtol, atol=atol)
    assert other["parts"].keys() == cpu["parts"].keys()
    for key, value in cpu["parts"].items():
        torch.testing.assert_close(other["parts"][key].cpu(), value, rtol=rtol, atol=atol)
    assert other["grads"].keys() == cpu["grads"].keys()
    assert any(g is not None and g.abs().max() > 0 for g in cpu["grads"].values())
    for key, grad in cpu["grads"].items():
        if grad is None:
            assert other["grads"][key] is None, key
        else:
            scale = grad.abs().max().item()
            torch.testing.assert_close(
                other["grads"][key].cpu(), grad, rtol=1e-3, atol=1e-4 * scale + 1e-8
            )
    # the step on the batch's gradient lowers its loss, on both devices alike
    assert other["after"].item() < other["loss"].item()
    torch.testing.assert_close(other["after"].cpu(), cpu["after"], rtol=rtol, atol=atol)
    torch.testing.assert_close(other["scores"].cpu(), cpu["scores"], rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_computes_on_cuda_what_it_computes_on_cpu(name):
    _assert_same(*_same_model_on(name, "cuda"))


def test_knn_torch_backend_on_cuda_equals_cpu():
    x = torch.randn(500, 32)
    cpu = knn_graph_cosine(x, 5, backend="torch")
    gpu = knn_graph_cosine(x.cuda(), 5, backend="torch", device="cuda")

    def keys(edge_index):
        return (edge_index[0] * 500 + edge_index[1]).sort().values

    assert torch.equal(keys(cpu), keys(gpu.cpu()))
