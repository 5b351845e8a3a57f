r"""Bayesian Personalized Ranking loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BPRLoss"]


class BPRLoss(torch.nn.Module):
    r"""The Bayesian Personalized Ranking loss of `"BPR: Bayesian Personalized Ranking
    from Implicit Feedback" <https://arxiv.org/abs/1205.2618>`_ (Rendle et al., 2009),
    DREAM's main objective (Eq. 13), with the optional embedding regularizer of Eq. 14:

    .. math::
        \mathcal{L}_{BPR} = \frac{1}{B} \sum_{(u, i^+, i^-)}
        -\log \sigma\left(\hat{y}_{u i^+} - \hat{y}_{u i^-}\right)
        + \lambda \frac{1}{2B} \sum_{\mathbf{e} \in \text{reg}} \|\mathbf{e}\|_2^2

    :math:`-\log\sigma(x)` is computed as :math:`\mathrm{softplus}(-x)`, which is exact
    and never overflows (MMRec adds :math:`10^{-10}` inside the logarithm instead).

    Args:
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`0.0`)

    Shapes:
        - **input:** positive scores ``[B]``, negative scores ``[B]``, any number of
          embeddings ``[B, *]`` to regularize
        - **output:** scalar
    """

    def __init__(self, reg_weight: float = 0.0):
        super().__init__()
        if reg_weight < 0:
            raise ValueError(f"BPRLoss: reg_weight must be >= 0, got {reg_weight}")
        self.reg_weight = reg_weight

    def ranking(self, pos_score: Tensor, neg_score: Tensor) -> Tensor:
        r"""The ranking part :math:`\frac{1}{B}\sum -\log\sigma(\hat{y}^+ - \hat{y}^-)`."""
        return F.softplus(neg_score - pos_score).mean()

    def regularization(self, *embeddings: Tensor) -> Tensor:
        r"""The regularizer :math:`\frac{1}{2B}\sum \|\mathbf{e}\|_2^2` (unweighted)."""
        batch_size = embeddings[0].size(0)
        return sum(emb.pow(2).sum() for emb in embeddings) / (2 * batch_size)

    def forward(self, pos_score: Tensor, neg_score: Tensor, *embeddings: Tensor) -> Tensor:
        loss = self.ranking(pos_score, neg_score)
        if self.reg_weight > 0 and embeddings:
            loss = loss + self.reg_weight * self.regularization(*embeddings)
        return loss

    def extra_repr(self) -> str:
        return f"reg_weight={self.reg_weight}"
