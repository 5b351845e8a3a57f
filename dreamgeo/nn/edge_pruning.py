r"""FREEDOM's degree-sensitive pruning of the user–item training graph, drawn anew
every epoch."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from dreamgeo.nn.conv import BipartiteLGConv, bipartite_normalized_weight

__all__ = ["degree_sensitive_pruning", "EpochEdgePruning"]


def degree_sensitive_pruning(
    edge_index: Tensor,
    num_users: int,
    num_items: int,
    num_kept: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The degree-sensitive edge pruning of `"A Tale of Two Graphs: Freezing and
    Denoising Graph Structures for Multimodal Recommendation"
    <https://arxiv.org/abs/2211.06924>`_ (Zhou and Shen, 2023): draws :obj:`num_kept`
    distinct user–item edges without replacement, each draw picking a remaining edge with
    probability proportional to

    .. math::
        p_{ui} \propto \frac{1}{\sqrt{|\mathcal{N}_u|}\sqrt{|\mathcal{N}_i|}},

    so edges between high-degree nodes (more likely noise) are dropped more often.

    This is what MMRec's ``torch.multinomial(values, num_kept)`` draws, computed in one
    vectorized pass with exponential keys (Efraimidis and Spirakis, 2006): with
    :math:`k_e = \xi_e / p_e`, :math:`\xi_e \sim \mathrm{Exp}(1)`, the :obj:`num_kept`
    smallest keys are a sample of that successive-draw distribution. Unlike
    :func:`torch.multinomial` it has no limit on the number of edges.

    Args:
        edge_index (torch.Tensor): User–item interactions ``[2, E]`` (row 0 users).
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        num_kept (int): Edges to keep, :math:`0 \le` :obj:`num_kept` :math:`\le E`.
        generator (torch.Generator, optional): Random source. (default: :obj:`None`,
            the global one)

    Shapes:
        - **output:** kept edges ``[2, num_kept]``
    """
    if not 0 <= num_kept <= edge_index.size(1):
        raise ValueError(
            f"degree_sensitive_pruning: num_kept must be in [0, {edge_index.size(1)}], "
            f"got {num_kept}"
        )
    weight = bipartite_normalized_weight(edge_index, num_users, num_items)
    keys = torch.empty_like(weight).exponential_(generator=generator) / weight
    kept = keys.topk(num_kept, largest=False, sorted=False).indices
    return edge_index[:, kept]


class EpochEdgePruning(torch.nn.Module):
    r"""A user–item training graph with a share :math:`\rho` of its edges dropped by
    :func:`degree_sensitive_pruning` (the rest re-normalized by its own
    :class:`~dreamgeo.nn.BipartiteLGConv`), drawn anew every epoch.

    An epoch is detected as :math:`E` training triples (:math:`E` times the number of
    processes under :mod:`torch.distributed`): the first :meth:`training_graph` call and
    every call after :math:`E` more triples draw a new graph (MMRec draws it in
    ``pre_epoch_processing``); :meth:`prune` draws one on demand.

    Args:
        edge_index (torch.Tensor): The full user–item training graph ``[2, E]``.
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        dropout (float): :math:`\rho \in [0, 1)`, the share of edges dropped.
    """

    def __init__(self, edge_index: Tensor, num_users: int, num_items: int, dropout: float):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"EpochEdgePruning: dropout must be in [0, 1), got {dropout}")
        self.num_users = num_users
        self.num_items = num_items
        self.dropout = dropout
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        self.register_buffer("pruned_edge_index", None, persistent=False)
        self._triples_since_pruning: int | None = None

    def prune(self) -> Tensor:
        r"""Draws a new pruned graph and returns its edges ``[2, (1 - ρ) E]``."""
        num_kept = int(self.edge_index.size(1) * (1.0 - self.dropout))
        self.pruned_edge_index = degree_sensitive_pruning(
            self.edge_index, self.num_users, self.num_items, num_kept
        )
        self.conv.reset_parameters()  # forget the previous graph's operator
        self._triples_since_pruning = 0
        return self.pruned_edge_index

    def training_graph(self, batch_size: int) -> tuple[BipartiteLGConv, Tensor]:
        r"""The layer and edges of the current epoch's pruned graph, for a training step
        of :obj:`batch_size` triples (a new graph once an epoch's triples have passed)."""
        if (
            self._triples_since_pruning is None
            or self._triples_since_pruning >= self.edge_index.size(1)
            or self.pruned_edge_index is None
        ):
            self.prune()
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self._triples_since_pruning += batch_size * world
        return self.conv, self.pruned_edge_index

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"
