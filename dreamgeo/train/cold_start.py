r"""Cold-start items: hold out a share of the catalogue with all its interactions, train
on the rest, then score the held-out items from their features alone.

MMRec and RecBole have no such protocol; this one ranks, for every user with at least
one interaction with a held-out item (in any of the original splits), the held-out items
only (the user has seen none of them in training), with the metrics of
:class:`~dreamgeo.train.FullRankEvaluator`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key, modality_names
from dreamgeo.graph.knn_query import cosine_top_k
from dreamgeo.nn.sparse import user_mean_operator
from dreamgeo.train.evaluate import FullRankEvaluator

__all__ = [
    "ColdItems",
    "hold_out_items",
    "content_fold_in",
    "feature_similarity_embeddings",
    "evaluate_cold",
]

SPLIT_KEYS = ("edge_index", "val_edge_index", "test_edge_index")


@dataclass
class ColdItems:
    r"""The items held out by :func:`hold_out_items`.

    Args:
        items (torch.Tensor): Their ids in the full data ``[K]``.
        warm_items (torch.Tensor): The full data's id of every item the model keeps
            ``[N_warm]`` (its item :math:`j` is ``warm_items[j]``).
        features (dict[str, torch.Tensor]): Their raw features per modality
            ``[K, d_m]``.
        edge_index (torch.Tensor): Every interaction with them, of every split, as
            ``(user, position in items)`` ``[2, E_cold]``.
    """

    items: Tensor
    warm_items: Tensor
    features: dict[str, Tensor]
    edge_index: Tensor


def hold_out_items(
    data: HeteroData, fraction: float, seed: int = 0
) -> tuple[HeteroData, ColdItems]:
    r"""A :obj:`fraction` of the items, drawn uniformly with :obj:`seed`, removed from
    ``data`` with all their interactions (train, valid and test): the returned data
    holds the other items renumbered :math:`0..N_{warm}-1` in their order, every user
    (users left without training items keep their id and rank nothing in valid/test),
    and the features of the kept items.

    Args:
        data (HeteroData): The dataset in dreamgeo's schema.
        fraction (float): Share of items held out, in :math:`(0, 1)`.
        seed (int, optional): Seed of the draw. (default: :obj:`0`)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold_out_items: fraction must be in (0, 1), got {fraction}")
    num_items = data[ITEM].num_nodes
    num_cold = int(round(fraction * num_items))
    if not 0 < num_cold < num_items:
        raise ValueError(
            f"hold_out_items: {fraction} of {num_items} items is {num_cold}; nothing to hold "
            "out or nothing left"
        )
    generator = torch.Generator().manual_seed(seed)
    cold = torch.randperm(num_items, generator=generator)[:num_cold].sort().values
    is_cold = torch.zeros(num_items, dtype=torch.bool)
    is_cold[cold] = True
    warm = (~is_cold).nonzero().view(-1)
    new_id = torch.full((num_items,), -1, dtype=torch.long)
    new_id[warm] = torch.arange(warm.numel())
    cold_position = torch.full((num_items,), -1, dtype=torch.long)
    cold_position[cold] = torch.arange(num_cold)

    out = HeteroData()
    out[USER].num_nodes = data[USER].num_nodes
    out[ITEM].num_nodes = int(warm.numel())
    store, cold_edges = data[INTERACTS], []
    for key in SPLIT_KEYS:
        if key not in store:
            continue
        user, item = store[key].long()
        hit = is_cold[item]
        out[INTERACTS][key] = torch.stack([user[~hit], new_id[item[~hit]]])
        cold_edges.append(torch.stack([user[hit], cold_position[item[hit]]]))
    features = {}
    for m in modality_names(data):
        x = data[ITEM][feature_key(m)]
        out[ITEM][feature_key(m)] = x[warm]
        features[m] = x[cold]
    return out, ColdItems(cold, warm, features, torch.cat(cold_edges, dim=1))


def content_fold_in(
    item_emb: Tensor,
    warm_features: Mapping[str, Tensor],
    cold_features: Mapping[str, Tensor],
    weights: Mapping[str, float],
    k: int = 10,
) -> Tensor:
    r"""Representations of new items for any model: per modality the mean of the final
    rows of the new item's :math:`k` nearest trained items by raw-feature cosine,
    averaged over modalities with :obj:`weights` (the fall-back of models without a
    feature path of their own).

    Args:
        item_emb (torch.Tensor): Trained items' scoring rows ``[N, d]``.
        warm_features (Mapping[str, torch.Tensor]): Their raw features ``[N, d_m]``.
        cold_features (Mapping[str, torch.Tensor]): The new items' ``[K, d_m]``.
        weights (Mapping[str, float]): Weight of each modality (summing to 1).
        k (int, optional): Neighbours per new item. (default: :obj:`10`)

    Shapes:
        - **output:** ``[K, d]``
    """
    k = min(k, item_emb.size(0))
    return sum(
        w * item_emb[cosine_top_k(cold_features[m], warm_features[m], k)[0]].mean(1)
        for m, w in weights.items()
    )


def feature_similarity_embeddings(
    train_edge_index: Tensor,
    num_users: int,
    warm_features: Mapping[str, Tensor],
    cold_features: Mapping[str, Tensor],
    weights: Mapping[str, float],
) -> tuple[Tensor, Tensor]:
    r"""The content baseline: a user's score of a new item is the mean cosine between
    the item and the user's training items, averaged over modalities with
    :obj:`weights`,

    .. math::
        s_{uc} = \sum_m \alpha_m \frac{1}{|\mathcal{I}_u|}\sum_{i \in \mathcal{I}_u}
        \cos(\mathbf{x}_m^i, \mathbf{x}_m^c),

    written as an inner product of user and item rows (users: the mean of their items'
    unit feature rows, :math:`\sqrt{\alpha_m}`-scaled and concatenated).

    Shapes:
        - **output:** users ``[M, D]``, new items ``[K, D]`` with
          :math:`D = \sum_m d_m`
    """
    num_items = next(iter(warm_features.values())).size(0)
    mean = user_mean_operator(train_edge_index, num_users, num_items)
    users, items = [], []
    for m, w in weights.items():
        scale = float(w) ** 0.5
        users.append(mean(F.normalize(warm_features[m].float(), dim=-1)) * scale)
        items.append(F.normalize(cold_features[m].float(), dim=-1) * scale)
    return torch.cat(users, dim=-1), torch.cat(items, dim=-1)


def evaluate_cold(
    user_emb: Tensor, cold_item_emb: Tensor, cold: ColdItems, ks: tuple[int, ...] = (10, 20)
) -> dict[str, float]:
    r"""Recall and NDCG @ :obj:`ks` of ranking the held-out items (only those) for every
    user with an interaction with one of them, by :math:`\mathbf{e}_u^\top
    \mathbf{e}_c`."""
    num_users, num_cold = user_emb.size(0), cold_item_emb.size(0)
    evaluator = FullRankEvaluator(
        torch.zeros(2, 0, dtype=torch.long),
        {"cold": cold.edge_index},
        num_users,
        num_cold,
        ks=tuple(k for k in ks if k <= num_cold),
    )
    result = evaluator.evaluate(user_emb, cold_item_emb.to(user_emb.dtype))["cold"]
    return {key: value for key, value in result.items() if key.split("@")[0] in ("recall", "ndcg")}
