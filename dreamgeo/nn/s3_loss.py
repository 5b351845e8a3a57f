r"""Similarity Supervised Signal (S3) loss of DREAM."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["S3Loss"]

#: Rows of the factor table gathered at a time by :meth:`S3Loss.gathered`.
GATHER_CHUNK_ROWS = 256


def _product_dtype(emb_dtype: torch.dtype, table_dtype: torch.dtype) -> torch.dtype:
    # a half-precision table is multiplied in its own precision (the point of storing it
    # so); otherwise the usual promotion
    if table_dtype in (torch.bfloat16, torch.float16):
        return table_dtype
    return torch.promote_types(emb_dtype, table_dtype)


class _GatheredCross(torch.autograd.Function):
    r""":math:`\mathbf{M} = \hat{\mathbf{E}}^\top \mathbf{Z}[\mathrm{index}]` with
    the rows of the (constant) factor table gathered a block at a time, in the forward
    and again in the backward (:math:`\nabla_{\hat{\mathbf{E}}} =
    \mathbf{Z}[\mathrm{index}] \nabla_{\mathbf{M}}^\top`), so the ``[B, D]`` gathered
    factor never exists: on a 2-core CPU, allocating it afresh every step (page faults)
    cost more than the product itself."""

    @staticmethod
    def forward(ctx, emb: Tensor, table: Tensor, index: Tensor, chunk: int) -> Tensor:
        dtype = _product_dtype(emb.dtype, table.dtype)
        cross = emb.new_zeros(emb.size(1), table.size(1))
        for start in range(0, index.numel(), chunk):
            rows = table.index_select(0, index[start : start + chunk]).to(dtype)
            cross += (emb[start : start + chunk].t().to(dtype) @ rows).to(cross.dtype)
        ctx.save_for_backward(index, table)
        ctx.chunk = chunk
        return cross

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_cross: Tensor):
        index, table = ctx.saved_tensors
        chunk = ctx.chunk
        dtype = _product_dtype(grad_cross.dtype, table.dtype)
        grad_t = grad_cross.t().to(dtype)
        grad_emb = grad_cross.new_empty(index.numel(), grad_cross.size(0))
        for start in range(0, index.numel(), chunk):
            rows = table.index_select(0, index[start : start + chunk]).to(dtype)
            grad_emb[start : start + chunk] = rows @ grad_t
        return grad_emb, None, None, None


class S3Loss(torch.nn.Module):
    r"""The Similarity Supervised Signal of "DREAM: A Dual Representation Learning Model
    for Multimodal Recommendation" (Zhang et al., 2024, Eq. 8, Fig. 5): the batch
    similarity matrix of the learned modal representations must stay close to the one of
    the raw features, which mitigates *Modal Information Forgetting*.

    .. math::
        \mathbf{P}_{ab} = \cos(\bar{\mathbf{e}}_M^{a}, \bar{\mathbf{e}}_M^{b}), \qquad
        \mathbf{T}_{ab} = \mathrm{sg}\Big(\sum_m \alpha_m
        \cos(\mathbf{x}_m^{a}, \mathbf{x}_m^{b})\Big), \qquad
        \mathcal{L}_{S3} = \frac{1}{B^2} \sum_{a, b} (\mathbf{P}_{ab} - \mathbf{T}_{ab})^2

    for :math:`a, b` in the batch (DREAM applies it to the batch's users and to its
    items and adds both). Cosine on both sides keeps the scales comparable (raw 4096-d
    image features have huge norms); :math:`\mathrm{sg}` is a stop-gradient, so no gradient
    ever reaches the features.

    The :math:`B \times B` matrices are never formed. With :math:`\hat{\mathbf{E}}` the
    row-normalized ``[B, d]`` representations and :math:`\mathbf{Z} = [\sqrt{\alpha_1}
    \hat{\mathbf{X}}_1, \dots]` the ``[B, \sum_m d_m]`` normalized, weighted features,
    :math:`\mathbf{P} = \hat{\mathbf{E}}\hat{\mathbf{E}}^\top` and
    :math:`\mathbf{T} = \mathbf{Z}\mathbf{Z}^\top`, so

    .. math::
        B^2 \mathcal{L}_{S3} = \|\hat{\mathbf{E}}^\top\hat{\mathbf{E}}\|_F^2
        - 2 \|\hat{\mathbf{E}}^\top \mathbf{Z}\|_F^2 + \|\mathbf{Z}^\top\mathbf{Z}\|_F^2,

    which costs :math:`O(B d \sum_m d_m)` instead of :math:`O(B^2 \sum_m d_m)` (for
    :math:`B = 2048` and 4096 + 384 feature dimensions, 32 times less). The last term does
    not depend on the parameters; with ``include_constant=False`` it is skipped (the
    gradient is unchanged, the value is shifted by :math:`\mathrm{mean}(\mathbf{T}^2)`),
    which saves its :math:`O(B \min(B, \sum_m d_m)^2)`-sized product during training.

    **Scale.** Eq. 8 writes :math:`\|\mathbf{P} - \mathbf{T}\|_2` (a norm, not squared)
    while Fig. 5 says "Mean Square Error"; both readings are available through
    :obj:`distance` and :obj:`reduction`, with :math:`\mathbf{D} = \mathbf{P} -
    \mathbf{T}`:

    ============  ===========  ================================================
    distance      reduction    value
    ============  ===========  ================================================
    ``squared``   ``mean``     :math:`\frac{1}{B^2}\sum_{ab} D_{ab}^2` (Fig. 5's MSE, above)
    ``squared``   ``sum``      :math:`\sum_{ab} D_{ab}^2`
    ``norm``      ``mean``     :math:`\sqrt{\frac{1}{B^2}\sum_{ab} D_{ab}^2} =
                               \|\mathbf{D}\|_F / B` (Eq. 8 once the whole objective,
                               summed over the batch in Eq. 9–13, is divided by :math:`B`)
    ``norm``      ``sum``      :math:`\|\mathbf{D}\|_F` (Eq. 8 as printed)
    ============  ===========  ================================================

    The ``norm`` readings need the constant term, so they always include it, and
    pay for its :math:`O(B^2 \sum_m d_m)` product at every step: for :math:`B = 2048`
    and 4096 + 384 feature dimensions one call (forward and backward, one CPU thread)
    takes 0.33 s against 0.025 s for ``squared``, which roughly doubles DREAM's epoch
    time on the planted ``baby`` preset.

    Args:
        include_constant (bool, optional): Add the constant term so that the value equals
            the definition. (default: :obj:`True`)
        distance (str, optional): ``"squared"`` or ``"norm"``. (default: :obj:`"squared"`)
        reduction (str, optional): ``"mean"`` or ``"sum"`` over the :math:`B^2` pairs.
            (default: :obj:`"mean"`)

    Shapes:
        - **input:** representations ``[B, d]``, a sequence of raw features ``[B, d_m]``
          (one per modality), a sequence of modality weights
        - **output:** scalar
    """

    DISTANCES = ("squared", "norm")
    REDUCTIONS = ("mean", "sum")

    def __init__(
        self, include_constant: bool = True, distance: str = "squared", reduction: str = "mean"
    ):
        super().__init__()
        if distance not in self.DISTANCES:
            raise ValueError(f"S3Loss: distance must be one of {self.DISTANCES}, got {distance!r}")
        if reduction not in self.REDUCTIONS:
            raise ValueError(
                f"S3Loss: reduction must be one of {self.REDUCTIONS}, got {reduction!r}"
            )
        self.distance = distance
        self.reduction = reduction
        # sqrt needs the true sum of squares, not one shifted by a constant
        self.include_constant = include_constant or distance == "norm"

    def _finish(self, sum_of_squares: Tensor, batch_size: int) -> Tensor:
        if self.distance == "norm":
            # the expanded form can round a little below 0; the clamp keeps sqrt's
            # gradient finite when P == T
            loss = sum_of_squares.clamp(min=1e-12).sqrt()
            return loss / batch_size if self.reduction == "mean" else loss
        return sum_of_squares / batch_size**2 if self.reduction == "mean" else sum_of_squares

    @staticmethod
    def target_factor(features: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
        r"""The detached :math:`\mathbf{Z}` with :math:`\mathbf{T} =
        \mathbf{Z}\mathbf{Z}^\top`."""
        if len(features) != len(weights) or not features:
            raise ValueError(
                f"S3Loss: got {len(features)} feature tensors and {len(weights)} weights"
            )
        if any(w < 0 for w in weights):
            raise ValueError(f"S3Loss: modality weights must be >= 0, got {weights}")
        return torch.cat(
            [
                F.normalize(x.detach().float(), dim=-1) * float(w) ** 0.5
                for x, w in zip(features, weights)
            ],
            dim=-1,
        )

    def forward(
        self,
        representation: Tensor,
        features: Sequence[Tensor],
        weights: Sequence[float],
    ) -> Tensor:
        batch_size = representation.size(0)
        if any(x.size(0) != batch_size for x in features):
            raise ValueError(
                "S3Loss: every feature tensor needs one row per representation row "
                f"({batch_size}), got {[x.size(0) for x in features]}"
            )
        return self.from_factor(representation, self.target_factor(features, weights))

    def from_factor(self, representation: Tensor, factor: Tensor) -> Tensor:
        r"""The loss with a precomputed target factor :math:`\mathbf{Z}` (rows of
        :meth:`target_factor` for the batch), e.g. gathered from a table computed once."""
        batch_size = representation.size(0)
        if factor.size(0) != batch_size:
            raise ValueError(
                f"S3Loss: the target factor has {factor.size(0)} rows, expected {batch_size}"
            )
        emb = F.normalize(representation, dim=-1)
        factor = factor.detach().to(emb.dtype)
        loss = (emb.t() @ emb).pow(2).sum() - 2 * (emb.t() @ factor).pow(2).sum()
        if self.include_constant:
            loss = loss + self._constant(factor)
        return self._finish(loss, batch_size)

    def gathered(self, representation: Tensor, factor_table: Tensor, index: Tensor) -> Tensor:
        r"""The loss of :meth:`from_factor` with the factor
        ``factor_table[index]``, without materializing that ``[B, D]`` gather: its rows
        are read :data:`GATHER_CHUNK_ROWS` at a time in the forward and again in the
        backward. A ``bfloat16`` table is multiplied in ``bfloat16`` (results in the
        representation's dtype).

        Args:
            representation (torch.Tensor): Learned representations of the batch ``[B, d]``.
            factor_table (torch.Tensor): :meth:`target_factor` of all rows ``[R, D]``.
            index (torch.Tensor): Row of the table of each batch row ``[B]``.
        """
        batch_size = representation.size(0)
        if index.dim() != 1 or index.numel() != batch_size:
            raise ValueError(
                f"S3Loss: index must have one entry per representation row ({batch_size}), "
                f"got shape {tuple(index.shape)}"
            )
        emb = F.normalize(representation, dim=-1)
        table = factor_table.detach()
        cross = _GatheredCross.apply(emb, table, index, GATHER_CHUNK_ROWS)
        loss = (emb.t() @ emb).pow(2).sum() - 2 * cross.pow(2).sum()
        if self.include_constant:
            loss = loss + self._constant(table.index_select(0, index).to(emb.dtype))
        return self._finish(loss, batch_size)

    @staticmethod
    def _constant(factor: Tensor) -> Tensor:
        small = factor if factor.size(1) <= factor.size(0) else factor.t()
        return (small.t() @ small).pow(2).sum()

    def extra_repr(self) -> str:
        return (
            f"include_constant={self.include_constant}, distance={self.distance}, "
            f"reduction={self.reduction}"
        )
