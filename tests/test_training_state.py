import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamgeo import DREAM
from dreamgeo.datasets import MMRecDataset, write_planted
from dreamgeo.diagnostics import (
    DualRepresentationDiagnostics,
    gate_activations,
    representation_norms,
    s3_sample_loss,
)
from dreamgeo.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("state")
    write_planted(root, "tiny", preset="tiny")
    return root, MMRecDataset(root, "tiny", log=False)[0]


def test_gate_activations_by_hand(tiny):
    _, data = tiny
    torch.manual_seed(0)
    model = DREAM(data, knn_k=5).eval()
    out = gate_activations(model)
    assert sorted(out) == sorted(
        f"gate_{what}_{m}" for what in ("item", "user", "item_std") for m in ("image", "text")
    )
    edge = data["user", "interacts", "item"].edge_index
    for m in ("image", "text"):
        encoder = model.modal_line.encoders[m]
        x = data["item"][f"x_{m}"]
        pre = x @ encoder.projection.weight.detach().T + encoder.projection.bias.detach()
        # users: mean of their training items' pre-activations, then the sigmoid
        user_pre = torch.zeros(data["user"].num_nodes, pre.size(1)).index_add_(
            0, edge[0], pre[edge[1]]
        )
        user_pre /= torch.bincount(edge[0], minlength=data["user"].num_nodes).clamp(min=1)[:, None]
        assert out[f"gate_item_{m}"] == pytest.approx(float(torch.sigmoid(pre).mean()), abs=1e-5)
        assert out[f"gate_user_{m}"] == pytest.approx(
            float(torch.sigmoid(user_pre).mean()), abs=1e-5
        )
        expected_std = float(torch.sigmoid(pre).std(dim=1).mean())
        assert out[f"gate_item_std_{m}"] == pytest.approx(expected_std, abs=1e-5)
    assert gate_activations(DREAM(data, knn_k=5, use_filter_gate=False)) == {}
    assert gate_activations(torch.nn.Linear(2, 2)) == {}


def test_representation_norms_and_s3_sample_loss_by_hand():
    rows = [torch.full((3, 2), float(v)) for v in (1, 2, 3, 4)]
    norms = representation_norms(*rows)
    assert norms["norm_user_behavior"] == pytest.approx(2**0.5)
    assert norms["norm_item_modal"] == pytest.approx(4 * 2**0.5)
    torch.manual_seed(1)
    modal, x1, x2 = torch.randn(6, 4), torch.randn(6, 5), torch.randn(6, 3)
    weights = (0.3, 0.7)
    factor = torch.cat([F.normalize(x, dim=1) * w**0.5 for x, w in zip((x1, x2), weights)], 1)

    def cos(x):
        x = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
        return x @ x.T

    target = weights[0] * cos(x1) + weights[1] * cos(x2)
    expected = float(np.mean((cos(modal) - target) ** 2))
    assert s3_sample_loss(modal, factor) == pytest.approx(expected, abs=1e-6)


def test_callback_logs_the_training_state(tiny):
    root, data = tiny
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, out_dir=str(root / "run"), progress=False, log_epochs=False)
    diagnostics = DualRepresentationDiagnostics(data, sample_size=50)
    model = DREAM(data, knn_k=5)
    Trainer(model, data, config, callbacks=[diagnostics]).fit()
    row = json.loads((root / "run" / "metrics.jsonl").read_text().splitlines()[0])
    for column in ("bpr", "reg", "intra", "inter", "s3", "s3_full_item", "s3_full_user"):
        assert np.isfinite(row[column]), column
    assert 0.0 < row["gate_item_text"] < 1.0 and row["norm_item_modal"] > 0
    model.eval()
    index = diagnostics.samples["item"]
    rep = model.representations()
    expected = s3_sample_loss(rep.item_modal[index], model.s3.item_factor[index])
    assert diagnostics.measure(model)["s3_full_item"] == pytest.approx(expected, abs=1e-6)
    no_s3 = DREAM(data, knn_k=5, ablation="no_s3").eval()
    assert "s3_full_item" not in diagnostics.measure(no_s3)
    plain = DualRepresentationDiagnostics(data, sample_size=50, training_state=False)
    assert not any(k.startswith(("gate_", "norm_", "s3_")) for k in plain.measure(model))
