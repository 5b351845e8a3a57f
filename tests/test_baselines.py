import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamgeo.datasets import MMRecDataset, write_planted
from dreamgeo.models import DREAM, LightGCN
from dreamgeo.models.bm3 import BM3
from dreamgeo.models.bpr import BPRMF
from dreamgeo.models.dualgnn import DualGNN, user_cooccurrence_graph
from dreamgeo.models.freedom import FREEDOM
from dreamgeo.models.lgmrec import LGMRec
from dreamgeo.models.mgcn import MGCN
from dreamgeo.models.modal_inputs import item_knn_graph
from dreamgeo.models.registry import MODELS, build_model
from dreamgeo.models.slmrec import SLMRec
from dreamgeo.models.vbpr import VBPR
from dreamgeo.nn import degree_sensitive_pruning
from dreamgeo.train import TrainConfig, Trainer
from tests.conftest import make_random_data

K = 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These tensors are tiny: on a shared 2-core machine OpenMP hand-offs cost ~30x more
    # than the arithmetic, so the module runs single-threaded.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_planted(root, "tiny", preset="tiny", seed=0)
    return MMRecDataset(root, "tiny")[0]


@pytest.fixture
def data():
    return make_random_data()


def _batch(data, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = data["user", "interacts", "item"].edge_index
    pick = torch.randperm(edge_index.size(1), generator=generator)[:size]
    users, pos = edge_index[:, pick]
    neg = torch.randint(0, data["item"].num_nodes, (size,), generator=generator)
    return users, pos, neg


# ---------------------------------------------------------------- dense references
def _dense_bipartite(data):
    """D^-1/2 A D^-1/2 restricted to the user-item block, densely."""
    m, n = data["user"].num_nodes, data["item"].num_nodes
    u, i = data["user", "interacts", "item"].edge_index
    r = torch.zeros(m, n)
    r[u, i] = 1.0
    du, di = r.sum(1).clamp(min=1), r.sum(0).clamp(min=1)
    return r / torch.sqrt(du[:, None] * di[None, :]), r / du[:, None]


def _dense_lightgcn(r_norm, user, item, layers):
    users, items = [user], [item]
    for _ in range(layers):
        user, item = r_norm @ item, r_norm.t() @ user
        users.append(user)
        items.append(item)
    return torch.stack(users).mean(0), torch.stack(items).mean(0)


def _dense_knn(x, k, weighted):
    """Top-k cosine graph (self included) with D^-1/2 S D^-1/2, row degree, densely."""
    x = F.normalize(x, dim=-1)
    cos = x @ x.t()
    top = cos.clone().fill_diagonal_(2.0).topk(k, dim=1).indices
    s = torch.zeros_like(cos)
    s.scatter_(1, top, cos.gather(1, top) if weighted else torch.ones_like(cos))
    deg = s.sum(1)
    return s / torch.sqrt(deg[:, None] * deg[None, :])


def _bpr(pos, neg):
    return -torch.log(torch.sigmoid(pos - neg)).mean()


def _info_nce(a, p, tau):
    logits = F.normalize(a, dim=1) @ F.normalize(p, dim=1).t() / tau
    return (torch.logsumexp(logits, 1) - logits.diag()).mean()


def _features(data):
    return {m: data["item"][f"x_{m}"] for m in ("image", "text")}


# ---------------------------------------------------------------- training on tiny
# (model, epochs): VBPR's raw-feature projection needs more epochs than the others.
TRAINED = [
    ("bpr", 15),
    ("vbpr", 30),
    ("bm3", 15),
    ("freedom", 15),
    ("mgcn", 15),
    ("lgmrec", 15),
    ("dualgnn", 15),
    ("slmrec", 15),
]


@pytest.mark.parametrize("name,epochs", TRAINED)
def test_training_improves_valid_recall_clearly(tiny, name, epochs):
    torch.manual_seed(0)
    model = build_model(name, tiny)
    untrained = Trainer(model, tiny, TrainConfig(epochs=1, progress=False)).evaluate()
    before = untrained["valid"]["recall@20"]
    config = TrainConfig(epochs=epochs, batch_size=256, lr=5e-3, patience=epochs, progress=False)
    result = Trainer(model, tiny, config).fit()
    after = result.valid["recall@20"]
    assert after > 1.25 * before and after > before + 0.04, (before, after)
    assert result.test["recall@20"] > before


# ---------------------------------------------------------------- shapes and gradients
def _small(name, data):
    kwargs = {"embedding_dim": 8}
    if name in ("freedom", "mgcn", "dream"):
        kwargs["knn_k"] = K
    return build_model(name, data, **kwargs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_builds_every_model_with_forward_shapes(data, name):
    torch.manual_seed(0)
    model = _small(name, data).eval()  # ranking mode (LGMRec samples noise in training)
    assert isinstance(model, MODELS[name].cls)
    user, item = model()
    width = 16 if name == "vbpr" else 8
    assert user.shape == (30, width) and item.shape == (20, width)


def test_build_model_errors(data):
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        build_model("nope", data)
    with pytest.raises(ValueError, match="bpr does not use 'knn_k'"):
        build_model("bpr", data, knn_k=3)


GRADIENT_MODELS = ["bpr", "vbpr", "bm3", "freedom", "mgcn", "lgmrec", "dualgnn", "slmrec"]


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_gradient_reaches_every_parameter(data, name):
    torch.manual_seed(0)
    model = _small(name, data)
    loss, parts = model.loss(*_batch(data))
    assert torch.isfinite(loss) and all(torch.isfinite(v) and v.dim() == 0 for v in parts.values())
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert param.grad.abs().sum() > 0, param_name


# ---------------------------------------------------------------- losses against references
def test_bprmf_loss_matches_definition(data):
    torch.manual_seed(0)
    model = BPRMF.from_data(data, embedding_dim=8, reg_weight=0.1)
    users, pos, neg = _batch(data)
    u = model.user_embedding.weight[users]
    ep, en = model.item_embedding.weight[pos], model.item_embedding.weight[neg]
    reg = (u.pow(2).sum() + ep.pow(2).sum() + en.pow(2).sum()) / (2 * len(users))
    expected = _bpr((u * ep).sum(1), (u * en).sum(1)) + 0.1 * reg
    torch.testing.assert_close(model.loss(users, pos, neg)[0], expected)


def test_vbpr_scores_and_loss_match_definition(data):
    torch.manual_seed(0)
    model = VBPR.from_data(data, embedding_dim=8, reg_weight=0.1)
    f = torch.cat([data["item"].x_image, data["item"].x_text], dim=1)
    content = f @ model.projection.weight.t() + model.projection.bias
    gamma_u, theta_u = model.user_embedding.weight, model.user_visual_embedding.weight
    gamma_i = model.item_embedding.weight
    expected_scores = gamma_u @ gamma_i.t() + theta_u @ content.t()
    user, item = model()
    torch.testing.assert_close(user @ item.t(), expected_scores, rtol=1e-4, atol=1e-4)

    users, pos, neg = _batch(data)
    ub = torch.cat([gamma_u, theta_u], 1)[users]
    ip, in_ = (torch.cat([gamma_i, content], 1)[x] for x in (pos, neg))
    reg = (ub.pow(2).sum() + ip.pow(2).sum() + in_.pow(2).sum()) / (2 * len(users))
    expected = _bpr((ub * ip).sum(1), (ub * in_).sum(1)) + 0.1 * reg
    torch.testing.assert_close(model.loss(users, pos, neg)[0], expected, rtol=1e-4, atol=1e-5)


def test_bm3_bootstrap_loss_matches_dense_reference(data):
    torch.manual_seed(0)
    model = BM3.from_data(data, embedding_dim=8, num_layers=2, dropout=0.0, reg_weight=0.3)
    users, pos, neg = _batch(data)
    r_norm, _ = _dense_bipartite(data)
    user, item = _dense_lightgcn(
        r_norm, model.user_embedding.weight, model.item_embedding.weight, 2
    )
    item = item + model.item_embedding.weight
    pred = model.predictor

    def dist(online, target):
        return 1 - (F.normalize(online, dim=1) * F.normalize(target.detach(), dim=1)).sum(1).mean()

    expected = dist(pred(user[users]), item[pos]) + dist(pred(item[pos]), user[users])
    feature_terms = 0
    for m in ("image", "text"):
        h = model.projections[m](model.features[m])  # fine-tuned copies of the features
        feature_terms = feature_terms + dist(pred(h[pos]), item[pos]) + dist(pred(h[pos]), h[pos])
    expected = expected + 2.0 * feature_terms
    expected = expected + 0.3 * (user.norm() + item.norm()) / data["item"].num_nodes

    loss, parts = model.loss(users, pos, neg)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    assert set(parts) == {"graph", "align", "mask", "reg"}
    # the targets are stop-gradient: same gradients as the reference with detached targets
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    expected_grads = torch.autograd.grad(expected, params)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    # no negative sampling: the negatives never enter the loss
    other = model.loss(users, pos, torch.randint(0, 20, neg.shape))[0]
    assert torch.equal(loss, other)
    # ranking uses the predictor's outputs
    torch.testing.assert_close(model()[0], pred(user), rtol=1e-4, atol=1e-5)


def test_bm3_targets_are_dropped_out_and_detached(data):
    torch.manual_seed(0)
    model = BM3.from_data(data, embedding_dim=8, dropout=0.5)
    batch = _batch(data)
    losses = {model.loss(*batch)[0].item() for _ in range(3)}
    assert len(losses) == 3  # dropout draws new targets every call
    model.dropout = 0.0
    assert model.loss(*batch)[0].item() not in losses


def test_freedom_matches_dense_reference_without_pruning(data):
    torch.manual_seed(0)
    model = FREEDOM.from_data(data, knn_k=K, embedding_dim=8, dropout=0.0, modal_loss_weight=0.5)
    x = _features(data)
    s = 0.1 * _dense_knn(x["image"], K, False) + 0.9 * _dense_knn(x["text"], K, False)
    r_norm, _ = _dense_bipartite(data)
    user, item = _dense_lightgcn(
        r_norm, model.user_embedding.weight, model.item_embedding.weight, 2
    )
    item = item + s @ model.item_embedding.weight
    got_user, got_item = model()
    torch.testing.assert_close(got_user, user, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_item, item, rtol=1e-4, atol=1e-5)

    users, pos, neg = _batch(data)
    u = user[users]
    expected = _bpr((u * item[pos]).sum(1), (u * item[neg]).sum(1))
    for m in ("image", "text"):
        h = model.projections[m](x[m])
        expected = expected + 0.5 * _bpr((u * h[pos]).sum(1), (u * h[neg]).sum(1))
    torch.testing.assert_close(model.loss(users, pos, neg)[0], expected, rtol=1e-4, atol=1e-5)


def test_degree_sensitive_pruning_has_multinomial_inclusion_frequencies():
    # user 0 and item 0 have the highest degrees, so the edge between them is dropped most
    edge_index = torch.tensor([[0, 0, 0, 0, 1, 2, 3, 3], [0, 1, 2, 3, 0, 0, 4, 5]])
    user_degree = torch.tensor([4.0, 1, 1, 2])
    item_degree = torch.tensor([3.0, 1, 1, 1, 1, 1])
    weight = 1 / (user_degree[edge_index[0]] * item_degree[edge_index[1]]).sqrt()
    edge_key = edge_index[0] * 6 + edge_index[1]  # sorted
    trials, keep = 4000, 3
    generator = torch.Generator().manual_seed(0)
    ours, reference = torch.zeros(8), torch.zeros(8)
    for _ in range(trials):
        kept = degree_sensitive_pruning(edge_index, 4, 6, keep, generator=generator)
        columns = torch.searchsorted(edge_key, kept[0] * 6 + kept[1])
        assert torch.equal(edge_key[columns], kept[0] * 6 + kept[1])  # training edges
        assert columns.unique().numel() == keep  # without replacement
        ours[columns] += 1
        reference[torch.multinomial(weight, keep, generator=generator)] += 1
    torch.testing.assert_close(ours / trials, reference / trials, atol=0.035, rtol=0)
    assert ours[0] == ours.min()
    with pytest.raises(ValueError, match="num_kept"):
        degree_sensitive_pruning(edge_index, 4, 6, 9)


def test_freedom_prunes_once_per_epoch_of_triples(data):
    torch.manual_seed(0)
    model = FREEDOM.from_data(data, knn_k=K, embedding_dim=8, dropout=0.5)
    ranking_before = model()
    num_edges = data["user", "interacts", "item"].edge_index.size(1)  # 60
    batch = _batch(data, size=20)
    model.loss(*batch)
    first = model.pruned_edge_index
    assert first.size(1) == num_edges // 2
    model.loss(*batch)
    model.loss(*batch)
    assert model.pruned_edge_index is first  # 60 triples: still the first epoch
    model.loss(*batch)
    assert model.pruned_edge_index is not first
    train = {tuple(e) for e in data["user", "interacts", "item"].edge_index.t().tolist()}
    assert {tuple(e) for e in model.pruned_edge_index.t().tolist()} <= train
    # ranking always uses the full graph
    for before, after in zip(ranking_before, model()):
        assert torch.equal(before, after)


def test_mgcn_matches_dense_reference(data):
    torch.manual_seed(0)
    model = MGCN.from_data(data, knn_k=K, embedding_dim=8, reg_weight=0.1, cl_weight=0.3)
    x = _features(data)
    r_norm, _ = _dense_bipartite(data)
    id_u, id_i = _dense_lightgcn(
        r_norm, model.user_embedding.weight, model.item_embedding.weight, 2
    )
    views_u, views_i = [], []
    for m in ("image", "text"):
        gate = torch.sigmoid(model.purifier_gates[m](model.projections[m](x[m])))
        item = _dense_knn(x[m], K, True) @ (model.item_embedding.weight * gate)
        views_i.append(item)
        views_u.append(r_norm @ item)

    def fuse(behavior, views):
        scores = torch.cat([model.attention(v) for v in views], dim=1)
        weight = torch.softmax(scores, dim=1)
        common = sum(weight[:, j : j + 1] * v for j, v in enumerate(views))
        side = common
        for m, v in zip(("image", "text"), views):
            side = side + torch.sigmoid(model.preference_gates[m](behavior)) * (v - common)
        return side / 3

    side_u, side_i = fuse(id_u, views_u), fuse(id_i, views_i)
    user, item = model()
    torch.testing.assert_close(user, id_u + side_u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(item, id_i + side_i, rtol=1e-4, atol=1e-5)

    users, pos, neg = _batch(data)
    u, ip, in_ = (id_u + side_u)[users], (id_i + side_i)[pos], (id_i + side_i)[neg]
    reg = (u.pow(2).sum() + ip.pow(2).sum() + in_.pow(2).sum()) / (2 * len(users))
    cl = _info_nce(side_i[pos], id_i[pos], 0.2) + _info_nce(side_u[users], id_u[users], 0.2)
    expected = _bpr((u * ip).sum(1), (u * in_).sum(1)) + 0.1 * reg + 0.3 * cl
    loss, parts = model.loss(users, pos, neg)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["cl"], cl.detach(), rtol=1e-4, atol=1e-5)


def test_mgcn_negative_candidates_train_on_its_hardest_non_interacted_item(data):
    users, pos, neg = _batch(data)
    torch.manual_seed(0)
    plain = MGCN.from_data(data, knn_k=K, embedding_dim=8)
    torch.manual_seed(0)
    hard = MGCN.from_data(data, knn_k=K, embedding_dim=8, negative_candidates=8)
    assert plain.negatives is None
    torch.manual_seed(3)
    _, base = plain.loss(users, pos, neg)
    torch.manual_seed(3)
    _, changed = hard.loss(users, pos, neg)
    # only BPR and its L2 term see the negative: the contrastive term is unchanged and
    # the hardest of 8 candidates raises BPR's loss
    torch.testing.assert_close(changed["cl"], base["cl"])
    assert changed["bpr"] > base["bpr"]
    # the same draw by hand: argmax of the final scores over the non-interacted candidates
    user, item = hard()
    torch.manual_seed(3)
    extra = torch.randint(data["item"].num_nodes, (len(users), 7))
    candidates = torch.cat([neg.view(-1, 1), extra], dim=1)
    train = set(zip(*(t.tolist() for t in data["user", "interacts", "item"].edge_index)))
    expected = []
    for b, u in enumerate(users.tolist()):
        allowed = [j for c, j in enumerate(candidates[b].tolist()) if c == 0 or (u, j) not in train]
        expected.append(max(allowed, key=lambda j: float(user[u] @ item[j])))
    torch.manual_seed(3)
    chosen = hard.negatives.hardest(users, neg, user[users], lambda i: item[i])
    assert chosen.tolist() == expected


def test_mgcn_item_bias_adds_b_i_to_every_score(data):
    users, pos, neg = _batch(data)
    torch.manual_seed(0)
    plain = MGCN.from_data(data, knn_k=K, embedding_dim=8)
    torch.manual_seed(0)
    model = MGCN.from_data(data, knn_k=K, embedding_dim=8, item_bias=True)
    assert plain.item_bias is None
    bias = torch.randn(data["item"].num_nodes)
    with torch.no_grad():
        model.item_bias.weight.copy_(bias.view(-1, 1))
    user, item = model()
    plain_user, plain_item = plain()
    # the same weights otherwise (the bias draws no random numbers)
    torch.testing.assert_close(user @ item.t(), plain_user @ plain_item.t() + bias)
    _, base = plain.loss(users, pos, neg)
    _, parts = model.loss(users, pos, neg)
    u = plain_user[users]
    expected = _bpr(
        (u * plain_item[pos]).sum(1) + bias[pos], (u * plain_item[neg]).sum(1) + bias[neg]
    )
    torch.testing.assert_close(parts["bpr"], expected.detach())
    # b_i joins the item rows' L2 term; the contrastive term does not see it
    extra = (bias[pos].pow(2).sum() + bias[neg].pow(2).sum()) / (2 * len(users))
    torch.testing.assert_close(parts["reg"], base["reg"] + extra)
    torch.testing.assert_close(parts["cl"], base["cl"])


def test_lgmrec_matches_dense_reference_in_eval_mode(data):
    torch.manual_seed(0)
    model = LGMRec.from_data(data, embedding_dim=8, keep_rate=1.0, cl_weight=0.01, reg_weight=0.1)
    model.eval()  # noise-free hyperedge assignments
    r_norm, r_mean = _dense_bipartite(data)
    r = (r_mean > 0).float()
    coll_u, coll_i = _dense_lightgcn(
        r_norm, model.user_embedding.weight, model.item_embedding.weight, 2
    )
    modal_u, modal_i = 0, 0
    hyper = {}
    for m, x in _features(data).items():
        item = x @ model.transforms[m]
        user = r_mean @ item
        for _ in range(2):
            user, item = r_norm @ item, r_norm.t() @ user
        modal_u, modal_i = modal_u + F.normalize(user), modal_i + F.normalize(item)
        logits = x @ model.hyperedges[m]
        h_item, h_user = torch.softmax(logits / 0.2, 1), torch.softmax(r @ logits / 0.2, 1)
        latent = h_item.t() @ coll_i
        hyper[m] = (h_user @ latent, h_item @ latent)
    final_u = coll_u + modal_u + 0.3 * F.normalize(hyper["image"][0] + hyper["text"][0])
    final_i = coll_i + modal_i + 0.3 * F.normalize(hyper["image"][1] + hyper["text"][1])
    user, item = model()
    torch.testing.assert_close(user, final_u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(item, final_i, rtol=1e-4, atol=1e-5)

    def contrast(anchor, candidates, index):
        logits = F.normalize(anchor[index]) @ F.normalize(candidates).t() / 0.2
        return -torch.log_softmax(logits, 1)[torch.arange(len(index)), index].sum()

    users, pos, neg = _batch(data)
    u, ip, in_ = final_u[users], final_i[pos], final_i[neg]
    cl = contrast(hyper["image"][0], hyper["text"][0], users)
    cl = cl + contrast(hyper["image"][1], hyper["text"][1], pos)
    reg = (u.norm() + ip.norm() + in_.norm()) / len(users)
    expected = _bpr((u * ip).sum(1), (u * in_).sum(1)) + 0.01 * cl + 0.1 * reg
    loss, parts = model.loss(users, pos, neg)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["cl"], cl.detach(), rtol=1e-4, atol=1e-4)


def test_lgmrec_samples_hyperedges_only_in_training(data):
    torch.manual_seed(0)
    model = LGMRec.from_data(data, embedding_dim=8)
    first, second = model()[1], model()[1]
    assert not torch.equal(first, second)  # Gumbel noise and dropout
    model.eval()
    assert torch.equal(model()[1], model()[1])


@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_user_cooccurrence_graph_is_the_top_k_of_shared_item_counts(data, chunk_size):
    _, r_mean = _dense_bipartite(data)
    r = (r_mean > 0).float()
    shared = (r @ r.t()).fill_diagonal_(0).numpy()
    k = 4
    edge_index, counts = user_cooccurrence_graph(
        data["user", "interacts", "item"].edge_index, 30, 20, k, chunk_size=chunk_size
    )
    for u in range(30):
        candidates = np.flatnonzero(shared[u] > 0)
        # most shared items first, then the smaller user id
        expected = candidates[np.lexsort((candidates, -shared[u, candidates]))][:k]
        mine = edge_index[0] == u
        assert edge_index[1, mine].tolist() == expected.tolist()
        assert counts[mine].tolist() == shared[u, expected].tolist()


def test_dualgnn_matches_dense_reference(data):
    torch.manual_seed(0)
    model = DualGNN.from_data(data, embedding_dim=8, knn_k=4, reg_weight=0.1)
    r_norm, r_mean = _dense_bipartite(data)
    r = (r_mean > 0).float()
    shared = (r @ r.t()).fill_diagonal_(0)
    top = torch.zeros_like(shared, dtype=torch.bool)
    for u in range(30):  # top-4 by count, ties to the smaller id (as tested above)
        order = sorted(range(30), key=lambda v, u=u: (-shared[u, v].item(), v))
        top[u, [v for v in order[:4] if shared[u, v] > 0]] = True
    weights = torch.where(top, shared.exp(), torch.zeros_like(shared))
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-30)

    user, item = 0, 0
    for j, (m, x) in enumerate(_features(data).items()):
        u0 = F.normalize(model.preferences[m])
        i0 = F.normalize(model.encoders[m](x))
        u1, i1 = r_norm @ i0, r_norm.t() @ u0
        u2, i2 = r_norm @ i1, r_norm.t() @ u1
        user = user + model.user_modality_weight[:, j : j + 1] * (u0 + u1 + u2)
        item = item + i0 + i1 + i2
    user = user + weights @ user
    got_user, got_item = model()
    torch.testing.assert_close(got_user, user, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_item, item, rtol=1e-4, atol=1e-5)

    users, pos, neg = _batch(data)
    u = user[users]
    bpr = -torch.log2(torch.sigmoid((u * item[pos]).sum(1) - (u * item[neg]).sum(1))).mean()
    reg = sum(model.preferences[m][users].pow(2).mean() for m in ("image", "text"))
    reg = reg + model.user_modality_weight.pow(2).mean()
    torch.testing.assert_close(
        model.loss(users, pos, neg)[0], bpr + 0.1 * reg, rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(model.user_modality_weight.sum(1), torch.ones(30))  # softmaxed


def test_slmrec_matches_dense_reference(data):
    torch.manual_seed(0)
    model = SLMRec.from_data(data, embedding_dim=8, num_layers=3, ssl_weight=0.4, ssl_tau=0.5)
    assert model.modalities == ["image", "text"]
    r_norm, _ = _dense_bipartite(data)
    user0 = model.user_embedding.weight
    views = [_dense_lightgcn(r_norm, user0, model.item_embedding.weight, 3)]
    for m in ("image", "text"):
        item0 = model.projections[m](F.normalize(data["item"][f"x_{m}"], dim=1))
        views.append(_dense_lightgcn(r_norm, user0, item0, 3))
    user = model.user_fusion(torch.cat([v[0] for v in views], 1))
    item = model.item_fusion(torch.cat([v[1] for v in views], 1))
    got_user, got_item = model()
    torch.testing.assert_close(got_user, user, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_item, item, rtol=1e-4, atol=1e-5)

    def cross_entropy(a, b, tau):
        logits = a @ b.t() / tau
        return (torch.logsumexp(logits, 1) - logits.diag()).mean()

    users, pos, neg = _batch(data)
    fine = model.id_fine(views[0][1][pos])
    coarse = model.middle_coarse(model.fine_middle(fine))
    ssl = cross_entropy(fine, model.first_fine(views[1][1][pos]), 0.5)
    ssl = ssl + cross_entropy(coarse, model.second_coarse(views[2][1][pos]), 0.5)
    expected = _info_nce(user[users], item[pos], 0.2) + 0.4 * ssl
    loss, parts = model.loss(users, pos, neg)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(loss, model.loss(users, pos, torch.zeros_like(neg))[0])  # no negatives


def test_item_graphs_come_from_faiss_and_reuse_matching_stored_graphs(data):
    x = data["item"].x_text
    for weighted in (False, True):
        edge_index, weight = item_knn_graph(data, "text", K, weighted=weighted)
        dense = torch.zeros(20, 20)
        dense[edge_index[0], edge_index[1]] = weight
        torch.testing.assert_close(dense, _dense_knn(x, K, weighted), rtol=1e-5, atol=1e-6)
    # the unweighted graph was stored in the data and is reused for the same k ...
    stored = data["item", "sim_text", "item"].edge_index
    assert item_knn_graph(data, "text", K)[0] is stored
    # ... but a graph of another k is built without replacing it
    other = item_knn_graph(data, "text", K + 2)[0]
    assert other.size(1) == 20 * (K + 2)
    assert data["item", "sim_text", "item"].edge_index is stored


def test_models_from_registry_are_the_classes(data):
    assert MODELS["lightgcn"].cls is LightGCN and MODELS["dream"].cls is DREAM
    bare = make_random_data()
    del bare["item"].x_image, bare["item"].x_text
    for name in ("vbpr", "bm3", "freedom", "mgcn", "lgmrec", "dualgnn", "slmrec"):
        with pytest.raises(ValueError, match="at least one modality"):
            build_model(name, bare)
