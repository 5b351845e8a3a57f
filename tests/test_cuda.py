"""The same code on a CUDA device; skipped cleanly where there is none."""

import pytest
import torch

from dreamgeo import DREAM
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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_a_step_on_cuda(name):
    data = make_random_data()
    model = build_model(name, data) if name != "dream" else DREAM(data, knn_k=3)
    model = model.cuda()
    users = torch.arange(8, device="cuda")
    loss, _ = model.loss(users, users % 20, (users + 5) % 20)
    loss.backward()
    assert torch.isfinite(loss)


def test_knn_torch_backend_on_cuda_equals_cpu():
    x = torch.randn(500, 32)
    cpu = knn_graph_cosine(x, 5, backend="torch")
    gpu = knn_graph_cosine(x.cuda(), 5, backend="torch", device="cuda")

    def keys(edge_index):
        return (edge_index[0] * 500 + edge_index[1]).sort().values

    assert torch.equal(keys(cpu), keys(gpu.cpu()))
