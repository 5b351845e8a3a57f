r"""Per-epoch measurements of a dual-line model's behaviour and modal representations,
as a :class:`~dreamgeo.train.Trainer` callback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import ITEM, USER, modality_names, train_edge_index
from dreamgeo.diagnostics.alignment import behavior_modal_cosine
from dreamgeo.diagnostics.forgetting import cosine_distance, pairwise_cosines
from dreamgeo.diagnostics.sampling import sample_nodes, sampled_raw_features
from dreamgeo.diagnostics.training_state import (
    gate_activations,
    representation_norms,
    s3_sample_loss,
)

if TYPE_CHECKING:
    from dreamgeo.models.base import DualRepresentation
    from dreamgeo.train import Trainer

__all__ = ["DualRepresentationDiagnostics", "dual_representations_of"]

DUAL_LINE_MODELS = "DREAM, VBPR, BM3, FREEDOM, MGCN, LGMRec, SLMRec"


def dual_representations_of(model: torch.nn.Module) -> DualRepresentation:
    r"""``model.dual_representations()``, or a :class:`TypeError` that names the model
    when it has no behaviour/modal split (e.g. LightGCN, BPR-MF, DualGNN)."""
    method = getattr(model, "dual_representations", None)
    if not callable(method):
        raise TypeError(
            f"{type(model).__name__} has no dual_representations() method, so it has no "
            f"behaviour and modal representations to diagnose; use a dual-line model "
            f"({DUAL_LINE_MODELS})"
        )
    return method()


class DualRepresentationDiagnostics:
    r"""Measures, after each epoch, the two quantities the paper tracks during training:

    * **Modal Information Forgetting** (Fig. 1b),
      :func:`~dreamgeo.diagnostics.modal_information_forgetting` of a fixed random
      sample of :obj:`sample_size` items (and of users) against their raw features of
      each modality: the cosine distance between the off-diagonal pairwise cosine
      similarities of the learned modal representations and those of the raw features
      (users' raw features: the mean of their training items' features). Columns
      ``forgetting_<node>_<modality>``, e.g. ``forgetting_item_image``, and (unless
      :obj:`centered`) the centred reading as ``forgetting_centered_<node>_<modality>``:
      the plain one is dominated by the mean similarity level when raw features are
      nearly parallel (e.g. users' mean image features), the centred one is not.
    * **Behaviour–modal cosine** (Fig. 2a, 6b),
      :func:`~dreamgeo.diagnostics.behavior_modal_cosine` over *all* users and all
      items, and its distance :math:`1 - \overline{\cos}`. Columns
      ``behavior_modal_cos_user``, ``behavior_modal_cos_item``,
      ``behavior_modal_distance_user``, ``behavior_modal_distance_item``.

    and, with :obj:`training_state` (the default), what the training does to the model
    (:mod:`dreamgeo.diagnostics.training_state`):

    * **Representation norms**: mean L2 row norm of the four representations, columns
      ``norm_<node>_<line>`` (e.g. ``norm_item_modal``).
    * **Gate activations** of models with DREAM's modal line: mean filter gate
      :math:`\sigma(\mathbf{E}_m\mathbf{W}_m + \mathbf{b}_m)` of each modality over
      items and users, columns ``gate_item_<m>``, ``gate_user_<m>``,
      ``gate_item_std_<m>``.
    * **Full S3** of models with an S3 term (``model.s3``): Eq. 8 with its constant on the
      item and user samples, columns ``s3_full_item`` and ``s3_full_user`` (the
      training loss's logged ``s3`` omits the constant).

    Raw features come from :obj:`data`, not from the model, so every model with a
    ``dual_representations()`` method (:class:`~dreamgeo.DREAM` and the baselines with a
    BMA plug-in) is measured on the same rows and the same targets. The samples and the
    raw-feature similarities are drawn and computed once, here; each call costs one
    ``dual_representations()`` forward pass plus :math:`O(s^2 d)` per modality and node
    type (:math:`s = 1000`, :math:`d = 64`: a few milliseconds).

    Use it as ``Trainer(model, data, config, callbacks=[DualRepresentationDiagnostics(data)])``
    or call :meth:`measure` on any model.

    Args:
        data (HeteroData): The dataset the model was built on (``DESIGN.md`` section 2).
        sample_size (int, optional): Items (and users) in the forgetting sample
            :math:`s`; all of them when there are fewer. (default: :obj:`1000`)
        seed (int, optional): Seed of the samples. (default: :obj:`0`)
        centered (bool, optional): Forgetting on centred similarities (see
            :func:`~dreamgeo.diagnostics.modal_information_forgetting`).
            (default: :obj:`False`)
        training_state (bool, optional): Also log norms, gate activations and the
            full S3 (above). (default: :obj:`True`)
    """

    def __init__(
        self,
        data: HeteroData,
        sample_size: int = 1000,
        seed: int = 0,
        centered: bool = False,
        training_state: bool = True,
    ):
        self.training_state = training_state
        self.modalities = modality_names(data)
        if not self.modalities:
            raise ValueError(
                "DualRepresentationDiagnostics: the data has no modality (data['item'].x_<m>)"
            )
        if sample_size < 2:
            raise ValueError(
                f"DualRepresentationDiagnostics: sample_size must be >= 2, got {sample_size}"
            )
        self.num_users, self.num_items = data[USER].num_nodes, data[ITEM].num_nodes
        self.centered = centered
        users_with_items = torch.unique(train_edge_index(data)[0].long().cpu())
        self.samples: dict[str, Tensor] = {
            USER: sample_nodes(self.num_users, sample_size, seed, candidates=users_with_items),
            ITEM: sample_nodes(self.num_items, sample_size, seed),
        }
        for node_type, index in self.samples.items():
            if index.numel() < 2:
                raise ValueError(
                    f"DualRepresentationDiagnostics: fewer than 2 {node_type}s to sample "
                    "(users need at least one training interaction)"
                )
        self._feature_cosines: dict[tuple[str, str], Tensor] = {
            (node_type, m): pairwise_cosines(sampled_raw_features(data, node_type, m, index))
            for node_type, index in self.samples.items()
            for m in self.modalities
        }

    @torch.no_grad()
    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        r"""The measurements of ``model``'s current representations (it is not switched
        to eval mode here; the trainer calls back in eval mode)."""
        rep = dual_representations_of(model)
        for node_type, behavior, modal, expected in (
            (USER, rep.user_behavior, rep.user_modal, self.num_users),
            (ITEM, rep.item_behavior, rep.item_modal, self.num_items),
        ):
            if behavior.size(0) != expected or modal.size(0) != expected:
                raise ValueError(
                    f"DualRepresentationDiagnostics: {type(model).__name__} gives "
                    f"{behavior.size(0)} behaviour and {modal.size(0)} modal {node_type} "
                    f"rows, the data has {expected} {node_type}s; build the diagnostics on "
                    "the model's data"
                )
        out: dict[str, float] = {}
        for node_type, modal in ((ITEM, rep.item_modal), (USER, rep.user_modal)):
            index = self.samples[node_type].to(modal.device)
            learned = pairwise_cosines(modal[index])
            for m in self.modalities:
                target = self._feature_cosines[(node_type, m)]
                if target.device != learned.device:
                    target = self._feature_cosines[(node_type, m)] = target.to(learned.device)
                distance = cosine_distance(learned, target, centered=self.centered)
                out[f"forgetting_{node_type}_{m}"] = float(distance)
                if not self.centered:  # also the reading insensitive to the mean level
                    distance = cosine_distance(learned, target, centered=True)
                    out[f"forgetting_centered_{node_type}_{m}"] = float(distance)
        for node_type, behavior, modal in (
            (USER, rep.user_behavior, rep.user_modal),
            (ITEM, rep.item_behavior, rep.item_modal),
        ):
            cosine = float(behavior_modal_cosine(behavior, modal))
            out[f"behavior_modal_cos_{node_type}"] = cosine
            out[f"behavior_modal_distance_{node_type}"] = 1.0 - cosine
        if self.training_state:
            out.update(representation_norms(*rep))
            out.update(gate_activations(model))
            s3 = getattr(model, "s3", None)
            for node_type, modal, factor in (
                (ITEM, rep.item_modal, getattr(s3, "item_factor", None)),
                (USER, rep.user_modal, getattr(s3, "user_factor", None)),
            ):
                if isinstance(factor, Tensor):
                    index = self.samples[node_type].to(modal.device)
                    out[f"s3_full_{node_type}"] = s3_sample_loss(
                        modal[index], factor[index.to(factor.device)]
                    )
        return out

    def __call__(self, trainer: Trainer | Any, epoch: int) -> dict[str, float]:
        r"""The :class:`~dreamgeo.train.Trainer` callback: :meth:`measure` of
        ``trainer.model``."""
        return self.measure(trainer.model)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(modalities={self.modalities}, "
            f"sample_size={self.samples[ITEM].numel()}, centered={self.centered}, "
            f"training_state={self.training_state})"
        )
