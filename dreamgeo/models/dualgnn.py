r"""DualGNN: a user co-occurrence graph on top of per-modality user–item GCNs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.utils import softmax

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.hparams import TRAIN, HParam, HParams
from dreamgeo.models.base import Objective, Recommender
from dreamgeo.models.modal_inputs import item_features, propagate_layers
from dreamgeo.models.registry import register_model
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv
from dreamgeo.nn.sparse import SparseOperator

__all__ = ["DualGNN", "user_cooccurrence_graph"]


def _csr(row: Tensor, col: Tensor, size: tuple[int, int]) -> Tensor:
    value = torch.ones(row.numel())
    return torch.sparse_coo_tensor(torch.stack([row, col]), value, size).coalesce().to_sparse_csr()


def user_cooccurrence_graph(
    edge_index: Tensor, num_users: int, num_items: int, k: int, chunk_size: int = 4096
) -> tuple[Tensor, Tensor]:
    r"""The top-:math:`k` user co-occurrence graph of DualGNN: user :math:`u`'s
    neighbours are the :math:`k` other users :math:`v` sharing the most training items,
    :math:`c_{uv} = |\mathcal{I}_u \cap \mathcal{I}_v| > 0` (ties broken by user id).

    :math:`\mathbf{C} = \mathbf{R}\mathbf{R}^\top` is computed as sparse products one
    chunk of users at a time and the top-:math:`k` of every row is selected by one sort,
    so memory is bounded by the non-zeros of a chunk, never :math:`M \times M`.

    Args:
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        k (int): Neighbours kept per user (fewer when it has fewer co-users).
        chunk_size (int, optional): Users per sparse product. (default: :obj:`4096`)

    Shapes:
        - **output:** ``edge_index`` ``[2, E']`` (row 0 the user, row 1 its neighbour,
          grouped by user) and counts :math:`c_{uv}` ``[E']``
    """
    if k <= 0:
        raise ValueError(f"user_cooccurrence_graph: k must be > 0, got {k}")
    user, item = edge_index.long().cpu()
    pair = torch.unique(user * num_items + item)  # distinct pairs, sorted by user
    user, item = pair // num_items, pair % num_items
    interactions_t = _csr(item, user, (num_items, num_users))
    crow = torch.zeros(num_users + 1, dtype=torch.long)
    crow[1:] = torch.bincount(user, minlength=num_users).cumsum(0)
    rows, cols, counts = [], [], []
    for start in range(0, num_users, chunk_size):
        stop = min(start + chunk_size, num_users)
        first, last = int(crow[start]), int(crow[stop])
        chunk = torch.sparse_csr_tensor(
            crow[start : stop + 1] - first,
            item[first:last],
            torch.ones(last - first),
            size=(stop - start, num_items),
        )
        shared = (chunk @ interactions_t).to_sparse_coo().coalesce()
        row, col = shared.indices()
        row = row + start
        value = shared.values()
        keep = row != col
        row, col, value = row[keep], col[keep], value[keep]
        # rows ascending, counts descending within a row, then column ascending
        order = torch.argsort(col, stable=True)
        order = order[torch.argsort(-value[order], stable=True)]
        order = order[torch.argsort(row[order], stable=True)]
        row, col, value = row[order], col[order], value[order]
        row_start = torch.zeros(stop - start + 1, dtype=torch.long)
        row_start[1:] = torch.bincount(row - start, minlength=stop - start).cumsum(0)
        rank = torch.arange(row.numel()) - row_start[row - start]
        top = rank < k
        rows.append(row[top])
        cols.append(col[top])
        counts.append(value[top])
    return torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(counts)


@register_model(
    "dualgnn",
    position=40,
    label="DualGNN",
    tables=("table2",),
)
class DualGNN(Recommender):
    r"""DualGNN from `"DualGNN: Dual Graph Neural Network for Multimedia
    Recommendation" <https://doi.org/10.1109/TMM.2021.3138298>`_ (Wang et al., IEEE TMM
    2021), as in MMRec.

    **Single-modal representations.** Per modality :math:`m` users have a preference
    table :math:`\mathbf{P}_m` and items the projected features
    :math:`\mathrm{MLP}_m(\mathbf{x}_i^m) = \mathbf{W}_2\,\mathrm{LeakyReLU}
    (\mathbf{W}_1\mathbf{x}_i^m + \mathbf{b}_1) + \mathbf{b}_2`; with row-normalized
    :math:`\mathbf{X}_m = \mathrm{norm}([\mathbf{P}_m; \mathrm{MLP}_m(\mathbf{X}_m^{raw})])`
    and two propagations over :math:`\tilde{\mathbf{A}} = \mathbf{D}^{-1/2}\mathbf{A}
    \mathbf{D}^{-1/2}`:

    .. math::
        \hat{\mathbf{X}}_m = \mathbf{X}_m + \tilde{\mathbf{A}}\mathbf{X}_m +
        \tilde{\mathbf{A}}^2\mathbf{X}_m

    **Fusion and user co-occurrence graph.** Items sum their modalities,
    :math:`\mathbf{e}_i = \sum_m \hat{\mathbf{x}}_{i}^m`; users weight them with learned
    per-user weights :math:`\mathbf{h}_u = \sum_m w_{u,m}\hat{\mathbf{x}}_{u}^m` and add
    their co-occurrence neighbours (:func:`user_cooccurrence_graph`, top :math:`k`),
    weighted by a softmax over the co-occurrence counts:

    .. math::
        \mathbf{e}_u = \mathbf{h}_u + \sum_{v \in \mathcal{N}_k(u)}
        \frac{\exp c_{uv}}{\sum_{v' \in \mathcal{N}_k(u)} \exp c_{uv'}}\,\mathbf{h}_v

    **Objective** (MMRec, with :math:`\log_2`):

    .. math::
        \mathcal{L} = -\frac{1}{B}\sum \log_2\sigma(\hat{y}_{ui^+} - \hat{y}_{ui^-}) +
        \lambda\Big(\sum_m \overline{\mathbf{P}_m[u]^2} + \overline{\mathbf{W}^2}\Big)

    with :math:`\overline{\,\cdot\,}` the mean over entries (of the batch's preference
    rows and of all user weights).

    DualGNN has no ID embedding of items (they are their features), so it has no
    behaviour/modal split for :class:`~dreamgeo.nn.BMALoss` and takes no ``bma``.

    Deviations: the co-occurrence graph is built in-process, vectorized, from the
    training interactions (MMRec precomputes it with a script); a user with fewer than
    :math:`k` co-users keeps just those (MMRec pads the list with random repeats, which
    changes the softmax weights); MMRec's per-item modality weights, which only enter its
    regularizer, and its item-dropping masks, which its forward never uses, are left
    out; users weight the modalities as the paper says (MMRec's in-place ``+=`` makes
    its first modality's user term the sum of both modalities). Defaults: MMRec's
    (:math:`k = 40`, 2 layers, 256 hidden units); :math:`\lambda = 10^{-3}` is the middle
    of MMRec's grid :math:`\{0.1, \dots, 10^{-5}\}`.

    Args:
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        edge_index (torch.Tensor): Training interactions ``[2, E]`` (row 0 users).
        features (Mapping[str, torch.Tensor]): Raw item features per modality
            ``[N, d_m]`` (frozen).
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        num_layers (int, optional): Propagations over :math:`\tilde{\mathbf{A}}`.
            (default: :obj:`2`)
        knn_k (int, optional): Co-occurrence neighbours :math:`k`. (default: :obj:`40`)
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`1e-3`)

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]``
    """

    #: Declared hyper-parameters; grids from MMRec
    #: (github.com/enoche/MMRec, src/configs/model/DualGNN.yaml).
    HPARAMS = HParams(
        [
            HParam("num_layers", int, 2, "graph layers", low=1, aliases=("n_layers",)),
            HParam("knn_k", int, 40, "neighbours per user in the user co-occurrence graph", low=1),
            HParam(
                "reg_weight",
                float,
                1e-3,
                "weight of the L2 term",
                low=0.0,
                grid=(0.1, 0.01, 0.001, 0.0001, 0.00001),
            ),
            HParam(
                "lr",
                float,
                1e-3,
                "Adam learning rate",
                low=0.0,
                low_open=True,
                grid=(0.1, 0.01, 0.001, 0.0001, 0.00001),
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
        num_layers: int = 2,
        knn_k: int = 40,
        reg_weight: float = 1e-3,
    ):
        super().__init__(num_users, num_items, edge_index, features)
        if embedding_dim <= 0 or num_layers < 0:
            raise ValueError(
                f"DualGNN: need embedding_dim > 0 and num_layers >= 0, got {embedding_dim} "
                f"and {num_layers}"
            )
        if not features:
            raise ValueError("DualGNN needs the features of at least one modality")
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.modalities = list(features)
        for m, x in features.items():
            self.register_buffer(f"features_{m}", x.float(), persistent=False)
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.conv = BipartiteLGConv(cached=True)

        graph, counts = user_cooccurrence_graph(edge_index, num_users, num_items, knn_k)
        weight = softmax(counts, graph[0], num_nodes=num_users)
        self.user_graph = SparseOperator(graph[0], graph[1], weight, (num_users, num_users))

        d = embedding_dim
        self.preferences = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.empty(num_users, d)) for m in self.modalities}
        )
        self.encoders = torch.nn.ModuleDict(
            {
                m: torch.nn.Sequential(
                    torch.nn.Linear(x.size(1), 4 * d),
                    torch.nn.LeakyReLU(),
                    torch.nn.Linear(4 * d, d),
                )
                for m, x in features.items()
            }
        )
        self.user_modality_weight = torch.nn.Parameter(torch.empty(num_users, len(features)))
        self.bpr = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> DualGNN:
        r"""Builds the model from the training graph and item features of ``data``."""
        return cls(
            data[USER].num_nodes,
            data[ITEM].num_nodes,
            data[INTERACTS].edge_index,
            item_features(data, "DualGNN"),
            **kwargs,
        )

    def reset_parameters(self):
        for preference in self.preferences.values():
            torch.nn.init.xavier_normal_(preference)
        for encoder in self.encoders.values():
            for layer in encoder:
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        with torch.no_grad():  # MMRec: Xavier-normal draws, softmaxed over the modalities
            weight = torch.nn.init.xavier_normal_(torch.empty_like(self.user_modality_weight))
            self.user_modality_weight.copy_(torch.softmax(weight, dim=1))
        self.conv.reset_parameters()

    def modality(self, modality: str) -> tuple[Tensor, Tensor]:
        r""":math:`\hat{\mathbf{X}}_m` of users ``[M, d]`` and items ``[N, d]``."""
        item = self.encoders[modality](getattr(self, f"features_{modality}"))
        user = F.normalize(self.preferences[modality])
        item = F.normalize(item)
        return propagate_layers(self.conv, user, item, self.edge_index, self.num_layers, mean=False)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if edge_index is not None:  # new interactions: no retraining, nothing cached
            with self.interaction_graph(edge_index):
                return self.forward()
        user = item = 0.0
        for index, m in enumerate(self.modalities):
            user_m, item_m = self.modality(m)
            user = user + self.user_modality_weight[:, index : index + 1] * user_m
            item = item + item_m
        return user + self.user_graph(user), item

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        user_emb, item_emb = self.forward()
        user = user_emb[users]
        pos_score = (user * item_emb[pos_items]).sum(-1)
        neg_score = (user * item_emb[neg_items]).sum(-1)
        bpr = self.bpr.ranking(pos_score, neg_score) / math.log(2.0)
        reg = sum(self.preferences[m][users].pow(2).mean() for m in self.modalities)
        reg = reg + self.user_modality_weight.pow(2).mean()
        total = bpr + self.bpr.reg_weight * reg
        return total, {"bpr": bpr.detach(), "reg": reg.detach()}, None
