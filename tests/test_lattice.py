import pytest
import torch
import torch.nn.functional as F

from dreamgeo.datasets import MMRecDataset, write_planted
from dreamgeo.hparams import HParamError
from dreamgeo.models import LATTICE, MODELS, build_model, models_in_table
from dreamgeo.train import TrainConfig, Trainer
from tests.conftest import make_random_data

K = 3


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


@pytest.fixture
def six_items():
    return make_random_data(num_users=8, num_items=6, dims={"image": 5, "text": 4}, seed=3)


def _batch(data, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = data["user", "interacts", "item"].edge_index
    pick = torch.randperm(edge_index.size(1), generator=generator)[:size]
    users, pos = edge_index[:, pick]
    neg = torch.randint(0, data["item"].num_nodes, (size,), generator=generator)
    return users, pos, neg


# ---------------------------------------------------------------- dense reference
def _dense_top_k(x, k):
    """Cosine top-k graph (self included), cosines kept as weights, densely."""
    x = F.normalize(x, dim=-1)
    cos = x @ x.t()
    top = cos.clone().fill_diagonal_(2.0).topk(k, dim=1).indices
    return torch.zeros_like(cos).scatter_(1, top, cos.gather(1, top))


def _sym(s):
    deg = s.sum(1)
    return s / torch.sqrt(deg[:, None] * deg[None, :])


def _reference(model, data, k, lam, layers=2):
    """LATTICE's representations written out with dense N x N and (M+N)^2 matrices."""
    m, n = data["user"].num_nodes, data["item"].num_nodes
    alpha = torch.softmax(model.modal_logits, 0)
    initial = learned = 0
    for j, name in enumerate(("image", "text")):
        x = data["item"][f"x_{name}"]
        initial = initial + alpha[j] * _sym(_dense_top_k(x, k))
        z = model.projections[name](model.features[name])  # fine-tuned copy of x
        learned = learned + alpha[j] * _dense_top_k(z, k)
    graph = lam * initial + (1 - lam) * _sym(learned)
    modal = F.normalize(graph @ model.item_embedding.weight, dim=1)

    u, i = data["user", "interacts", "item"].edge_index
    adj = torch.eye(m + n)
    adj[u, m + i] = 1.0
    adj[m + i, u] = 1.0
    adj = adj / adj.sum(1, keepdim=True)
    x = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
    layers_out = [x]
    for _ in range(layers):
        layers_out.append(adj @ layers_out[-1])
    mean = torch.stack(layers_out).mean(0)
    return mean[:m], mean[m:], modal


def _set_modal_logits(model, values):
    with torch.no_grad():
        model.modal_logits.copy_(torch.tensor(values))


# ---------------------------------------------------------------- shapes and registry
def test_forward_shapes_and_registration(data):
    torch.manual_seed(0)
    model = build_model("lattice", data, {"embedding_dim": 8, "knn_k": K, "feat_embed_dim": 5})
    assert isinstance(model, LATTICE) and MODELS["lattice"].label == "LATTICE"
    model.eval()
    user, item = model()
    assert user.shape == (30, 8) and item.shape == (20, 8)
    rep = model.dual_representations()
    assert [tuple(t.shape) for t in rep] == [(30, 8), (20, 8), (30, 8), (20, 8)]
    # the learned graph is an edge list of |M| N k edges, never an N x N matrix
    edge_index, value = model.learned_graph(model.search_neighbours())
    assert edge_index.shape == (2, 2 * 20 * K) and value.shape == (2 * 20 * K,)
    table2 = models_in_table("table2")
    assert table2.index("bm3") < table2.index("lattice") < table2.index("freedom")
    assert MODELS["lattice"].bma_plugin and "lattice" not in models_in_table("table4")
    assert MODELS["lattice"].hparams.grid_space() == {
        "lr": [1e-4, 5e-4, 1e-3, 5e-3],
        "reg_weight": [0.0, 1e-5, 1e-4, 1e-3],
    }


# ---------------------------------------------------------------- against the reference
def test_representations_and_loss_match_dense_reference(six_items):
    torch.manual_seed(0)
    lam, reg_weight = 0.7, 0.1
    model = LATTICE.from_data(
        six_items,
        knn_k=K,
        embedding_dim=8,
        feat_embed_dim=4,
        lambda_coeff=lam,
        reg_weight=reg_weight,
    )
    _set_modal_logits(model, [0.4, -0.3])
    user_ref, item_ref, modal_ref = _reference(model, six_items, K, lam)

    model.eval()
    user, item = model()
    torch.testing.assert_close(user, user_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(item, item_ref + modal_ref, rtol=1e-6, atol=1e-6)
    rep = model.dual_representations()
    torch.testing.assert_close(rep.item_modal, modal_ref, rtol=1e-6, atol=1e-6)

    model.train()
    users, pos, neg = _batch(six_items, size=8)
    u, ip, in_ = user_ref[users], (item_ref + modal_ref)[pos], (item_ref + modal_ref)[neg]
    bpr = -torch.log(torch.sigmoid((u * ip).sum(1) - (u * in_).sum(1))).mean()
    reg = (u.pow(2).sum() + ip.pow(2).sum() + in_.pow(2).sum()) / (2 * len(users))
    loss, parts = model.loss(users, pos, neg)
    torch.testing.assert_close(loss, bpr + reg_weight * reg, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(parts["bpr"], bpr.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(parts["reg"], reg.detach(), rtol=1e-6, atol=1e-6)

    # and the gradients are those of the dense computation (MMRec's dense topk)
    params = [
        model.modal_logits,
        model.projections["image"].weight,
        model.projections["text"].bias,
        model.features.x_text,
        model.item_embedding.weight,
    ]
    expected = torch.autograd.grad(bpr + reg_weight * reg, params)
    for got, want in zip(torch.autograd.grad(loss, params), expected):
        assert want.abs().sum() > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_bma_split_is_id_line_versus_learned_item_graph_line(data):
    torch.manual_seed(0)
    model = LATTICE.from_data(data, knn_k=K, embedding_dim=8).eval()
    rep = model.dual_representations()
    user, item = model()
    torch.testing.assert_close(user, rep.user_behavior)
    torch.testing.assert_close(item, rep.item_behavior + rep.item_modal)
    torch.testing.assert_close(rep.item_modal.norm(dim=1), torch.ones(20))
    u, i = data["user", "interacts", "item"].edge_index
    r = torch.zeros(30, 20).index_put_((u, i), torch.ones(len(u)))
    mean = r / r.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(rep.user_modal, mean @ rep.item_modal)


def test_neighbours_are_searched_once_per_epoch_weights_every_step(six_items):
    torch.manual_seed(0)
    model = LATTICE.from_data(six_items, knn_k=K, embedding_dim=8, feat_embed_dim=4)
    num_edges = six_items["user", "interacts", "item"].edge_index.size(1)  # 16 triples
    users, pos, neg = _batch(six_items, size=6)
    model.loss(users, pos, neg)
    first = model._neighbours
    with torch.no_grad():  # a step's worth of change in the projections
        for linear in model.projections.values():
            linear.weight.add_(0.3 * torch.randn_like(linear.weight))
    # same epoch (triples 6 to 12 of 16): old neighbour lists, cosines of the new projections
    edge_index, value = model.learned_graph(first)
    loss, _ = model.loss(users, pos, neg)
    assert model._neighbours is first
    dense = torch.zeros(6, 6).index_put_(tuple(edge_index), value, accumulate=True)
    alpha = torch.softmax(model.modal_logits, 0)
    learned = 0
    for j, name in enumerate(("image", "text")):
        z = F.normalize(model.projections[name](six_items["item"][f"x_{name}"]), dim=1)
        mask = torch.zeros(6, 6).index_put_(tuple(first[name]), torch.ones(6 * K))
        learned = learned + alpha[j] * mask * (z @ z.t())
    torch.testing.assert_close(dense, _sym(learned), rtol=1e-6, atol=1e-6)
    model.loss(users, pos, neg)  # triples 12 to 18: still the first epoch
    assert model._neighbours is first
    model.loss(users, pos, neg)  # 18 >= 16 triples seen: a new epoch, searched again
    assert model._neighbours is not first
    # ranking searches again from the current projections
    second = model._neighbours
    model.eval()
    model()
    assert model._neighbours is not second
    assert num_edges == 16


def test_gradients_reach_projections_features_and_modality_weights(data):
    torch.manual_seed(0)
    model = build_model("lattice", data, {"embedding_dim": 8, "knn_k": K})
    for _ in range(2):  # also in a step that reuses the epoch's neighbour lists
        model.zero_grad(set_to_none=True)
        loss, parts = model.loss(*_batch(data))
        assert torch.isfinite(loss) and set(parts) == {"bpr", "reg"}
        loss.backward()
        for name, param in model.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert {name for name, _ in model.named_parameters()} >= {
        "modal_logits",
        "projections.image.weight",
        "projections.text.weight",
        "features.x_image",
    }


def test_only_the_initial_graph_without_learned_share(data):
    torch.manual_seed(0)
    model = LATTICE.from_data(data, knn_k=K, embedding_dim=8, lambda_coeff=1.0)
    model.loss(*_batch(data))[0].backward()
    assert model.projections["image"].weight.grad.abs().sum() == 0
    assert model.modal_logits.grad.abs().sum() > 0  # alpha still weighs the initial graphs


# ---------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_planted(root, "tiny", preset="tiny", seed=0)
    return MMRecDataset(root, "tiny")[0]


def test_training_improves_valid_recall(tiny):
    torch.manual_seed(0)
    model = build_model("lattice", tiny)
    before = Trainer(model, tiny, TrainConfig(epochs=1, progress=False)).evaluate()
    before = before["valid"]["recall@20"]
    config = TrainConfig(epochs=15, batch_size=256, lr=5e-3, patience=15, progress=False)
    result = Trainer(model, tiny, config).fit()
    after = result.valid["recall@20"]
    assert after > 1.25 * before and after > before + 0.04, (before, after)
    assert result.test["recall@20"] > before


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("knn_k", [0, -2, 2.5])
def test_bad_knn_k_is_refused(data, knn_k):
    with pytest.raises(ValueError, match="LATTICE: knn_k must be an integer >= 1"):
        LATTICE.from_data(data, knn_k=knn_k)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_lambda_outside_unit_interval_is_refused(data, lam):
    with pytest.raises(ValueError, match=r"LATTICE: lambda_coeff must be in \[0, 1\]"):
        LATTICE.from_data(data, lambda_coeff=lam)


def test_bad_values_through_the_registry_name_the_key(data):
    with pytest.raises(HParamError, match="knn_k"):
        build_model("lattice", data, {"knn_k": 0})
    with pytest.raises(HParamError, match="lambda_coeff"):
        build_model("lattice", data, {"lambda_coeff": 2})
    with pytest.raises(ValueError, match="initial modality weights must be > 0"):
        LATTICE.from_data(data, image_weight=0.0)
    bare = make_random_data()
    del bare["item"].x_image, bare["item"].x_text
    with pytest.raises(ValueError, match="at least one modality"):
        build_model("lattice", bare)
