r"""New catalogue items, with features but no interactions, given representations so
that they can be recommended the day they arrive (``dreamgeo export --add-items``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.checks import check_values
from dreamgeo.datasets.schema import ITEM, feature_key, modality_names
from dreamgeo.nn.modal_line import modality_weights
from dreamgeo.train.cold_start import content_fold_in

__all__ = ["NewItems", "read_new_items", "new_item_rows"]


@dataclass
class NewItems:
    r"""New items: their original ids ``[K]`` and raw features per modality
    ``[K, d_m]``."""

    ids: list[str]
    features: dict[str, Tensor]


def read_new_items(path: str | os.PathLike, data: HeteroData) -> NewItems:
    r"""Reads a ``.npz`` file of new items (no pickles): an array ``ids`` (strings or
    integers, unique) and one float array per modality of :obj:`data`, named after it,
    ``[K, d_m]`` with the width of that modality's training features and finite values.
    Raises :class:`ValueError` naming the file and the fault."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz without pickles ({error})") from None
    with archive:
        if "ids" not in archive.files:
            raise ValueError(f"{path}: no array 'ids' (it has {archive.files})")
        ids = [str(i) for i in archive["ids"].tolist()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path}: 'ids' has duplicates")
        features = {}
        for m in modality_names(data):
            if m not in archive.files:
                raise ValueError(
                    f"{path}: no array '{m}' (the model's modalities are "
                    f"{modality_names(data)}; it has {archive.files})"
                )
            x = archive[m]
            width = data[ITEM][feature_key(m)].size(1)
            if x.ndim != 2 or x.shape != (len(ids), width) or x.dtype.kind != "f":
                raise ValueError(
                    f"{path}: '{m}' must be a float array [{len(ids)}, {width}] (one row per "
                    f"id, the training features' width), got {x.dtype} {list(x.shape)}"
                )
            features[m] = check_values(
                torch.from_numpy(x.astype(np.float32)), f"{path}: {m}", "new items"
            )
    return NewItems(ids, features)


@torch.no_grad()
def new_item_rows(model: torch.nn.Module, data: HeteroData, items: NewItems) -> tuple[Tensor, str]:
    r"""Scoring rows ``[K, d]`` of new items and how they were made: the model's own
    feature path where it has one (:meth:`DREAM.cold_item_embeddings
    <dreamgeo.models.DREAM.cold_item_embeddings>`), else the content-neighbour fold-in
    (:func:`~dreamgeo.train.cold_start.content_fold_in`, the mean rows of each new
    item's 10 content-nearest trained items)."""
    if hasattr(model, "cold_item_embeddings"):
        return model.cold_item_embeddings(items.features), "modal path"
    _, item_emb = model.embeddings()
    warm = {m: data[ITEM][feature_key(m)] for m in items.features}
    weights = modality_weights(0.3, list(items.features))
    return content_fold_in(item_emb, warm, items.features, weights), "content fold-in"
