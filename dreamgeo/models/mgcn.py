r"""MGCN: multi-view graph convolutional network for multimedia recommendation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import (
    ITEM_BIAS,
    ITEM_KNN_K,
    NEGATIVE_CANDIDATES,
    UI_LAYERS,
    ItemFeatures,
    item_features,
    item_knn_graph,
    propagate_layers,
)
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bma_loss import info_nce
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv
from dreamgeo.nn.dynamic_negatives import DynamicNegativeSampling
from dreamgeo.nn.item_bias import ItemBias
from dreamgeo.nn.sparse import SparseOperator

__all__ = ["MGCN"]


@register_model(
    "mgcn",
    position=80,
    label="MGCN",
    tables=("table2", "table4"),
    bma_plugin=True,
)
class MGCN(Recommender):
    r"""MGCN from `"Multi-View Graph Convolutional Network for Multimedia
    Recommendation" <https://arxiv.org/abs/2308.03588>`_ (Yu et al., ACM MM 2023), as
    in MMRec.

    **User–item view** (behaviour): LightGCN over :math:`\mathbf{D}^{-1/2}\mathbf{A}
    \mathbf{D}^{-1/2}` (:math:`L` layers, mean over layers :math:`0..L`) gives
    :math:`\bar{\mathbf{E}}_{id}` for users and items.

    **Behaviour-guided purifier and item–item view**, per modality :math:`m` with the
    cosine-weighted top-:math:`k` graph :math:`\tilde{\mathbf{S}}_m` (self included,
    :math:`\mathbf{D}^{-1/2}\mathbf{S}_m\mathbf{D}^{-1/2}`) and the normalized
    interaction block :math:`\tilde{\mathbf{R}}` of the same adjacency:

    .. math::
        \dot{\mathbf{E}}_{i,m} = \mathbf{E}_{i,id} \odot \sigma\big(\mathbf{W}_2
        (\mathbf{W}_1 \mathbf{X}_m + \mathbf{b}_1) + \mathbf{b}_2\big), \qquad
        \bar{\mathbf{E}}_{i,m} = \tilde{\mathbf{S}}_m^{L_m}\dot{\mathbf{E}}_{i,m},
        \qquad \bar{\mathbf{E}}_{u,m} = \tilde{\mathbf{R}}\,\bar{\mathbf{E}}_{i,m}

    **Behaviour-aware fuser** (for users and items alike, :math:`|\mathcal{M}|`
    modalities):

    .. math::
        \alpha_m &= \operatorname{softmax}_m\big(\mathbf{q}^\top
        \tanh(\mathbf{W}_q\bar{\mathbf{e}}_m + \mathbf{b}_q)\big), \qquad
        \mathbf{e}_{c} = \sum_m \alpha_m \bar{\mathbf{e}}_m

        \mathbf{e}_{s} &= \frac{1}{|\mathcal{M}| + 1}\Big(\mathbf{e}_c + \sum_m
        \sigma(\mathbf{W}_{p,m}\bar{\mathbf{e}}_{id} + \mathbf{b}_{p,m}) \odot
        (\bar{\mathbf{e}}_m - \mathbf{e}_c)\Big), \qquad
        \mathbf{e}^* = \bar{\mathbf{e}}_{id} + \mathbf{e}_s

    **Objective**: BPR on :math:`\mathbf{e}^*`, the squared L2 norm of the batch's
    :math:`\mathbf{e}^*` (weight :math:`\lambda`), and the self-supervised InfoNCE
    (:func:`~dreamgeo.nn.info_nce`, :math:`\tau = 0.2`, in-batch negatives) between
    the side and ID views of the batch's positive items and users:

    .. math::
        \mathcal{L} = \mathcal{L}_{BPR} + \lambda\frac{1}{2B}\sum\|\mathbf{e}^*\|^2 +
        \lambda_{cl}\big[\mathrm{InfoNCE}(\mathbf{e}_{s}^{i^+}, \bar{\mathbf{e}}_{id}^{i^+})
        + \mathrm{InfoNCE}(\mathbf{e}_{s}^{u}, \bar{\mathbf{e}}_{id}^{u})\big]

    **BMA plug-in** (DREAM, Table 4): with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds
    ``bma(ē_id_u[users], ē_id_i[pos], e_s_u[users], e_s_i[pos])``: behaviour = the
    user–item view :math:`\bar{\mathbf{e}}_{id}`, modal = the fused side
    representation :math:`\mathbf{e}_s` (see :meth:`dual_representations`); the parts
    then include ``"bma"``. (BMA's inter-alignment is MGCN's contrastive term with
    both directions' weights set by BMA.)

    Deviations: kNN graphs come from FAISS, never from MMRec's dense :math:`N \times N`
    similarity; the regularizer divides by the actual batch size (MMRec: the configured
    one, which differs on an epoch's last batch); MMRec's learning-rate scheduler
    (×0.96 every 50 epochs) is not applied, the trainer keeps Adam's rate constant.
    The fuser's :math:`1/3` for image + text becomes :math:`1/(|\mathcal{M}| + 1)` for
    any number of modalities. Defaults: MGCN's published configuration
    (:math:`\lambda_{cl} = 0.01`).

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features per modality
            ``[N, d_m]``.
        item_graphs (Mapping[str, tuple[Tensor, Tensor]]): Per modality the normalized
            cosine-weighted item–item graph ``(edge_index, edge_weight)`` (see
            :meth:`from_data`).
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        num_layers (int, optional): User–item layers :math:`L`. (default: :obj:`2`)
        num_modal_layers (int, optional): Item–item layers :math:`L_m`.
            (default: :obj:`1`)
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`1e-4`)
        cl_weight (float, optional): :math:`\lambda_{cl}`. (default: :obj:`0.01`)
        tau (float, optional): InfoNCE temperature. (default: :obj:`0.2`)
        train_features (bool, optional): Fine-tune the raw features, as MMRec does;
            their dense gradient and Adam state cost as much as the rest of a CPU step
            several times over with 4096-d image features (``False``: frozen, fast).
            (default: :obj:`True`)
        negative_candidates (int, optional): :math:`K`: each triple's negative is the
            highest-scored of the sampler's uniform negative and :math:`K - 1` further
            uniform items that are not the user's training items
            (:class:`~dreamgeo.nn.DynamicNegativeSampling`); :math:`1` keeps the
            uniform negative (beyond MGCN's paper; DREAM has the same option).
            (default: :obj:`1`)
        item_bias (bool, optional): Add a learned item bias :math:`b_i` to every score
            (:class:`~dreamgeo.nn.ItemBias`; in the L2 term with the item rows; beyond
            MGCN's paper; DREAM has the same option). (default: :obj:`False`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]`` (one more
          column with :obj:`item_bias`)
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/MGCN.yaml).
    HPARAMS = HParams(
        [
            ITEM_KNN_K,
            UI_LAYERS,
            HParam(
                "num_modal_layers",
                int,
                1,
                "item-item graph layers",
                low=1,
                aliases=("n_layers",),
            ),
            HParam("reg_weight", float, 1e-4, "weight of the L2 term", low=0.0),
            HParam(
                "cl_weight",
                float,
                0.01,
                "weight of the behaviour-modal contrastive loss",
                low=0.0,
                grid=(0.001, 0.01, 0.1),
                aliases=("cl_loss",),
            ),
            HParam("tau", float, 0.2, "InfoNCE temperature", low=0.0, low_open=True),
            HParam("train_features", bool, True, "fine-tune the raw features"),
            NEGATIVE_CANDIDATES,
            ITEM_BIAS,
        ]
    )

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor,
        features: Mapping[str, Tensor],
        item_graphs: Mapping[str, tuple[Tensor, Tensor]],
        embedding_dim: int = 64,
        num_layers: int = 2,
        num_modal_layers: int = 1,
        reg_weight: float = 1e-4,
        cl_weight: float = 0.01,
        tau: float = 0.2,
        train_features: bool = True,
        negative_candidates: int = 1,
        item_bias: bool = False,
    ):
        super().__init__(num_users, num_items, edge_index, features, item_graphs)
        if embedding_dim <= 0 or num_layers < 0 or num_modal_layers < 0:
            raise ValueError(
                f"MGCN: need embedding_dim > 0 and layers >= 0, got {embedding_dim}, "
                f"{num_layers} and {num_modal_layers}"
            )
        if cl_weight < 0 or tau <= 0:
            raise ValueError(f"MGCN: need cl_weight >= 0 and tau > 0, got {cl_weight}, {tau}")
        if not features:
            raise ValueError("MGCN needs the features of at least one modality")
        modalities = list(features)
        if set(item_graphs) != set(modalities):
            raise ValueError(
                f"MGCN: item_graphs must be given for exactly the modalities {modalities}, "
                f"got {sorted(item_graphs)}"
            )
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_modal_layers = num_modal_layers
        self.cl_weight = cl_weight
        self.tau = tau

        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        self.features = ItemFeatures(features, trainable=train_features)
        self.item_graphs = torch.nn.ModuleDict(
            {
                m: SparseOperator(index[0], index[1], weight, (num_items, num_items))
                for m, (index, weight) in item_graphs.items()
            }
        )
        d = embedding_dim
        self.projections = torch.nn.ModuleDict(
            {m: torch.nn.Linear(dm, d) for m, dm in self.features.dims().items()}
        )
        self.purifier_gates = torch.nn.ModuleDict({m: torch.nn.Linear(d, d) for m in modalities})
        self.preference_gates = torch.nn.ModuleDict({m: torch.nn.Linear(d, d) for m in modalities})
        self.attention = torch.nn.Sequential(
            torch.nn.Linear(d, d), torch.nn.Tanh(), torch.nn.Linear(d, 1, bias=False)
        )
        self.negatives = (
            DynamicNegativeSampling(edge_index, num_users, num_items, negative_candidates)
            if negative_candidates > 1
            else None
        )
        self.item_bias = ItemBias(num_items) if item_bias else None
        self.bpr = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_data(
        cls,
        data: HeteroData,
        knn_k: int = ITEM_KNN_K.default,
        knn_mode: str = "exact",
        knn_backend: str = "faiss",
        **kwargs,
    ) -> MGCN:
        r"""Builds the model on ``data`` with cosine-weighted top-:obj:`knn_k` item
        graphs (:func:`~dreamgeo.models.modal_inputs.item_knn_graph`).

        Args:
            data (HeteroData): The dataset.
            knn_k (int, optional): Neighbours per item :math:`k`. (default: :obj:`10`)
            knn_mode (str, optional): ``"exact"`` or ``"ivf"`` search.
                (default: :obj:`"exact"`)
            **kwargs: The constructor's other arguments.
            knn_backend (str, optional): ``"faiss"`` or ``"torch"`` top-:math:`k` engine
                (the one switch every graph-building model takes; the default keeps the
                graphs of this model's published numbers: on duplicate features the two
                engines break ties differently). (default: :obj:`"faiss"`)
        """
        features = item_features(data, "MGCN")
        graphs = {
            m: item_knn_graph(data, m, knn_k, weighted=True, mode=knn_mode, backend=knn_backend)
            for m in features
        }
        return cls(
            data[USER].num_nodes,
            data[ITEM].num_nodes,
            data[INTERACTS].edge_index,
            features,
            graphs,
            **kwargs,
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        self.conv.reset_parameters()
        if self.item_bias is not None:
            self.item_bias.reset_parameters()

    def behavior(self) -> tuple[Tensor, Tensor]:
        r"""The user–item view :math:`\bar{\mathbf{E}}_{id}`: users ``[M, d]``, items
        ``[N, d]``."""
        user, item = self.user_embedding.weight, self.item_embedding.weight
        return propagate_layers(self.conv, user, item, self.edge_index, self.num_layers)

    def modal_views(self) -> dict[str, tuple[Tensor, Tensor]]:
        r"""Per modality the purified item–item view :math:`(\bar{\mathbf{E}}_{u,m},
        \bar{\mathbf{E}}_{i,m})`."""
        interaction = self.conv.user_from_item(self.edge_index, self.num_users, self.num_items)
        views = {}
        for m in self.features.modalities:
            gate = torch.sigmoid(self.purifier_gates[m](self.projections[m](self.features[m])))
            item = self.item_embedding.weight * gate
            for _ in range(self.num_modal_layers):
                item = self.item_graphs[m](item)
            views[m] = (interaction(item), item)
        return views

    def fuse(self, behavior: Tensor, views: list[Tensor]) -> Tensor:
        r"""The behaviour-aware fuser: side representation :math:`\mathbf{e}_s` from the
        ID view ``[n, d]`` and the modal views (each ``[n, d]``, in modality order)."""
        stacked = torch.stack(views)  # [|M|, n, d]
        weight = torch.softmax(self.attention(stacked), dim=0)  # [|M|, n, 1]
        common = (weight * stacked).sum(0)
        side = common
        for m, view in zip(self.features.modalities, views):
            side = side + torch.sigmoid(self.preference_gates[m](behavior)) * (view - common)
        return side / (len(views) + 1)

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour :math:`\bar{\mathbf{E}}_{id}` and modal :math:`\mathbf{E}_s`
        representations of users and items."""
        user_id, item_id = self.behavior()
        views = self.modal_views()
        user_side = self.fuse(user_id, [views[m][0] for m in self.features.modalities])
        item_side = self.fuse(item_id, [views[m][1] for m in self.features.modalities])
        return DualRepresentation(user_id, item_id, user_side, item_side)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        rep = self.dual_representations()
        user, item = rep.user_behavior + rep.user_modal, rep.item_behavior + rep.item_modal
        if self.item_bias is not None:
            return self.item_bias.users(user), self.item_bias.items(item)
        return user, item

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        rep = self.dual_representations()
        user = rep.user_behavior[users] + rep.user_modal[users]
        scoring_user = user if self.item_bias is None else self.item_bias.users(user)

        def item_rows(items: Tensor) -> Tensor:
            rows = rep.item_behavior[items] + rep.item_modal[items]
            return rows if self.item_bias is None else self.item_bias.items(rows, items)

        if self.negatives is not None:
            neg_items = self.negatives.hardest(users, neg_items, scoring_user, item_rows)
        pos, neg = item_rows(pos_items), item_rows(neg_items)
        bpr = self.bpr.ranking((scoring_user * pos).sum(-1), (scoring_user * neg).sum(-1))
        reg = self.bpr.regularization(user, pos, neg)
        cl = info_nce(rep.item_modal[pos_items], rep.item_behavior[pos_items], self.tau)
        cl = cl + info_nce(rep.user_modal[users], rep.user_behavior[users], self.tau)
        total = bpr + self.bpr.reg_weight * reg + self.cl_weight * cl
        parts = {"bpr": bpr.detach(), "reg": reg.detach(), "cl": cl.detach()}
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
