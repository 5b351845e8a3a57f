import copy
import logging

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from dreamgeo.graph import (
    build_relation_graphs,
    knn_graph_cosine,
    relation_graph_adjacency,
    symmetric_normalize,
    user_mean_features,
)
from dreamgeo.graph import hetero as hetero_module

NUM_USERS, NUM_ITEMS = 40, 60


def make_data(seed: int = 0) -> HeteroData:
    rng = np.random.default_rng(seed)
    data = HeteroData()
    data["user"].num_nodes = NUM_USERS
    data["item"].num_nodes = NUM_ITEMS
    data["item"].x_image = torch.from_numpy(rng.standard_normal((NUM_ITEMS, 12))).float()
    data["item"].x_text = torch.from_numpy(rng.standard_normal((NUM_ITEMS, 8))).float()
    train, held_out = [], []
    for user in range(NUM_USERS - 1):  # the last user has no training items
        items = rng.choice(NUM_ITEMS, size=6, replace=False)
        train += [(user, int(i)) for i in items[:4]]
        held_out += [(user, int(i)) for i in items[4:]]
    train.append(train[0])  # a repeated interaction counts once
    train_t = torch.tensor(train).t()
    held_t = torch.tensor(held_out).t()
    store = data["user", "interacts", "item"]
    store.edge_index = train_t
    store.val_edge_index = held_t[:, ::2]
    store.test_edge_index = held_t[:, 1::2]
    return data


def loop_user_means(data: HeteroData, modality: str) -> torch.Tensor:
    x = data["item"][f"x_{modality}"].double()
    out = torch.zeros(NUM_USERS, x.size(1), dtype=torch.float64)
    pairs = set(map(tuple, data["user", "interacts", "item"].edge_index.t().tolist()))
    for user in range(NUM_USERS):
        items = sorted(i for u, i in pairs if u == user)
        if items:
            out[user] = x[items].mean(0)
    return out


# --- symmetric_normalize ---------------------------------------------------------


def test_symmetric_normalize_matches_dense_computation():
    edge_index = torch.tensor([[0, 0, 1, 2, 2, 2, 3], [1, 2, 0, 0, 1, 3, 3]])
    edge_weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 4.0])
    dense = torch.zeros(5, 5, dtype=torch.float64)  # node 4 has no edges
    dense[edge_index[0], edge_index[1]] = edge_weight.double()
    row_sum = dense.sum(1)
    inv_sqrt = torch.where(row_sum > 0, row_sum.rsqrt(), torch.zeros_like(row_sum))
    expected = inv_sqrt[:, None] * dense * inv_sqrt[None, :]

    weights = symmetric_normalize(edge_index, 5, edge_weight)
    torch.testing.assert_close(weights.double(), expected[edge_index[0], edge_index[1]])
    unweighted = symmetric_normalize(edge_index, 5)
    binary = (dense > 0).double()
    degree = binary.sum(1).clamp(min=1)
    torch.testing.assert_close(
        unweighted.double(),
        (binary / (degree[:, None] * degree[None, :]).sqrt())[edge_index[0], edge_index[1]],
    )


def test_symmetric_normalize_of_knn_graph_is_one_over_k():
    x = torch.randn(30, 5)
    edge_index = knn_graph_cosine(x, 4)
    torch.testing.assert_close(symmetric_normalize(edge_index, 30), torch.full((120,), 0.25))


def test_symmetric_normalize_checks_shapes():
    with pytest.raises(ValueError, match="edge_weight"):
        symmetric_normalize(torch.tensor([[0], [1]]), 2, torch.ones(3))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        symmetric_normalize(torch.tensor([0, 1]), 2)


# --- user_mean_features ----------------------------------------------------------


def test_user_mean_features_matches_loop_and_ignores_held_out_edges():
    data = make_data()
    for modality in ("image", "text"):
        expected = loop_user_means(data, modality)
        means = user_mean_features(data, modality)
        assert means.shape == (NUM_USERS, data["item"][f"x_{modality}"].size(1))
        assert means.dtype == torch.float32
        torch.testing.assert_close(means.double(), expected, atol=1e-6, rtol=1e-5)
        assert (means[-1] == 0).all()
        torch.testing.assert_close(user_mean_features(data, modality, chunk_size=7), means)

    store = data["user", "interacts", "item"]
    before = user_mean_features(data, "image")
    store.val_edge_index = torch.flip(store.val_edge_index, [1])
    store.test_edge_index = torch.zeros_like(store.test_edge_index)
    assert torch.equal(user_mean_features(data, "image"), before)
    # adding the held-out interactions to training would change the means
    store.edge_index = torch.cat([store.edge_index, store.val_edge_index], dim=1)
    assert not torch.allclose(user_mean_features(data, "image"), before)


def test_user_mean_features_rejects_bad_input():
    data = make_data()
    with pytest.raises(ValueError, match="x_audio"):
        user_mean_features(data, "audio")
    data["user", "interacts", "item"].edge_index[1, 0] = NUM_ITEMS
    with pytest.raises(ValueError, match="outside"):
        user_mean_features(data, "image")


# --- build_relation_graphs -------------------------------------------------------


def test_build_relation_graphs_stores_normalized_knn_graphs():
    data = make_data()
    build_relation_graphs(data, k=5)
    for modality in ("image", "text"):
        item_store = data["item", f"sim_{modality}", "item"]
        expected_items = knn_graph_cosine(data["item"][f"x_{modality}"], 5)
        assert torch.equal(item_store.edge_index, expected_items)
        torch.testing.assert_close(item_store.edge_weight, torch.full((NUM_ITEMS * 5,), 0.2))

        user_store = data["user", f"sim_{modality}", "user"]
        user_features = loop_user_means(data, modality).numpy()
        user_features = user_features / np.maximum(
            np.linalg.norm(user_features, axis=1, keepdims=True), 1e-30
        )
        cosine = user_features @ user_features.T
        cosine[:, -1] = -np.inf  # the user without items is nobody's neighbour
        expected = np.argsort(-cosine[:-1], axis=1)[:, :5]
        got = user_store.edge_index[1][user_store.edge_index[0] < NUM_USERS - 1]
        assert [set(r) for r in got.view(-1, 5).tolist()] == [set(r) for r in expected.tolist()]
        # the user without training items only has itself
        assert user_store.edge_index[:, user_store.edge_index[0] == NUM_USERS - 1].tolist() == [
            [NUM_USERS - 1],
            [NUM_USERS - 1],
        ]
        assert user_store.edge_weight.dtype == torch.float32


def test_build_relation_graphs_selects_node_types_and_modalities():
    data = make_data()
    build_relation_graphs(data, k=3, node_types=("item",), modalities=["text"])
    assert data.edge_types == [
        ("user", "interacts", "item"),
        ("item", "sim_text", "item"),
    ]
    with pytest.raises(ValueError, match="audio"):
        build_relation_graphs(data, modalities=["audio"])
    with pytest.raises(ValueError, match="node_types"):
        build_relation_graphs(data, node_types=("shop",))


def forbid_search(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("kNN search ran although the cache should have answered")

    monkeypatch.setattr(hetero_module, "knn_graph_cosine", fail)


def count_searches(monkeypatch) -> list[int]:
    calls = []
    real = knn_graph_cosine

    def counting(x, *args, **kwargs):
        calls.append(x.shape[0])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(hetero_module, "knn_graph_cosine", counting)
    return calls


def graphs_of(data: HeteroData) -> dict:
    return {
        edge_type: (data[edge_type].edge_index, data[edge_type].edge_weight)
        for edge_type in data.edge_types
        if edge_type[1].startswith("sim_")
    }


def assert_same_graphs(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for edge_type in first:
        assert torch.equal(first[edge_type][0], second[edge_type][0])
        assert torch.equal(first[edge_type][1], second[edge_type][1])


def test_cache_hit_skips_search(tmp_path, monkeypatch):
    fresh = make_data()
    built = build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 4 and all(name.endswith(".pt") for name in files)  # no temp

    forbid_search(monkeypatch)
    loaded = build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path)
    assert_same_graphs(graphs_of(built), graphs_of(loaded))


def test_cache_misses_when_inputs_change(tmp_path, monkeypatch):
    fresh = make_data()
    build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path)
    calls = count_searches(monkeypatch)

    changed = copy.deepcopy(fresh)
    changed["item"].x_image[7, 3] += 1e-3  # one value of one modality
    rebuilt = build_relation_graphs(changed, k=4, cache_dir=tmp_path)
    assert calls == [NUM_ITEMS, NUM_USERS]  # image: items and users; text: cache
    reference = build_relation_graphs(copy.deepcopy(changed), k=4)
    assert_same_graphs(graphs_of(rebuilt), graphs_of(reference))

    calls.clear()
    build_relation_graphs(copy.deepcopy(fresh), k=5, cache_dir=tmp_path)
    assert len(calls) == 4

    calls.clear()
    build_relation_graphs(copy.deepcopy(fresh), k=4, mode="ivf", cache_dir=tmp_path)
    assert len(calls) == 4

    calls.clear()
    moved = copy.deepcopy(fresh)
    moved["user", "interacts", "item"].edge_index[1, 0] = (
        moved["user", "interacts", "item"].edge_index[1, 0] + 1
    ) % NUM_ITEMS
    build_relation_graphs(moved, k=4, cache_dir=tmp_path)
    assert calls == [NUM_USERS, NUM_USERS]  # only the user graphs depend on edges

    calls.clear()
    build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path)
    assert calls == []


def test_corrupt_cache_is_logged_and_rebuilt(tmp_path, monkeypatch, caplog):
    fresh = make_data()
    built = graphs_of(build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path))
    files = sorted(tmp_path.iterdir())
    files[0].write_bytes(b"not a torch file")
    payload = torch.load(files[1], weights_only=True)
    payload["edge_weight"] = payload["edge_weight"][:-1]
    torch.save(payload, files[1])

    calls = count_searches(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=hetero_module.__name__):
        rebuilt = build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path)
    assert len(calls) == 2
    assert sum("corrupt" in r.message or "unreadable" in r.message for r in caplog.records) == 2
    assert_same_graphs(built, graphs_of(rebuilt))

    calls.clear()
    build_relation_graphs(copy.deepcopy(fresh), k=4, cache_dir=tmp_path)
    assert calls == []  # the rebuilt files are valid again


# --- relation_graph_adjacency ----------------------------------------------------


def test_relation_graph_adjacency_aggregates_neighbours_of_each_row():
    data = build_relation_graphs(make_data(), k=4, node_types=("item",))
    adjacency = relation_graph_adjacency(data, "item", "image")
    assert adjacency.layout == torch.sparse_csr
    assert adjacency.shape == (NUM_ITEMS, NUM_ITEMS)

    embedding = torch.randn(NUM_ITEMS, 3, dtype=torch.float64)
    store = data["item", "sim_image", "item"]
    expected = torch.zeros_like(embedding)
    for (i, j), w in zip(store.edge_index.t().tolist(), store.edge_weight.tolist()):
        expected[i] += w * embedding[j]
    torch.testing.assert_close(adjacency.double() @ embedding, expected)

    with pytest.raises(ValueError, match="build_relation_graphs"):
        relation_graph_adjacency(data, "user", "image")
