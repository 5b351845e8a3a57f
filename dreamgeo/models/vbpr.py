r"""VBPR: visual Bayesian personalized ranking, on all modalities concatenated."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import ITEM, USER
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import item_features
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bpr_loss import BPRLoss

__all__ = ["VBPR"]


@register_model(
    "vbpr",
    position=30,
    label="VBPR",
    tables=("table2", "table4"),
    bma_plugin=True,
)
class VBPR(Recommender):
    r"""VBPR from `"VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback"
    <https://arxiv.org/abs/1510.01784>`_ (He and McAuley, AAAI 2016), as in MMRec and
    the DREAM paper: the item content :math:`\mathbf{f}_i` is the concatenation of the raw
    features of every modality (image and text), projected by a learned
    :math:`\mathbf{E} \in \mathbb{R}^{d \times \sum_m d_m}`:

    .. math::
        \hat{y}_{ui} = \boldsymbol{\gamma}_u^\top \boldsymbol{\gamma}_i +
        \boldsymbol{\theta}_u^\top (\mathbf{E}\mathbf{f}_i + \mathbf{b})
        = [\boldsymbol{\gamma}_u; \boldsymbol{\theta}_u]^\top
        [\boldsymbol{\gamma}_i; \mathbf{E}\mathbf{f}_i + \mathbf{b}]

    trained with BPR and :math:`\lambda \frac{1}{2B}(\|\mathbf{e}_u\|^2 +
    \|\mathbf{e}_{i^+}\|^2 + \|\mathbf{e}_{i^-}\|^2)` on the batch's final ``[2d]``
    vectors. :meth:`forward` returns the concatenations.

    **BMA plug-in** (DREAM, Table 4): with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds
    ``bma(γ_u[users], γ_i[pos], θ_u[users], (E f + b)[pos])``: behaviour = the ID
    factors :math:`\boldsymbol{\gamma}`, modal = the user's visual factors
    :math:`\boldsymbol{\theta}_u` and the projected item content (see
    :meth:`dual_representations`), and the parts include ``"bma"``.

    Deviations: no item bias :math:`\beta_i` and no visual bias
    :math:`\boldsymbol{\beta}'^\top\mathbf{f}_i` (as MMRec, so that scores stay dot
    products of :meth:`forward`); the projection has a bias :math:`\mathbf{b}` (MMRec's
    ``nn.Linear``); the regularizer is the squared L2 norm (MMRec's ``EmbLoss`` takes the
    unsquared norm); the projection runs on the batch's items only in :meth:`loss` (same
    value as projecting all items). Raw features are used unnormalized and frozen, as in
    MMRec, so a modality with large feature norms (e.g. CNN image features) dominates
    the projection. MMRec grid-searches :math:`\lambda \in \{2, 1, 0.1, 0.01, 10^{-3},
    10^{-4}, 10^{-5}\}` without a default; ours is its middle value, :math:`0.01`.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        features (torch.Tensor or Mapping[str, torch.Tensor]): Item content ``[N, D]``,
            or per-modality features ``[N, d_m]`` to concatenate in the given order.
        embedding_dim (int, optional): :math:`d` of both :math:`\boldsymbol{\gamma}` and
            :math:`\boldsymbol{\theta}` (final vectors have :math:`2d`).
            (default: :obj:`64`)
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`1e-2`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, 2d]``, items ``[N, 2d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/VBPR.yaml).
    HPARAMS = HParams(
        [
            HParam(
                "reg_weight",
                float,
                1e-2,
                "lambda of the squared-L2 regularizer",
                low=0.0,
                grid=(2.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
            ),
        ]
    )

    def __init__(
        self,
        num_users: int,
        num_items: int,
        features: Tensor | Mapping[str, Tensor],
        embedding_dim: int = 64,
        reg_weight: float = 1e-2,
    ):
        super().__init__(num_users, num_items, features=features)
        if isinstance(features, Mapping):
            features = torch.cat([x.float() for x in features.values()], dim=-1)
        if features.dim() != 2 or features.size(0) != num_items:
            raise ValueError(
                f"VBPR: features must have shape [num_items={num_items}, D], "
                f"got {tuple(features.shape)}"
            )
        if embedding_dim <= 0:
            raise ValueError(f"VBPR: embedding_dim must be > 0, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        self.register_buffer("features", features.float(), persistent=False)
        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.user_visual_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.projection = torch.nn.Linear(features.size(1), embedding_dim)
        self.bpr = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> VBPR:
        r"""Builds the model on ``data``, concatenating every modality's features."""
        return cls(
            data[USER].num_nodes, data[ITEM].num_nodes, item_features(data, "VBPR"), **kwargs
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.user_visual_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        torch.nn.init.xavier_normal_(self.projection.weight)
        torch.nn.init.zeros_(self.projection.bias)

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour :math:`(\boldsymbol{\gamma}_u, \boldsymbol{\gamma}_i)` and modal
        :math:`(\boldsymbol{\theta}_u, \mathbf{E}\mathbf{f}_i + \mathbf{b})` parts."""
        return DualRepresentation(
            self.user_embedding.weight,
            self.item_embedding.weight,
            self.user_visual_embedding.weight,
            self.projection(self.features),
        )

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        rep = self.dual_representations()
        user = torch.cat([rep.user_behavior, rep.user_modal], dim=-1)
        item = torch.cat([rep.item_behavior, rep.item_modal], dim=-1)
        return user, item

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        user_id = self.user_embedding(users)
        user_visual = self.user_visual_embedding(users)
        pos_id, neg_id = self.item_embedding(pos_items), self.item_embedding(neg_items)
        pos_content = self.projection(self.features[pos_items])
        neg_content = self.projection(self.features[neg_items])
        user = torch.cat([user_id, user_visual], dim=-1)
        pos = torch.cat([pos_id, pos_content], dim=-1)
        neg = torch.cat([neg_id, neg_content], dim=-1)
        bpr = self.bpr.ranking((user * pos).sum(-1), (user * neg).sum(-1))
        reg = self.bpr.regularization(user, pos, neg)
        total = bpr + self.bpr.reg_weight * reg
        parts = {"bpr": bpr.detach(), "reg": reg.detach()}
        return total, parts, DualRepresentation(user_id, pos_id, user_visual, pos_content)
