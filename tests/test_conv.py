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
