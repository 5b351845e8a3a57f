r"""LGMRec: local and global graph learning for multimodal recommendation."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

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
from dreamgeo.nn.bma_loss import info_nce
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv
from dreamgeo.nn.sparse import SparseOperator

__all__ = ["LGMRec"]


@register_model(
    "lgmrec",
    position=90,
    label="LGMRec",
    tables=("table2",),
    bma_plugin=True,
)
class LGMRec(Recommender):
    r"""LGMRec from `"LGMRec: Local and Global Graph Learning for Multimodal
    Recommendation" <https://arxiv.org/abs/2312.16400>`_ (Guo et al., AAAI 2024), as in
    MMRec.

    **Local graph embeddings.** Collaborative: LightGCN over :math:`\tilde{\mathbf{A}} =
    \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` (:math:`L` layers, mean over layers
    :math:`0..L`) gives :math:`\mathbf{E}^{c}`. Modal, per modality :math:`m`: items
    :math:`\mathbf{X}_m\mathbf{W}_m`, users the mean over their training items, then
    :math:`L_m` plain propagations :math:`\mathbf{E}^{m} = \tilde{\mathbf{A}}^{L_m}
    [\mathbf{R}_{mean}\mathbf{X}_m\mathbf{W}_m; \mathbf{X}_m\mathbf{W}_m]`.

    **Global hypergraph embeddings**, :math:`H` hyperedges per modality: item
    dependencies :math:`\mathbf{H}_i^m = \mathbf{X}_m\mathbf{V}_m` and user dependencies
    :math:`\mathbf{H}_u^m = \mathbf{R}\mathbf{H}_i^m`, each row made soft-one-hot by
    Gumbel-softmax (temperature :math:`\tau`) and dropped out with rate
    :math:`1 - \kappa`; then :math:`L_h` hypergraph layers on the collaborative item
    embeddings:

    .. math::
        \boldsymbol{\Lambda} = \mathbf{H}_i^{m\top}\mathbf{E}_i, \qquad
        \mathbf{E}_i \leftarrow \mathbf{H}_i^m\boldsymbol{\Lambda}, \qquad
        \mathbf{G}_u^m = \mathbf{H}_u^m\boldsymbol{\Lambda}, \quad
        \mathbf{G}_i^m = \mathbf{E}_i

    **Fusion and objective.**

    .. math::
        \mathbf{E}^* = \mathbf{E}^{c} + \sum_m \mathrm{norm}(\mathbf{E}^{m}) +
        \alpha\,\mathrm{norm}\Big(\sum_m \mathbf{G}^m\Big)

        \mathcal{L} = \mathcal{L}_{BPR}(\mathbf{E}^*) + \lambda_{cl}
        \sum_{m < m'}\big[\ell(\mathbf{G}_u^m, \mathbf{G}_u^{m'}) +
        \ell(\mathbf{G}_i^m, \mathbf{G}_i^{m'})\big] + \lambda
        \frac{\|\mathbf{e}_u^*\| + \|\mathbf{e}_{i^+}^*\| + \|\mathbf{e}_{i^-}^*\|}{B}

    with :math:`\mathrm{norm}` the row L2 normalization and :math:`\ell` the hypergraph
    contrastive loss, summed over the batch's users (resp. positive items) :math:`a`,
    with every user (item) :math:`b` as a candidate:
    :math:`\ell = -\sum_a \log \frac{\exp(\cos(\mathbf{g}_a^m, \mathbf{g}_a^{m'})/\tau)}
    {\sum_b \exp(\cos(\mathbf{g}_a^m, \mathbf{g}_b^{m'})/\tau)}`; the norms in the
    regularizer are Frobenius norms of the batch matrices (MMRec).

    **BMA plug-in** (DREAM, Table 4): with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds
    ``bma(E^c_u[users], E^c_i[pos], M_u[users], M_i[pos])``: behaviour = the
    collaborative embeddings :math:`\mathbf{E}^c`, modal = everything built from the
    features, :math:`\mathbf{M} = \sum_m \mathrm{norm}(\mathbf{E}^m) + \alpha\,
    \mathrm{norm}(\sum_m \mathbf{G}^m)`, so :math:`\mathbf{E}^* = \mathbf{E}^c +
    \mathbf{M}` (see :meth:`dual_representations`); the parts then include ``"bma"``.

    Deviations: when not training (:meth:`forward` for ranking in eval mode) the
    hyperedge assignments are the noise-free :math:`\mathrm{softmax}(\cdot/\tau)`, so
    rankings are deterministic (MMRec keeps sampling Gumbel noise at evaluation);
    the contrastive loss uses a log-sum-exp (same value); it is summed over all pairs of
    modalities (MMRec: image–text only, the same for two modalities) and is zero for a
    single modality. Defaults: MMRec's Baby configuration.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features per modality
            ``[N, d_m]`` (frozen, as in LGMRec).
        embedding_dim (int, optional): :math:`d` (also ``feat_embed_dim``).
            (default: :obj:`64`)
        num_layers (int, optional): Collaborative layers :math:`L`. (default: :obj:`2`)
        num_modal_layers (int, optional): Modal propagations :math:`L_m`.
            (default: :obj:`2`)
        num_hyper_layers (int, optional): Hypergraph layers :math:`L_h`.
            (default: :obj:`1`)
        num_hyperedges (int, optional): :math:`H`. (default: :obj:`4`)
        keep_rate (float, optional): :math:`\kappa`. (default: :obj:`0.5`)
        alpha (float, optional): Weight :math:`\alpha` of the global embeddings.
            (default: :obj:`0.3`)
        cl_weight (float, optional): :math:`\lambda_{cl}`. (default: :obj:`1e-4`)
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`1e-6`)
        tau (float, optional): :math:`\tau` of Gumbel-softmax and of the contrastive
            loss. (default: :obj:`0.2`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/LGMRec.yaml).
    HPARAMS = HParams(
        [
            HParam(
                "num_layers",
                int,
                2,
                "user-item graph layers",
                low=1,
                grid=(2,),
                aliases=("n_ui_layers",),
            ),
            HParam(
                "num_modal_layers",
                int,
                2,
                "item-item graph layers",
                low=1,
                grid=(2,),
                aliases=("n_mm_layers",),
            ),
            HParam(
                "num_hyper_layers",
                int,
                1,
                "hypergraph layers",
                low=1,
                grid=(1, 2),
                aliases=("n_hyper_layer",),
            ),
            HParam(
                "num_hyperedges",
                int,
                4,
                "hyperedges per modality",
                low=1,
                grid=(4, 64),
                aliases=("hyper_num",),
            ),
            HParam(
                "keep_rate",
                float,
                0.5,
                "share of hypergraph entries kept by dropout",
                low=0.0,
                high=1.0,
                low_open=True,
                grid=(0.2, 0.4, 0.5),
            ),
            HParam(
                "alpha",
                float,
                0.3,
                "weight of the hypergraph embeddings",
                low=0.0,
                grid=(0.2, 0.3, 0.6),
            ),
            HParam("cl_weight", float, 1e-4, "weight of the hypergraph contrastive loss", low=0.0),
            HParam("reg_weight", float, 1e-6, "weight of the L2 term", low=0.0),
            HParam("tau", float, 0.2, "InfoNCE temperature", low=0.0, low_open=True),
        ]
    )

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor,
        features: Mapping[str, Tensor],
        embedding_dim: int = 64,
        num_layers: int = 2,
        num_modal_layers: int = 2,
        num_hyper_layers: int = 1,
        num_hyperedges: int = 4,
        keep_rate: float = 0.5,
        alpha: float = 0.3,
        cl_weight: float = 1e-4,
        reg_weight: float = 1e-6,
        tau: float = 0.2,
    ):
        super().__init__(num_users, num_items, edge_index, features)
        if embedding_dim <= 0 or num_hyperedges <= 0:
            raise ValueError(
                f"LGMRec: embedding_dim and num_hyperedges must be > 0, got {embedding_dim} "
                f"and {num_hyperedges}"
            )
        if min(num_layers, num_modal_layers) < 0 or num_hyper_layers < 1:
            raise ValueError(
                f"LGMRec: need layers >= 0 and num_hyper_layers >= 1, got {num_layers}, "
                f"{num_modal_layers} and {num_hyper_layers}"
            )
        if not 0.0 < keep_rate <= 1.0 or tau <= 0:
            raise ValueError(
                f"LGMRec: need keep_rate in (0, 1] and tau > 0, got {keep_rate}, {tau}"
            )
        if not features:
            raise ValueError("LGMRec needs the features of at least one modality")
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_modal_layers = num_modal_layers
        self.num_hyper_layers = num_hyper_layers
        self.alpha = alpha
        self.cl_weight = cl_weight
        self.tau = tau

        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        self.user_mean = user_mean_operator(edge_index, num_users, num_items)
        user, item = edge_index.long()
        self.interactions = SparseOperator(
            user, item, torch.ones(user.numel()), (num_users, num_items)
        )
        self.features = ItemFeatures(features, trainable=False)
        dims = self.features.dims()
        self.transforms = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.empty(d, embedding_dim)) for m, d in dims.items()}
        )
        self.hyperedges = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.empty(d, num_hyperedges)) for m, d in dims.items()}
        )
        self.hyper_dropout = torch.nn.Dropout(1.0 - keep_rate)
        self.bpr = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> LGMRec:
        r"""Builds the model from the training graph and item features of ``data``."""
        return cls(
            data[USER].num_nodes,
            data[ITEM].num_nodes,
            data[INTERACTS].edge_index,
            item_features(data, "LGMRec"),
            **kwargs,
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        for param in [*self.transforms.values(), *self.hyperedges.values()]:
            torch.nn.init.xavier_uniform_(param)
        self.conv.reset_parameters()

    def collaborative(self) -> tuple[Tensor, Tensor]:
        r"""LightGCN embeddings :math:`\mathbf{E}^c`: users ``[M, d]``, items ``[N, d]``."""
        user, item = self.user_embedding.weight, self.item_embedding.weight
        return propagate_layers(self.conv, user, item, self.edge_index, self.num_layers)

    def local_modal(self, modality: str) -> tuple[Tensor, Tensor]:
        r"""The modal graph embeddings :math:`\mathbf{E}^m` of users and items."""
        item = self.features[modality] @ self.transforms[modality]
        user = self.user_mean(item)
        for _ in range(self.num_modal_layers):
            user, item = self.conv(user, item, self.edge_index)
        return user, item

    def _assign(self, logits: Tensor) -> Tensor:
        if self.training:
            assignment = F.gumbel_softmax(logits, self.tau, hard=False, dim=1)
        else:
            assignment = torch.softmax(logits / self.tau, dim=1)
        return self.hyper_dropout(assignment)

    def global_hyper(self, modality: str, item_collaborative: Tensor) -> tuple[Tensor, Tensor]:
        r"""The hypergraph embeddings :math:`(\mathbf{G}_u^m, \mathbf{G}_i^m)`."""
        item_logits = self.features[modality] @ self.hyperedges[modality]
        item_hyper = self._assign(item_logits)
        user_hyper = self._assign(self.interactions(item_logits))
        item = item_collaborative
        for _ in range(self.num_hyper_layers):
            latent = item_hyper.t() @ item
            item = item_hyper @ latent
            user = user_hyper @ latent
        return user, item

    def _representations(self):
        user_c, item_c = self.collaborative()
        user_modal = item_modal = 0.0
        hyper = {}
        for m in self.features.modalities:
            user_m, item_m = self.local_modal(m)
            user_modal = user_modal + F.normalize(user_m)
            item_modal = item_modal + F.normalize(item_m)
            hyper[m] = self.global_hyper(m, item_c)
        user_global = sum(hyper[m][0] for m in self.features.modalities)
        item_global = sum(hyper[m][1] for m in self.features.modalities)
        user_modal = user_modal + self.alpha * F.normalize(user_global)
        item_modal = item_modal + self.alpha * F.normalize(item_global)
        return DualRepresentation(user_c, item_c, user_modal, item_modal), hyper

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour :math:`\mathbf{E}^c` and modal :math:`\mathbf{M}` of users and
        items (drawn with Gumbel noise and dropout in training mode)."""
        return self._representations()[0]

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        rep = self.dual_representations()
        return rep.user_behavior + rep.user_modal, rep.item_behavior + rep.item_modal

    def _contrast(self, anchor: Tensor, candidates: Tensor, index: Tensor) -> Tensor:
        # MMRec sums over the batch; against every user / item as candidates
        return index.numel() * info_nce(anchor[index], candidates, self.tau, target=index)

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        rep, hyper = self._representations()
        user = rep.user_behavior[users] + rep.user_modal[users]
        pos = rep.item_behavior[pos_items] + rep.item_modal[pos_items]
        neg = rep.item_behavior[neg_items] + rep.item_modal[neg_items]
        bpr = self.bpr.ranking((user * pos).sum(-1), (user * neg).sum(-1))
        reg = (user.norm() + pos.norm() + neg.norm()) / users.numel()
        cl = user.new_zeros(())
        for a, b in combinations(self.features.modalities, 2):
            cl = cl + self._contrast(hyper[a][0], hyper[b][0], users)
            cl = cl + self._contrast(hyper[a][1], hyper[b][1], pos_items)
        total = bpr + self.cl_weight * cl + self.bpr.reg_weight * reg
        parts = {"bpr": bpr.detach(), "cl": cl.detach(), "reg": reg.detach()}
        return (
            total,
            parts,
            DualRepresentation(
                rep.user_behavior[users],
                rep.item_behavior[pos_items],
                rep.user_modal[users],
                rep.item_modal[pos_items],
            ),
        )
