r"""LATTICE: item–item graphs learned from the multimodal features."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.graph import knn_graph_cosine
from dreamgeo.hparams import TRAIN, HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import (
    ITEM_KNN_K,
    ItemFeatures,
    check_modality_weights,
    image_text_weights,
    item_features,
    item_knn_graph,
    user_mean_operator,
)
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.sparse import SparseOperator

__all__ = ["LATTICE", "self_loop_mean_adjacency"]


def self_loop_mean_adjacency(edge_index: Tensor, num_users: int, num_items: int) -> SparseOperator:
    r"""MMRec's LATTICE user–item operator :math:`\mathbf{D}^{-1}(\mathbf{A} +
    \mathbf{I})` on the joint graph of users (first) and items, with :math:`\mathbf{A}`
    the symmetric 0/1 interaction adjacency (repeated interactions count once) and
    :math:`\mathbf{D}` the row sums of :math:`\mathbf{A} + \mathbf{I}`:

    .. math::
        (\hat{\mathbf{A}}\mathbf{X})_v = \frac{1}{|\mathcal{N}_v| + 1}\Big(\mathbf{x}_v +
        \sum_{w \in \mathcal{N}_v} \mathbf{x}_w\Big)

    Args:
        edge_index (torch.Tensor): User–item interactions ``[2, E]`` (row 0 users).
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.

    Shapes:
        - **output:** operator ``[M + N, M + N]``
    """
    key = torch.unique(edge_index[0].long() * num_items + edge_index[1].long())
    user, item = key // num_items, key % num_items + num_users
    num_nodes = num_users + num_items
    nodes = torch.arange(num_nodes, device=key.device)
    degree = torch.bincount(torch.cat([user, item]), minlength=num_nodes).float() + 1.0
    row = torch.cat([user, item, nodes])
    col = torch.cat([item, user, nodes])
    return SparseOperator(row, col, 1.0 / degree[row], (num_nodes, num_nodes))


@register_model(
    "lattice",
    position=65,
    label="LATTICE",
    tables=("table2",),
    bma_plugin=True,
)
class LATTICE(Recommender):
    r"""LATTICE from `"Mining Latent Structures for Multimedia Recommendation"
    <https://arxiv.org/abs/2104.09036>`_ (Zhang et al., ACM MM 2021), as in MMRec
    (``cf_model: lightgcn``).

    **Initial item–item graph** (fixed). Per modality :math:`m` the cosine-weighted
    top-:math:`k` graph of the raw features :math:`\mathbf{X}_m` (self included),
    :math:`\tilde{\mathbf{S}}_m = \mathbf{D}^{-1/2}\mathbf{S}_m\mathbf{D}^{-1/2}` (row
    degree), built once with FAISS.

    **Learned item–item graph.** Every modality's features are projected,
    :math:`\mathbf{Z}_m = \mathbf{X}_m\mathbf{W}_m + \mathbf{b}_m` (:math:`d_f` columns,
    trainable), and every item keeps its :math:`k` most similar items by cosine (self
    included), :math:`(\hat{\mathbf{S}}_m)_{ij} = \cos(\mathbf{z}^m_i, \mathbf{z}^m_j)`
    for :math:`j \in \operatorname{top-}k(i)`, else 0. With learnable modality weights
    :math:`\boldsymbol{\alpha} = \operatorname{softmax}(\boldsymbol{\omega})`
    (:math:`\boldsymbol{\omega}` starts uniform):

    .. math::
        \mathbf{S} = \lambda \sum_m \alpha_m \tilde{\mathbf{S}}_m + (1 - \lambda)\,
        \mathbf{D}^{-1/2}\Big(\sum_m \alpha_m \hat{\mathbf{S}}_m\Big)\mathbf{D}^{-1/2},
        \qquad \mathbf{H} = \mathbf{S}^{L_m}\mathbf{E}_i

    **User–item graph** (behaviour, MMRec's LightGCN variant): :math:`L` layers of
    :func:`self_loop_mean_adjacency` :math:`\hat{\mathbf{A}} = \mathbf{D}^{-1}
    (\mathbf{A} + \mathbf{I})`, mean over layers :math:`0..L`, then

    .. math::
        (\bar{\mathbf{E}}_u, \bar{\mathbf{E}}_i) = \frac{1}{L+1}\sum_{l=0}^{L}
        \hat{\mathbf{A}}^l (\mathbf{E}_u, \mathbf{E}_i), \qquad
        \mathbf{e}_u^* = \bar{\mathbf{e}}_u, \qquad
        \mathbf{e}_i^* = \bar{\mathbf{e}}_i + \frac{\mathbf{h}_i}{\|\mathbf{h}_i\|_2}

    **Objective**: BPR on :math:`\mathbf{e}^*` plus the squared L2 norm of the batch's
    :math:`\mathbf{e}^*` (weight :math:`\lambda_{reg}`, divided by :math:`2B`).

    **When the learned graph changes.** The neighbour lists of :math:`\hat{\mathbf{S}}_m`
    are searched without gradient once per epoch of training triples (at the first
    :meth:`loss` call and after every :math:`E` further triples, :math:`E` times the
    number of processes under :mod:`torch.distributed`; MMRec rebuilds the graph in
    ``pre_epoch_processing``) and whenever the model ranks in eval mode (MMRec's
    ``full_sort_predict`` rebuilds it), which also starts a new count. Their cosines
    (the edge weights) are recomputed with gradient at every step, so the projections,
    the fine-tuned features and :math:`\boldsymbol{\omega}` get a gradient from every
    batch, equal to the gradient MMRec's dense ``topk`` passes to the selected
    similarities.

    **BMA plug-in** (DREAM, Table 4): with the plug-in :attr:`bma` set (by the registry, or by
    assigning a :class:`~dreamgeo.nn.BMALoss`), the loss adds
    ``bma(ē_u[users], ē_i[pos], m_u[users], ĥ_i[pos])``: behaviour = the user–item
    (ID) line :math:`\bar{\mathbf{e}}`, modal = the learned item–item graph line
    :math:`\hat{\mathbf{h}}_i = \mathbf{h}_i / \|\mathbf{h}_i\|_2`, and for users (who
    have none in LATTICE) its mean over their training items :math:`\mathbf{m}_u`
    (see :meth:`dual_representations`). The split applies as in FREEDOM: the two terms
    summed into :math:`\mathbf{e}_i^*` come from two separate lines, one propagating
    interactions only, the other only the modality-derived item graph. The parts then
    include ``"bma"``.

    Deviations: no :math:`N \times N` matrix is ever formed. MMRec builds the dense
    similarity, takes ``topk`` and normalizes densely; here the top-:math:`k` search of
    :math:`\hat{\mathbf{S}}_m` runs in row blocks (the exact torch engine of
    :func:`~dreamgeo.graph.knn_graph_cosine`, which also forces an item into its own
    list when exact duplicates tie with it) and the graph is kept as an edge list of
    :math:`|\mathcal{M}| N k` edges: same values and gradients, up to the order of ties.
    One deviation can change results: MMRec takes a gradient through the learned graph
    only in the first batch of an epoch and reuses the detached graph for the others, so
    the projections, the features' graph path and :math:`\boldsymbol{\omega}` learn from
    one batch per epoch; here they learn from every batch (which also keeps every
    parameter in every step, as :class:`~torch.nn.parallel.DistributedDataParallel`
    requires); the neighbour lists change once per epoch in both. Smaller ones: a row
    whose learned degree is not positive gets weight 0 (MMRec: NaN); the regularizer
    divides by the actual batch size (MMRec: the configured one, which differs on an
    epoch's last batch); MMRec's learning-rate scheduler (×0.96 every 50 epochs) is not
    applied, the trainer keeps Adam's rate constant.
    Defaults: MMRec's LATTICE configuration (``weight_size: [64, 64]`` gives
    :math:`L = 2`, ``n_layers`` is :math:`L_m`), with :math:`\lambda_{reg} = 10^{-4}`
    from its grid.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features per modality
            ``[N, d_m]``.
        item_graphs (Mapping[str, tuple[Tensor, Tensor]]): Per modality the normalized
            cosine-weighted initial graph :math:`\tilde{\mathbf{S}}_m` as
            ``(edge_index, edge_weight)`` (see :meth:`from_data`).
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        feat_embed_dim (int, optional): :math:`d_f`, the width of the projections.
            (default: :obj:`64`)
        num_layers (int, optional): User–item layers :math:`L`. (default: :obj:`2`)
        num_modal_layers (int, optional): Item–item layers :math:`L_m`.
            (default: :obj:`1`)
        knn_k (int, optional): Neighbours per item :math:`k` of the learned graph.
            (default: :obj:`10`)
        lambda_coeff (float, optional): :math:`\lambda`, the weight of the initial
            graph, in :math:`[0, 1]`. (default: :obj:`0.9`)
        reg_weight (float, optional): :math:`\lambda_{reg}`. (default: :obj:`1e-4`)
        modal_weights (Mapping[str, float], optional): Initial :math:`\alpha_m`,
            positive and summing to 1. (default: :obj:`None`, uniform)
        train_features (bool, optional): Fine-tune the raw features, as MMRec does
            (``False``: frozen, faster with wide features). (default: :obj:`True`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/LATTICE.yaml).
    #: Rebuilt for a graph given to :meth:`forward` (the mean adjacency with self loops
    #: and the user mean operator).
    INTERACTION_OPERATORS = {
        "user_mean": user_mean_operator,
        "adjacency": self_loop_mean_adjacency,
    }

    HPARAMS = HParams(
        [
            ITEM_KNN_K,
            HParam(
                "lambda_coeff",
                float,
                0.9,
                "weight of the initial item-item graph (learned graph: 1 - it)",
                low=0.0,
                high=1.0,
            ),
            HParam("feat_embed_dim", int, 64, "width of the feature projections", low=1),
            HParam(
                "num_layers",
                int,
                2,
                "user-item graph layers (MMRec: len(weight_size))",
                low=1,
                aliases=("n_ui_layers",),
            ),
            HParam(
                "num_modal_layers",
                int,
                1,
                "item-item graph layers",
                low=1,
                aliases=("n_layers",),
            ),
            HParam(
                "reg_weight",
                float,
                1e-4,
                "weight of the L2 term",
                low=0.0,
                grid=(0.0, 1e-5, 1e-4, 1e-3),
            ),
            HParam("train_features", bool, True, "fine-tune the raw features"),
            HParam(
                "lr",
                float,
                1e-3,
                "Adam learning rate",
                low=0.0,
                low_open=True,
                grid=(1e-4, 5e-4, 1e-3, 5e-3),
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
        item_graphs: Mapping[str, tuple[Tensor, Tensor]],
        embedding_dim: int = 64,
        feat_embed_dim: int = 64,
        num_layers: int = 2,
        num_modal_layers: int = 1,
        knn_k: int = ITEM_KNN_K.default,
        lambda_coeff: float = 0.9,
        reg_weight: float = 1e-4,
        modal_weights: Mapping[str, float] | None = None,
        train_features: bool = True,
    ):
        super().__init__(num_users, num_items, edge_index, features, item_graphs)
        _check_arguments(knn_k, lambda_coeff)
        if embedding_dim <= 0 or feat_embed_dim <= 0 or num_layers < 0 or num_modal_layers < 0:
            raise ValueError(
                f"LATTICE: need embedding_dim > 0, feat_embed_dim > 0 and layers >= 0, got "
                f"{embedding_dim}, {feat_embed_dim}, {num_layers} and {num_modal_layers}"
            )
        if not features:
            raise ValueError("LATTICE needs the features of at least one modality")
        modalities = list(features)
        if set(item_graphs) != set(modalities):
            raise ValueError(
                f"LATTICE: item_graphs must be given for exactly the modalities "
                f"{modalities}, got {sorted(item_graphs)}"
            )
        initial = check_modality_weights(
            modal_weights or {m: 1.0 / len(modalities) for m in modalities},
            modalities,
            "LATTICE",
        )
        if min(initial.values()) <= 0:
            raise ValueError(f"LATTICE: initial modality weights must be > 0, got {initial}")
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_modal_layers = num_modal_layers
        self.knn_k = min(knn_k, num_items)
        self.lambda_coeff = lambda_coeff

        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self.adjacency = self_loop_mean_adjacency(edge_index, num_users, num_items)
        self.user_mean = user_mean_operator(edge_index, num_users, num_items)
        self.item_graphs = torch.nn.ModuleDict(
            {
                m: SparseOperator(index[0], index[1], weight, (num_items, num_items))
                for m, (index, weight) in item_graphs.items()
            }
        )
        self.features = ItemFeatures(features, trainable=train_features)
        self.projections = torch.nn.ModuleDict(
            {m: torch.nn.Linear(d, feat_embed_dim) for m, d in self.features.dims().items()}
        )
        self._initial_logits = [math.log(initial[m]) for m in modalities]
        self.modal_logits = torch.nn.Parameter(torch.tensor(self._initial_logits))
        self.bpr = BPRLoss(reg_weight)
        # neighbour lists of the learned graphs (no gradient), refreshed once per epoch
        self._neighbours: dict[str, Tensor] | None = None
        self._triples_since_search = 0
        self._epoch_triples = int(edge_index.size(1))
        self.reset_parameters()

    @classmethod
    def from_data(
        cls,
        data: HeteroData,
        knn_k: int = ITEM_KNN_K.default,
        knn_mode: str = "exact",
        knn_backend: str = "faiss",
        image_weight: float | None = None,
        **kwargs,
    ) -> LATTICE:
        r"""Builds the model on ``data`` with the cosine-weighted top-:obj:`knn_k`
        initial item graphs (:func:`~dreamgeo.models.modal_inputs.item_knn_graph`).

        Args:
            data (HeteroData): The dataset.
            knn_k (int, optional): Neighbours per item :math:`k` of both graphs.
                (default: :obj:`10`)
            knn_mode (str, optional): ``"exact"`` or ``"ivf"`` search of the initial
                graphs. (default: :obj:`"exact"`)
            knn_backend (str, optional): ``"faiss"`` or ``"torch"`` top-:math:`k` engine
                (the one switch every graph-building model takes; the default keeps the
                graphs of this model's published numbers: on duplicate features the two
                engines break ties differently). (default: :obj:`"faiss"`)
            image_weight (float, optional): The image modality's initial weight
                :math:`\alpha_V`, text getting the rest (see
                :func:`~dreamgeo.models.modal_inputs.image_text_weights`); replaces
                :obj:`modal_weights`. (default: :obj:`None`, uniform as in MMRec)
            **kwargs: The constructor's other arguments.
        """
        _check_arguments(knn_k, kwargs.get("lambda_coeff", 0.9))
        features = item_features(data, "LATTICE")
        if image_weight is not None:
            kwargs["modal_weights"] = image_text_weights(image_weight, list(features))
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
            knn_k=knn_k,
            **kwargs,
        )

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.user_embedding.weight)
        torch.nn.init.xavier_uniform_(self.item_embedding.weight)
        for linear in self.projections.values():
            linear.reset_parameters()
        with torch.no_grad():
            self.modal_logits.copy_(torch.tensor(self._initial_logits))
        self._neighbours = None

    # ------------------------------------------------------------------ item graph
    def modality_weights(self) -> Tensor:
        r"""The modality weights :math:`\boldsymbol{\alpha}`, ``[|M|]``, in the order of
        ``self.features.modalities``."""
        return torch.softmax(self.modal_logits, dim=0)

    def projected(self, modality: str) -> Tensor:
        r"""The L2-normalized projection :math:`\mathbf{Z}_m / \|\mathbf{Z}_m\|` of a
        modality's features, ``[N, d_f]``."""
        return F.normalize(self.projections[modality](self.features[modality]), dim=1)

    @torch.no_grad()
    def search_neighbours(self) -> dict[str, Tensor]:
        r"""Searches (without gradient, in row blocks) every item's :math:`k` nearest
        items by cosine of the projected features, stores them as the neighbour lists
        of the learned graphs and restarts the epoch count; per modality edges
        ``[2, N k]`` (row 0 the item, row 1 its neighbour)."""
        neighbours = {}
        for m in self.features.modalities:
            z = self.projected(m)
            edges = knn_graph_cosine(z, self.knn_k, backend="torch", device=z.device)
            neighbours[m] = edges.to(z.device)
        self._neighbours = neighbours
        self._triples_since_search = 0
        return neighbours

    def _current_neighbours(self, batch_size: int | None = None) -> dict[str, Tensor]:
        r"""The neighbour lists to use: searched anew when ranking (eval mode), at the
        first training call and once per epoch of triples (when :obj:`batch_size`
        counts a training batch)."""
        if (
            not self.training
            or self._neighbours is None
            or next(iter(self._neighbours.values())).device != self.modal_logits.device
            or (batch_size is not None and self._triples_since_search >= self._epoch_triples)
        ):
            self.search_neighbours()
        if batch_size is not None:
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            self._triples_since_search += batch_size * world
        return self._neighbours

    def learned_graph(
        self, neighbours: Mapping[str, Tensor], weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""The normalized learned graph :math:`\mathbf{D}^{-1/2}(\sum_m \alpha_m
        \hat{\mathbf{S}}_m)\mathbf{D}^{-1/2}` on the given neighbour lists as edges
        ``[2, E]`` and weights ``[E]`` (with gradient; an edge found in several
        modalities appears once per modality). :obj:`weights` are :math:`\boldsymbol
        {\alpha}` (default: :meth:`modality_weights`).
        """
        if weights is None:
            weights = self.modality_weights()
        edges, values = [], []
        for j, m in enumerate(self.features.modalities):
            z = self.projected(m)
            row, col = neighbours[m]
            edges.append(neighbours[m])
            values.append(weights[j] * (z[row] * z[col]).sum(-1))
        edge_index, value = torch.cat(edges, dim=1), torch.cat(values)
        row, col = edge_index
        degree = value.new_zeros(self.num_items).index_add(0, row, value)
        positive = degree > 0
        inv_sqrt = torch.where(positive, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree))
        return edge_index, inv_sqrt[row] * value * inv_sqrt[col]

    def item_modal(self, neighbours: Mapping[str, Tensor]) -> Tensor:
        r"""The item–item graph line :math:`\hat{\mathbf{H}} = \mathbf{H} /
        \|\mathbf{H}\|` with :math:`\mathbf{H} = \mathbf{S}^{L_m}\mathbf{E}_i`,
        ``[N, d]``."""
        weights = self.modality_weights()
        edge_index, value = self.learned_graph(neighbours, weights)
        row, col = edge_index
        item = self.item_embedding.weight
        lam = self.lambda_coeff
        for _ in range(self.num_modal_layers):
            learned = torch.zeros_like(item).index_add(0, row, value.unsqueeze(1) * item[col])
            initial = sum(
                weights[j] * self.item_graphs[m](item)
                for j, m in enumerate(self.features.modalities)
            )
            item = lam * initial + (1.0 - lam) * learned
        return F.normalize(item, dim=1)

    # ------------------------------------------------------------------ user-item graph
    def behavior(self) -> tuple[Tensor, Tensor]:
        r"""The user–item line :math:`(\bar{\mathbf{E}}_u, \bar{\mathbf{E}}_i)`: users
        ``[M, d]``, items ``[N, d]``."""
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        total = x
        for _ in range(self.num_layers):
            x = self.adjacency(x)
            total = total + x
        total = total / (self.num_layers + 1)
        return total[: self.num_users], total[self.num_users :]

    def dual_representations(self) -> DualRepresentation:
        r"""Behaviour :math:`(\bar{\mathbf{E}}_u, \bar{\mathbf{E}}_i)` and modal
        :math:`(\mathbf{R}_{mean}\hat{\mathbf{H}}, \hat{\mathbf{H}})`."""
        item_modal = self.item_modal(self._current_neighbours())
        return DualRepresentation(*self.behavior(), self.user_mean(item_modal), item_modal)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        user, item = self.behavior()
        return user, item + self.item_modal(self._current_neighbours())

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        item_modal = self.item_modal(self._current_neighbours(users.numel()))
        user_graph, item_graph = self.behavior()
        item_final = item_graph + item_modal
        user, pos, neg = user_graph[users], item_final[pos_items], item_final[neg_items]
        bpr = self.bpr.ranking((user * pos).sum(-1), (user * neg).sum(-1))
        reg = self.bpr.regularization(user, pos, neg)
        total = bpr + self.bpr.reg_weight * reg
        parts = {"bpr": bpr.detach(), "reg": reg.detach()}

        def batch_dual() -> DualRepresentation:  # only the plug-in needs it
            user_modal = self.user_mean(item_modal)[users]
            return DualRepresentation(
                user, item_graph[pos_items], user_modal, item_modal[pos_items]
            )

        return total, parts, batch_dual


def _check_arguments(knn_k: int, lambda_coeff: float) -> None:
    if isinstance(knn_k, bool) or not isinstance(knn_k, numbers.Integral) or knn_k < 1:
        raise ValueError(f"LATTICE: knn_k must be an integer >= 1, got {knn_k!r}")
    if not 0.0 <= lambda_coeff <= 1.0:
        raise ValueError(f"LATTICE: lambda_coeff must be in [0, 1], got {lambda_coeff}")
