r"""A learned per-item score bias that keeps scores inner products."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ItemBias"]


class ItemBias(torch.nn.Module):
    r"""A learned item bias :math:`b_i` added to every score of a dot-product
    recommender, as BPR-MF implementations do:

    .. math::
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i + b_i
        = [\mathbf{e}_u, 1]^\top [\mathbf{e}_i, b_i],

    so the model's ranking embeddings get one more column (ones for users,
    :math:`b_i` for items) and every consumer of inner products (BPR, sampled softmax,
    hard-negative scoring, the full-ranking evaluator, nearest-neighbour retrieval)
    takes the bias without knowing of it. BPR is a logistic model of score differences,
    whose ideal score for a generator that picks items by popularity within a user's
    interests is additive in :math:`\log p_i`; a dot product alone can only carry that
    term through the embedding norms. The bias starts at zero and draws no random
    numbers, so a model's other weights are the same with and without it under one
    seed.

    Args:
        num_items (int): :math:`N`.

    Shapes:
        - **users:** rows ``[B, d]`` :math:`\to` ``[B, d + 1]``
        - **items:** rows ``[B, d]`` and item indices ``[B]`` (or every item's rows
          ``[N, d]`` and :obj:`None`) :math:`\to` ``[B, d + 1]``
    """

    def __init__(self, num_items: int):
        super().__init__()
        self.num_items = num_items
        self.weight = torch.nn.Parameter(torch.zeros(num_items, 1))
        r"""The biases ``[N, 1]``."""

    def reset_parameters(self) -> None:
        torch.nn.init.zeros_(self.weight)

    def users(self, rows: Tensor) -> Tensor:
        r"""User rows with a column of ones appended."""
        return torch.cat([rows, rows.new_ones(rows.size(0), 1)], dim=-1)

    def items(self, rows: Tensor, index: Tensor | None = None) -> Tensor:
        r"""Item rows with their bias appended; :obj:`index` names the items of the
        rows (:obj:`None`: the rows are every item's, in order)."""
        if index is None and rows.size(0) != self.num_items:
            raise ValueError(
                f"ItemBias: {rows.size(0)} item rows without an index, expected all "
                f"{self.num_items}"
            )
        bias = self.weight if index is None else self.weight[index]
        return torch.cat([rows, bias.to(rows.dtype)], dim=-1)

    def extra_repr(self) -> str:
        return f"num_items={self.num_items}"
