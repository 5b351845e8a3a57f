"""DREAM and the baselines as PyG models: any HeteroData names, the caller's data left
alone, forward with new interactions, recommend, and no crash on bad ids."""

import re
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import make_random_data
from torch_geometric.data import HeteroData

from dreamgeo import DREAM
from dreamgeo.models import MODELS, build_model
from dreamgeo.train import BPRSampler, FullRankEvaluator

MULTIMODAL = [name for name in MODELS if name not in ("bpr", "lightgcn")]


def run_python(code: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def renamed(data: HeteroData) -> HeteroData:
    """The same graph with a user's own names: customers buy products."""
    out = HeteroData()
    out["customer"].num_nodes = data["user"].num_nodes
    out["product"].x_img = data["item"].x_image
    out["product"].x_txt = data["item"].x_text
    store = data["user", "interacts", "item"]
    out["customer", "buys", "product"].edge_index = store.edge_index
    out["product", "bought_by", "customer"].edge_index = store.edge_index.flip(0)
    return out


def snapshot(data: HeteroData):
    return (
        sorted(data.node_types),
        sorted(data.edge_types),
        {t: sorted(data[t].keys()) for t in data.node_types + data.edge_types},
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            "torch.tensor([[0, 1], [2, 20]])",
            r"edge_index\[1\] holds id 20, outside the valid range \[0, 19\]",
        ),
        (
            "torch.tensor([[0, 30], [2, 3]])",
            r"edge_index\[0\] holds id 30, outside the valid range \[0, 29\]",
        ),
        ("torch.tensor([[0, -1], [2, 3]])", r"edge_index\[0\] holds id -1"),
    ],
)
@pytest.mark.parametrize("entry", ["heterodata", "tensors"])
def test_out_of_range_ids_raise_instead_of_crashing(bad, message, entry):
    # these aborted the process (malloc_consolidate / double free) inside sparse code
    construct = (
        "DREAM(data, knn_k=3, embedding_dim=4)"
        if entry == "heterodata"
        else "DREAM(num_users=30, num_items=20, edge_index=edges, "
        "features={'image': data['item'].x_image}, knn_k=3, embedding_dim=4)"
    )
    result = run_python(
        f"""
        import sys, torch
        sys.path.insert(0, "tests")
        from conftest import make_random_data
        from dreamgeo import DREAM
        data = make_random_data()
        store = data["user", "interacts", "item"]
        edges = torch.cat([store.edge_index, {bad}], dim=1)
        store.edge_index = edges
        try:
            {construct}
        except ValueError as error:
            print("ValueError:", error)
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ValueError:" in result.stdout
    assert re.search(message, result.stdout), result.stdout


def test_every_model_rejects_random_bad_input_without_a_crash():
    # hypothesis drives bad ids, dtypes, shapes and values into every registered model's
    # constructor (through build_model and from_hetero), forward and recommend, in a
    # child process: a native abort would kill it with a signal
    result = run_python(
        """
        import sys, torch
        from hypothesis import given, settings, HealthCheck, strategies as st
        sys.path.insert(0, "tests")
        from conftest import make_random_data
        from dreamgeo.hparams import HParamError
        from dreamgeo.models import MODELS, build_model

        FAULTS = ("item_high", "user_high", "negative", "float_ids", "shape", "empty",
                  "feature_rows", "nan_feature", "inf_feature", "count")
        outcomes = {}

        def corrupt(data, fault, offset):
            store = data["user", "interacts", "item"]
            edges = store.edge_index.clone()
            if fault == "item_high":
                edges[1, offset % edges.size(1)] = 20 + offset
            elif fault == "user_high":
                edges[0, offset % edges.size(1)] = 30 + offset
            elif fault == "negative":
                edges[offset % 2, offset % edges.size(1)] = -1 - offset
            elif fault == "float_ids":
                edges = edges.float()
            elif fault == "shape":
                edges = edges.reshape(-1)[: 3 * (edges.numel() // 3)].reshape(3, -1)
            elif fault == "empty":
                edges = edges[:, :0]
            elif fault == "feature_rows":
                data["item"].x_text = torch.randn(20 + 1 + offset, 6)
            elif fault == "nan_feature":
                data["item"].x_image[offset % 20, 0] = float("nan")
            elif fault == "inf_feature":
                data["item"].x_text[offset % 20, 1] = float("inf")
            elif fault == "count":
                data["item"].num_nodes = 5
            store.edge_index = edges
            return data

        @settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(sorted(MODELS)), st.sampled_from(FAULTS),
               st.integers(0, 10**6))
        def constructors(name, fault, offset):
            data = corrupt(make_random_data(), fault, offset)
            try:
                build_model(name, data, embedding_dim=4)
                outcomes[(name, fault)] = "built"
            except (ValueError, HParamError) as error:
                outcomes[(name, fault)] = type(error).__name__

        @settings(max_examples=40, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(sorted(MODELS)),
               st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=5))
        def calls(name, ids):
            model = build_model(name, make_random_data(), embedding_dim=4)
            bad = torch.tensor([ids, ids])
            try:
                model.recommend(bad[0], k=3)
            except ValueError:
                pass
            if "edge_index" in model.forward.__code__.co_varnames:
                try:
                    model(edge_index=bad)
                except ValueError:
                    pass

        constructors()
        calls()
        built = sorted(key for key, value in outcomes.items() if value == "built")
        print("checked", len(outcomes), "built despite a fault:", built)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checked" in result.stdout
    # every fault except a model that ignores features (bpr, lightgcn) must be refused
    built = result.stdout.split("built despite a fault:")[1]
    for name in MULTIMODAL:
        assert f"('{name}'," not in built, result.stdout


def test_from_hetero_any_names_trains_and_recommends_without_touching_data():
    data = make_random_data()
    theirs = renamed(data)
    before = snapshot(theirs)
    torch.manual_seed(0)
    model = DREAM.from_hetero(
        theirs,
        edge_type=("customer", "buys", "product"),
        modalities={"image": "x_img", "text": "x_txt"},
        knn_k=3,
        embedding_dim=8,
    )
    assert snapshot(theirs) == before  # no sim_* edge types, no new attributes
    assert (model.num_users, model.num_items, model.modalities) == (30, 20, ["image", "text"])

    # the same model from dreamgeo's own names
    torch.manual_seed(0)
    reference = DREAM(data, knn_k=3, embedding_dim=8)
    assert snapshot(data) == snapshot(make_random_data())
    for ours, expected in zip(model(), reference()):
        torch.testing.assert_close(ours, expected)

    # one epoch in the user's own loop, then top-k
    edges = theirs["customer", "buys", "product"].edge_index
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    sampler = BPRSampler(edges, 30, 20, batch_size=16, seed=0)
    first = None
    for users, pos, neg in sampler.epoch():
        loss, _ = model.loss(users, pos, neg)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    top = model.recommend(torch.tensor([0, 5]), k=4)
    assert top.shape == (2, 4)
    for user, items in zip((0, 5), top.tolist()):
        seen = set(edges[1, edges[0] == user].tolist())
        assert not seen & set(items)


def test_build_model_leaves_the_callers_data_alone():
    data = make_random_data()
    before = snapshot(data)
    for name in ("dream", "freedom", "mgcn", "lattice"):
        build_model(name, data, embedding_dim=4)
        assert snapshot(data) == before, name


def test_forward_with_new_interactions_folds_them_in_without_training():
    data = make_random_data()
    torch.manual_seed(0)
    model = DREAM(data, knn_k=3, embedding_dim=8).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    user_emb, item_emb = model()
    train = data["user", "interacts", "item"].edge_index
    unseen = sorted(set(range(20)) - set(train[1, train[0] == 0].tolist()))
    new_item = unseen[0]
    grown = torch.cat([train, torch.tensor([[0], [new_item]])], dim=1)

    new_user_emb, new_item_emb = model(grown)
    before = user_emb[0] @ item_emb.t()
    after = new_user_emb[0] @ new_item_emb.t()
    assert not torch.allclose(before, after)  # user 0's scores changed
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    for again, first in zip(model(), (user_emb, item_emb)):
        torch.testing.assert_close(again, first)  # the training graph is still cached

    recs = model.recommend(torch.tensor([0]), k=5, edge_index=grown)
    assert new_item not in recs.tolist()[0]  # now seen, so excluded


def test_recommend_equals_the_evaluator_top_k():
    data = make_random_data()
    torch.manual_seed(0)
    model = DREAM(data, knn_k=3, embedding_dim=8).eval()
    store = data["user", "interacts", "item"]
    evaluator = FullRankEvaluator(
        store.edge_index, {"valid": store.val_edge_index}, 30, 20, ks=(5,), batch_size=7
    )
    user_emb, item_emb = model.embeddings()
    users = torch.arange(30)
    expected = evaluator.top_items(lambda u: user_emb[u] @ item_emb.t(), users, k=5)
    got, scores = model.recommend(users, k=5, return_scores=True, batch_size=4)
    assert torch.equal(got, expected)
    torch.testing.assert_close(scores, (user_emb @ item_emb.t()).gather(1, got))
    everything = model.recommend(users, k=20, exclude_seen=False)
    assert torch.equal(everything, (user_emb @ item_emb.t()).topk(20, dim=1).indices)
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(users, k=21)
    with pytest.raises(ValueError, match="users holds id 30"):
        model.recommend(torch.tensor([30]))


@pytest.mark.parametrize("name", MULTIMODAL)
def test_every_multimodal_model_from_hetero(name):
    data = renamed(make_random_data())
    before = snapshot(data)
    model = MODELS[name].cls.from_hetero(
        data,
        edge_type=("customer", "buys", "product"),
        modalities={"image": "x_img", "text": "x_txt"},
    )
    assert snapshot(data) == before
    assert model.recommend(torch.tensor([1, 2]), k=3).shape == (2, 3)


def test_canonical_hetero_errors_name_the_fault():
    data = renamed(make_random_data())
    with pytest.raises(ValueError, match="name the user-item interaction edge type"):
        DREAM.from_hetero(data)  # two bipartite edge types: which one?
    with pytest.raises(ValueError, match="no edge type"):
        DREAM.from_hetero(data, edge_type=("customer", "likes", "product"))
    with pytest.raises(ValueError, match=r"data\['product'\].x_audio, which does not exist"):
        DREAM.from_hetero(
            data, edge_type=("customer", "buys", "product"), modalities={"audio": "x_audio"}
        )
    data["product"].x_img[3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"x_img holds NaN or infinite values .* row 3"):
        DREAM.from_hetero(
            data, edge_type=("customer", "buys", "product"), modalities={"image": "x_img"}
        )


@pytest.mark.parametrize("name", ["freedom", "mgcn", "lattice", "dream"])
def test_one_knn_backend_switch_for_every_graph_model(name, monkeypatch):
    import dreamgeo.graph.hetero as hetero
    import dreamgeo.models.modal_inputs as modal_inputs

    used = []
    for module in (hetero, modal_inputs):
        original = module.knn_graph_cosine

        def spy(*args, _original=original, **kwargs):
            used.append(kwargs.get("backend"))
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, "knn_graph_cosine", spy)
    outputs = {}
    for backend in ("faiss", "torch"):
        used.clear()
        torch.manual_seed(0)
        model = build_model(name, make_random_data(), embedding_dim=4, knn_backend=backend)
        assert used and set(used) == {backend}, used
        outputs[backend] = model()
    if name != "dream":  # DREAM's user-user graph has ties (users with the same items)
        # random item features have no ties: both engines find the same graphs
        for a, b in zip(outputs["faiss"], outputs["torch"]):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_scores_new_interactions_without_retraining(name):
    data = make_random_data()
    torch.manual_seed(0)
    model = build_model(name, data, embedding_dim=8).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model()
        train = data["user", "interacts", "item"].edge_index
        # the training graph given explicitly: the same scores, only not cached
        for given, cached in zip(model(train), before):
            torch.testing.assert_close(given, cached, rtol=1e-5, atol=1e-6)
        new_item = sorted(set(range(20)) - set(train[1, train[0] == 0].tolist()))[0]
        grown = torch.cat([train, torch.tensor([[0], [new_item]])], dim=1)
        user_emb, item_emb = model(grown)
        after = model()
    changed = not torch.allclose(user_emb[0] @ item_emb.t(), before[0][0] @ before[1].t())
    # matrix factorization (BPR-MF, VBPR) has no graph: a new click changes no vector
    assert changed == (name not in ("bpr", "vbpr")), name
    for again, first in zip(after, before):  # nothing of the new graph stayed behind
        torch.testing.assert_close(again, first)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    recs = model.recommend(torch.tensor([0]), k=5, edge_index=grown)
    assert new_item not in recs[0].tolist()
