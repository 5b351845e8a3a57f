r"""A trained model out of the library: its final user and item representations,
original ids, seen items and a FAISS index over the items, as an
:class:`~dreamgeo.serve.ExportedModel` (the library side of ``dreamgeo export``).

Every registered model ranks by inner products of the rows of
:meth:`~dreamgeo.models.Recommender.embeddings` (the trainer's evaluator scores them so),
which is what makes an export exact. Each model's ``forward`` was checked for it:

* BPR-MF, LightGCN: ID embeddings (propagated for LightGCN);
* VBPR: ``[behaviour, modal]`` concatenated on both sides, so the score is the sum of
  both inner products;
* DualGNN, SLMRec, BM3 (its predictor on both sides), LATTICE, FREEDOM, LGMRec:
  one user row and one item row per node;
* MGCN and DREAM: ``E_B + E_M`` (or DREAM's learnable weighting); DREAM's
  ``fusion="concat"`` concatenates both lines on both sides, and ``item_bias`` (MGCN,
  DREAM) appends a column of ones to users and of :math:`b_i` to items, so
  :math:`[\mathbf{e}_u, 1] \cdot [\mathbf{e}_i, b_i] = \mathbf{e}_u \cdot
  \mathbf{e}_i + b_i` stays an inner product (those columns are exported).

A model outside :data:`EXPORTABLE_MODELS` (a future or a user's own one) is refused
unless its caller vouches for inner-product scores (``inner_product=True``).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.datasets.source import data_checksum
from dreamgeo.graph.seen_items import SeenItems
from dreamgeo.serve.arrays import MemoryRows
from dreamgeo.serve.exported import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, ExportedModel, ExportError
from dreamgeo.serve.ids import IdMap, original_ids
from dreamgeo.serve.index import (
    build_item_index,
    index_recall,
    index_settings,
    recall_queries,
)
from dreamgeo.serve.new_items import NewItems, new_item_rows

__all__ = ["EXPORTABLE_MODELS", "check_exportable", "export_arrays", "export_model"]

#: The registered models whose scores are inner products of their ``embeddings()``
#: rows (each ``forward`` checked; see the module's documentation).
EXPORTABLE_MODELS: frozenset[str] = frozenset(
    {
        "bpr",
        "lightgcn",
        "vbpr",
        "dualgnn",
        "slmrec",
        "bm3",
        "lattice",
        "freedom",
        "mgcn",
        "lgmrec",
        "dream",
    }
)


def check_exportable(model: torch.nn.Module, inner_product: bool = False) -> str | None:
    r"""The registered name of :obj:`model` when it may be exported, else an error.

    Args:
        model (torch.nn.Module): A :class:`~dreamgeo.models.Recommender`.
        inner_product (bool, optional): The caller vouches that the model's scores
            are inner products of its ``embeddings()`` rows (for a model not in
            :data:`EXPORTABLE_MODELS`). (default: :obj:`False`)

    Returns:
        The model's name in the registry, or :obj:`None` for an unregistered model
        exported with :obj:`inner_product`.

    Raises:
        ExportError: For a model not known to score by inner products.
    """
    from dreamgeo.models import MODELS, Recommender

    names = {info.cls: name for name, info in MODELS.items()}
    name = names.get(type(model))
    if not isinstance(model, Recommender):
        raise ExportError(f"{type(model).__name__} is not a dreamgeo Recommender")
    if (name is None or name not in EXPORTABLE_MODELS) and not inner_product:
        label = name or type(model).__name__
        raise ExportError(
            f"model {label!r}: its scores are not known to be inner products of its "
            f"embeddings(), which an export needs; exportable: "
            f"{', '.join(sorted(EXPORTABLE_MODELS))} (pass inner_product=True if yours is)"
        )
    return name


def _float_rows(x: Tensor | np.ndarray, name: str, rows: int | None = None) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.ndim != 2 or (rows is not None and array.shape[0] != rows):
        expected = f"[{rows}, d]" if rows is not None else "[n, d]"
        raise ExportError(f"{name} must have shape {expected}, got {list(array.shape)}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ExportError(
            f"{name}: {int(bad.sum())} rows hold NaN or infinite values (first row "
            f"{int(np.flatnonzero(bad)[0])}); the model is not usable"
        )
    return array


def export_arrays(
    user_embeddings: Tensor | np.ndarray,
    item_embeddings: Tensor | np.ndarray,
    seen_edge_index: Tensor | np.ndarray | None = None,
    user_ids: IdMap | np.ndarray | None = None,
    item_ids: IdMap | np.ndarray | None = None,
    index: str = "flat",
    index_options: Mapping[str, Any] | None = None,
    recall_k: int = 20,
    recall_sample: int = 1000,
    seed: int = 0,
    info: Mapping[str, Any] | None = None,
) -> ExportedModel:
    r"""An :class:`~dreamgeo.serve.ExportedModel` of given representations (in
    memory; :meth:`~dreamgeo.serve.ExportedModel.save` writes it).

    The item index is built here and its recall@:obj:`recall_k` against exact search
    is measured on the representations of :obj:`recall_sample` users drawn with
    :obj:`seed` (:func:`~dreamgeo.serve.index.recall_queries`) and written in the
    manifest (``index.recall``).

    Args:
        user_embeddings (torch.Tensor or numpy.ndarray): User rows.
        item_embeddings (torch.Tensor or numpy.ndarray): Item rows (same width).
        seen_edge_index (torch.Tensor or numpy.ndarray, optional): Interactions
            ``[2, E]`` excluded from recommendations (the training graph).
            (default: :obj:`None`, nothing excluded)
        user_ids (IdMap or numpy.ndarray, optional): Original user ids.
            (default: :obj:`None`, the internal ids as text)
        item_ids (IdMap or numpy.ndarray, optional): Original item ids.
            (default: :obj:`None`, the internal ids as text)
        index (str, optional): ``"flat"`` (exact), ``"ivf"`` or ``"hnsw"`` (see
            :func:`~dreamgeo.serve.index.build_item_index`). (default: :obj:`"flat"`)
        index_options (Mapping[str, Any], optional): More arguments of
            :func:`~dreamgeo.serve.index.build_item_index` (``nlist``, ``nprobe``,
            ``hnsw_m``, ``ef_search``, ...). (default: :obj:`None`)
        recall_k (int, optional): The :math:`k` of the recall check. (default: :obj:`20`)
        recall_sample (int, optional): Users whose rows are the recall queries.
            (default: :obj:`1000`)
        seed (int, optional): Seed of the recall sample and of IVF's k-means.
            (default: :obj:`0`)
        info (Mapping[str, Any], optional): More manifest entries (model,
            hyper-parameters, data checksum, ...). (default: :obj:`None`)

    Shapes:
        - **user_embeddings:** ``[M, d]``, **item_embeddings:** ``[N, d]``
        - **seen_edge_index:** ``[2, E]``
    """
    users = _float_rows(user_embeddings, "user representations")
    items = _float_rows(item_embeddings, "item representations")
    (num_users, dim), num_items = users.shape, items.shape[0]
    if items.shape[1] != dim:
        raise ExportError(f"user rows have {dim} columns, item rows {items.shape[1]}")
    if seen_edge_index is None:
        rowptr, col = np.zeros(num_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    else:
        seen = SeenItems(torch.as_tensor(np.asarray(seen_edge_index)), num_users, num_items)
        rowptr, col = seen.rowptr.numpy(), seen.col.numpy().astype(np.int32)
    maps = []
    for ids, count, kind in ((user_ids, num_users, "user"), (item_ids, num_items, "item")):
        ids = ids if isinstance(ids, IdMap) else IdMap(np.arange(count) if ids is None else ids)
        if len(ids) != count:
            raise ExportError(f"{len(ids)} {kind} ids for {count} {kind}s")
        ids.kind = kind
        ids.check_unique()
        maps.append(ids)

    built = build_item_index(items, index, seed=seed, **dict(index_options or {}))
    queries = recall_queries(num_users, recall_sample, seed)
    settings = index_settings(built)
    settings["recall"] = {
        "k": min(int(recall_k), num_items),
        "value": index_recall(built, items, users[queries], recall_k),
        "queries": int(queries.size),
        "seed": int(seed),
        "against": "exact inner-product search, nothing excluded",
    }
    from dreamgeo import __version__

    manifest = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "dreamgeo_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **dict(info or {}),
        "score": "inner product of a user row and an item row",
        "num_users": num_users,
        "num_items": num_items,
        "dim": dim,
        "dtype": "float32",
        "seen_interactions": int(col.size),
        "index": settings,
    }
    return ExportedModel(
        manifest,
        MemoryRows(users),
        items,
        MemoryRows(maps[0].original),
        maps[1].original,
        MemoryRows(rowptr.astype(np.int64)),
        MemoryRows(col),
        index=built,
    )


@torch.no_grad()
def export_model(
    model: torch.nn.Module,
    data: HeteroData,
    dataset_dir: str | os.PathLike | None = None,
    info: Mapping[str, Any] | None = None,
    inner_product: bool = False,
    new_items: NewItems | None = None,
    **settings: Any,
) -> ExportedModel:
    r"""The :class:`~dreamgeo.serve.ExportedModel` of a trained model: the rows of
    its :meth:`~dreamgeo.models.Recommender.embeddings`, the original ids
    (:func:`~dreamgeo.serve.ids.original_ids`), the training interactions of
    :obj:`data` as the seen items, the item index with its measured recall, and a
    manifest with the model's name, the data checksum
    (:func:`~dreamgeo.datasets.source.data_checksum`) and :obj:`info`.

    Args:
        model (torch.nn.Module): A trained model of :data:`EXPORTABLE_MODELS`.
        data (HeteroData): The data it was trained on.
        dataset_dir (str or Path, optional): The dataset folder whose
            ``u_id_mapping.csv`` / ``i_id_mapping.csv`` give original ids.
            (default: :obj:`None`)
        info (Mapping[str, Any], optional): More manifest entries (hyper-parameters,
            run folder, ...). (default: :obj:`None`)
        inner_product (bool, optional): See :func:`check_exportable`.
            (default: :obj:`False`)
        new_items (NewItems, optional): Items with features but no interactions,
            appended to the catalogue with rows from
            :func:`~dreamgeo.serve.new_items.new_item_rows` (the model's own feature
            path, or the content fold-in) under their own ids. (default: :obj:`None`)
        **settings: The index and its recall check, as for :func:`export_arrays`
            (``index``, ``index_options``, ``recall_k``, ``recall_sample``, ``seed``).

    Raises:
        ExportError: For a model not known to score by inner products, or
            representations that are not finite.
    """
    name = check_exportable(model, inner_product)
    was_training = model.training
    model.eval()
    try:
        user_rows, item_rows = model.embeddings()
        if new_items is not None:
            new_rows, method = new_item_rows(model, data, new_items)
    finally:
        model.train(was_training)
    num_users, num_items = int(data[USER].num_nodes), int(data[ITEM].num_nodes)
    users = _float_rows(user_rows, "user representations", num_users)
    items = _float_rows(item_rows, "item representations", num_items)
    user_ids, item_ids, id_sources = original_ids(data, dataset_dir)
    added = {}
    if new_items is not None:
        clash = sorted(set(new_items.ids) & set(item_ids.original.tolist()))
        if clash:
            raise ExportError(f"new items: ids already in the catalogue: {clash[:5]}")
        new_rows = _float_rows(new_rows, "new item representations", len(new_items.ids))
        items = np.concatenate([items, new_rows])
        item_ids = IdMap(
            np.concatenate([item_ids.original, np.asarray(new_items.ids, str)]), "item"
        )
        added = {"added_items": {"count": len(new_items.ids), "method": method}}
    manifest_info = {
        "model": name or type(model).__name__,
        "model_class": type(model).__name__,
        "data_checksum": data_checksum(data),
        "ids": id_sources,
        **added,
        **dict(info or {}),
    }
    edge_index = data[INTERACTS].edge_index.cpu()
    return export_arrays(
        users, items, edge_index, user_ids, item_ids, info=manifest_info, **settings
    )
