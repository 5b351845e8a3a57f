r"""What a dual-line model's training state looks like at one moment: mean filter-gate
activations (DREAM's Eq. 4), representation norms, and the full S3 loss (Eq. 8, with the
constant the training step leaves out) on a fixed sample. Read by
:class:`~dreamgeo.diagnostics.DualRepresentationDiagnostics` every epoch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gate_activations", "representation_norms", "s3_sample_loss"]


@torch.no_grad()
def gate_activations(model: torch.nn.Module) -> dict[str, float]:
    r"""Mean filter-gate activation of each modality :math:`m`, over all items and all
    users: :math:`\overline{\sigma(\mathbf{E}_m \mathbf{W}_m + \mathbf{b}_m)}` (Eq. 4),
    users' pre-activations being the mean of their training items' (as the model
    computes them), and the mean over items of the per-item standard deviation across the
    :math:`d` gate entries (how selective the gate is). Columns ``gate_item_<m>``,
    ``gate_user_<m>`` and ``gate_item_std_<m>``.

    Models without DREAM's modal line (``model.modal_line.encoders``), and modalities
    whose encoder has no gate, give no column.
    """
    modal_line = getattr(model, "modal_line", None)
    encoders = getattr(modal_line, "encoders", None)
    if encoders is None:
        return {}
    out: dict[str, float] = {}
    for m, encoder in encoders.items():
        if not getattr(encoder, "use_gate", False):
            continue
        item = encoder.project(modal_line.features(m))
        user = modal_line.user_mean(item)
        item_gate = torch.sigmoid(item)
        out[f"gate_item_{m}"] = float(item_gate.mean())
        out[f"gate_user_{m}"] = float(torch.sigmoid(user).mean())
        out[f"gate_item_std_{m}"] = float(item_gate.std(dim=1).mean())
    return out


@torch.no_grad()
def representation_norms(
    user_behavior: Tensor, item_behavior: Tensor, user_modal: Tensor, item_modal: Tensor
) -> dict[str, float]:
    r"""Mean L2 row norm of each of the four representations (all rows). Columns
    ``norm_user_behavior``, ``norm_item_behavior``, ``norm_user_modal``,
    ``norm_item_modal``."""
    return {
        f"norm_{node}_{line}": float(x.float().norm(dim=1).mean())
        for node, line, x in (
            ("user", "behavior", user_behavior),
            ("item", "behavior", item_behavior),
            ("user", "modal", user_modal),
            ("item", "modal", item_modal),
        )
    }


@torch.no_grad()
def s3_sample_loss(modal: Tensor, target_factor: Tensor) -> float:
    r"""The full S3 loss (Eq. 8, squared distance, mean over pairs) of sampled rows:
    :math:`\frac{1}{s^2}\lVert \cos(\bar{\mathbf{e}}_M, \bar{\mathbf{e}}_M') -
    \mathbf{Z}\mathbf{Z}^\top \rVert_F^2`, constant included (the training step's logged
    ``s3`` leaves it out, so that value is shifted by a per-batch constant and can be
    negative).

    Args:
        modal (torch.Tensor): Learned modal rows of the sample ``[s, d]``.
        target_factor (torch.Tensor): The sample's rows of the S3 target factor
            :math:`\mathbf{Z}` ``[s, D]`` (:meth:`~dreamgeo.nn.S3Loss.target_factor`).
    """
    emb = F.normalize(modal.float(), dim=-1)
    target = target_factor.float() @ target_factor.float().t()
    return float((emb @ emb.t() - target).pow(2).mean())
