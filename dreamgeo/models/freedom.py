r"""FREEDOM: a frozen item–item graph and a denoised (pruned) user–item graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import (
    ITEM_KNN_K,
    UI_LAYERS,
    ItemFeatures,
    check_modality_weights,
    image_text_weights,
    item_features,
    item_knn_graph,
    propagate_layers,
    user_mean_operator,
    weighted_graph_sum,
)
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv
from dreamgeo.nn.edge_pruning import EpochEdgePruning

__all__ = ["FREEDOM", "freedom_modal_weights"]


def freedom_modal_weights(modalities: Sequence[str]) -> dict[str, float]:
    r"""MMRec's FREEDOM weights of the item–item graphs: image 0.1 and text 0.9 for
    image + text, uniform weights for any other set of modalities."""
    if sorted(modalities) == ["image", "text"]:
        return {"image": 0.1, "text": 0.9}
    return {m: 1.0 / len(modalities) for m in modalities}


@register_model(
    "freedom",
    position=70,
    label="FREEDOM",
    tables=("table2", "table4"),
    bma_plugin=True,
)
class FREEDOM(Recommender):
    r"""FREEDOM from `"A Tale of Two Graphs: Freezing and Denoising Graph Structures for
    Multimodal Recommendation" <https://arxiv.org/abs/2211.06924>`_ (Zhou and Shen,
    ACM MM 2023), as in MMRec.

    **Frozen item–item graph.** Per modality the top-:math:`k` cosine graph of the raw
    features (self included, unweighted, :math:`\mathbf{D}^{-1/2}\mathbf{S}_m
    \mathbf{D}^{-1/2}`), summed with weights :math:`w_m` (image 0.1, text 0.9) into
    :math:`\tilde{\mathbf{S}} = \sum_m w_m \tilde{\mathbf{S}}_m`, built once and
    propagated over the item ID embeddings: :math:`\mathbf{H}_i = \tilde{\mathbf{S}}^{L_m}
    \mathbf{E}_i`.

    **Denoised user–item graph.** LightGCN (:math:`L` layers, mean over layers
    :math:`0..L`) over the normalized graph :math:`\tilde{\mathbf{A}}`:

    .. math::
        (\bar{\mathbf{E}}_u, \bar{\mathbf{E}}_i) = \mathrm{LightGCN}_{\tilde{\mathbf{A}}}
        (\mathbf{E}_u, \mathbf{E}_i), \qquad \mathbf{e}_u^* = \bar{\mathbf{e}}_u, \qquad
        \mathbf{e}_i^* = \bar{\mathbf{e}}_i + \mathbf{h}_i

    Training uses a graph pruned by :func:`~dreamgeo.nn.degree_sensitive_pruning` (a
    fraction :math:`\rho` of the edges dropped, the rest re-normalized), drawn anew every
    epoch (:class:`~dreamgeo.nn.EpochEdgePruning`); :meth:`forward` (ranking) uses the
    full graph. The loss is BPR on
    :math:`\mathbf{e}^*` plus BPR of the users against each modality's projected
    features :math:`\mathbf{f}_i^m = \mathbf{W}_m\mathbf{x}_i^m + \mathbf{b}_m`:

    .. math::
        \mathcal{L} = \mathcal{L}_{BPR}(\mathbf{e}_u^*, \mathbf{e}_i^*) + \lambda
        \sum_m \mathcal{L}_{BPR}(\mathbf{e}_u^*, \mathbf{f}_i^m)

    An epoch is detected as :math:`E` training triples (:math:`E` times the number of
    processes under :mod:`torch.distributed`): the first :meth:`loss` call and every
    call after :math:`E` more triples draw a new pruned graph (MMRec draws it in
    ``pre_epoch_processing``); :meth:`prune` draws one on demand.

    **BMA plug-in** (DREAM, Table 4): with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds
    ``bma(ē_u[users], ē_i[pos], m_u[users], h_i[pos])``: behaviour = the user–item graph
    representations :math:`\bar{\mathbf{e}}` (on the pruned graph), modal = the
    item–item graph view :math:`\mathbf{h}_i` and, for users (who have none in
    FREEDOM), its mean over their training items :math:`\mathbf{m}_u =
    \frac{1}{|\mathcal{N}_u|}\sum_{i \in \mathcal{N}_u}\mathbf{h}_i` (see
    :meth:`dual_representations`). The parts then include ``"bma"``.

    Deviations: the kNN graphs come from FAISS (:func:`~dreamgeo.graph.knn_graph_cosine`),
    never from MMRec's dense :math:`N \times N` similarity; pruning uses exponential keys
    (same distribution as MMRec's ``torch.multinomial``, different random stream); the
    modal BPR terms project only the batch's items (same values). Defaults: MMRec's
    FREEDOM configuration, with :math:`\rho = 0.8` and :math:`\lambda = 10^{-4}` picked
    from its grids (:math:`\rho \in \{0.8, 0.9\}`, :math:`\lambda \in \{0, 10^{-5},
    10^{-4}, 10^{-3}\}`).

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features per modality
            ``[N, d_m]``.
        item_graphs (Mapping[str, tuple[Tensor, Tensor]]): Per modality the normalized
            item–item graph ``(edge_index, edge_weight)`` (see :meth:`from_data`).
        embedding_dim (int, optional): :math:`d` (also MMRec's ``feat_embed_dim``).
            (default: :obj:`64`)
        num_layers (int, optional): User–item layers :math:`L`. (default: :obj:`2`)
        num_modal_layers (int, optional): Item–item layers :math:`L_m`.
            (default: :obj:`1`)
        modal_weights (Mapping[str, float], optional): :math:`w_m`, summing to 1.
            (default: :func:`freedom_modal_weights`)
        dropout (float, optional): Pruned share :math:`\rho` of the user–item edges;
            :obj:`0` trains on the full graph. (default: :obj:`0.8`)
        modal_loss_weight (float, optional): :math:`\lambda` (MMRec's ``reg_weight``).
            (default: :obj:`1e-4`)
        train_features (bool, optional): Fine-tune the raw features, as MMRec does;
            their dense gradient and Adam state cost as much as the rest of a CPU step
            several times over with 4096-d image features (``False``: frozen, fast).
            (default: :obj:`True`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/FREEDOM.yaml).
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
                aliases=("n_mm_layers",),
            ),
            HParam(
                "image_weight",
                float,
                0.1,
                "weight of the image graph in the item-item graph (text: 1 - it)",
                low=0.0,
                high=1.0,
                aliases=("mm_image_weight",),
            ),
            HParam(
                "dropout",
                float,
                0.8,
                "share of user-item edges pruned per epoch",
                low=0.0,
                high=1.0,
                high_open=True,
                grid=(0.8, 0.9),
            ),
            HParam(
                "modal_loss_weight",
                float,
                1e-4,
                "weight of the modal BPR losses (MMRec's reg_weight)",
                low=0.0,
                grid=(0.0, 1e-5, 1e-4, 1e-3),
                aliases=("reg_weight",),
            ),
            HParam("train_features", bool, True, "fine-tune the raw features"),
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
        modal_weights: Mapping[str, float] | None = None,
        dropout: float = 0.8,
        modal_loss_weight: float = 1e-4,
        train_features: bool = True,
    ):
        super().__init__(num_users, num_items, edge_index, features, item_graphs)
        if embedding_dim <= 0 or num_layers < 0 or num_modal_layers < 0:
            raise ValueError(
                f"FREEDOM: need embedding_dim > 0 and layers >= 0, got {embedding_dim}, "
                f"{num_layers} and {num_modal_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"FREEDOM: dropout must be in [0, 1), got {dropout}")
        if modal_loss_weight < 0:
            raise ValueError(f"FREEDOM: modal_loss_weight must be >= 0, got {modal_loss_weight}")
        if not features:
            raise ValueError("FREEDOM needs the features of at least one modality")
        modalities = list(features)
        if set(item_graphs) != set(modalities):
            raise ValueError(
                f"FREEDOM: item_graphs must be given for exactly the modalities {modalities}, "
                f"got {sorted(item_graphs)}"
            )
        self.modal_weights = check_modality_weights(
            modal_weights or freedom_modal_weights(modalities), modalities, "FREEDOM"
        )
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_modal_layers = num_modal_layers
        self.dropout = dropout

        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)
        self.pruning = EpochEdgePruning(self.edge_index, num_users, num_items, dropout)
        self.item_graph = weighted_graph_sum(item_graphs, self.modal_weights, num_items)
        self.user_mean = user_mean_operator(edge_index, num_users, num_items)
        self.features = ItemFeatures(features, trainable=train_features)
        self.projections = torch.nn.ModuleDict(
            {m: torch.nn.Linear(d, embedding_dim) for m, d in self.features.dims().items()}
        )
        self.bpr = BPRLoss()
        self.modal_loss_weight = modal_loss_weight
        self.reset_parameters()

    @classmethod
    def from_data(
        cls,
        data: HeteroData,
        knn_k: int = ITEM_KNN_K.default,
        knn_mode: str = "exact",
        knn_backend: str = "faiss",
        graph_cache_dir: str | None = None,
        image_weight: float | None = None,
        **kwargs,
    ) -> FREEDOM:
        r"""Builds the model on ``data``; the item–item graphs are the stored relation
        graphs when they have :obj:`knn_k` neighbours per item, else they are built
        (see :func:`~dreamgeo.models.modal_inputs.item_knn_graph`).

        Args:
            data (HeteroData): The dataset.
            knn_k (int, optional): Neighbours per item :math:`k`. (default: :obj:`10`)
            knn_mode (str, optional): ``"exact"`` or ``"ivf"`` search.
                (default: :obj:`"exact"`)
            knn_backend (str, optional): ``"faiss"`` or ``"torch"`` top-:math:`k` engine
                (the one switch every graph-building model takes; the default keeps the
                graphs of this model's published numbers: on duplicate features the two
                engines break ties differently). (default: :obj:`"faiss"`)
            graph_cache_dir (str, optional): Cache of built graphs. (default: :obj:`None`)
            image_weight (float, optional): MMRec's ``mm_image_weight``: the image
                graph's weight, text getting the rest (see
                :func:`~dreamgeo.models.modal_inputs.image_text_weights`); replaces
                :obj:`modal_weights`. (default: :obj:`None`, :obj:`modal_weights`)
            **kwargs: The constructor's other arguments.
        """
        features = item_features(data, "FREEDOM")
        if image_weight is not None:
            kwargs["modal_weights"] = image_text_weights(image_weight, list(features))
        graphs = {
            m: item_knn_graph(
                data, m, knn_k, mode=knn_mode, backend=knn_backend, cache_dir=graph_cache_dir
            )
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
        for linear in self.projections.values():
            linear.reset_parameters()
        self.conv.reset_parameters()

    @property
    def pruned_conv(self) -> BipartiteLGConv:
        r"""The layer of the current pruned training graph."""
        return self.pruning.conv

    @property
    def pruned_edge_index(self) -> Tensor | None:
        r"""The current pruned training graph ``[2, (1 - ρ) E]``."""
        return self.pruning.pruned_edge_index

    def prune(self) -> Tensor:
        r"""Draws a new pruned training graph (:func:`~dreamgeo.nn.degree_sensitive_pruning`) and
        returns its edges ``[2, (1 - ρ) E]``."""
        return self.pruning.prune()

    def _training_graph(self, batch_size: int) -> tuple[BipartiteLGConv, Tensor]:
        if self.dropout <= 0.0:
            return self.conv, self.edge_index
        return self.pruning.training_graph(batch_size)

    def item_modal(self) -> Tensor:
        r"""The item–item graph view :math:`\mathbf{H}_i = \tilde{\mathbf{S}}^{L_m}
        \mathbf{E}_i`, ``[N, d]``."""
        item = self.item_embedding.weight
        for _ in range(self.num_modal_layers):
            item = self.item_graph(item)
        return item

    def behavior(
        self, conv: BipartiteLGConv | None = None, edge_index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""LightGCN over the user–item graph (the full one by default):
        :math:`\bar{\mathbf{E}}_u` ``[M, d]``, :math:`\bar{\mathbf{E}}_i` ``[N, d]``."""
        if conv is None:
            conv, edge_index = self.conv, self.edge_index
        user, item = self.user_embedding.weight, self.item_embedding.weight
        return propagate_layers(conv, user, item, edge_index, self.num_layers)

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour :math:`(\bar{\mathbf{E}}_u, \bar{\mathbf{E}}_i)` on the full graph
        and modal :math:`(\mathbf{R}_{mean}\mathbf{H}_i, \mathbf{H}_i)`."""
        item_modal = self.item_modal()
        return DualRepresentation(*self.behavior(), self.user_mean(item_modal), item_modal)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        user, item = self.behavior()
        return user, item + self.item_modal()

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        user_graph, item_graph = self.behavior(*self._training_graph(users.numel()))
        item_modal = self.item_modal()
        item_final = item_graph + item_modal
        user = user_graph[users]
        bpr = self.bpr.ranking(
            (user * item_final[pos_items]).sum(-1), (user * item_final[neg_items]).sum(-1)
        )
        modal_bpr = user.new_zeros(())
        for m in self.features.modalities:
            pos, neg = self.projections[m](self.features[m][torch.stack([pos_items, neg_items])])
            modal_bpr = modal_bpr + self.bpr.ranking((user * pos).sum(-1), (user * neg).sum(-1))
        total = bpr + self.modal_loss_weight * modal_bpr
        parts = {"bpr": bpr.detach(), "modal_bpr": modal_bpr.detach()}

        def batch_dual() -> DualRepresentation:  # only the plug-in needs it
            user_modal = self.user_mean(item_modal)[users]
            return DualRepresentation(
                user, item_graph[pos_items], user_modal, item_modal[pos_items]
            )

        return total, parts, batch_dual
