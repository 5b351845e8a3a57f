r"""The FAISS inner-product index over the items of an export: exact
(:class:`faiss.IndexFlatIP`, the default) or approximate for large catalogues
(:class:`faiss.IndexIVFFlat`, :class:`faiss.IndexHNSWFlat`), its search, its recall
against exact search, and reading it back with checks."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

__all__ = [
    "INDEX_KINDS",
    "build_item_index",
    "index_settings",
    "search_index",
    "exact_top_k",
    "recall_queries",
    "index_recall",
    "write_index",
    "read_index",
]

#: The kinds of item index: exact, inverted lists, graph.
INDEX_KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw")

# k-means on fewer points per list is poorly trained (FAISS warns)
_MIN_POINTS_PER_LIST = 39
_TRAIN_POINTS_PER_LIST = 256


def build_item_index(
    items: np.ndarray,
    kind: str = "flat",
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 200,
    ef_search: int = 128,
    seed: int = 0,
) -> faiss.Index:
    r"""An inner-product index over the item representations.

    Args:
        items (numpy.ndarray): Item representations (float32).
        kind (str, optional): ``"flat"`` (exact), ``"ivf"`` (inverted lists, k-means
            trained on up to 256 items per list) or ``"hnsw"`` (a navigable graph).
            (default: :obj:`"flat"`)
        nlist (int, optional): IVF lists; :obj:`None` takes :math:`\sqrt{N}`, capped so
            that each list has at least 39 items. (default: :obj:`None`)
        nprobe (int, optional): IVF lists probed per query; :obj:`None` takes
            :math:`\max(8, \text{nlist} / 8)`. (default: :obj:`None`)
        hnsw_m (int, optional): HNSW neighbours per node. (default: :obj:`32`)
        ef_construction (int, optional): HNSW build beam. (default: :obj:`200`)
        ef_search (int, optional): HNSW search beam (raised to :math:`k` when a search
            asks for more). (default: :obj:`128`)
        seed (int, optional): Seed of IVF's k-means sample. (default: :obj:`0`)

    Shapes:
        - **items:** ``[N, d]``
    """
    items = np.ascontiguousarray(items, dtype=np.float32)
    num_items, dim = items.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        if nlist is None:
            nlist = int(round(math.sqrt(num_items)))
        nlist = max(1, min(int(nlist), num_items // _MIN_POINTS_PER_LIST))
        nprobe = max(1, min(nlist, nprobe if nprobe is not None else max(8, nlist // 8)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = min(num_items, _TRAIN_POINTS_PER_LIST * nlist)
        rows = np.sort(np.random.default_rng(seed).choice(num_items, sample, replace=False))
        index.train(items[rows])
        index.nprobe = nprobe
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        index.hnsw.efSearch = int(ef_search)
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {list(INDEX_KINDS)}")
    index.add(items)
    return index


def index_settings(index: faiss.Index) -> dict[str, Any]:
    r"""The kind of :obj:`index` and its search settings, for the manifest."""
    if isinstance(index, faiss.IndexHNSW):
        return {
            "kind": "hnsw",
            "hnsw_m": int(index.hnsw.nb_neighbors(1)),
            "ef_construction": int(index.hnsw.efConstruction),
            "ef_search": int(index.hnsw.efSearch),
        }
    if isinstance(index, faiss.IndexIVF):
        return {"kind": "ivf", "nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    return {"kind": "flat"}


def search_index(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The :obj:`k` items of largest inner product with each query, best first; an
    approximate index may return fewer (item :math:`-1`, score :math:`-\infty`).

    Args:
        index (faiss.Index): An index of :func:`build_item_index`.
        queries (numpy.ndarray): Query vectors.
        k (int): Items per query (at most the number of items).

    Shapes:
        - **queries:** ``[q, d]``
        - **output:** scores float32 ``[q, k]``, items int64 ``[q, k]``
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = int(min(k, index.ntotal))
    if isinstance(index, faiss.IndexHNSW) and k > index.hnsw.efSearch:
        params = faiss.SearchParametersHNSW(efSearch=k)
        scores, items = index.search(queries, k, params=params)
    else:
        scores, items = index.search(queries, k)
    scores[items < 0] = -np.inf
    return scores, items


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    r"""The :obj:`k` items of largest inner product with each query (exact, by a
    matrix product; unordered within the :obj:`k`).

    Shapes:
        - **items:** ``[N, d]``, **queries:** ``[q, d]``
        - **output:** int64 ``[q, k]``
    """
    scores = np.asarray(queries, dtype=np.float32) @ np.asarray(items, dtype=np.float32).T
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k].astype(np.int64)


def recall_queries(num_users: int, count: int = 1000, seed: int = 0) -> np.ndarray:
    r"""The users whose representations serve as queries of :func:`index_recall`:
    :obj:`count` distinct users drawn with :obj:`seed` (all of them if fewer), sorted
    (``numpy.random.default_rng(seed).choice(num_users, count, replace=False)``)."""
    count = min(int(count), int(num_users))
    return np.sort(np.random.default_rng(seed).choice(num_users, count, replace=False))


def index_recall(index: faiss.Index, items: np.ndarray, queries: np.ndarray, k: int) -> float:
    r"""Recall@:math:`k` of :obj:`index` against exact search: the share of each
    query's exact top-:math:`k` items (by inner product, nothing excluded) that the
    index returns in its top-:math:`k`, averaged over the queries.

    Shapes:
        - **items:** ``[N, d]``, **queries:** ``[q, d]``
    """
    k = min(int(k), items.shape[0])
    found = search_index(index, queries, k)[1]
    exact = exact_top_k(items, queries, k)
    hits = sum(len(np.intersect1d(a, e)) for a, e in zip(found, exact))
    return float(hits / max(1, exact.size))


def write_index(index: faiss.Index, path: str | os.PathLike) -> None:
    r"""Writes :obj:`index` to :obj:`path` (FAISS's own format)."""
    faiss.write_index(index, str(path))


def read_index(path: str | os.PathLike, num_items: int, dim: int) -> faiss.Index:
    r"""Reads an item index written by :func:`write_index` and checks it.

    Raises:
        ValueError: If the file is not a FAISS index, or holds another number of
            vectors, another dimension, or not an inner-product index, naming the file.
    """
    path = Path(path)
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise ValueError(f"{path}: not a readable FAISS index ({reason})") from None
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"{path}: not an inner-product index")
    if index.ntotal != num_items or index.d != dim:
        raise ValueError(
            f"{path}: holds {index.ntotal} vectors of {index.d} dimensions, the export "
            f"{num_items} items of {dim}"
        )
    return index
