r"""BPR matrix factorization (the "BPR" column of the paper's Table 2)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import ITEM, USER
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import Objective, Recommender
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bpr_loss import BPRLoss

__all__ = ["BPRMF"]


@register_model(
    "bpr",
    position=10,
    label="BPR",
    tables=("table2",),
)
class BPRMF(Recommender):
    r"""Matrix factorization trained with the pairwise loss of `"BPR: Bayesian
    Personalized Ranking from Implicit Feedback" <https://arxiv.org/abs/1205.2618>`_
    (Rendle et al., UAI 2009):

    .. math::
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i, \qquad
        \mathcal{L} = \frac{1}{B}\sum_{(u, i^+, i^-)} -\log\sigma(\hat{y}_{ui^+} -
        \hat{y}_{ui^-}) + \lambda \frac{1}{2B}\left(\|\mathbf{e}_u\|^2 +
        \|\mathbf{e}_{i^+}\|^2 + \|\mathbf{e}_{i^-}\|^2\right)

    Deviations: Xavier-uniform initialization (the paper's protocol for every model) and
    the squared-L2 regularizer above (MMRec's ``EmbLoss`` takes the unsquared norm of
    the batch). MMRec grid-searches :math:`\lambda \in \{2, 1, 0.1, 0.01, 10^{-3},
    10^{-4}, 10^{-5}\}` without a default; ours is its middle value, :math:`0.01`.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`1e-2`)
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/BPR.yaml).
    HPARAMS = HParams(
        [
            HParam(
                "reg_weight",
                float,
                1e-2,
                "lambda of the squared-L2 regularizer on the batch's embeddings",
                low=0.0,
                grid=(2.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
            ),
        ]
    )

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int = 64, reg_weight: float = 1e-2
    ):
        super().__init__(num_users, num_items)
        if embedding_dim <= 0:
            raise ValueError(f"BPRMF: embedding_dim must be > 0, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.bpr = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> BPRMF:
        r"""Builds the model for the users and items of ``data``."""
        return cls(data[USER].num_nodes, data[ITEM].num_nodes, **kwargs)

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        return self.user_embedding.weight, self.item_embedding.weight

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        user = self.user_embedding(users)
        pos = self.item_embedding(pos_items)
        neg = self.item_embedding(neg_items)
        bpr = self.bpr.ranking((user * pos).sum(-1), (user * neg).sum(-1))
        reg = self.bpr.regularization(user, pos, neg)
        total = bpr + self.bpr.reg_weight * reg
        return total, {"bpr": bpr.detach(), "reg": reg.detach()}, None
