r"""Behaviour–modal alignment (paper, Fig. 2a and Fig. 6b): how close each user's or
item's behaviour representation is to its own modal representation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["behavior_modal_cosine"]


def behavior_modal_cosine(behavior: Tensor, modal: Tensor) -> Tensor:
    r"""The mean, over users (or items), of the cosine between each one's behaviour and
    modal representation,

    .. math::
        \overline{\cos} = \frac{1}{n} \sum_{a=1}^{n}
        \frac{\mathbf{e}_B^{a\top} \mathbf{e}_M^{a}}
        {\max(\lVert\mathbf{e}_B^a\rVert_2 \lVert\mathbf{e}_M^a\rVert_2, \epsilon)},

    in :math:`[-1, 1]`; the paper's "cosine distance between dual representations"
    (Fig. 6b) is :math:`1 - \overline{\cos}`. Rows that are zero count as 0. Costs
    :math:`O(n d)`.

    Args:
        behavior (torch.Tensor): Behaviour representations :math:`\bar{\mathbf{E}}_B`.
        modal (torch.Tensor): Modal representations :math:`\bar{\mathbf{E}}_M` of the
            same rows.

    Shapes:
        - **input:** ``[n, d]``, ``[n, d]``
        - **output:** scalar
    """
    if behavior.shape != modal.shape or behavior.dim() != 2:
        raise ValueError(
            "behavior_modal_cosine needs behaviour and modal representations of one shape "
            f"[n, d], got {tuple(behavior.shape)} and {tuple(modal.shape)}"
        )
    return F.cosine_similarity(behavior.float(), modal.float(), dim=-1, eps=1e-12).mean()
