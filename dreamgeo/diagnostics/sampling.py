r"""A fixed random sample of users or items and their raw modal features, read from the
data (never from a model), so that every dual-line model is measured on the same rows."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import ITEM, USER, feature_key, train_edge_index

__all__ = ["sample_nodes", "sampled_raw_features"]


def sample_nodes(
    num_nodes: int, sample_size: int, seed: int = 0, candidates: Tensor | None = None
) -> Tensor:
    r"""A seeded uniform sample without replacement, sorted: the same call always gives
    the same rows.

    Args:
        num_nodes (int): Population size :math:`n` (nodes ``0..n-1``).
        sample_size (int): :math:`s`; all of them (or all candidates) when larger.
        seed (int, optional): Seed of the draw. (default: :obj:`0`)
        candidates (torch.Tensor, optional): Restrict the draw to these node ids.
            (default: :obj:`None`, all nodes)

    Shapes:
        - **output:** ``[min(s, n)]`` long
    """
    if sample_size <= 0:
        raise ValueError(f"sample_nodes: sample_size must be > 0, got {sample_size}")
    pool = torch.arange(num_nodes) if candidates is None else candidates.long().cpu()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(pool.numel(), generator=generator)[:sample_size]
    return pool[order].sort().values


def sampled_raw_features(data: HeteroData, node_type: str, modality: str, index: Tensor) -> Tensor:
    r"""Raw features of modality ``modality`` for the nodes ``index`` of ``node_type``:
    rows of ``data['item'].x_<m>`` for items; for users, the mean of their distinct
    training items' features (as :func:`dreamgeo.graph.user_mean_features`, but only for
    the sampled users: a sparse ``[s, N]`` mean operator times the item features, so
    memory stays :math:`O(s\, d_m + E)`). Users without training items get zeros.

    Args:
        data (HeteroData): The dataset (``DESIGN.md`` section 2).
        node_type (str): ``"user"`` or ``"item"``.
        modality (str): The modality :math:`m`.
        index (torch.Tensor): Node ids.

    Shapes:
        - **input:** ``index`` ``[s]``, ``data['item'].x_<m>`` ``[N, d_m]``
        - **output:** ``[s, d_m]`` float32
    """
    key = feature_key(modality)
    if key not in data[ITEM]:
        raise ValueError(f"sampled_raw_features: the data has no data['item'].{key}")
    x = data[ITEM][key].float()
    index = index.long().cpu()
    if node_type == ITEM:
        return x[index.to(x.device)]
    if node_type != USER:
        raise ValueError(
            f"sampled_raw_features: node_type must be 'user' or 'item', got {node_type!r}"
        )
    num_users, num_items = data[USER].num_nodes, data[ITEM].num_nodes
    user, item = train_edge_index(data).long().cpu()
    pair = torch.unique(user * num_items + item)
    user, item = pair // num_items, pair % num_items
    position = torch.full((num_users,), -1, dtype=torch.long)
    position[index] = torch.arange(index.numel())
    keep = position[user] >= 0
    row, col = position[user[keep]], item[keep]
    count = torch.bincount(row, minlength=index.numel()).clamp(min=1)
    mean_operator = torch.sparse_coo_tensor(
        torch.stack([row, col]),
        1.0 / count[row].float(),
        (index.numel(), num_items),
    ).to(x.device)
    return torch.sparse.mm(mean_operator, x)
