r"""The interface every dreamgeo recommender follows, so that one trainer, one sampler
and one evaluator serve them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.checks import check_count, check_edge_index, check_features, check_index
from dreamgeo.datasets.hetero_input import canonical_hetero
from dreamgeo.datasets.schema import INTERACTS
from dreamgeo.graph.seen_items import SeenItems
from dreamgeo.nn.bma_loss import BMALoss
from dreamgeo.nn.conv import BipartiteLGConv
from dreamgeo.nn.sparse import user_mean_operator

__all__ = ["Recommender", "DualRepresentation", "Objective"]


class DualRepresentation(NamedTuple):
    r"""Behaviour (:math:`\bar{\mathbf{E}}_B`) and modal (:math:`\bar{\mathbf{E}}_M`)
    representations of all users ``[M, d]`` and items ``[N, d]`` (DREAM, Eq. 3 and 7),
    as every model with a behaviour/modal split gives them from
    ``dual_representations()``."""

    user_behavior: Tensor
    item_behavior: Tensor
    user_modal: Tensor
    item_modal: Tensor


#: What :meth:`Recommender.objective` returns: the total loss, its parts by name, and the
#: batch's dual rows (or a function computing them), or :obj:`None`.
Objective = tuple[
    Tensor, dict[str, Tensor], DualRepresentation | Callable[[], DualRepresentation] | None
]


class Recommender(torch.nn.Module, ABC):
    r"""Base class of dreamgeo's recommenders.

    A subclass computes final user and item representations with :meth:`forward` (scores
    are their dot products) and its training objective for a batch of BPR triples with
    :meth:`loss`, which returns the total loss and its named, unweighted-or-weighted parts
    for logging (each part a scalar tensor).

    The constructor checks what a subclass hands it (counts, interaction ids, feature
    shapes and values, item–item graphs) in Python, before any native sparse or search
    code sees them: an id outside its range is a :class:`ValueError`, never a crash.

    Args:
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.
        edge_index (torch.Tensor, optional): Training interactions ``[2, E]`` (row 0
            users), checked when given. (default: :obj:`None`)
        features (Mapping[str, torch.Tensor], optional): Raw item features per modality
            ``[N, d_m]``, checked when given. (default: :obj:`None`)
        item_graphs (Mapping[str, tuple[Tensor, Tensor]], optional): Item–item graphs
            per modality ``(edge_index, edge_weight)``, checked when given.
            (default: :obj:`None`)
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor | None = None,
        features: Mapping[str, Tensor] | Tensor | None = None,
        item_graphs: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    ):
        super().__init__()
        owner = type(self).__name__
        self.num_users = check_count(num_users, "num_users", owner)
        self.num_items = check_count(num_items, "num_items", owner)
        #: The Behaviour-Modal Alignment plug-in added to :meth:`loss`, if any.
        self.bma: BMALoss | None = None
        #: The interactions :meth:`recommend` excludes by default (the training graph).
        self.seen_edge_index: Tensor | None = None
        self._seen_items: SeenItems | None = None
        if edge_index is not None:
            self.seen_edge_index = check_edge_index(
                edge_index, self.num_users, self.num_items, "edge_index", owner
            )
        if isinstance(features, Tensor):
            features = {"features": features}
        for m, x in (features or {}).items():
            check_features(x, self.num_items, f"features[{m!r}]", owner)
        for m, (graph_index, graph_weight) in (item_graphs or {}).items():
            name = f"item_graphs[{m!r}]"
            check_edge_index(graph_index, self.num_items, self.num_items, name, owner)
            if graph_weight.numel() != graph_index.size(1):
                raise ValueError(
                    f"{owner}: {name} has {graph_index.size(1)} edges but "
                    f"{graph_weight.numel()} weights"
                )

    @classmethod
    def from_hetero(
        cls,
        data: HeteroData,
        edge_type: tuple[str, str, str] | None = None,
        modalities: Mapping[str, str] | Sequence[str] | None = None,
        **hyper_parameters,
    ) -> Recommender:
        r"""The model built on any :class:`~torch_geometric.data.HeteroData`, PyG's way:
        name the interaction edge type and each modality's feature attribute; node
        counts are inferred, every id and feature is checked, and :obj:`data` is never
        modified (see :func:`~dreamgeo.datasets.canonical_hetero`).

        Args:
            data (HeteroData): The graph, e.g. with node types ``"customer"`` and
                ``"product"``.
            edge_type (tuple[str, str, str], optional): The user-to-item interactions,
                e.g. ``("customer", "buys", "product")``. (default: :obj:`None`:
                ``("user", "interacts", "item")`` or the only bipartite edge type)
            modalities (Mapping[str, str] or Sequence[str], optional): Modality name to
                its item feature attribute, e.g. ``{"image": "x_img", "text":
                "x_txt"}``. (default: :obj:`None`: every ``x_<name>`` attribute)
            **hyper_parameters: The model's hyper-parameters (its ``from_data``
                arguments).

        Example:
            >>> model = DREAM.from_hetero(  # doctest: +SKIP
            ...     data, edge_type=("customer", "buys", "product"),
            ...     modalities={"image": "x_img", "text": "x_txt"}, embedding_dim=64)
        """
        canonical = canonical_hetero(data, edge_type, modalities, owner=cls.__name__)
        model = cls.from_data(canonical, **hyper_parameters)
        if model.seen_edge_index is None:
            model.seen_edge_index = canonical[INTERACTS].edge_index
        return model

    #: The model's attributes derived from the interaction graph, rebuilt by
    #: :meth:`interaction_graph` for a graph given at call time: attribute name to a
    #: builder ``(edge_index, num_users, num_items) -> module``.
    INTERACTION_OPERATORS: dict[str, Callable[[Tensor, int, int], torch.nn.Module]] = {
        "user_mean": user_mean_operator,
    }

    @contextmanager
    def interaction_graph(self, edge_index: Tensor) -> Iterator[Tensor]:
        r"""A scope in which the model computes with the interactions :obj:`edge_index`
        instead of its training graph, with no retraining and nothing cached: its
        ``edge_index`` buffer, its LightGCN layer ``conv`` (replaced by an uncached
        one) and every attribute of :attr:`INTERACTION_OPERATORS` (e.g. the user mean
        operator) are swapped for the scope and restored after it. Parameters and
        graphs built from content (item–item k-NN graphs) stay as trained. What
        ``forward(edge_index)`` of every model uses.

        Args:
            edge_index (torch.Tensor): User–item interactions ``[2, E]``, checked.
        """
        owner = f"{type(self).__name__}.forward"
        edge_index = check_edge_index(
            edge_index, self.num_users, self.num_items, "edge_index", owner
        )
        device = next((b.device for b in self.buffers()), torch.device("cpu"))
        edge_index = edge_index.to(device)
        swaps: dict[str, object] = {}
        if isinstance(getattr(self, "conv", None), BipartiteLGConv):
            swaps["conv"] = BipartiteLGConv(cached=False)
        if "edge_index" in self._buffers:
            swaps["edge_index"] = edge_index
        for name, build in self.INTERACTION_OPERATORS.items():
            if getattr(self, name, None) is not None:
                swaps[name] = build(edge_index, self.num_users, self.num_items).to(device)
        saved = {name: getattr(self, name) for name in swaps}
        try:
            for name, value in swaps.items():
                setattr(self, name, value)
            yield edge_index
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    @abstractmethod
    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Final user ``[M, d]`` and item ``[N, d]`` representations (scores are their
        inner products), computed with the training graph, or with the interactions
        :obj:`edge_index` ``[2, E]`` when given (e.g. the training graph plus new clicks;
        see :meth:`interaction_graph`)."""

    @torch.no_grad()
    def recommend(
        self,
        users: Tensor | None = None,
        k: int = 20,
        exclude_seen: bool = True,
        edge_index: Tensor | None = None,
        return_scores: bool = False,
        batch_size: int = 4096,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""The top-:math:`k` items of :obj:`users` by score :math:`\mathbf{e}_u^\top
        \mathbf{e}_i`, best first, like PyG's
        :meth:`~torch_geometric.nn.models.LightGCN.recommend`. Users are scored in
        batches of :obj:`batch_size`, so memory is :math:`O(\text{batch\_size} \cdot N)`.

        Args:
            users (torch.Tensor, optional): User ids ``[U]``. (default: :obj:`None`,
                every user)
            k (int, optional): Items per user. (default: :obj:`20`)
            exclude_seen (bool, optional): Never recommend an item the user has
                interacted with (in :obj:`edge_index` when given, else in the training
                graph). (default: :obj:`True`)
            edge_index (torch.Tensor, optional): Interactions ``[2, E]`` to score with
                instead of the training graph (e.g. with a user's new clicks): models
                whose :meth:`forward` takes a graph propagate over it, no retraining.
                (default: :obj:`None`)
            return_scores (bool, optional): Also return the scores ``[U, k]``.
                (default: :obj:`False`)
            batch_size (int, optional): Users scored at once. (default: :obj:`4096`)

        Shapes:
            - **output:** item ids ``[U, k]`` (and scores ``[U, k]``)
        """
        owner = f"{type(self).__name__}.recommend"
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= self.num_items:
            raise ValueError(f"{owner}: k must be an int in [1, {self.num_items}], got {k!r}")
        users = (
            torch.arange(self.num_users)
            if users is None
            else check_index(users, self.num_users, "users", owner)
        )
        if edge_index is not None:
            edge_index = check_edge_index(
                edge_index, self.num_users, self.num_items, "edge_index", owner
            )
            was_training = self.training
            self.eval()
            user_emb, item_emb = self(edge_index=edge_index)
            self.train(was_training)
        else:
            user_emb, item_emb = self.embeddings()
        seen = self._seen(edge_index) if exclude_seen else None
        tops, scores = [], []
        for batch in users.split(batch_size):
            block = user_emb[batch.to(user_emb.device)] @ item_emb.t()
            if seen is not None:
                seen.mask_(batch, block)
            top = block.topk(k, dim=1, sorted=True)
            tops.append(top.indices)
            scores.append(top.values)
        top_items = torch.cat(tops) if tops else torch.empty(0, k, dtype=torch.long)
        if return_scores:
            return top_items, torch.cat(scores) if scores else torch.empty(0, k)
        return top_items

    def _seen(self, edge_index: Tensor | None) -> SeenItems:
        if edge_index is not None:
            return SeenItems(edge_index, self.num_users, self.num_items)
        if self.seen_edge_index is None:
            raise ValueError(
                f"{type(self).__name__}.recommend: the model knows no training graph to "
                "exclude; pass edge_index or exclude_seen=False"
            )
        if self._seen_items is None:
            self._seen_items = SeenItems(self.seen_edge_index, self.num_users, self.num_items)
        return self._seen_items

    @abstractmethod
    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        r"""The model's own training loss of a batch of triples :math:`(u, i^+, i^-)`,
        each ``[B]``: the total, its parts by name (scalars, for logging), and the
        batch's :class:`DualRepresentation` rows of its :math:`(u, i^+)` pairs (or a
        function computing them, called only when the BMA plug-in is on), or
        :obj:`None` for a model without a behaviour/modal split."""

    def loss(
        self, users: Tensor, pos_items: Tensor, neg_items: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        r"""Training loss of a batch of triples and its parts by name: :meth:`objective`,
        plus DREAM's Behaviour-Modal Alignment (:class:`~dreamgeo.nn.BMALoss`, Eq. 9-11
        of Zhang et al., 2024) on the batch's dual rows when the plug-in :attr:`bma` is
        set (by :func:`~dreamgeo.models.build_model` for the models registered with
        ``bma_plugin=True``, or by assigning a :class:`~dreamgeo.nn.BMALoss`):

        .. math::
            \mathcal{L} = \mathcal{L}_{model} + \alpha \mathcal{L}_{Intra}
            + \beta \mathcal{L}_{Inter}

        Its value is logged as ``parts["bma"]``. No model wires BMA by hand."""
        total, parts, batch_dual = self.objective(users, pos_items, neg_items)
        if self.bma is not None and batch_dual is not None:
            rows = batch_dual() if callable(batch_dual) else batch_dual
            value = self.bma(*rows, users, pos_items)
            parts["bma"] = value.detach()
            total = total + value
        return total, parts

    @torch.no_grad()
    def embeddings(self) -> tuple[Tensor, Tensor]:
        r"""The representations used for ranking (no gradient)."""
        return self.forward()

    def start_epoch(self, epoch: int) -> None:
        r"""Called by :class:`~dreamgeo.train.Trainer` before training epoch
        :obj:`epoch` (from 1; also after a resume), for objectives that change with the
        epoch; sets the BMA plug-in's decay factor (see :class:`~dreamgeo.nn.BMALoss`)."""
        if self.bma is not None:
            self.bma.start_epoch(epoch)
