import json
import math
import sys

import numpy as np
import pytest
import torch
from conftest import make_random_data

from dreamgeo import DREAM
from dreamgeo.datasets import MMRecDataset, write_planted
from dreamgeo.diagnostics import (
    DualRepresentationDiagnostics,
    behavior_modal_cosine,
    cosine_distance,
    embed_2d,
    modal_information_forgetting,
    pairwise_cosines,
    plot_behavior_modal_cosine,
    plot_dual_tsne,
    plot_epoch_curves,
    plot_forgetting,
    read_metrics,
    sample_nodes,
    sampled_raw_features,
)
from dreamgeo.diagnostics.pyplot import import_pyplot
from dreamgeo.graph.hetero import user_mean_features
from dreamgeo.models import DualRepresentation, LightGCN
from dreamgeo.train import TrainConfig, Trainer


def numpy_forgetting(learned, raw, centered=False):
    """Independent reference: explicit loops over the pairs a < b."""
    learned, raw = np.asarray(learned, np.float64), np.asarray(raw, np.float64)
    cos = lambda u, v: u @ v / (np.linalg.norm(u) * np.linalg.norm(v))  # noqa: E731
    n = len(learned)
    a = np.array([cos(learned[i], learned[j]) for i in range(n) for j in range(i + 1, n)])
    b = np.array([cos(raw[i], raw[j]) for i in range(n) for j in range(i + 1, n)])
    if centered:
        return 1.0 - np.corrcoef(a, b)[0, 1]
    return 1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def orthonormal_rows(rows, cols, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(cols, cols)))
    return torch.tensor(q[:rows], dtype=torch.float32)


# ---------------------------------------------------------------- measurements
def test_pairwise_cosines_match_a_loop():
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    x[3] = 0  # a zero row has similarity 0 to everything
    expected = []
    for i in range(7):
        for j in range(i + 1, 7):
            norm = x[i].norm() * x[j].norm()
            expected.append(0.0 if norm == 0 else float(x[i] @ x[j] / norm))
    assert torch.allclose(pairwise_cosines(x), torch.tensor(expected), atol=1e-6)


def test_forgetting_hand_example():
    # raw: cos(1,2) = 0, cos(1,3) = cos(2,3) = 1/sqrt2; learned: 1/sqrt2, 0, 1/sqrt2
    # -> vectors (0, r, r) and (r, 0, r) with r = 1/sqrt2: cosine 1/2, distance 1/2
    raw = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    learned = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    assert float(modal_information_forgetting(learned, raw)) == pytest.approx(0.5, abs=1e-6)
    assert float(modal_information_forgetting(raw, raw)) == pytest.approx(0.0, abs=1e-6)


def test_forgetting_is_zero_when_the_structure_is_kept():
    raw = torch.randn(60, 12, generator=torch.Generator().manual_seed(1))
    # 12-d features into a 32-d space by orthonormal rows: every inner product kept;
    # per-row rescaling keeps every cosine too
    learned = (raw @ orthonormal_rows(12, 32, seed=2)) * torch.linspace(0.1, 5.0, 60)[:, None]
    assert float(modal_information_forgetting(learned, raw)) == pytest.approx(0.0, abs=1e-6)
    assert float(modal_information_forgetting(learned, raw, centered=True)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_forgetting_of_permuted_rows_matches_numpy_and_is_large():
    raw = torch.randn(40, 10, generator=torch.Generator().manual_seed(3))
    learned = (raw @ orthonormal_rows(10, 16, seed=4))[torch.randperm(40)]
    value = float(modal_information_forgetting(learned, raw))
    assert value == pytest.approx(numpy_forgetting(learned, raw), abs=1e-6)
    assert value > 0.5  # random pairing of rows: unrelated similarity structure
    centered = float(modal_information_forgetting(learned, raw, centered=True))
    assert centered == pytest.approx(numpy_forgetting(learned, raw, centered=True), abs=1e-6)


def test_centering_ignores_a_constant_shift_of_similarities():
    a = torch.tensor([0.1, 0.5, -0.2, 0.3])
    assert float(cosine_distance(a + 0.8, a, centered=True)) == pytest.approx(0.0, abs=1e-9)
    assert float(cosine_distance(a + 0.8, a)) > 0.1
    with pytest.raises(ValueError, match="one length"):
        cosine_distance(a, a[:3])
    with pytest.raises(ValueError, match="same sample"):
        modal_information_forgetting(torch.randn(4, 3), torch.randn(5, 3))


def test_behavior_modal_cosine():
    modal = torch.randn(50, 8, generator=torch.Generator().manual_seed(5))
    assert float(behavior_modal_cosine(modal * 3, modal)) == pytest.approx(1.0, abs=1e-6)
    assert float(behavior_modal_cosine(-modal, modal)) == pytest.approx(-1.0, abs=1e-6)
    # behaviour in the first 4 coordinates, modal in the last 4: orthogonal rows
    behavior = torch.cat([modal[:, :4], torch.zeros(50, 4)], 1)
    other = torch.cat([torch.zeros(50, 4), modal[:, 4:]], 1)
    assert float(behavior_modal_cosine(behavior, other)) == pytest.approx(0.0, abs=1e-7)
    # by hand: cos((1,0),(1,1)) = 1/sqrt2, cos((0,2),(0,-1)) = -1
    hand = behavior_modal_cosine(
        torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    )
    assert float(hand) == pytest.approx((1 / math.sqrt(2) - 1) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        behavior_modal_cosine(torch.randn(3, 4), torch.randn(3, 5))


def test_sample_nodes_is_seeded_sorted_and_distinct():
    first, again = sample_nodes(100, 30, seed=7), sample_nodes(100, 30, seed=7)
    assert torch.equal(first, again)
    assert not torch.equal(first, sample_nodes(100, 30, seed=8))
    assert first.unique().numel() == 30 and torch.equal(first, first.sort().values)
    assert torch.equal(sample_nodes(10, 1000), torch.arange(10))
    candidates = torch.tensor([3, 9, 11])
    assert set(sample_nodes(20, 5, candidates=candidates).tolist()) == {3, 9, 11}


def test_sampled_raw_features_match_the_library_user_means():
    data = make_random_data()
    store = data["user", "interacts", "item"]
    # a repeated interaction counts once, as in user_mean_features
    store.edge_index = torch.cat([store.edge_index, store.edge_index[:, :1].repeat(1, 3)], 1)
    users = torch.tensor([store.edge_index[0, 0].item(), 4, 17, 29])
    for m in ("image", "text"):
        expected = user_mean_features(data, m)[users]
        got = sampled_raw_features(data, "user", m, users)
        assert torch.allclose(got, expected, atol=1e-5)
        items = torch.tensor([2, 5])
        assert torch.equal(
            sampled_raw_features(data, "item", m, items), data["item"][f"x_{m}"][items]
        )


# ---------------------------------------------------------------- callback
class HandMadeDualModel(torch.nn.Module):
    """Modal representations made from the raw features: items' from image features
    by orthonormal rows (structure kept), users' from their mean text features."""

    def __init__(self, data):
        super().__init__()
        num_users = data["user"].num_nodes
        item_modal = data["item"].x_image @ orthonormal_rows(12, 16, seed=0)
        user_text = user_mean_features(data, "text")
        user_modal = torch.cat([user_text, torch.zeros(num_users, 10)], 1)
        self.rep = DualRepresentation(user_modal.clone(), -item_modal, user_modal, item_modal)

    def dual_representations(self):
        return self.rep


def test_diagnostics_measure_hand_made_representations():
    data = make_random_data()  # 30 users, 20 items: the samples are everyone
    diagnostics = DualRepresentationDiagnostics(data, sample_size=1000)
    model = HandMadeDualModel(data)
    out = diagnostics.measure(model)
    assert out["forgetting_item_image"] == pytest.approx(0.0, abs=1e-5)
    assert out["forgetting_user_text"] == pytest.approx(0.0, abs=1e-5)
    x = data["item"]
    assert out["forgetting_item_text"] == pytest.approx(
        numpy_forgetting(model.rep.item_modal, x.x_text), abs=1e-5
    )
    assert out["forgetting_user_image"] == pytest.approx(
        numpy_forgetting(model.rep.user_modal, user_mean_features(data, "image")), abs=1e-5
    )
    assert out["forgetting_item_text"] > 0.1
    assert out["behavior_modal_cos_user"] == pytest.approx(1.0, abs=1e-6)
    assert out["behavior_modal_cos_item"] == pytest.approx(-1.0, abs=1e-6)
    assert out["behavior_modal_distance_item"] == pytest.approx(2.0, abs=1e-6)


def test_diagnostics_sample_is_fixed_and_subsampled():
    data = make_random_data(num_users=40, num_items=30)
    one = DualRepresentationDiagnostics(data, sample_size=10, seed=3)
    two = DualRepresentationDiagnostics(data, sample_size=10, seed=3)
    assert one.samples["item"].numel() == 10 and torch.equal(
        one.samples["item"], two.samples["item"]
    )
    model = HandMadeDualModel(make_random_data(num_users=40, num_items=30))
    model.rep = DualRepresentation(*(torch.randn(t.shape) for t in model.rep))
    index = one.samples["item"]
    expected = numpy_forgetting(model.rep.item_modal[index], data["item"].x_image[index])
    assert one.measure(model)["forgetting_item_image"] == pytest.approx(expected, abs=1e-5)


def test_diagnostics_reject_models_without_dual_representations():
    data = make_random_data()
    diagnostics = DualRepresentationDiagnostics(data)
    with pytest.raises(TypeError, match="LightGCN has no dual_representations"):
        diagnostics.measure(LightGCN.from_data(data))
    with pytest.raises(ValueError, match="the data has 40 users"):
        DualRepresentationDiagnostics(make_random_data(num_users=40)).measure(
            HandMadeDualModel(data)
        )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    write_planted(root, "tiny", preset="tiny")
    data = MMRecDataset(root, "tiny")[0]
    torch.manual_seed(0)
    model = DREAM(data, knn_k=5)
    config = TrainConfig(epochs=2, out_dir=str(root / "run"), progress=False)
    diagnostics = DualRepresentationDiagnostics(data, sample_size=100)
    result = Trainer(model, data, config, callbacks=[diagnostics]).fit()
    return root / "run", model, result


def test_callback_columns_reach_the_logs(tiny_run):
    run_dir, _, result = tiny_run
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    columns = [f"forgetting_{node}_{m}" for node in ("item", "user") for m in ("image", "text")] + [
        f"behavior_modal_{what}_{node}" for what in ("cos", "distance") for node in ("user", "item")
    ]
    for row in rows:
        for column in columns:
            assert math.isfinite(row[column]), column
        assert all(0.0 <= row[c] <= 2.0 for c in columns if c.startswith("forgetting"))
        assert row["behavior_modal_distance_user"] == pytest.approx(
            1 - row["behavior_modal_cos_user"]
        )
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(columns) <= set(header)
    assert read_metrics(run_dir) == rows == [dict(row) for row in result.history]


# ---------------------------------------------------------------- plots
def is_png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_curve_plots(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    run_dir, _, _ = tiny_run
    rows = read_metrics(run_dir)
    shifted = [
        {**row, "behavior_modal_cos_user": row["behavior_modal_cos_user"] + 0.1} for row in rows
    ]
    runs = {"dream": run_dir, "dream+bma": shifted}
    assert is_png(plot_forgetting(runs, tmp_path / "figs" / "fig1b.png"))
    assert is_png(plot_behavior_modal_cosine(runs, tmp_path / "fig2a.png"))
    assert is_png(plot_behavior_modal_cosine(runs, tmp_path / "fig6b.png", distance=True))
    with pytest.raises(ValueError, match="none of the runs"):
        plot_epoch_curves(runs, ["no_such_column"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="logged forgetting_"):
        plot_forgetting({"plain": [{"epoch": 1, "loss": 0.5}]}, tmp_path / "y.png")


def test_read_metrics_names_the_bad_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": \n')
    with pytest.raises(ValueError, match="metrics.jsonl line 2"):
        read_metrics(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "absent")


def test_tsne_plot(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    _, model, _ = tiny_run
    with torch.no_grad():
        rep = model.eval().dual_representations()
    path = plot_dual_tsne(rep, tmp_path / "fig7.png", num_points=80, num_lines=10)
    assert is_png(path)


def test_pca_fallback_projects_on_the_top_components():
    generator = torch.Generator().manual_seed(0)
    x = (
        torch.randn(30, 2, generator=generator)
        * torch.tensor([5.0, 1.0])
        @ orthonormal_rows(2, 6, 1)
    )
    xy = embed_2d(x, method="pca")
    centered = (x - x.mean(0)).double().numpy()
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vt[:2].T
    assert np.allclose(np.abs(xy), np.abs(expected), atol=1e-8)  # up to the signs


def test_missing_plot_dependencies_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install dreamgeo\[plots\]"):
        import_pyplot()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match=r"pip install dreamgeo\[plots\]"):
        embed_2d(torch.randn(10, 3), method="tsne")
    assert embed_2d(torch.randn(10, 3), method="auto").shape == (10, 2)  # PCA instead
