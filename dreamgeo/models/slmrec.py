r"""SLMRec: self-supervised learning for multimedia recommendation (fine-and-coarse task)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.hparams import TRAIN, HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import item_features, propagate_layers
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bma_loss import info_nce
from dreamgeo.nn.conv import BipartiteLGConv

__all__ = ["SLMRec"]


def _in_batch_cross_entropy(anchor: Tensor, positive: Tensor, tau: float) -> Tensor:
    r"""Cross-entropy of row ``k`` of ``anchor @ positive.T / tau`` against class ``k``
    (raw inner products, no normalization, as SLMRec's FAC task)."""
    target = torch.arange(anchor.size(0), device=anchor.device)
    return F.cross_entropy(anchor @ positive.t() / tau, target)


@register_model(
    "slmrec",
    position=50,
    label="SLMRec",
    tables=("table2",),
    bma_plugin=True,
)
class SLMRec(Recommender):
    r"""SLMRec from `"Self-supervised Learning for Multimedia Recommendation"
    <https://doi.org/10.1109/TMM.2022.3187556>`_ (Tao et al., IEEE TMM 2022), as in
    MMRec with its default self-supervised task, fine-and-coarse (FAC).

    **Views.** LightGCN over :math:`\tilde{\mathbf{A}} = \mathbf{D}^{-1/2}\mathbf{A}
    \mathbf{D}^{-1/2}` (:math:`L` layers, mean over layers :math:`0..L`) runs once on the
    ID embeddings, :math:`(\mathbf{E}_u^{id}, \mathbf{E}_i^{id})`, and once per modality
    on the same user embeddings with the items' projected, L2-normalized features,
    :math:`(\mathbf{E}_u^{m}, \mathbf{E}_i^{m}) = \mathrm{LightGCN}(\mathbf{E}_u,
    \mathbf{W}_m\,\mathrm{norm}(\mathbf{X}_m) + \mathbf{b}_m)`. Final representations
    concatenate the views and project them:
    :math:`\mathbf{e}_u = \mathbf{W}_u[\mathbf{e}_u^{id}; \mathbf{e}_u^{m_1}; \dots] +
    \mathbf{b}_u`, and alike for items with :math:`\mathbf{W}_i`.

    **Objective.** The main task is InfoNCE between the batch's users and positive items
    with in-batch negatives (:func:`~dreamgeo.nn.info_nce`, temperature :math:`\tau`);
    the FAC task contrasts, on the batch's positive items, the ID view with the first
    modality in a fine space and, through two more layers, with the second modality in
    a coarse space of size :math:`d/2` (raw inner products, temperature
    :math:`\tau_{ssl}`):

    .. math::
        \mathbf{h}_1 = g_{id}(\mathbf{e}_i^{id}), \quad
        \mathbf{h}_2 = g_{12}(g_{1}(\mathbf{h}_1)), \qquad
        \mathcal{L} = \mathrm{InfoNCE}(\mathbf{e}_u, \mathbf{e}_{i^+}) + \alpha\big[
        \mathrm{CE}(\mathbf{h}_1, g_{m_1}(\mathbf{e}_i^{m_1})) +
        \mathrm{CE}(\mathbf{h}_2, g_{m_2}(\mathbf{e}_i^{m_2}))\big]

    with :math:`\mathrm{CE}(\mathbf{a}, \mathbf{b}) = \frac{1}{B}\sum_k -\log
    \mathrm{softmax}_j(\mathbf{a}_k^\top\mathbf{b}_j/\tau_{ssl})_k` and every
    :math:`g` a linear layer. SLMRec uses no negative items: :meth:`loss` ignores
    ``neg_items``. With image and text, image is :math:`m_1` and text :math:`m_2`
    (MMRec's order), otherwise the data's order. FAC is defined for MMRec's pair; with
    :math:`M > 2` modalities every further modality :math:`m_k` is contrasted with
    :math:`\mathbf{h}_2` in the same coarse space through its own layer,
    :math:`\mathrm{CE}(\mathbf{h}_2, g_{m_k}(\mathbf{e}_i^{m_k}))` (one modality: the
    fine term only).

    **BMA plug-in**: with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds ``bma(E^id_u[users], E^id_i[pos],
    M_u[users], M_i[pos])``: behaviour = the ID view, modal = the mean of the modality
    views :math:`\mathbf{M} = \frac{1}{|\mathcal{M}|}\sum_m \mathbf{E}^m` (before the
    fusion layers; see :meth:`dual_representations`); the parts then include ``"bma"``.

    Deviations: MMRec's unused audio-level layer is left out; MMRec's weight decay
    (``weight_decay: 1e-4`` in Adam) is not applied (the trainer has none). Defaults:
    MMRec's configuration (3 layers, :math:`\tau = 0.2`, concatenation fusion) with
    :math:`\alpha = 0.1` and :math:`\tau_{ssl} = 0.2` from its grids.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features of one or more
            modalities ``[N, d_m]`` (frozen).
        embedding_dim (int, optional): :math:`d` (even). (default: :obj:`64`)
        num_layers (int, optional): LightGCN layers :math:`L`. (default: :obj:`3`)
        tau (float, optional): :math:`\tau` of the main task. (default: :obj:`0.2`)
        ssl_tau (float, optional): :math:`\tau_{ssl}`. (default: :obj:`0.2`)
        ssl_weight (float, optional): :math:`\alpha`. (default: :obj:`0.1`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/SLMRec.yaml).
    HPARAMS = HParams(
        [
            HParam(
                "num_layers",
                int,
                3,
                "LightGCN layers",
                low=1,
                aliases=("layer_num",),
            ),
            HParam(
                "tau",
                float,
                0.2,
                "temperature of the main task",
                low=0.0,
                low_open=True,
                aliases=("temp",),
            ),
            HParam(
                "ssl_tau",
                float,
                0.2,
                "temperature of the self-supervised task",
                low=0.0,
                low_open=True,
                grid=(0.1, 0.2, 0.5, 1.0),
                aliases=("ssl_temp",),
            ),
            HParam(
                "ssl_weight",
                float,
                0.1,
                "weight of the self-supervised task",
                low=0.0,
                grid=(0.01, 0.05, 0.1, 0.5, 1.0),
                aliases=("ssl_alpha",),
            ),
            HParam(
                "lr",
                float,
                1e-3,
                "Adam learning rate",
                low=0.0,
                low_open=True,
                grid=(0.0001, 0.001, 0.01, 0.1),
                aliases=("learning_rate",),
                target=TRAIN,
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
        num_layers: int = 3,
        tau: float = 0.2,
        ssl_tau: float = 0.2,
        ssl_weight: float = 0.1,
    ):
        super().__init__(num_users, num_items, edge_index, features)
        if embedding_dim <= 1 or embedding_dim % 2 or num_layers < 0:
            raise ValueError(
                f"SLMRec: need an even embedding_dim >= 2 and num_layers >= 0, got "
                f"{embedding_dim} and {num_layers}"
            )
        if tau <= 0 or ssl_tau <= 0 or ssl_weight < 0:
            raise ValueError(
                f"SLMRec: need tau, ssl_tau > 0 and ssl_weight >= 0, got {tau}, {ssl_tau}, "
                f"{ssl_weight}"
            )
        modalities = list(features)
        if sorted(modalities) == ["image", "text"]:
            modalities = ["image", "text"]
        self.modalities = modalities
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.tau = tau
        self.ssl_tau = ssl_tau
        self.ssl_weight = ssl_weight

        d = embedding_dim
        self.user_embedding = torch.nn.Embedding(num_users, d)
        self.item_embedding = torch.nn.Embedding(num_items, d)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        for m in modalities:
            self.register_buffer(f"features_{m}", F.normalize(features[m].float()), False)
        self.projections = torch.nn.ModuleDict(
            {m: torch.nn.Linear(features[m].size(1), d) for m in modalities}
        )
        width = d * (len(modalities) + 1)
        self.user_fusion = torch.nn.Linear(width, d)
        self.item_fusion = torch.nn.Linear(width, d)
        # FAC heads (MMRec: g_i_iv, g_v_iv, g_iv_iva, g_iva_ivat, g_t_ivat)
        self.id_fine = torch.nn.Linear(d, d)
        self.first_fine = torch.nn.Linear(d, d)
        if len(modalities) >= 2:
            self.fine_middle = torch.nn.Linear(d, d)
            self.middle_coarse = torch.nn.Linear(d, d // 2)
            self.second_coarse = torch.nn.Linear(d, d // 2)
        # modalities beyond MMRec's pair meet the ID view in the same coarse space
        self.further_coarse = torch.nn.ModuleList(
            torch.nn.Linear(d, d // 2) for _ in modalities[2:]
        )
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> SLMRec:
        r"""Builds the model from the training graph and item features of ``data``."""
        return cls(
            data[USER].num_nodes,
            data[ITEM].num_nodes,
            data[INTERACTS].edge_index,
            item_features(data, "SLMRec"),
            **kwargs,
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
                torch.nn.init.xavier_uniform_(module.weight)
        self.conv.reset_parameters()

    def views(self) -> list[tuple[Tensor, Tensor]]:
        r"""The ID view and one view per modality (in :attr:`modalities` order), each
        users ``[M, d]`` and items ``[N, d]``."""
        user = self.user_embedding.weight
        items = [self.item_embedding.weight]
        items += [self.projections[m](getattr(self, f"features_{m}")) for m in self.modalities]
        return [
            propagate_layers(self.conv, user, item, self.edge_index, self.num_layers)
            for item in items
        ]

    def _fuse(self, views: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        user = self.user_fusion(torch.cat([view[0] for view in views], dim=-1))
        item = self.item_fusion(torch.cat([view[1] for view in views], dim=-1))
        return user, item

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour = the ID view, modal = the mean of the modality views."""
        views = self.views()
        user_modal = torch.stack([view[0] for view in views[1:]]).mean(0)
        item_modal = torch.stack([view[1] for view in views[1:]]).mean(0)
        return DualRepresentation(*views[0], user_modal, item_modal)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        return self._fuse(self.views())

    def fine_and_coarse(self, views: list[tuple[Tensor, Tensor]], items: Tensor) -> Tensor:
        r"""The FAC self-supervised loss on ``items`` ``[B]``."""
        fine = self.id_fine(views[0][1][items])
        loss = _in_batch_cross_entropy(fine, self.first_fine(views[1][1][items]), self.ssl_tau)
        if len(self.modalities) >= 2:
            coarse = self.middle_coarse(self.fine_middle(fine))
            second = self.second_coarse(views[2][1][items])
            loss = loss + _in_batch_cross_entropy(coarse, second, self.ssl_tau)
            for head, view in zip(self.further_coarse, views[3:]):
                loss = loss + _in_batch_cross_entropy(coarse, head(view[1][items]), self.ssl_tau)
        return loss

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        views = self.views()
        user, item = self._fuse(views)
        main = info_nce(user[users], item[pos_items], self.tau)
        ssl = self.fine_and_coarse(views, pos_items)
        total = main + self.ssl_weight * ssl
        parts = {"infonce": main.detach(), "ssl": ssl.detach()}

        def batch_dual() -> DualRepresentation:  # only the plug-in needs it
            user_modal = torch.stack([view[0][users] for view in views[1:]]).mean(0)
            item_modal = torch.stack([view[1][pos_items] for view in views[1:]]).mean(0)
            return DualRepresentation(
                views[0][0][users], views[0][1][pos_items], user_modal, item_modal
            )

        return total, parts, batch_dual
