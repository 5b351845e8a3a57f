r"""DREAM's Similarity Supervised Signal as a model part: :class:`S3Loss` with its
weight and the target tables of every user and item."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from dreamgeo.hparams import HParam, HParams
from dreamgeo.nn.s3_loss import S3Loss

__all__ = ["S3Regularizer"]


class S3Regularizer(S3Loss):
    r"""The S3 term :math:`\gamma(\mathcal{L}_{S3}^u + \mathcal{L}_{S3}^i)` of Eq. 14
    in `"DREAM: A Dual Representation Learning Model for Multimodal Recommendation"
    <https://arxiv.org/abs/2404.11119>`_ (Zhang et al., 2024): :class:`S3Loss` of the
    batch's users' and positive items' modal representations against their raw
    features. The targets depend on the raw features only, so their normalized,
    :math:`\sqrt{\alpha_m}`-weighted factors :math:`\mathbf{Z}` (:math:`\mathbf{T} =
    \mathbf{Z}\mathbf{Z}^\top`) are computed once for all items and users and gathered
    per batch, instead of re-averaging thousands of wide rows every step. With
    :math:`M` modalities the target is :math:`\sum_m \alpha_m \cos(\mathbf{x}_m,
    \mathbf{x}_m')`, the paper's two-modality target extended term by term.

    Args:
        item_features (Sequence[torch.Tensor]): Raw item features ``[N, d_m]`` per
            modality.
        user_features (Sequence[torch.Tensor]): Raw user features ``[M, d_m]`` per
            modality (means of their training items').
        weights (Sequence[float]): :math:`\alpha_m` per modality.
        feature_dtype (torch.dtype, optional): Storage dtype of the tables.
            (default: :obj:`torch.float32`)
        **options: The declared :attr:`HPARAMS` (``s3_weight``, ``s3_distance``,
            ``s3_reduction``; ``use_s3`` is read by :meth:`from_options`).
    """

    HPARAMS = HParams(
        [
            HParam("s3_weight", float, 0.1, "gamma, S3 weight", low=0.0, grid=(0.1, 0.5)),
            HParam("use_s3", bool, True, "S3 loss (Eq. 8)"),
            HParam(
                "s3_distance",
                str,
                "squared",
                "S3 (Eq. 8) on squared differences (Fig. 5's MSE) or on their L2 norm",
                choices=S3Loss.DISTANCES,
                details="Eq. 8 prints the norm (``norm``), Fig. 5 says Mean Square Error "
                "(``squared``); see :class:`~dreamgeo.nn.S3Loss`",
            ),
            HParam(
                "s3_reduction",
                str,
                "mean",
                "S3 (Eq. 8): mean or sum over the batch's B^2 pairs (norm: RMS or Frobenius)",
                choices=S3Loss.REDUCTIONS,
            ),
        ]
    )

    def __init__(
        self,
        item_features: Sequence[Tensor],
        user_features: Sequence[Tensor],
        weights: Sequence[float],
        feature_dtype: torch.dtype = torch.float32,
        **options,
    ):
        config = self.HPARAMS.resolve(options, "S3")
        super().__init__(
            include_constant=False,
            distance=config["s3_distance"],
            reduction=config["s3_reduction"],
        )
        self.weight: float = config["s3_weight"]
        item_factor = S3Loss.target_factor(item_features, weights)
        user_factor = S3Loss.target_factor(user_features, weights)
        self.register_buffer("item_factor", item_factor.to(feature_dtype), persistent=False)
        self.register_buffer("user_factor", user_factor.to(feature_dtype), persistent=False)

    @classmethod
    def from_options(
        cls,
        item_features: Sequence[Tensor],
        user_features: Sequence[Tensor],
        weights: Sequence[float],
        feature_dtype: torch.dtype,
        options: Mapping[str, Any],
    ) -> S3Regularizer | None:
        r"""The part, or :obj:`None` when ``use_s3`` is off or ``s3_weight`` is 0 (no
        tables, no compute)."""
        options = cls.HPARAMS.resolve(cls.HPARAMS.pick(options), "S3")
        if not options.pop("use_s3") or options["s3_weight"] == 0:
            return None
        return cls(item_features, user_features, weights, feature_dtype, **options)

    def term(
        self, user_modal: Tensor, users: Tensor, item_modal: Tensor, items: Tensor
    ) -> tuple[Tensor, Tensor]:
        r"""``(weighted, unweighted)`` S3 of the batch: modal rows ``[B, d]`` of the
        batch's users and items, and their ids ``[B]``."""
        value = self.gathered(item_modal, self.item_factor, items) + self.gathered(
            user_modal, self.user_factor, users
        )
        return self.weight * value, value

    def extra_repr(self) -> str:
        return f"weight={self.weight}, " + super().extra_repr()
