r"""Top-:math:`k` cosine neighbours of new rows among existing ones (queries against a
database), for items that arrive after the relation graphs were built."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cosine_top_k"]


def cosine_top_k(
    queries: Tensor, database: Tensor, k: int, chunk_size: int = 4096
) -> tuple[Tensor, Tensor]:
    r"""The :math:`k` rows of :obj:`database` with the highest cosine similarity to each
    row of :obj:`queries`, best first, by blocked products: memory
    :math:`O(\text{chunk\_size} \cdot N)`, never :math:`O(Q \cdot N)` at once. All-zero
    rows have cosine 0 to everything.

    Args:
        queries (torch.Tensor): New rows ``[Q, d]``.
        database (torch.Tensor): Existing rows ``[N, d]``.
        k (int): Neighbours per query (at most :math:`N`).
        chunk_size (int, optional): Queries scored at once. (default: :obj:`4096`)

    Shapes:
        - **output:** indices ``[Q, k]`` into :obj:`database`, cosines ``[Q, k]``
    """
    if queries.dim() != 2 or database.dim() != 2 or queries.size(1) != database.size(1):
        raise ValueError(
            f"cosine_top_k: queries [Q, d] and database [N, d] must share d, got "
            f"{tuple(queries.shape)} and {tuple(database.shape)}"
        )
    if not 0 < k <= database.size(0):
        raise ValueError(f"cosine_top_k: k must lie in [1, {database.size(0)}], got {k}")
    base = F.normalize(database.float(), dim=-1)
    index, score = [], []
    for chunk in F.normalize(queries.float(), dim=-1).split(chunk_size):
        top = (chunk @ base.t()).topk(k, dim=1, sorted=True)
        index.append(top.indices)
        score.append(top.values)
    if not index:
        return queries.new_zeros(0, k, dtype=torch.long), queries.new_zeros(0, k)
    return torch.cat(index), torch.cat(score)
