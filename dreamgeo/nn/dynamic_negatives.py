r"""Dynamic negative sampling: the hardest of a few uniform negative candidates."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DynamicNegativeSampling"]


class DynamicNegativeSampling(torch.nn.Module):
    r"""Dynamic negative sampling (DNS) from "Optimizing Top-N Collaborative
    Filtering via Dynamic Negative Item Sampling" (Zhang et al., SIGIR 2013).

    Of :math:`K` candidates per training triple :math:`(u, i^+, i^-)` (the sampler's
    uniform negative :math:`i^-` and :math:`K - 1` items drawn uniformly from the
    catalogue), the one the model currently scores highest replaces :math:`i^-`:

    .. math::
        i^-_{\mathrm{DNS}} = \operatorname*{arg\,max}_{j \in \{i^-, j_1, \dots,
        j_{K-1}\},\ (u, j) \notin \mathcal{R}} \hat{y}_{uj},

    where :math:`\mathcal{R}` is the training interactions: a drawn candidate the user
    has interacted with is never chosen (the sampler's own :math:`i^-` never is one).
    The choice is made without gradient; with :math:`K = 1` the negative is unchanged.
    Draws use the global torch generator, so a checkpointed run resumes them.

    Args:
        edge_index (torch.Tensor): Training interactions :math:`[2, E]` (user, item).
        num_users (int): :math:`M`.
        num_items (int): :math:`N`.
        num_candidates (int, optional): :math:`K \geq 1`. (default: :obj:`1`)

    Shapes:
        - **input:** users :math:`[B]`, negatives :math:`[B]` (long) and
          ``score(users [B], items [B, K]) -> [B, K]``.
        - **output:** negatives :math:`[B]` (long).
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_users: int,
        num_items: int,
        num_candidates: int = 1,
    ):
        super().__init__()
        if num_candidates < 1:
            raise ValueError(
                f"DynamicNegativeSampling: num_candidates must be >= 1, got {num_candidates}"
            )
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                "DynamicNegativeSampling: edge_index must have shape [2, E], got "
                f"{list(edge_index.shape)}"
            )
        self.num_users = num_users
        self.num_items = num_items
        self.num_candidates = num_candidates
        keys = torch.unique(edge_index[0].long() * num_items + edge_index[1].long())
        self.register_buffer("positive_keys", keys, persistent=False)

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        r"""Whether each (user, item) pair of the broadcast ``users`` and ``items``
        is a training interaction (a bool tensor of their broadcast shape)."""
        keys = users * self.num_items + items
        if self.positive_keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        position = torch.searchsorted(self.positive_keys, keys.contiguous())
        position = position.clamp(max=self.positive_keys.numel() - 1)
        return self.positive_keys[position] == keys

    def forward(
        self,
        users: Tensor,
        neg_items: Tensor,
        score: Callable[[Tensor, Tensor], Tensor],
    ) -> Tensor:
        if self.num_candidates == 1:
            return neg_items
        extra = torch.randint(
            self.num_items, (users.numel(), self.num_candidates - 1), device=users.device
        )
        candidates = torch.cat([neg_items.view(-1, 1), extra], dim=1)
        excluded = torch.cat(
            [
                torch.zeros_like(neg_items.view(-1, 1), dtype=torch.bool),
                self.is_positive(users.view(-1, 1), extra),
            ],
            dim=1,
        )
        with torch.no_grad():
            scores = score(users, candidates).float()
        scores = scores.masked_fill(excluded, float("-inf"))
        return candidates.gather(1, scores.argmax(dim=1, keepdim=True)).view(-1)

    def hardest(
        self,
        users: Tensor,
        neg_items: Tensor,
        user: Tensor,
        item: Callable[[Tensor], Tensor],
    ) -> Tensor:
        r""":meth:`forward` with dot-product scores
        :math:`\hat{y}_{uj} = \mathbf{e}_u \cdot \mathbf{e}_j`.

        Args:
            users (torch.Tensor): Users of the triples :math:`[B]`.
            neg_items (torch.Tensor): The sampler's negatives :math:`[B]`.
            user (torch.Tensor): The final representations of ``users`` :math:`[B, d]`.
            item (Callable): Item ids :math:`[B, K]` to their final representations
                :math:`[B, K, d]` (e.g. a model's fusion of its behaviour and modal rows).
        """
        return self(users, neg_items, lambda _, items: (item(items) * user.unsqueeze(1)).sum(-1))

    def extra_repr(self) -> str:
        return f"num_candidates={self.num_candidates}"
