import pytest
import torch
from torch_geometric.nn import LGConv

from dreamgeo.nn import BipartiteLGConv, bipartite_normalized_weight


def _graph(num_users=40, num_items=25, num_edges=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edges = torch.stack(
        [
            torch.randint(0, num_users, (num_edges,), generator=gen),
            torch.randint(0, num_items, (num_edges,), generator=gen),
        ]
    )
    return torch.unique(edges, dim=1), num_users, num_items


def test_normalized_weight_matches_hand_computation():
    edge_index, m, n = _graph()
    weight = bipartite_normalized_weight(edge_index, m, n)
    dense = torch.zeros(m, n)
    dense[edge_index[0], edge_index[1]] = 1.0
    du, di = dense.sum(1), dense.sum(0)
    expected = 1.0 / torch.sqrt(du[edge_index[0]] * di[edge_index[1]])
    torch.testing.assert_close(weight, expected)


def test_equals_pyg_lgconv_on_homogeneous_graph_forward_and_backward():
    edge_index, m, n = _graph()
    x_user = torch.randn(m, 8, requires_grad=True)
    x_item = torch.randn(n, 8, requires_grad=True)
    homogeneous = torch.cat(
        [
            torch.stack([edge_index[0], edge_index[1] + m]),
            torch.stack([edge_index[1] + m, edge_index[0]]),
        ],
        dim=1,
    )
    expected = LGConv()(torch.cat([x_user, x_item]), homogeneous)
    for fused in (True, False):
        out_user, out_item = BipartiteLGConv(fused=fused)(x_user, x_item, edge_index)
        torch.testing.assert_close(out_user, expected[:m])
        torch.testing.assert_close(out_item, expected[m:])

    weights = torch.randn(m + n, 8)
    grads = torch.autograd.grad((expected * weights).sum(), (x_user, x_item))
    out_user, out_item = BipartiteLGConv()(x_user, x_item, edge_index)
    ours = torch.autograd.grad(
        (out_user * weights[:m]).sum() + (out_item * weights[m:]).sum(), (x_user, x_item)
    )
    torch.testing.assert_close(ours[0], grads[0])
    torch.testing.assert_close(ours[1], grads[1])


def test_normalization_is_cached_once():
    edge_index, m, n = _graph()
    conv = BipartiteLGConv(cached=True)
    x_user, x_item = torch.randn(m, 4), torch.randn(n, 4)
    conv(x_user, x_item, edge_index)
    operator = conv._cached_operator
    assert operator is not None
    conv(x_user, x_item, edge_index)
    assert conv._cached_operator is operator
    uncached = BipartiteLGConv(cached=False)
    uncached(x_user, x_item, edge_index)
    assert uncached._cached_operator is None


def _attributes(module: torch.nn.Module) -> dict:
    # the instance attributes, and the entries of the registries Module.__setattr__ fills
    state = dict(vars(module))
    for registry in ("_parameters", "_buffers", "_modules"):
        state.update({f"{registry}.{k}": v for k, v in getattr(module, registry).items()})
    return state


def _assert_same_attributes(before: dict, now: dict) -> None:
    assert now.keys() == before.keys()
    changed = [name for name, value in before.items() if now[name] is not value]
    assert not changed, f"attributes changed: {changed}"


@pytest.mark.parametrize("fused", [True, False])
def test_uncached_forward_sets_no_attribute_even_during_the_call(fused):
    edge_index, m, n = _graph()
    x_user, x_item = torch.randn(m, 4), torch.randn(n, 4)
    conv = BipartiteLGConv(cached=False, fused=fused)
    seen = []
    conv.register_propagate_forward_pre_hook(
        lambda module, inputs: seen.append(_attributes(module))
    )
    before = _attributes(conv)
    conv(x_user, x_item, edge_index)
    assert len(seen) == 2
    for during in seen:  # observed inside propagate, also between the two directions
        _assert_same_attributes(before, during)
    _assert_same_attributes(before, _attributes(conv))


@pytest.mark.parametrize("fused", [True, False])
def test_uncached_calls_on_different_graphs_can_interleave(fused):
    # A call on a second graph made from inside a call on the first (here from a
    # propagate hook, as another thread could) gives both the results of separate layers.
    first, m, n = _graph(seed=0)
    second, m2, n2 = _graph(num_users=30, num_items=35, num_edges=150, seed=1)
    x_user, x_item = torch.randn(m, 4), torch.randn(n, 4)
    x_user2, x_item2 = torch.randn(m2, 4), torch.randn(n2, 4)
    expected = BipartiteLGConv(cached=False, fused=fused)(x_user, x_item, first)
    expected2 = BipartiteLGConv(cached=False, fused=fused)(x_user2, x_item2, second)

    conv = BipartiteLGConv(cached=False, fused=fused)
    nested = []

    def call_on_second_graph(module, inputs):
        if not nested:
            nested.append(None)
            nested[0] = module(x_user2, x_item2, second)

    conv.register_propagate_forward_pre_hook(call_on_second_graph)
    out = conv(x_user, x_item, first)
    for ours, reference in zip((*out, *nested[0]), (*expected, *expected2)):
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)
