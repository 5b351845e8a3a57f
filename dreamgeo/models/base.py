r"""The interface every dreamgeo recommender follows, so that one trainer, one sampler
and one evaluator serve them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from torch import Tensor

from dreamgeo.nn.bma_loss import BMALoss

__all__ = ["Recommender", "DualRepresentation", "BMAPlugin"]


class DualRepresentation(NamedTuple):
    r"""Behaviour (:math:`\bar{\mathbf{E}}_B`) and modal (:math:`\bar{\mathbf{E}}_M`)
    representations of all users ``[M, d]`` and items ``[N, d]`` (DREAM, Eq. 3 and 7),
    as every model with a behaviour/modal split gives them from
    ``dual_representations()``."""

    user_behavior: Tensor
    item_behavior: Tensor
    user_modal: Tensor
    item_modal: Tensor


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

    def start_epoch(self, epoch: int) -> None:
        r"""Called by :class:`~dreamgeo.train.Trainer` before training epoch
        :obj:`epoch` (from 1; also after a resume), for objectives that change with the
        epoch. Does nothing by default."""


class BMAPlugin:
    r"""Mixin of the recommenders that take DREAM's Behaviour-Modal Alignment
    (:class:`~dreamgeo.nn.BMALoss`, Eq. 9-11 of Zhang et al., 2024) as a plug-in: each
    such model names its behaviour and modal representations of the batch and calls
    :meth:`add_bma` once in its :meth:`~Recommender.loss`.

    .. math::
        \mathcal{L} \leftarrow \mathcal{L} + \alpha \mathcal{L}_{Intra}
        + \beta \mathcal{L}_{Inter}

    The model sets ``self.bma`` (a :class:`~dreamgeo.nn.BMALoss` or :obj:`None`) in
    its constructor. (No class-level default: :class:`torch.nn.Module` keeps a
    sub-module in ``_modules``, which a class attribute would shadow.)
    """

    bma: BMALoss | None

    def add_bma(
        self,
        total: Tensor,
        parts: dict[str, Tensor],
        user_behavior: Tensor,
        item_behavior: Tensor,
        user_modal: Tensor,
        item_modal: Tensor,
    ) -> Tensor:
        r"""``total`` plus the BMA loss of the batch's ``(u, i+)`` rows (each ``[B, d]``)
        when the plug-in is on, recording its value as ``parts["bma"]``; ``total``
        unchanged otherwise."""
        if self.bma is None:
            return total
        value = self.bma(user_behavior, item_behavior, user_modal, item_modal)
        parts["bma"] = value.detach()
        return total + value
