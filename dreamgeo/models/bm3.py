r"""BM3: bootstrapped latent representations for multimodal recommendation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import (
    ItemFeatures,
    item_features,
    propagate_layers,
    user_mean_operator,
)
from dreamgeo.models.registry import register_model
from dreamgeo.nn.conv import BipartiteLGConv

__all__ = ["BM3"]


def _cosine_distance(online: Tensor, target: Tensor) -> Tensor:
    return 1.0 - F.cosine_similarity(online, target.detach(), dim=-1).mean()


@register_model(
    "bm3",
    position=60,
    label="BM3",
    tables=("table2", "table4"),
    bma_plugin=True,
)
class BM3(Recommender):
    r"""BM3 from `"Bootstrap Latent Representations for Multi-modal Recommendation"
    <https://arxiv.org/abs/2207.05969>`_ (Zhou et al., WWW 2023), as in MMRec.

    Online representations come from LightGCN (:math:`L` layers, mean over layers
    :math:`0..L`) plus the item ID embedding, and from one linear projection per
    modality:

    .. math::
        (\mathbf{h}_u, \mathbf{h}_i) = \mathrm{LightGCN}(\mathbf{E}_u, \mathbf{E}_i)
        + (0, \mathbf{e}_i), \qquad \mathbf{h}_i^m = \mathbf{W}_m \mathbf{x}_i^m +
        \mathbf{b}_m

    A shared predictor :math:`p(\mathbf{h}) = \mathbf{W}_p\mathbf{h} + \mathbf{b}_p`
    gives the online views and dropout with rate :math:`\rho` on the stop-gradient
    :math:`\mathrm{sg}` representations gives the targets
    :math:`\tilde{\mathbf{h}} = \mathrm{Dropout}_\rho(\mathrm{sg}(\mathbf{h}))`. For the
    batch's interacted pairs :math:`(u, i)`, with :math:`c(\mathbf{a}, \mathbf{b}) = 1 -
    \overline{\cos(\mathbf{a}, \mathbf{b})}` (mean over the batch):

    .. math::
        \mathcal{L} = c(p(\mathbf{h}_u), \tilde{\mathbf{h}}_i) +
        c(p(\mathbf{h}_i), \tilde{\mathbf{h}}_u)
        + \lambda_{cl} \sum_m \left[c(p(\mathbf{h}_i^m), \tilde{\mathbf{h}}_i) +
        c(p(\mathbf{h}_i^m), \tilde{\mathbf{h}}_i^m)\right]
        + \lambda \frac{\|\mathbf{H}_u\|_F + \|\mathbf{H}_i\|_F}{N}

    (graph reconstruction, inter-modality feature alignment, intra-modality feature
    masking, and MMRec's ``EmbLoss`` on all online user and item representations).
    Scores are :math:`p(\mathbf{h}_u)^\top p(\mathbf{h}_i)`, so :meth:`forward` returns
    the predictor's outputs.

    BM3 has no negative sampling: :meth:`loss` uses the batch's ``(users, pos_items)``
    pairs and ignores ``neg_items`` (the trainer still draws them).

    **BMA plug-in** (DREAM, Table 4): with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds
    ``bma(h_u[users], h_i[pos], m_u[users], m_i[pos])`` where behaviour = the online
    graph representations :math:`\mathbf{h}_u, \mathbf{h}_i` (before the predictor) and
    modal = the mean of the projected features over modalities,
    :math:`\mathbf{m}_i = \frac{1}{|\mathcal{M}|}\sum_m \mathbf{h}_i^m`, and for users
    its mean over their training items, :math:`\mathbf{m}_u = \frac{1}{|\mathcal{N}_u|}
    \sum_{i \in \mathcal{N}_u} \mathbf{m}_i` (BM3 has no user modal representation);
    see :meth:`dual_representations`. The parts then include ``"bma"``.

    Deviations: the feature losses project only the batch's distinct positive items
    (MMRec projects every item; same values), and the dropout of their targets is drawn
    on those rows, so it uses the random stream differently from MMRec. Defaults are
    BM3's best Baby setting (1 layer, dropout 0.5, :math:`\lambda = 0.1`) and MMRec's
    :math:`\lambda_{cl} = 2`.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features per modality
            ``[N, d_m]``.
        embedding_dim (int, optional): :math:`d` (also MMRec's ``feat_embed_dim``).
            (default: :obj:`64`)
        num_layers (int, optional): LightGCN layers :math:`L`. (default: :obj:`1`)
        dropout (float, optional): Target dropout :math:`\rho`. (default: :obj:`0.5`)
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`0.1`)
        cl_weight (float, optional): :math:`\lambda_{cl}`. (default: :obj:`2.0`)
        train_features (bool, optional): Fine-tune the raw features, as MMRec does;
            their dense gradient and Adam state cost as much as the rest of a CPU step
            several times over with 4096-d image features (``False``: frozen, fast).
            (default: :obj:`True`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/BM3.yaml).
    HPARAMS = HParams(
        [
            HParam(
                "num_layers",
                int,
                1,
                "LightGCN layers",
                low=1,
                grid=(1, 2),
                aliases=("n_layers",),
            ),
            HParam(
                "dropout",
                float,
                0.5,
                "embedding dropout of the online/target views",
                low=0.0,
                high=1.0,
                high_open=True,
                grid=(0.3, 0.5),
            ),
            HParam(
                "reg_weight",
                float,
                0.1,
                "weight of the L2 term",
                low=0.0,
                grid=(0.1, 0.01),
            ),
            HParam("cl_weight", float, 2.0, "weight of the feature-masking loss", low=0.0),
            HParam(
                "train_features",
                bool,
                True,
                "fine-tune the raw features (MMRec does; False freezes them)",
            ),
        ]
    )

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor,
        features: Mapping[str, Tensor],
        embedding_dim: int = 64,
        num_layers: int = 1,
        dropout: float = 0.5,
        reg_weight: float = 0.1,
        cl_weight: float = 2.0,
        train_features: bool = True,
    ):
        super().__init__(num_users, num_items, edge_index, features)
        if embedding_dim <= 0 or num_layers < 0:
            raise ValueError(
                f"BM3: need embedding_dim > 0 and num_layers >= 0, got {embedding_dim} and "
                f"{num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"BM3: dropout must be in [0, 1), got {dropout}")
        if reg_weight < 0 or cl_weight < 0:
            raise ValueError(
                f"BM3: reg_weight and cl_weight must be >= 0, got {reg_weight} and {cl_weight}"
            )
        if not features:
            raise ValueError("BM3 needs the features of at least one modality")
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.reg_weight = reg_weight
        self.cl_weight = cl_weight

        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        self.user_mean = user_mean_operator(edge_index, num_users, num_items)
        self.features = ItemFeatures(features, trainable=train_features)
        self.projections = torch.nn.ModuleDict(
            {m: torch.nn.Linear(d, embedding_dim) for m, d in self.features.dims().items()}
        )
        self.predictor = torch.nn.Linear(embedding_dim, embedding_dim)
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> BM3:
        r"""Builds the model from the training graph and item features of ``data``."""
        return cls(
            data[USER].num_nodes,
            data[ITEM].num_nodes,
            data[INTERACTS].edge_index,
            item_features(data, "BM3"),
            **kwargs,
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        for linear in [self.predictor, *self.projections.values()]:
            linear.reset_parameters()
            torch.nn.init.xavier_normal_(linear.weight)
        self.conv.reset_parameters()

    def online(self) -> tuple[Tensor, Tensor]:
        r"""Online graph representations :math:`\mathbf{H}_u` ``[M, d]`` and
        :math:`\mathbf{H}_i` ``[N, d]`` (before the predictor)."""
        user, item = propagate_layers(
            self.conv,
            self.user_embedding.weight,
            self.item_embedding.weight,
            self.edge_index,
            self.num_layers,
        )
        return user, item + self.item_embedding.weight

    def project(self, modality: str, items: Tensor | None = None) -> Tensor:
        r"""Projected features :math:`\mathbf{h}^m` of ``items`` (all items when
        :obj:`None`)."""
        x = self.features[modality]
        return self.projections[modality](x if items is None else x[items])

    def item_modal(self) -> Tensor:
        r"""Modal item representations :math:`\mathbf{M}_i`, the mean over modalities of
        the projected features, ``[N, d]``."""
        return torch.stack([self.project(m) for m in self.features.modalities]).mean(0)

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour :math:`(\mathbf{H}_u, \mathbf{H}_i)` and modal
        :math:`(\mathbf{R}_{mean}\mathbf{M}_i, \mathbf{M}_i)` representations."""
        user, item = self.online()
        item_modal = self.item_modal()
        return DualRepresentation(user, item, self.user_mean(item_modal), item_modal)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        user, item = self.online()
        return self.predictor(user), self.predictor(item)

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        user_online, item_online = self.online()
        with torch.no_grad():
            user_target = F.dropout(user_online, self.dropout)
            item_target = F.dropout(item_online, self.dropout)
        user_pred = self.predictor(user_online[users])
        item_pred = self.predictor(item_online[pos_items])
        item_target = item_target[pos_items]
        graph = _cosine_distance(user_pred, item_target) + _cosine_distance(
            item_pred, user_target[users]
        )

        distinct, position = torch.unique(pos_items, return_inverse=True)
        align = mask = user_online.new_zeros(())
        for m in self.features.modalities:
            feature_online = self.project(m, distinct)
            with torch.no_grad():
                feature_target = F.dropout(feature_online, self.dropout)[position]
            feature_pred = self.predictor(feature_online)[position]
            align = align + _cosine_distance(feature_pred, item_target)
            mask = mask + _cosine_distance(feature_pred, feature_target)

        reg = (user_online.norm() + item_online.norm()) / self.num_items
        total = graph + self.reg_weight * reg + self.cl_weight * (align + mask)
        parts = {
            "graph": graph.detach(),
            "align": align.detach(),
            "mask": mask.detach(),
            "reg": reg.detach(),
        }

        def batch_dual() -> DualRepresentation:  # only the plug-in needs it
            item_modal = self.item_modal()
            user_modal = self.user_mean(item_modal)[users]
            return DualRepresentation(
                user_online[users], item_online[pos_items], user_modal, item_modal[pos_items]
            )

        return total, parts, batch_dual
