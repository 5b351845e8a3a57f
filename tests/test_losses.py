import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamgeo import BMALoss, BPRLoss, S3Loss
from dreamgeo.nn import DynamicNegativeSampling, info_nce
from dreamgeo.nn import bma_loss as bma_module


def _np_info_nce(a, p, tau):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    total = 0.0
    for k in range(len(a)):
        logits = [float(a[k] @ p[j]) / tau for j in range(len(p))]
        total += -logits[k] + math.log(sum(math.exp(v) for v in logits))
    return total / len(a)


def _np_cos(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_bpr_loss_against_hand_computation():
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(7, generator=gen), torch.randn(7, generator=gen)
    emb = torch.randn(7, 3, generator=gen)
    loss = BPRLoss(reg_weight=0.5)(pos, neg, emb)
    ranking = np.mean([-math.log(1 / (1 + math.exp(-(p - n)))) for p, n in zip(pos, neg)])
    reg = 0.5 * float((emb**2).sum()) / (2 * 7)
    assert loss.item() == pytest.approx(ranking + reg, rel=1e-5)
    # extreme score differences stay finite (softplus, no log(0))
    assert torch.isfinite(BPRLoss()(torch.tensor([-200.0]), torch.tensor([200.0])))
    with pytest.raises(ValueError, match="reg_weight"):
        BPRLoss(reg_weight=-1)


def test_info_nce_against_loop():
    gen = torch.Generator().manual_seed(1)
    a, p = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    expected = _np_info_nce(a.numpy(), p.numpy(), 0.2)
    assert info_nce(a, p, 0.2).item() == pytest.approx(expected, rel=1e-5)


def _np_info_nce_gradients(a, p, tau):
    r"""Gradients of :func:`_np_info_nce` by hand: with normalized rows and
    :math:`\mathbf{S} = \mathrm{softmax}(\hat{\mathbf{A}}\hat{\mathbf{P}}^\top / \tau)`,
    the gradient on :math:`\hat{\mathbf{A}}` is :math:`(\mathbf{S} - \mathbf{I})
    \hat{\mathbf{P}} / (B\tau)`, then through the normalization
    :math:`\nabla_x = (\mathbf{I} - \hat{x}\hat{x}^\top) \nabla_{\hat{x}} / \|x\|`."""
    a_norm = np.linalg.norm(a, axis=1, keepdims=True)
    p_norm = np.linalg.norm(p, axis=1, keepdims=True)
    a_hat, p_hat = a / a_norm, p / p_norm
    logits = a_hat @ p_hat.T / tau
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    delta = (soft - np.eye(len(a))) / (len(a) * tau)
    grad_a_hat, grad_p_hat = delta @ p_hat, delta.T @ a_hat

    def through_norm(x_hat, norm, grad):
        return (grad - x_hat * (x_hat * grad).sum(axis=1, keepdims=True)) / norm

    return through_norm(a_hat, a_norm, grad_a_hat), through_norm(p_hat, p_norm, grad_p_hat)


def test_info_nce_gradients_against_hand_computation():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(9, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    p = torch.randn(9, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    info_nce(a, p, 0.3).backward()
    want_a, want_p = _np_info_nce_gradients(a.detach().numpy(), p.detach().numpy(), 0.3)
    np.testing.assert_allclose(a.grad.numpy(), want_a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.grad.numpy(), want_p, rtol=1e-10, atol=1e-12)
    # only the input that needs a gradient gets one
    frozen = p.detach()
    a.grad = None
    info_nce(a, frozen, 0.3).backward()
    np.testing.assert_allclose(a.grad.numpy(), want_a, rtol=1e-10, atol=1e-12)


def _np_info_nce_target(a, c, target, tau):
    r"""InfoNCE of each anchor against every candidate, its positive at ``target``,
    and its gradients, by hand: with :math:`\mathbf{S} = \mathrm{softmax}(\hat{
    \mathbf{A}}\hat{\mathbf{C}}^\top / \tau)` and :math:`\mathbf{Y}` the one-hot
    targets, :math:`\nabla_{\hat{\mathbf{A}}} = (\mathbf{S} - \mathbf{Y})
    \hat{\mathbf{C}} / (B\tau)` and :math:`\nabla_{\hat{\mathbf{C}}} = (\mathbf{S} -
    \mathbf{Y})^\top \hat{\mathbf{A}} / (B\tau)`."""
    a_norm = np.linalg.norm(a, axis=1, keepdims=True)
    c_norm = np.linalg.norm(c, axis=1, keepdims=True)
    a_hat, c_hat = a / a_norm, c / c_norm
    total = 0.0
    for k in range(len(a)):
        logits = [float(a_hat[k] @ c_hat[j]) / tau for j in range(len(c))]
        total += -logits[target[k]] + math.log(sum(math.exp(v) for v in logits))
    logits = a_hat @ c_hat.T / tau
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(soft)
    onehot[np.arange(len(a)), target] = 1.0
    delta = (soft - onehot) / (len(a) * tau)
    grad_a_hat, grad_c_hat = delta @ c_hat, delta.T @ a_hat

    def through_norm(x_hat, norm, grad):
        return (grad - x_hat * (x_hat * grad).sum(axis=1, keepdims=True)) / norm

    return (
        total / len(a),
        through_norm(a_hat, a_norm, grad_a_hat),
        through_norm(c_hat, c_norm, grad_c_hat),
    )


def test_info_nce_with_target_against_hand_computation():
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.randn(11, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([3, 3, 0, 10, 5, 3, 9])  # repeated positives accumulate
    loss = info_nce(a, c, 0.4, target=target)
    loss.backward()
    want, want_a, want_c = _np_info_nce_target(
        a.detach().numpy(), c.detach().numpy(), target.numpy(), 0.4
    )
    assert loss.item() == pytest.approx(want, rel=1e-10)
    np.testing.assert_allclose(a.grad.numpy(), want_a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c.grad.numpy(), want_c, rtol=1e-10, atol=1e-12)
    # target = arange(B) is the in-batch loss
    square = c[:7].detach()
    assert info_nce(a, square, 0.4, target=torch.arange(7)).item() == pytest.approx(
        info_nce(a, square, 0.4).item(), rel=1e-12
    )
    with pytest.raises(ValueError, match="target"):
        info_nce(a, c, 0.4, target=target[:3])


def test_info_nce_small_temperature_stays_exact():
    # positives opposite to their anchors at tau = 0.005: each positive's softmax
    # probability is about exp(-400), far below float32's range; the loss is still the
    # exact log-sum-exp value (about 400), not inf
    a = torch.eye(3)
    p = torch.stack([-a[0], a[0], a[1]])
    expected = _np_info_nce(a.double().numpy(), p.double().numpy(), 0.005)
    loss = info_nce(a.requires_grad_(), p, 0.005)
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="must both be"):
        info_nce(torch.randn(4, 3), torch.randn(5, 3))


def test_bma_loss_parts_and_weights():
    gen = torch.Generator().manual_seed(2)
    ub, ib, um, im = (torch.randn(5, 4, generator=gen, requires_grad=True) for _ in range(4))
    bma = BMALoss(tau=0.3, intra_weight=0.02, inter_weight=0.05)
    loss = bma(ub, ib, um, im)
    n = [t.detach().numpy() for t in (ub, ib, um, im)]
    bia, mia = _np_info_nce(n[0], n[1], 0.3), _np_info_nce(n[2], n[3], 0.3)
    inter_u, inter_i = _np_info_nce(n[0], n[2], 0.3), _np_info_nce(n[1], n[3], 0.3)
    parts = bma.last_parts
    for got, want in zip(parts, (bia, mia, inter_u, inter_i)):
        assert got.item() == pytest.approx(want, rel=1e-5)
    expected = 0.02 * (bia + mia) + 0.05 * (inter_u + inter_i)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for tensor in (ub, ib, um, im):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_bma_zero_weight_is_not_computed(monkeypatch):
    calls = []
    original = bma_module.info_nce
    monkeypatch.setattr(bma_module, "info_nce", lambda *a: calls.append(1) or original(*a))
    x = torch.randn(4, 3)
    BMALoss(intra_weight=0.0, inter_weight=0.1)(x, x, x, x)
    assert len(calls) == 2
    calls.clear()
    BMALoss(intra_weight=0.1, inter_weight=0.0)(x, x, x, x)
    assert len(calls) == 2


def _np_info_nce_distinct(a, p, ids, tau):
    """InfoNCE where anchor k's candidates are its positive plus one row of every other
    distinct id of the batch (the first one), by a loop over the batch."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    total = 0.0
    for k in range(len(a)):
        firsts = {}
        for j, value in enumerate(ids):
            firsts.setdefault(int(value), j)
        candidates = [j for v, j in firsts.items() if v != int(ids[k])] + [k]
        logits = [float(a[k] @ p[j]) / tau for j in candidates]
        total += -logits[-1] + math.log(sum(math.exp(v) for v in logits))
    return total / len(a)


def _rows_by_id(ids, width, gen):
    table = torch.randn(int(ids.max()) + 1, width, generator=gen)
    return table[ids].clone().requires_grad_(True)


@pytest.mark.parametrize("direction", ["one", "both"])
def test_bma_distinct_negatives_against_loop(direction):
    gen = torch.Generator().manual_seed(3)
    users = torch.tensor([0, 1, 0, 2, 3, 1, 0])
    items = torch.tensor([5, 5, 6, 7, 5, 8, 6])
    ub, um = _rows_by_id(users, 4, gen), _rows_by_id(users, 4, gen)
    ib, im = _rows_by_id(items, 4, gen), _rows_by_id(items, 4, gen)
    bma = BMALoss(
        tau=0.3, intra_weight=0.02, inter_weight=0.05, direction=direction, negatives="distinct"
    )
    loss = bma(ub, ib, um, im, users, items)
    n = [t.detach().numpy() for t in (ub, ib, um, im)]
    u, i = users.numpy(), items.numpy()

    def term(a, p, a_ids, p_ids):
        forward = _np_info_nce_distinct(a, p, p_ids, 0.3)
        if direction == "one":
            return forward
        return 0.5 * (forward + _np_info_nce_distinct(p, a, a_ids, 0.3))

    want = (
        term(n[0], n[1], u, i),
        term(n[2], n[3], u, i),
        term(n[0], n[2], u, u),
        term(n[1], n[3], i, i),
    )
    for got, expected in zip(bma.last_parts, want):
        assert got.item() == pytest.approx(expected, rel=1e-5)
    # a repeated positive is no negative: the in-batch loss is larger on this batch
    assert bma.last_parts.bia.item() < BMALoss(tau=0.3).parts(ub, ib, um, im).bia.item()
    assert loss.item() == pytest.approx(0.02 * sum(want[:2]) + 0.05 * sum(want[2:]), rel=1e-5)
    loss.backward()
    # gradients against autograd through cross_entropy over the same candidates
    grads = [t.grad.clone() for t in (ub, ib, um, im)]
    for t in (ub, ib, um, im):
        t.grad = None

    def reference(a, p, p_ids):
        _, slot = torch.unique(p_ids, return_inverse=True)
        first = torch.tensor([int((slot == s).nonzero()[0]) for s in range(int(slot.max()) + 1)])
        logits = F.normalize(a, dim=-1) @ F.normalize(p[first], dim=-1).t() / 0.3
        return F.cross_entropy(logits, slot)

    def ref_term(a, p, a_ids, p_ids):
        forward = reference(a, p, p_ids)
        return forward if direction == "one" else 0.5 * (forward + reference(p, a, a_ids))

    ref = 0.02 * (ref_term(ub, ib, users, items) + ref_term(um, im, users, items))
    ref = ref + 0.05 * (ref_term(ub, um, users, users) + ref_term(ib, im, items, items))
    ref.backward()
    for got, t in zip(grads, (ub, ib, um, im)):
        torch.testing.assert_close(got, t.grad, rtol=1e-5, atol=1e-7)


def test_bma_distinct_equals_batch_without_repeats():
    gen = torch.Generator().manual_seed(4)
    ub, ib, um, im = (torch.randn(6, 3, generator=gen) for _ in range(4))
    ids = torch.tensor([4, 0, 2, 9, 1, 3])
    distinct = BMALoss(negatives="distinct")(ub, ib, um, im, ids, ids.flip(0))
    assert distinct.item() == pytest.approx(BMALoss()(ub, ib, um, im).item(), rel=1e-6)


def _np_info_nce_unseen(a, p, a_ids, p_ids, known, tau):
    """InfoNCE over the batch's distinct candidate ids, without the candidates that
    ``known`` pairs with the anchor's id (other than its own positive), by a loop."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    firsts = {}
    for j, value in enumerate(p_ids):
        firsts.setdefault(int(value), j)
    total = 0.0
    for k in range(len(a)):
        own = int(p_ids[k])
        candidates = [
            j for v, j in firsts.items() if v != own and (int(a_ids[k]), v) not in known
        ] + [k]
        logits = [float(a[k] @ p[j]) / tau for j in candidates]
        total += -logits[-1] + math.log(sum(math.exp(v) for v in logits))
    return total / len(a)


@pytest.mark.parametrize("direction", ["one", "both"])
def test_bma_unseen_negatives_against_loop(direction):
    gen = torch.Generator().manual_seed(5)
    # training interactions: user 0 bought items 5, 6, 8; user 1 items 5, 7; ...
    train = torch.tensor([[0, 0, 0, 1, 1, 2, 3, 3], [5, 6, 8, 5, 7, 7, 5, 6]])
    users = torch.tensor([0, 1, 0, 2, 3, 1, 0])
    items = torch.tensor([5, 5, 6, 7, 5, 7, 8])
    ub, um = _rows_by_id(users, 4, gen), _rows_by_id(users, 4, gen)
    ib, im = _rows_by_id(items, 4, gen), _rows_by_id(items, 4, gen)
    bma = BMALoss(
        tau=0.3, intra_weight=0.02, inter_weight=0.05, direction=direction, negatives="unseen"
    )
    bma.set_interactions(train, num_users=4, num_items=9)
    loss = bma(ub, ib, um, im, users, items)
    n = [t.detach().numpy() for t in (ub, ib, um, im)]
    u, i = users.numpy(), items.numpy()
    bought = {(int(a), int(b)) for a, b in train.t()}
    buyers = {(b, a) for a, b in bought}

    def intra(a, p):
        forward = _np_info_nce_unseen(a, p, u, i, bought, 0.3)
        if direction == "one":
            return forward
        return 0.5 * (forward + _np_info_nce_unseen(p, a, i, u, buyers, 0.3))

    def inter(a, p, ids):  # same-entity terms: nothing is excluded
        forward = _np_info_nce_distinct(a, p, ids, 0.3)
        return (
            forward
            if direction == "one"
            else 0.5 * (forward + _np_info_nce_distinct(p, a, ids, 0.3))
        )

    want = (intra(n[0], n[1]), intra(n[2], n[3]), inter(n[0], n[2], u), inter(n[1], n[3], i))
    for got, expected in zip(bma.last_parts, want):
        assert got.item() == pytest.approx(expected, rel=1e-5)
    # the user's other training items left the denominator: a smaller Intra than distinct
    distinct = BMALoss(tau=0.3, direction=direction, negatives="distinct")
    assert bma.last_parts.bia.item() < distinct.parts(ub, ib, um, im, users, items).bia.item()
    loss.backward()
    grads = [t.grad.clone() for t in (ub, ib, um, im)]
    for t in (ub, ib, um, im):
        t.grad = None

    def reference(a, p, a_ids, p_ids, pairs):
        distinct_ids, slot = torch.unique(p_ids, return_inverse=True)
        first = torch.tensor([int((slot == s).nonzero()[0]) for s in range(len(distinct_ids))])
        logits = F.normalize(a, dim=-1) @ F.normalize(p[first], dim=-1).t() / 0.3
        mask = torch.tensor([[(int(x), int(c)) in pairs for c in distinct_ids] for x in a_ids])
        mask[torch.arange(len(a_ids)), slot] = False
        return F.cross_entropy(logits.masked_fill(mask, float("-inf")), slot)

    def ref_intra(a, p):
        forward = reference(a, p, users, items, bought)
        if direction == "one":
            return forward
        return 0.5 * (forward + reference(p, a, items, users, buyers))

    def ref_inter(a, p, ids):
        forward = reference(a, p, ids, ids, set())
        return forward if direction == "one" else 0.5 * (forward + reference(p, a, ids, ids, set()))

    ref = 0.02 * (ref_intra(ub, ib) + ref_intra(um, im))
    ref = ref + 0.05 * (ref_inter(ub, um, users) + ref_inter(ib, im, items))
    ref.backward()
    for got, t in zip(grads, (ub, ib, um, im)):
        torch.testing.assert_close(got, t.grad, rtol=1e-5, atol=1e-7)


def test_bma_unseen_equals_distinct_without_known_pairs():
    gen = torch.Generator().manual_seed(6)
    users, items = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 5, 4])
    ub, um = _rows_by_id(users, 3, gen), _rows_by_id(users, 3, gen)
    ib, im = _rows_by_id(items, 3, gen), _rows_by_id(items, 3, gen)
    unseen = BMALoss(negatives="unseen", direction="both")
    # the only training pairs are the batch's own (one repeated): nothing to exclude
    unseen.set_interactions(torch.stack([users, items]), num_users=3, num_items=6)
    distinct = BMALoss(negatives="distinct", direction="both")
    torch.testing.assert_close(
        unseen(ub, ib, um, im, users, items), distinct(ub, ib, um, im, users, items)
    )


def test_bma_logq_correction_against_hand_computation():
    gen = torch.Generator().manual_seed(7)
    train = torch.tensor([[0, 0, 1, 1, 1, 2, 3, 3], [4, 5, 4, 6, 7, 4, 5, 4]])
    users, items = train[:, [0, 2, 3, 5, 6, 7]]
    ub, um = _rows_by_id(users, 3, gen), _rows_by_id(users, 3, gen)
    ib, im = _rows_by_id(items, 3, gen), _rows_by_id(items, 3, gen)
    bma = BMALoss(tau=0.5, intra_weight=1.0, inter_weight=1.0, negatives="distinct", logq=True)
    bma.set_interactions(train, num_users=4, num_items=8)
    got = bma.parts(ub, ib, um, im, users, items)
    b = len(users)
    # training shares: users 2/8, 3/8, 1/8, 2/8; items 4 (4/8), 5 (2/8), 6, 7 (1/8 each)
    user_share = {0: 2 / 8, 1: 3 / 8, 2: 1 / 8, 3: 2 / 8}
    item_share = {4: 4 / 8, 5: 2 / 8, 6: 1 / 8, 7: 1 / 8}

    def term(a, p, p_ids, share):
        a = a.detach().numpy() / np.linalg.norm(a.detach().numpy(), axis=1, keepdims=True)
        p = p.detach().numpy() / np.linalg.norm(p.detach().numpy(), axis=1, keepdims=True)
        firsts = {}
        for j, value in enumerate(p_ids.tolist()):
            firsts.setdefault(value, j)
        total = 0.0
        for k in range(b):
            # logit - log q, q = 1 - (1 - share)^B the chance that a batch holds the id
            logits = {
                v: float(a[k] @ p[j]) / 0.5 - math.log(1 - (1 - share[v]) ** b)
                for v, j in firsts.items()
            }
            own = int(p_ids[k])
            total += -logits[own] + math.log(sum(math.exp(x) for x in logits.values()))
        return total / b

    want = (
        term(ub, ib, items, item_share),
        term(um, im, items, item_share),
        term(ub, um, users, user_share),
        term(ib, im, items, item_share),
    )
    for value, expected in zip(got, want):
        assert value.item() == pytest.approx(expected, rel=1e-5)
    # an id without training interactions counts as drawn once: the loss stays finite
    lonely = BMALoss(negatives="distinct", logq=True)
    lonely.set_interactions(train, num_users=6, num_items=10)
    extra_users, extra_items = (
        torch.cat([users, torch.tensor([5])]),
        torch.cat([items, torch.tensor([9])]),
    )
    rows = [torch.cat([t, torch.randn(1, 3, generator=gen)]) for t in (ub, ib, um, im)]
    assert torch.isfinite(lonely(*rows, extra_users, extra_items))
    # the correction changes the loss (popular ids are sampled more often)
    plain = BMALoss(tau=0.5, intra_weight=1.0, inter_weight=1.0, negatives="distinct")
    assert plain.parts(ub, ib, um, im, users, items).bia.item() != pytest.approx(want[0])


def test_bma_bad_input():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="item_modal has shape"):
        BMALoss()(x, x, x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="tau"):
        BMALoss(tau=0)
    with pytest.raises(ValueError, match="intra_weight"):
        BMALoss(intra_weight=-0.1)
    with pytest.raises(ValueError, match="negatives must be one of"):
        BMALoss(negatives="hard")
    with pytest.raises(ValueError, match="needs the batch's users and items"):
        BMALoss(negatives="distinct")(x, x, x, x)
    with pytest.raises(ValueError, match=r"items must be \[B\]"):
        BMALoss(negatives="distinct")(x, x, x, x, torch.arange(4), torch.arange(3))
    with pytest.raises(ValueError, match="call set_interactions"):
        BMALoss(negatives="unseen")(x, x, x, x, torch.arange(4), torch.arange(4))
    with pytest.raises(ValueError, match=r"edge_index must be \[2, E\]"):
        BMALoss(negatives="unseen").set_interactions(torch.arange(4), 4, 4)
    with pytest.raises(ValueError, match="logq needs negatives"):
        BMALoss(logq=True)
    with pytest.raises(ValueError, match="call set_interactions"):
        BMALoss(negatives="distinct", logq=True)(x, x, x, x, torch.arange(4), torch.arange(4))
    with pytest.raises(ValueError, match=r"bias must be \[C\]"):
        info_nce(x, x, bias=torch.zeros(3))
    with pytest.raises(ValueError, match="exclude must be a boolean"):
        info_nce(x, x, target=torch.arange(4), exclude=torch.zeros(4, 3, dtype=torch.bool))


def test_s3_loss_against_dense_definition_and_stop_gradient():
    gen = torch.Generator().manual_seed(3)
    rep = torch.randn(9, 5, generator=gen, requires_grad=True)
    image = (torch.rand(9, 40, generator=gen) * 100).requires_grad_()
    text = torch.randn(9, 7, generator=gen).requires_grad_()
    loss = S3Loss()(rep, [image, text], [0.3, 0.7])
    target = 0.3 * _np_cos(image.detach().numpy()) + 0.7 * _np_cos(text.detach().numpy())
    pred = _np_cos(rep.detach().numpy())
    assert loss.item() == pytest.approx(float(np.mean((pred - target) ** 2)), rel=1e-4)
    loss.backward()
    assert image.grad is None and text.grad is None  # stop-gradient on the feature side
    assert rep.grad.abs().sum() > 0


def test_s3_without_constant_has_same_gradient():
    gen = torch.Generator().manual_seed(4)
    rep = torch.randn(6, 4, generator=gen, requires_grad=True)
    feats = [torch.randn(6, 10, generator=gen)]
    full = S3Loss(include_constant=True)(rep, feats, [1.0])
    shifted = S3Loss(include_constant=False)(rep, feats, [1.0])
    g_full = torch.autograd.grad(full, rep)[0]
    g_shifted = torch.autograd.grad(shifted, rep)[0]
    torch.testing.assert_close(g_full, g_shifted)
    constant = float(np.mean(_np_cos(feats[0].numpy()) ** 2))
    assert full.item() - shifted.item() == pytest.approx(constant, rel=1e-4)


def test_s3_bad_input():
    with pytest.raises(ValueError, match="one row per"):
        S3Loss()(torch.randn(4, 3), [torch.randn(5, 2)], [1.0])
    with pytest.raises(ValueError, match="weights"):
        S3Loss()(torch.randn(4, 3), [torch.randn(4, 2)], [0.5, 0.5])


def test_s3_gathered_equals_dense_definition_across_chunks(monkeypatch):
    from dreamgeo.nn import s3_loss as s3_module

    monkeypatch.setattr(s3_module, "GATHER_CHUNK_ROWS", 3)  # 8 rows: chunks of 3, 3, 2
    gen = torch.Generator().manual_seed(5)
    image = torch.rand(12, 30, generator=gen, dtype=torch.float64) * 50
    text = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    table = S3Loss.target_factor([image, text], [0.3, 0.7])
    index = torch.tensor([4, 0, 11, 4, 7, 2, 2, 9])  # repeated rows too
    rep = torch.randn(8, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    for include_constant in (True, False):
        loss = S3Loss(include_constant).gathered(rep, table, index)
        target = 0.3 * _np_cos(image[index].numpy()) + 0.7 * _np_cos(text[index].numpy())
        expected = float(np.mean((_np_cos(rep.detach().numpy()) - target) ** 2))
        if not include_constant:
            expected -= float(np.mean(target**2))
        assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-8)  # float32 table
    # gradient: against autograd through the dense B x B definition
    gathered = torch.autograd.grad(S3Loss().gathered(rep, table, index), rep)[0]
    rep_hat = torch.nn.functional.normalize(rep, dim=-1)
    dense = ((rep_hat @ rep_hat.t() - torch.from_numpy(target)) ** 2).mean()
    torch.testing.assert_close(gathered, torch.autograd.grad(dense, rep)[0])
    with pytest.raises(ValueError, match="one entry per"):
        S3Loss().gathered(rep, table, index[:5])


def test_s3_gathered_bfloat16_table_is_close():
    gen = torch.Generator().manual_seed(6)
    table = S3Loss.target_factor([torch.randn(50, 300, generator=gen)], [1.0])
    index = torch.randint(0, 50, (40,), generator=gen)
    rep = torch.randn(40, 16, generator=gen, requires_grad=True)
    exact = S3Loss().gathered(rep, table, index)
    grad_exact = torch.autograd.grad(exact, rep)[0]
    low = S3Loss().gathered(rep, table.bfloat16(), index)
    grad_low = torch.autograd.grad(low, rep)[0]
    assert low.dtype == torch.float32 and grad_low.dtype == torch.float32
    assert low.item() == pytest.approx(exact.item(), rel=2e-2)
    assert F.cosine_similarity(grad_low.flatten(), grad_exact.flatten(), dim=0) > 0.999


def test_sampled_softmax_against_hand_computation():
    from dreamgeo.nn import SampledSoftmaxLoss

    torch.manual_seed(0)
    user, pos, neg = (torch.randn(3, 4, dtype=torch.float64) for _ in range(3))
    user.requires_grad_()
    pos_ids, neg_ids = torch.tensor([5, 7, 5]), torch.tensor([7, 1, 2])
    loss = SampledSoftmaxLoss(tau=0.5)(user, pos, neg, pos_ids, neg_ids)
    candidates = [(5, pos[0]), (7, pos[1]), (5, pos[2]), (7, neg[0]), (1, neg[1]), (2, neg[2])]
    expected = 0.0
    for b in range(3):
        own = float(user[b] @ pos[b]) / 0.5
        # the other copies of row b's own positive item are not its negatives
        others = [
            float(user[b] @ vec) / 0.5
            for j, (item, vec) in enumerate(candidates)
            if j != b and item != int(pos_ids[b])
        ]
        expected += -own + math.log(math.exp(own) + sum(math.exp(x) for x in others))
    assert math.isclose(float(loss), expected / 3, rel_tol=1e-9)
    loss.backward()
    assert torch.isfinite(user.grad).all() and user.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="tau"):
        SampledSoftmaxLoss(tau=0.0)


def test_dynamic_negatives_pick_the_hardest_non_interacted_candidate():
    # 2 users, 4 items; user 0 has items 0 and 1, user 1 has item 3
    edges = torch.tensor([[0, 0, 1], [0, 1, 3]])
    dns = DynamicNegativeSampling(edges, num_users=2, num_items=4, num_candidates=64)
    assert dns.is_positive(
        torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 2, 3, 0])
    ).tolist() == [
        True,
        True,
        False,
        True,
        False,
    ]
    # score = item id: user 0's hardest allowed item is 3, user 1's is 2 (3 is its own)
    score = lambda users, items: items.float()  # noqa: E731
    torch.manual_seed(0)  # 63 draws per row reach every item with near certainty
    chosen = dns(torch.tensor([0, 1]), torch.tensor([2, 0]), score)
    assert chosen.tolist() == [3, 2]
    # K = 1 keeps the sampler's negative and draws nothing
    one = DynamicNegativeSampling(edges, 2, 4, num_candidates=1)
    state = torch.get_rng_state()
    assert one(torch.tensor([0]), torch.tensor([2]), score).tolist() == [2]
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="num_candidates must be >= 1"):
        DynamicNegativeSampling(edges, 2, 4, num_candidates=0)
    with pytest.raises(ValueError, match=r"edge_index must have shape \[2, E\]"):
        DynamicNegativeSampling(edges[0], 2, 4)


def test_info_nce_bias_and_exclude_gradients_match_autograd():
    gen = torch.Generator().manual_seed(8)
    a = torch.randn(5, 4, generator=gen, requires_grad=True)
    c = torch.randn(6, 4, generator=gen, requires_grad=True)
    target = torch.tensor([0, 2, 2, 5, 1])
    bias = torch.randn(6, generator=gen)
    exclude = torch.zeros(5, 6, dtype=torch.bool)
    exclude[0, 3] = exclude[3, 0] = exclude[4, 2] = True
    loss = info_nce(a, c, 0.3, target=target, exclude=exclude, bias=bias)
    loss.backward()
    got = a.grad.clone(), c.grad.clone()
    a.grad = c.grad = None
    logits = F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).t() / 0.3 + bias
    ref = F.cross_entropy(logits.masked_fill(exclude, float("-inf")), target)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    torch.testing.assert_close(got[0], a.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got[1], c.grad, rtol=1e-5, atol=1e-7)
