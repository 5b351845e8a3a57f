r"""DREAM's behaviour line: ID embeddings propagated by LightGCN over the user–item
graph."""

from __future__ import annotations

import torch
from torch import Tensor

from dreamgeo.hparams import HParam, HParams
from dreamgeo.nn.conv import BipartiteLGConv, propagate_layers
from dreamgeo.nn.edge_pruning import EpochEdgePruning

__all__ = ["BehaviorLine"]

Graph = tuple[BipartiteLGConv, Tensor]


class BehaviorLine(torch.nn.Module):
    r"""The behaviour line of `"DREAM: A Dual Representation Learning Model for
    Multimodal Recommendation" <https://arxiv.org/abs/2404.11119>`_ (Zhang et al.,
    2024), Eq. 1–3: layer-0 ID embeddings :math:`\mathbf{E}_B^{(0)}` (Xavier
    initialized), propagated by LightGCN over :math:`\mathbf{D}^{-1/2}\mathbf{A}
    \mathbf{D}^{-1/2}` and averaged over layers,

    .. math::
        \bar{\mathbf{E}}_B = \frac{1}{L+1}\sum_{l=0}^{L}
        \left(\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}\right)^l \mathbf{E}_B^{(0)}.

    The training graph's operator is cached; :meth:`forward` also propagates over a
    graph given at call time (new interactions, no retraining) without touching that
    cache. With ``edge_dropout`` :math:`\rho > 0` training steps use FREEDOM's
    degree-sensitive pruning of the graph, drawn anew every epoch
    (:class:`~dreamgeo.nn.EpochEdgePruning`).

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        **options: The declared :attr:`HPARAMS` (``num_layers``, ``edge_dropout``).

    Shapes:
        - **output:** users ``[M, d]``, items ``[N, d]``
    """

    HPARAMS = HParams(
        [
            HParam("num_layers", int, 2, "behaviour-line layers L", low=1, aliases=("n_layers",)),
            HParam(
                "edge_dropout",
                float,
                0.0,
                "share of user-item edges dropped from the behaviour line's training graph, "
                "anew every epoch (FREEDOM's degree-sensitive pruning; beyond the paper)",
                low=0.0,
                high=1.0,
                high_open=True,
            ),
        ]
    )

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor,
        embedding_dim: int = 64,
        **options,
    ):
        super().__init__()
        config = self.HPARAMS.resolve(options, "BehaviorLine")
        self.num_layers: int = config["num_layers"]
        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        # graphs given at call time are propagated without caching their operator
        self.inference_conv = BipartiteLGConv(cached=False)
        dropout = config["edge_dropout"]
        self.pruning = (
            EpochEdgePruning(self.edge_index, num_users, num_items, dropout)
            if dropout > 0
            else None
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)

    def training_graph(self, batch_size: int) -> Graph | None:
        r"""The pruned graph of a training step of :obj:`batch_size` triples, or
        :obj:`None` (the full training graph) without ``edge_dropout``."""
        return self.pruning.training_graph(batch_size) if self.pruning is not None else None

    def graph(self, edge_index: Tensor) -> Graph:
        r"""The layer and edges to propagate over a graph given at call time."""
        return self.inference_conv, edge_index

    def forward(self, graph: Graph | None = None) -> tuple[Tensor, Tensor]:
        r""":math:`\bar{\mathbf{E}}_B^u, \bar{\mathbf{E}}_B^i` over ``graph`` (a layer
        and its edges, from :meth:`graph` or :meth:`training_graph`; default: the
        cached training graph)."""
        conv, edge_index = graph if graph is not None else (self.conv, self.edge_index)
        return propagate_layers(
            conv,
            self.user_embedding.weight,
            self.item_embedding.weight,
            edge_index,
            self.num_layers,
        )

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"
