r"""LightGCN propagation on the bipartite user–item graph."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.utils import degree

from dreamgeo.nn.sparse import SparseOperator, sparse_matmul

__all__ = ["BipartiteLGConv", "bipartite_normalized_weight", "propagate_layers"]


def bipartite_normalized_weight(edge_index: Tensor, num_users: int, num_items: int) -> Tensor:
    r"""Edge weights of :math:`\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` for the
    bipartite adjacency :math:`\mathbf{A} = \begin{pmatrix} 0 & \mathbf{R} \\
    \mathbf{R}^\top & 0 \end{pmatrix}`, i.e. :math:`1/\sqrt{|\mathcal{N}_u||\mathcal{N}_i|}`.

    Args:
        edge_index (torch.Tensor): User–item interactions ``[2, E]`` (row 0 users).
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.

    Shapes:
        - **output:** ``[E]``
    """
    user, item = edge_index
    deg_user = degree(user, num_users, dtype=torch.float32)
    deg_item = degree(item, num_items, dtype=torch.float32)
    return deg_user[user].rsqrt() * deg_item[item].rsqrt()


class BipartiteLGConv(MessagePassing):
    r"""The LightGCN layer of `"LightGCN: Simplifying and Powering Graph Convolution
    Network for Recommendation" <https://arxiv.org/abs/2002.02126>`_ (He et al., 2020),
    DREAM's behaviour line (Eq. 1–2), taking the bipartite user–item graph directly:

    .. math::
        \mathbf{e}_u^{(l+1)} = \sum_{i \in \mathcal{N}_u}
        \frac{1}{\sqrt{|\mathcal{N}_u||\mathcal{N}_i|}} \mathbf{e}_i^{(l)}, \qquad
        \mathbf{e}_i^{(l+1)} = \sum_{u \in \mathcal{N}_i}
        \frac{1}{\sqrt{|\mathcal{N}_u||\mathcal{N}_i|}} \mathbf{e}_u^{(l)}

    It gives the same result as :class:`torch_geometric.nn.conv.LGConv` on the homogeneous
    graph with users first and both edge directions, without building that graph. With
    :obj:`cached=True` the normalized adjacency is built once as a pair of CSR matrices
    (:math:`\tilde{\mathbf{R}}` and :math:`\tilde{\mathbf{R}}^\top`) and propagation is one
    sparse–dense product per direction, forward and backward. With :obj:`fused=False` it
    runs PyG's edge-wise :meth:`message` path instead (for checks, and for graphs that
    change every call).

    The layer keeps no per-call state: :meth:`forward` is a pure function of its inputs
    and of one explicit cache. With :obj:`cached=True` that cache is the normalized
    operator of the first graph seen (:attr:`_cached_operator`, built by
    :meth:`user_from_item`), reused for every later call whatever its
    :obj:`edge_index`, as in PyG's :class:`~torch_geometric.nn.conv.GCNConv` and
    :class:`~torch_geometric.nn.conv.LGConv`; :meth:`reset_parameters` clears it. With
    :obj:`cached=False` a call sets no attribute at all, so calls on different graphs can
    interleave (nested, or from several threads). The fused path hands the transposed
    matrix to :meth:`message_and_aggregate` as a :meth:`propagate` argument.

    Args:
        cached (bool, optional): Cache the normalized adjacency of the first graph seen;
            only valid in transductive settings. (default: :obj:`True`)
        fused (bool, optional): Use the CSR sparse–dense product. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** user features ``[M, d]``, item features ``[N, d]``, interactions
          ``[2, E]``
        - **output:** user features ``[M, d]``, item features ``[N, d]``
    """

    propagate_type = {
        "x": tuple[Tensor, Tensor],
        "edge_weight": Optional[Tensor],  # noqa: UP045
        "adj": Optional[Tensor],  # noqa: UP045
    }

    def __init__(self, cached: bool = True, fused: bool = True, **kwargs):
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.cached = cached
        self.fused = fused
        # The only state kept across calls: the operator of the first graph seen, set by
        # user_from_item when cached=True (never when cached=False).
        self._cached_operator: SparseOperator | None = None

    def reset_parameters(self):
        super().reset_parameters()
        self._cached_operator = None

    def user_from_item(self, edge_index: Tensor, num_users: int, num_items: int) -> SparseOperator:
        r"""The normalized :math:`\tilde{\mathbf{R}} \in \mathbb{R}^{M \times N}`
        (cached when :obj:`cached=True`)."""
        operator = self._cached_operator
        if operator is None or not self.cached:
            weight = bipartite_normalized_weight(edge_index, num_users, num_items)
            operator = SparseOperator(
                edge_index[0], edge_index[1], weight, (num_users, num_items)
            ).to(edge_index.device)
            if self.cached:
                self._cached_operator = operator
        return operator

    def forward(self, x_user: Tensor, x_item: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        num_users, num_items = x_user.size(0), x_item.size(0)
        if self.fused:
            operator = self.user_from_item(edge_index, num_users, num_items)
            matrix, matrix_t = operator.matrix, operator.matrix_t
            out_user = self.propagate(matrix, x=(x_item, x_user), edge_weight=None, adj=matrix_t)
            out_item = self.propagate(matrix_t, x=(x_user, x_item), edge_weight=None, adj=matrix)
            return out_user, out_item

        weight = bipartite_normalized_weight(edge_index, num_users, num_items)
        item_to_user = edge_index.flip(0)
        out_user = self.propagate(
            item_to_user,
            x=(x_item, x_user),
            edge_weight=weight,
            adj=None,
            size=(num_items, num_users),
        )
        out_item = self.propagate(
            edge_index,
            x=(x_user, x_item),
            edge_weight=weight,
            adj=None,
            size=(num_users, num_items),
        )
        return out_user, out_item

    def message(self, x_j: Tensor, edge_weight: Tensor | None) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(
        self,
        adj_t: Tensor,
        x: tuple[Tensor, Tensor],
        adj: Tensor | None,
    ) -> Tensor:
        r"""The fused product ``adj_t @ x[0]`` of the CSR matrix :obj:`adj_t` with the
        source features; :obj:`adj`, the CSR transpose of :obj:`adj_t` that
        :meth:`forward` passes to :meth:`propagate`, makes the backward pass one more
        CSR product."""
        if adj is None:
            raise ValueError("BipartiteLGConv: the fused product needs the transposed matrix")
        return sparse_matmul(adj_t, adj, x[0])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cached={self.cached}, fused={self.fused})"


def propagate_layers(
    conv: BipartiteLGConv,
    user: Tensor,
    item: Tensor,
    edge_index: Tensor,
    num_layers: int,
    mean: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""LightGCN's layer combination over the user–item graph: with
    :math:`(\mathbf{E}_u^{(l+1)}, \mathbf{E}_i^{(l+1)}) = \mathrm{conv}(\mathbf{E}_u^{(l)},
    \mathbf{E}_i^{(l)})`,

    .. math::
        \bar{\mathbf{E}} = \frac{1}{L+1}\sum_{l=0}^{L} \mathbf{E}^{(l)}
        \quad\text{(or the plain sum with } \texttt{mean=False}\text{)}.

    Args:
        conv (BipartiteLGConv): The propagation layer.
        user (torch.Tensor): :math:`\mathbf{E}_u^{(0)}` ``[M, d]``.
        item (torch.Tensor): :math:`\mathbf{E}_i^{(0)}` ``[N, d]``.
        edge_index (torch.Tensor): User–item interactions ``[2, E]``.
        num_layers (int): :math:`L`.
        mean (bool, optional): Average the layers, else sum them. (default: :obj:`True`)

    Shapes:
        - **output:** users ``[M, d]``, items ``[N, d]``
    """
    user_sum, item_sum = user, item
    for _ in range(num_layers):
        user, item = conv(user, item, edge_index)
        user_sum = user_sum + user
        item_sum = item_sum + item
    if not mean:
        return user_sum, item_sum
    scale = 1.0 / (num_layers + 1)
    return user_sum * scale, item_sum * scale
