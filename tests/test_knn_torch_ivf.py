import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dreamgeo.graph import build_relation_graphs, knn_graph_cosine, knn_recall, knn_torch_ivf


def clustered(n: int, d: int, clusters: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d))
    labels = rng.integers(0, clusters, n)
    return (centers[labels] + noise * rng.standard_normal((n, d))).astype(np.float32)


def brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = x.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    cosine = unit @ unit.T
    order = np.argsort(-cosine, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(cosine, order, axis=1)


def neighbours(edge_index: torch.Tensor, n: int, k: int) -> np.ndarray:
    assert edge_index.shape == (2, n * k)
    assert torch.equal(edge_index[0], torch.arange(n).repeat_interleave(k))
    return edge_index[1].view(n, k).numpy()


def overlap(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected)]))


def test_one_list_compares_all_rows_and_scores_are_exact_cosines():
    x = clustered(900, 24, clusters=12, noise=0.8, seed=0)
    expected, expected_cosine = brute_force(x, 8)
    edge_index, score = knn_graph_cosine(
        x, 8, mode="ivf", backend="torch_ivf", nlist=1, return_scores=True
    )
    found = neighbours(edge_index, 900, 8)
    assert overlap(found, expected) == 1.0
    # neighbours best first, scores the float64 cosines to float32 accuracy
    np.testing.assert_allclose(score.view(900, 8).numpy(), expected_cosine, atol=1e-5)


def test_ivf_lists_reach_high_recall_and_keep_the_conventions():
    x = clustered(4000, 32, clusters=40, noise=0.6, seed=1)
    x[::97] = 0.0  # all-zero rows: only their own neighbour, nobody's neighbour
    zero = np.arange(0, 4000, 97)
    edge_index = knn_graph_cosine(x, 10, mode="ivf", backend="torch_ivf", nlist=60, nprobe=8)
    row, col = edge_index.numpy()
    assert set(zero.tolist()).isdisjoint(col[~np.isin(row, zero)].tolist())
    for z in zero:
        assert col[row == z].tolist() == [z]
    nonzero = np.setdiff1d(np.arange(4000), zero)
    expected, _ = brute_force(x[nonzero], 10)
    kept = ~np.isin(row, zero)
    found = np.searchsorted(nonzero, col[kept]).reshape(-1, 10)
    assert overlap(found, expected) > 0.95
    assert all(len(set(r)) == 10 and i in r for i, r in enumerate(found.tolist()))
    assert knn_recall(x, 10, edge_index, sample=500) > 0.95


@pytest.mark.parametrize("nlist,nprobe", [(1, None), (20, 2)])  # all rows / list scans
def test_high_dimensional_rows_use_bfloat16_where_fast_and_rerank_to_exact(
    monkeypatch, caplog, nlist, nprobe
):
    x = clustered(1500, 1024, clusters=20, noise=0.6, seed=2)
    expected, _ = brute_force(x, 10)
    unit = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    found = {}
    for fast in (True, False):  # both paths, whatever this machine measures
        monkeypatch.setattr(knn_torch_ivf, "bfloat16_is_fast", lambda device_type, f=fast: f)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dreamgeo.graph.knn"):
            edge_index, score = knn_graph_cosine(
                x,
                10,
                mode="ivf",
                backend="torch_ivf",
                nlist=nlist,
                nprobe=nprobe,
                return_scores=True,
            )
        dtype = "bfloat16" if fast else "float32"
        (message,) = [r.getMessage() for r in caplog.records if "torch IVF" in r.getMessage()]
        assert f"({dtype})" in message
        assert ("all rows were compared" in message) == (nlist == 1)
        found[fast] = neighbours(edge_index, 1500, 10)
        # the products only rank the candidates: float32 re-scoring decides, so the
        # scores are the exact cosines of the neighbours returned, best first
        exact = np.einsum("id,ikd->ik", unit, unit[found[fast]])
        np.testing.assert_allclose(score.view(1500, 10).numpy(), exact, atol=1e-5)
        assert (np.diff(exact, axis=1) <= 1e-6).all()
        assert overlap(found[fast], expected) > 0.99
    # ranking in bfloat16 finds the neighbours ranking in float32 finds
    assert overlap(found[True], found[False]) > 0.99

    # below 1024 dimensions float32 products are faster whatever bfloat16's speed
    monkeypatch.setattr(knn_torch_ivf, "bfloat16_is_fast", lambda device_type: True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dreamgeo.graph.knn"):
        knn_graph_cosine(x[:200, :1023], 5, mode="ivf", backend="torch_ivf", nlist=1)
    assert any("(float32)" in r.getMessage() for r in caplog.records)


def test_rows_whose_probed_lists_are_short_are_searched_exhaustively():
    x = clustered(2000, 16, clusters=40, noise=0.3, seed=3)
    edge_index = knn_graph_cosine(x, 120, mode="ivf", backend="torch_ivf", nlist=40, nprobe=1)
    found = neighbours(edge_index, 2000, 120)
    assert all(len(set(r)) == 120 and i in r for i, r in enumerate(found.tolist()))
    expected, _ = brute_force(x, 120)
    assert overlap(found, expected) > 0.9


def test_unbalanced_lists_switch_to_comparing_all_rows(caplog):
    # 1900 identical rows cannot be split by k-means: one list holds them all, so a
    # query would scan most rows and the search compares all rows instead
    rng = np.random.default_rng(4)
    skewed = np.ones((2000, 16), np.float32)
    skewed[:100] = rng.standard_normal((100, 16))
    with caplog.at_level(logging.INFO, logger="dreamgeo.graph.knn"):
        edge_index, score = knn_graph_cosine(
            skewed, 5, mode="ivf", backend="torch_ivf", nlist=20, nprobe=4, return_scores=True
        )
    assert any("all rows were compared" in r.getMessage() for r in caplog.records)
    found = neighbours(edge_index, 2000, 5)
    assert all(i in row for i, row in enumerate(found.tolist()))
    # duplicates tie, so compare the cosines of the neighbours, not their ids
    _, expected_cosine = brute_force(skewed, 5)
    np.testing.assert_allclose(score.view(2000, 5).numpy(), expected_cosine, atol=1e-5)


def test_torch_ivf_is_an_ivf_search_and_goes_through_the_graph_builder(random_data):
    with pytest.raises(ValueError, match="pass mode='ivf'"):
        knn_graph_cosine(np.ones((4, 3), np.float32), 2, backend="torch_ivf")
    build_relation_graphs(random_data, k=5, mode="ivf", backend="torch_ivf")
    store = random_data["user", "sim_image", "user"]
    assert store.edge_index.shape == (2, 30 * 5)
    assert store.edge_weight.shape == (30 * 5,)


def test_never_allocates_n_by_n():
    # an n x n float32 matrix (1.6 GB for n = 20_000) would not fit under 2 GiB
    script = textwrap.dedent(
        """
        import resource
        limit = 2 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import numpy as np
        from dreamgeo.graph import knn_graph_cosine
        x = np.random.default_rng(0).standard_normal((20_000, 16)).astype(np.float32)
        for nlist in (1, None):
            edge_index = knn_graph_cosine(x, 10, mode="ivf", backend="torch_ivf", nlist=nlist)
            assert edge_index.shape == (2, 200_000)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
