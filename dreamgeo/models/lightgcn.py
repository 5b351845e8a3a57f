r"""LightGCN (the behaviour line of DREAM on its own)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import Objective, Recommender
from dreamgeo.models.modal_inputs import propagate_layers
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv

__all__ = ["LightGCN"]


@register_model(
    "lightgcn",
    position=20,
    label="LightGCN",
    tables=("table2",),
)
class LightGCN(Recommender):
    r"""LightGCN from `"LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation" <https://arxiv.org/abs/2002.02126>`_ (He et al., 2020) on the
    bipartite user–item graph, trained with BPR:

    .. math::
        \mathbf{E}^{(l+1)} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}\mathbf{E}^{(l)},
        \qquad \bar{\mathbf{E}} = \frac{1}{L+1}\sum_{l=0}^{L} \mathbf{E}^{(l)}

    This is exactly DREAM's behaviour line (Eq. 1–3); :class:`~dreamgeo.DREAM` reuses
    :meth:`propagate`.

    Args:
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        num_layers (int, optional): :math:`L`. (default: :obj:`2`)
        reg_weight (float, optional): :math:`\lambda` of the L2 regularizer on the
            batch's layer-0 embeddings. (default: :obj:`1e-4`)
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/LightGCNTorch.yaml).
    HPARAMS = HParams(
        [
            HParam(
                "num_layers",
                int,
                2,
                "propagation layers L",
                low=1,
                grid=(1, 2, 3, 4),
                aliases=("n_layers",),
            ),
            HParam(
                "reg_weight",
                float,
                1e-4,
                "lambda of the squared-L2 regularizer on the batch's layer-0 embeddings",
                low=0.0,
                grid=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
            ),
        ]
    )

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor,
        embedding_dim: int = 64,
        num_layers: int = 2,
        reg_weight: float = 1e-4,
    ):
        super().__init__(num_users, num_items, edge_index)
        if num_layers < 0:
            raise ValueError(f"LightGCN: num_layers must be >= 0, got {num_layers}")
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.conv = BipartiteLGConv(cached=True)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.bpr = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> LightGCN:
        r"""Builds the model from the training graph of ``data``."""
        return cls(
            data[USER].num_nodes,
            data[ITEM].num_nodes,
            data[INTERACTS].edge_index,
            **kwargs,
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        self.conv.reset_parameters()

    def propagate(self, user: Tensor, item: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean of layers :math:`0..L` of LightGCN started from ``user``, ``item``."""
        return propagate_layers(self.conv, user, item, self.edge_index, self.num_layers)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        return self.propagate(self.user_embedding.weight, self.item_embedding.weight)

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        user_emb, item_emb = self.forward()
        u = user_emb[users]
        pos_score = (u * item_emb[pos_items]).sum(-1)
        neg_score = (u * item_emb[neg_items]).sum(-1)
        bpr = self.bpr.ranking(pos_score, neg_score)
        reg = self.bpr.regularization(
            self.user_embedding(users),
            self.item_embedding(pos_items),
            self.item_embedding(neg_items),
        )
        total = bpr + self.bpr.reg_weight * reg
        return total, {"bpr": bpr.detach(), "reg": reg.detach()}, None
