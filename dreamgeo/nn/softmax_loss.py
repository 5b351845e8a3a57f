r"""In-batch sampled-softmax ranking loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SampledSoftmaxLoss"]


class SampledSoftmaxLoss(torch.nn.Module):
    r"""A ranking loss that scores each user's positive item against every item of the
    batch (the other users' positives and all sampled negatives) instead of one
    negative, as sampled-softmax recommenders do (e.g. `"On Sampled Metrics for Item
    Recommendation" <https://arxiv.org/abs/1912.02263>`_; a replacement of DREAM's BPR
    term, Eq. 13, beyond the paper):

    .. math::
        \mathcal{L} = -\frac{1}{B}\sum_{b=1}^{B} \log
        \frac{\exp(\mathbf{u}_b^\top\mathbf{p}_b/\tau)}
        {\sum_{c \in \mathcal{C}_b} \exp(\mathbf{u}_b^\top\mathbf{c}/\tau)}

    where :math:`\mathcal{C}_b` holds the batch's :math:`B` positive and :math:`B`
    negative items, less the copies of :math:`b`'s own positive item at other rows (a
    popular item is often the positive of several rows; those copies are not
    negatives).

    Args:
        tau (float, optional): Temperature :math:`\tau > 0`. (default: :obj:`1.0`)

    Shapes:
        - **input:** users, positives, negatives ``[B, d]``; positive and negative
          item ids ``[B]``
        - **output:** scalar
    """

    def __init__(self, tau: float = 1.0):
        super().__init__()
        if not tau > 0:
            raise ValueError(f"SampledSoftmaxLoss: tau must be > 0, got {tau}")
        self.tau = tau

    def forward(
        self, user: Tensor, pos: Tensor, neg: Tensor, pos_ids: Tensor, neg_ids: Tensor
    ) -> Tensor:
        candidates = torch.cat([pos, neg])
        logits = user @ candidates.t() / self.tau
        ids = torch.cat([pos_ids, neg_ids])
        rows = torch.arange(user.size(0), device=user.device)
        same = ids.unsqueeze(0) == pos_ids.unsqueeze(1)
        same[rows, rows] = False
        logits = logits.masked_fill(same, float("-inf"))
        return F.cross_entropy(logits, rows)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"
