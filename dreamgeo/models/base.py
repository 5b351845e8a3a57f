r"""The interface every dreamgeo recommender follows, so that one trainer, one sampler
and one evaluator serve them all."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Recommender"]


class Recommender(torch.nn.Module, ABC):
    r"""Base class of dreamgeo's recommenders.

    A subclass computes final user and item representations with :meth:`forward` (scores
    are their dot products) and its training objective for a batch of BPR triples with
    :meth:`loss`, which returns the total loss and its named, unweighted-or-weighted parts
    for logging (each part a scalar tensor).

    Args:
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.
    """

    def __init__(self, num_users: int, num_items: int):
        super().__init__()
        if num_users <= 0 or num_items <= 0:
            raise ValueError(
                f"{type(self).__name__}: need at least one user and one item, got "
                f"{num_users} users and {num_items} items"
            )
        self.num_users = int(num_users)
        self.num_items = int(num_items)

    @abstractmethod
    def forward(self) -> tuple[Tensor, Tensor]:
        r"""Final user ``[M, d]`` and item ``[N, d]`` representations."""

    @abstractmethod
    def loss(
        self, users: Tensor, pos_items: Tensor, neg_items: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        r"""Training loss of a batch of triples :math:`(u, i^+, i^-)`, each ``[B]``, and
        its parts by name."""

    @torch.no_grad()
    def embeddings(self) -> tuple[Tensor, Tensor]:
        r"""The representations used for ranking (no gradient)."""
        return self.forward()

    def score(self, users: Tensor) -> Tensor:
        r"""Scores of ``users`` (``[B]``) against every item: ``[B, N]``."""
        user_emb, item_emb = self.embeddings()
        return user_emb[users] @ item_emb.t()
