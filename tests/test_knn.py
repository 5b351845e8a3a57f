import logging
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest
import torch

from dreamgeo.graph import knn_graph_cosine, knn_recall
from dreamgeo.graph.knn_torch import TorchFlatIP


def brute_force_topk(x: np.ndarray, k: int) -> list[set[int]]:
    x = x.astype(np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cosine = unit @ unit.T
    order = np.argsort(-cosine, axis=1, kind="stable")[:, :k]
    return [set(row.tolist()) for row in order]


def neighbour_sets(edge_index: torch.Tensor, n: int) -> list[set[int]]:
    sets = [set() for _ in range(n)]
    for i, j in edge_index.t().tolist():
        sets[i].add(j)
    return sets


def clustered(n: int, d: int, clusters: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d))
    labels = rng.integers(0, clusters, n)
    return (centers[labels] + noise * rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_exact_matches_brute_force_numpy(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32) * rng.uniform(0.1, 50, (300, 1))
    edge_index, scores = knn_graph_cosine(x, 7, backend=backend, return_scores=True)

    assert edge_index.shape == (2, 300 * 7)
    assert edge_index.dtype == torch.long
    assert neighbour_sets(edge_index, 300) == brute_force_topk(x, 7)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = (unit[edge_index[0].numpy()] * unit[edge_index[1].numpy()]).sum(1)
    np.testing.assert_allclose(scores.numpy(), expected, atol=1e-5)
    # rows are grouped by query in increasing order, neighbours by decreasing score
    assert torch.equal(edge_index[0], torch.arange(300).repeat_interleave(7))
    assert (scores.view(300, 7).diff(dim=1) <= 1e-6).all()


def test_torch_and_numpy_inputs_agree_for_any_dtype():
    x = np.random.default_rng(1).standard_normal((120, 10))
    from_numpy = knn_graph_cosine(x.astype(np.float32), 5)
    from_torch = knn_graph_cosine(torch.from_numpy(x), 5)  # float64 tensor
    assert neighbour_sets(from_numpy, 120) == neighbour_sets(from_torch, 120)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_self_is_always_a_neighbour_even_with_duplicates(backend):
    base = np.random.default_rng(2).standard_normal((10, 6)).astype(np.float32)
    x = np.repeat(base, 4, axis=0)  # every row has 3 exact duplicates
    for k in (1, 2, 3):
        edge_index = knn_graph_cosine(x, k, backend=backend)
        sets = neighbour_sets(edge_index, 40)
        assert all(i in sets[i] and len(sets[i]) == k for i in range(40))
        # the other neighbours are duplicates of the row (cosine 1)
        assert all(j // 4 == i // 4 for i in range(40) for j in sets[i])


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_zero_rows_only_neighbour_themselves(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    x[[0, 17]] = 0.0
    edge_index, scores = knn_graph_cosine(
        torch.from_numpy(x), 4, backend=backend, return_scores=True
    )

    assert edge_index.size(1) == 48 * 4 + 2
    sets = neighbour_sets(edge_index, 50)
    assert sets[0] == {0} and sets[17] == {17}
    targets_of_others = edge_index[1][~torch.isin(edge_index[0], torch.tensor([0, 17]))]
    assert not torch.isin(targets_of_others, torch.tensor([0, 17])).any()
    assert scores[edge_index[0] == 0].tolist() == [0.0]
    nonzero = [i for i in range(50) if i not in (0, 17)]
    expected = brute_force_topk(x[nonzero], 4)
    assert [{nonzero[j] for j in s} for s in expected] == [sets[i] for i in nonzero]


def test_all_rows_zero():
    edge_index = knn_graph_cosine(np.zeros((5, 3), np.float32), 3)
    assert edge_index.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]


def test_chunking_gives_identical_graph():
    x = np.random.default_rng(4).standard_normal((1000, 12)).astype(np.float32)
    x[::97] = 0.0
    one_chunk = knn_graph_cosine(x, 9, chunk_size=100_000)
    chunked = knn_graph_cosine(x, 9, chunk_size=37)
    assert torch.equal(one_chunk, chunked)
    assert torch.equal(knn_graph_cosine(x, 9, chunk_size=37, backend="torch"), one_chunk)


def test_k_validation_and_clamping():
    x = np.random.default_rng(5).standard_normal((6, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="k must be positive"):
        knn_graph_cosine(x, 0)
    with pytest.raises(ValueError, match="k must be positive"):
        knn_graph_cosine(x, -3)
    with pytest.warns(UserWarning, match="exceeds the 6 rows"):
        edge_index = knn_graph_cosine(x, 10)
    assert all(s == set(range(6)) for s in neighbour_sets(edge_index, 6))


def test_invalid_inputs_are_named():
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        knn_graph_cosine(x, 2)
    with pytest.raises(ValueError, match="mode"):
        knn_graph_cosine(np.ones((4, 3), np.float32), 2, mode="hnsw")
    with pytest.raises(ValueError, match="2-D"):
        knn_graph_cosine(np.ones(4, np.float32), 2)
    with pytest.raises(ValueError, match="backend"):
        knn_graph_cosine(np.ones((4, 3), np.float32), 2, backend="annoy")
    with pytest.raises(ValueError, match="only supports mode='exact'"):
        knn_graph_cosine(np.ones((4, 3), np.float32), 2, backend="torch", mode="ivf")


def test_torch_search_in_small_blocks_matches_faiss():
    x = np.random.default_rng(9).standard_normal((700, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = TorchFlatIP(700, 24, torch.device("cpu"), scratch_bytes=4 * 700 * 33)
    index.add(x[:300])
    index.add(x[300:])
    scores, ids = index.search(x[:100], 6)  # 33 queries per product
    reference = faiss.IndexFlatIP(24)
    reference.add(x)
    expected_scores, expected_ids = reference.search(x[:100], 6)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_ivf_recall_on_clustered_data_and_exact_recall_is_one():
    x = clustered(4000, 32, clusters=40, noise=0.6, seed=6)
    exact = knn_graph_cosine(x, 10)
    ivf = knn_graph_cosine(x, 10, mode="ivf")
    assert ivf.shape == exact.shape
    assert knn_recall(x, 10, exact, sample=500) == 1.0
    recall = knn_recall(x, 10, ivf, sample=500)
    assert 0.9 < recall <= 1.0
    sets = neighbour_sets(ivf, 4000)
    assert all(i in sets[i] and len(sets[i]) == 10 for i in range(4000))


def test_unbalanced_ivf_lists_are_logged(caplog):
    rng = np.random.default_rng(10)
    balanced = clustered(2000, 16, clusters=20, noise=0.05, seed=10)
    with caplog.at_level(logging.WARNING, logger="dreamgeo.graph.knn"):
        knn_graph_cosine(balanced, 5, mode="ivf", nlist=20, nprobe=2)
    assert not any("unbalanced" in r.message for r in caplog.records)

    # 1900 identical rows cannot be split by k-means: one list takes them all
    skewed = np.ones((2000, 16), np.float32)
    skewed[:100] = rng.standard_normal((100, 16))
    with caplog.at_level(logging.WARNING, logger="dreamgeo.graph.knn"):
        knn_graph_cosine(skewed.astype(np.float32), 5, mode="ivf", nlist=20, nprobe=2)
    assert any("unbalanced" in r.message for r in caplog.records)


def test_knn_recall_detects_a_wrong_graph():
    x = clustered(500, 8, clusters=5, noise=0.5, seed=7)
    rng = np.random.default_rng(0)
    random_graph = np.stack([np.arange(500).repeat(5), rng.integers(0, 500, 2500)])
    assert knn_recall(x, 5, random_graph, sample=200) < 0.3
    exact = knn_graph_cosine(x, 5)
    # dropping the last neighbour of every row loses exactly one in five
    kept = exact.view(2, 500, 5)[:, :, :4].reshape(2, -1)
    assert knn_recall(x, 5, kept, sample=500) == pytest.approx(0.8)


def test_ivf_fills_rows_whose_probed_lists_are_short():
    x = clustered(2000, 16, clusters=40, noise=0.3, seed=8)
    edge_index = knn_graph_cosine(x, 120, mode="ivf", nlist=40, nprobe=1)
    assert edge_index.shape == (2, 2000 * 120)
    assert (edge_index >= 0).all()
    per_row = edge_index[1].view(2000, 120)
    assert all(len(set(row.tolist())) == 120 for row in per_row)


def run_under_address_limit(n: int, limit_gib: float) -> None:
    script = textwrap.dedent(
        f"""
        import resource
        limit = int({limit_gib} * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import numpy as np
        from dreamgeo.graph import knn_graph_cosine
        x = np.random.default_rng(0).standard_normal(({n}, 16)).astype(np.float32)
        edge_index = knn_graph_cosine(x, 10)
        assert edge_index.shape == (2, {n} * 10)
        assert (edge_index[0] == edge_index[1]).view({n}, 10).any(1).all()
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_never_allocates_n_by_n():
    # The interpreter with torch and faiss maps about 1.1 GiB; an n x n float32
    # matrix (1.6 GB for n = 20_000) would not fit under the 2 GiB address limit.
    run_under_address_limit(20_000, 2.0)


@pytest.mark.slow
def test_never_allocates_n_by_n_at_50k():
    # 50_000^2 float32 would be 10 GB; about 30 s on 2 cores.
    run_under_address_limit(50_000, 3.0)
