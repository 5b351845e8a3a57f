r"""The FAISS engine of :func:`~dreamgeo.graph.knn_graph_cosine` (``backend="faiss"``):
an inner-product index over the L2-normalized non-zero rows, exact
(:class:`faiss.IndexFlatIP`) or inverted lists (:class:`faiss.IndexIVFFlat`), on a GPU
when faiss has GPU support and one is visible."""

from __future__ import annotations

import logging
import math

import faiss
import numpy as np
import torch

from dreamgeo.graph.knn_common import (
    MIN_POINTS_PER_LIST,
    ArrayLike,
    normalized_chunks,
    read_rows_at,
)

__all__ = ["GPU_MAX_K", "faiss_gpu_id", "build_faiss_index", "search_ivf_complete"]

# Records keep the name of the module of the public entry point.
logger = logging.getLogger("dreamgeo.graph.knn")

# FAISS GPU indexes cannot return more than this many neighbours per query.
GPU_MAX_K = 2048
_TRAIN_POINTS_PER_LIST = 64
# Warn when a probed IVF list holds this many times the rows of a balanced one.
_UNBALANCED_FACTOR = 4.0


def faiss_gpu_id(device: str | int | torch.device | None) -> int | None:
    r"""The GPU that FAISS should use, or ``None`` for the CPU.

    Args:
        device (str or int or torch.device, optional): ``"cpu"``, ``"cuda[:i]"`` or
            ``i``; ``None`` picks GPU 0 when faiss has GPU support and a GPU is visible.
    """
    has_gpu_faiss = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if device is None:
        return 0 if has_gpu_faiss and torch.cuda.is_available() else None
    device = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        raise ValueError(f"knn_graph_cosine: unsupported device '{device}'")
    if not has_gpu_faiss:
        raise ValueError(
            f"knn_graph_cosine: device '{device}' requested but this faiss build has "
            f"no GPU support (install faiss-gpu) or sees no GPU"
        )
    return device.index or 0


def build_faiss_index(
    x: ArrayLike,
    norms: np.ndarray,
    nonzero_ids: np.ndarray,
    mode: str,
    nlist: int | None,
    nprobe: int | None,
    gpu: int | None,
    chunk_size: int,
    seed: int = 0,
) -> tuple[faiss.Index, int | None, int | None]:
    r"""The FAISS index over the normalized non-zero rows of ``x`` (added chunk by
    chunk, so the index holds the only full normalized copy) and the IVF
    ``(nlist, nprobe)`` it uses.

    Args:
        x (torch.Tensor or numpy.ndarray): Features.
        norms (numpy.ndarray): Row norms
            (:func:`~dreamgeo.graph.knn_common.row_norms`).
        nonzero_ids (numpy.ndarray): Ids of the rows with a non-zero norm.
        mode (str): ``"exact"`` or ``"ivf"``.
        nlist (int, optional): IVF lists; ``None`` takes :math:`\sqrt{n}`, capped so
            that each list has at least 39 rows.
        nprobe (int, optional): IVF lists probed per query; ``None`` takes
            :math:`\max(8, \text{nlist}/16)`.
        gpu (int, optional): GPU id (:func:`faiss_gpu_id`), ``None`` for the CPU.
        chunk_size (int): Rows normalized and added at a time.
        seed (int, optional): Seed of the k-means training sample. (default: ``0``)

    Shapes:
        - **input:** ``[n, d]``, ``norms`` ``[n]``, ``nonzero_ids`` ``[n_nonzero]``
    """
    n, dim = int(nonzero_ids.size), int(x.shape[1])
    if mode == "exact":
        index = faiss.IndexFlatIP(dim)
    else:
        if nlist is None:
            nlist = int(round(math.sqrt(n)))
        nlist = max(1, min(nlist, n // MIN_POINTS_PER_LIST))
        if nprobe is None:
            nprobe = max(8, nlist // 16)
        nprobe = max(1, min(nprobe, nlist))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.nprobe = nprobe
    if gpu is not None:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, gpu, index)
        index.dreamgeo_resources = resources  # the resources must outlive the index
    if mode == "ivf":
        num_train = min(n, _TRAIN_POINTS_PER_LIST * nlist)
        rng = np.random.default_rng(seed)
        train_ids = nonzero_ids[np.sort(rng.choice(n, size=num_train, replace=False))]
        train = read_rows_at(x, train_ids)
        train /= norms[train_ids, None].astype(np.float32)
        index.train(train)
        del train
        index.nprobe = nprobe
        logger.debug("IVF index: nlist=%d nprobe=%d trained on %d rows", nlist, nprobe, num_train)
    for _, rows in normalized_chunks(x, norms, chunk_size):
        index.add(rows)
    if mode == "ivf" and gpu is None:
        _warn_if_unbalanced(index, nlist, nprobe, n)
    return index, nlist, nprobe


def _warn_if_unbalanced(index: faiss.Index, nlist: int, nprobe: int, num_rows: int) -> None:
    r"""Logs a warning when k-means left the inverted lists so unbalanced that a query
    scans several times the rows a balanced index would (queries fall into large lists
    more often, so the expected size of a probed list is
    :math:`\sum_l s_l^2 / \sum_l s_l`)."""
    sizes = np.array([index.invlists.list_size(i) for i in range(nlist)], dtype=np.float64)
    probed_size = float((sizes**2).sum() / max(1.0, sizes.sum()))
    if probed_size > _UNBALANCED_FACTOR * num_rows / nlist:
        scanned = min(1.0, nprobe * probed_size / num_rows)
        logger.warning(
            "IVF lists are unbalanced (largest %d of %d rows); each query scans about "
            "%.0f%% of the rows, which can be slower than mode='exact'",
            int(sizes.max()),
            num_rows,
            100 * scanned,
        )


def search_ivf_complete(
    index: faiss.Index, queries: np.ndarray, k: int, nprobe: int, nlist: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""IVF search that widens ``nprobe`` for queries whose probed lists held fewer
    than ``k`` vectors (FAISS pads those results with id ``-1``).

    Args:
        index (faiss.Index): A filled IVF index (:func:`build_faiss_index`).
        queries (numpy.ndarray): L2-normalized float32 queries.
        k (int): Neighbours per query.
        nprobe (int): Lists probed first (restored on the index afterwards).
        nlist (int): Lists of the index.

    Shapes:
        - **input:** ``queries`` ``[q, d]``
        - **output:** scores ``[q, k]``, ids ``[q, k]``
    """
    scores, ids = index.search(queries, k)
    missing = np.flatnonzero((ids < 0).any(axis=1))
    probe = nprobe
    try:
        while missing.size and probe < nlist:
            probe = min(nlist, probe * 4)
            index.nprobe = probe
            scores_missing, ids_missing = index.search(queries[missing], k)
            scores[missing], ids[missing] = scores_missing, ids_missing
            missing = missing[(ids_missing < 0).any(axis=1)]
    finally:
        index.nprobe = nprobe
    return scores, ids
