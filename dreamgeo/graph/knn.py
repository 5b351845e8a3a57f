r"""Cosine top-:math:`k` neighbour graphs with FAISS (``DESIGN.md`` section 3.3 and 7).

The modal relation graphs of DREAM (Eq. 5–6) keep, for every row of a feature matrix,
its :math:`k` most cosine-similar rows. Cosine similarity is the inner product of
L2-normalized rows, so the search runs on a FAISS inner-product index: exact
(:class:`faiss.IndexFlatIP`) by default, inverted lists (:class:`faiss.IndexIVFFlat`)
for very large sets; or, with ``backend="torch"``, exact blocked dense products on the
CPU or a CUDA device. Queries run in chunks, so memory stays :math:`O(n k)` plus the
index; no :math:`n \times n` similarity matrix is ever formed.
"""

from __future__ import annotations

import logging
import math
import warnings

import faiss
import numpy as np
import torch
from torch import Tensor

__all__ = ["knn_graph_cosine", "knn_recall"]

logger = logging.getLogger(__name__)

_DEFAULT_CHUNK_SIZE = 16384
# FAISS GPU indexes cannot return more than this many neighbours per query.
_GPU_MAX_K = 2048
# k-means on fewer than this many points per list is poorly trained (FAISS warns).
_MIN_POINTS_PER_LIST = 39
_TRAIN_POINTS_PER_LIST = 64
# Warn when a probed IVF list holds this many times the rows of a balanced one.
_UNBALANCED_FACTOR = 4.0

ArrayLike = Tensor | np.ndarray


def _num_rows_and_dim(x: ArrayLike) -> tuple[int, int]:
    if x.ndim != 2:
        raise ValueError(
            f"knn_graph_cosine expects a 2-D feature matrix [n, d], got shape {tuple(x.shape)}"
        )
    return int(x.shape[0]), int(x.shape[1])


def _rows(x: ArrayLike, start: int, stop: int) -> np.ndarray:
    r"""Rows ``start:stop`` of ``x`` as a C-contiguous float32 numpy array (a view when
    ``x`` already is one, else a copy of the chunk only)."""
    if isinstance(x, Tensor):
        chunk = x[start:stop].detach()
        if chunk.device.type != "cpu":
            chunk = chunk.cpu()
        chunk = chunk.to(torch.float32).numpy()
    else:
        chunk = x[start:stop]
    return np.ascontiguousarray(chunk, dtype=np.float32)


def _row_norms(x: ArrayLike, chunk_size: int) -> np.ndarray:
    r"""L2 norm of every row (accumulated in float64), raising on non-finite values."""
    n, _ = _num_rows_and_dim(x)
    norms = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk_size):
        chunk = _rows(x, start, start + chunk_size).astype(np.float64)
        if not np.isfinite(chunk).all():
            bad = start + int(np.flatnonzero(~np.isfinite(chunk).all(axis=1))[0])
            raise ValueError(
                f"knn_graph_cosine: row {bad} of the feature matrix has a NaN or "
                f"infinite value; cosine similarity is undefined for it"
            )
        norms[start : start + chunk.shape[0]] = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
    return norms


def _normalized_chunks(x: ArrayLike, norms: np.ndarray, chunk_size: int):
    r"""Yields ``(first, rows)``: the L2-normalized non-zero rows of consecutive chunks
    of ``x`` as float32, and the position of the first of them among all non-zero rows
    (the non-zero rows of a chunk are consecutive in that order)."""
    n = norms.shape[0]
    first = 0
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        keep = norms[start:stop] > 0
        if not keep.any():
            continue
        rows = _rows(x, start, stop)[keep]
        rows /= norms[start:stop][keep, None].astype(np.float32)
        yield first, rows
        first += rows.shape[0]


def _gpu_id(device: str | int | torch.device | None) -> int | None:
    r"""The GPU that FAISS should use, or ``None`` for the CPU."""
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


def _build_index(
    x: ArrayLike,
    norms: np.ndarray,
    nonzero_ids: np.ndarray,
    mode: str,
    nlist: int | None,
    nprobe: int | None,
    gpu: int | None,
    chunk_size: int,
    seed: int = 0,
):
    r"""The FAISS index over the normalized non-zero rows of ``x`` (added chunk by
    chunk, so the index holds the only full normalized copy) and the IVF
    ``(nlist, nprobe)`` it uses."""
    n, dim = int(nonzero_ids.size), int(x.shape[1])
    if mode == "exact":
        index = faiss.IndexFlatIP(dim)
    else:
        if nlist is None:
            nlist = int(round(math.sqrt(n)))
        nlist = max(1, min(nlist, n // _MIN_POINTS_PER_LIST))
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
        train = _rows_at(x, train_ids)
        train /= norms[train_ids, None].astype(np.float32)
        index.train(train)
        del train
        index.nprobe = nprobe
        logger.debug("IVF index: nlist=%d nprobe=%d trained on %d rows", nlist, nprobe, num_train)
    for _, rows in _normalized_chunks(x, norms, chunk_size):
        index.add(rows)
    if mode == "ivf" and gpu is None:
        _warn_if_unbalanced(index, nlist, nprobe, n)
    return index, nlist, nprobe


def _warn_if_unbalanced(index, nlist: int, nprobe: int, num_rows: int) -> None:
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


def _search_ivf_complete(index, queries: np.ndarray, k: int, nprobe: int, nlist: int):
    r"""IVF search that widens ``nprobe`` for queries whose probed lists held fewer
    than ``k`` vectors (FAISS pads those results with id ``-1``)."""
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


class _TorchFlatIP:
    r"""Exact inner-product search with dense torch products, a FAISS-like
    ``add``/``search`` pair. Each product covers as many queries as fit in
    ``scratch_bytes`` of similarities, so memory is the database plus that scratch."""

    def __init__(
        self, num_rows: int, dim: int, device: torch.device, scratch_bytes: int = 256 << 20
    ):
        self.device = device
        self.database = torch.empty(num_rows, dim, dtype=torch.float32, device=device)
        self.ntotal = 0
        self.scratch_bytes = scratch_bytes

    def add(self, rows: np.ndarray) -> None:
        stop = self.ntotal + rows.shape[0]
        self.database[self.ntotal : stop] = torch.from_numpy(rows).to(self.device)
        self.ntotal = stop

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        database = self.database[: self.ntotal]
        block = max(1, self.scratch_bytes // (4 * max(1, self.ntotal)))
        scores = np.empty((queries.shape[0], k), dtype=np.float32)
        ids = np.empty((queries.shape[0], k), dtype=np.int64)
        for start in range(0, queries.shape[0], block):
            query = torch.from_numpy(queries[start : start + block]).to(self.device)
            top_scores, top_ids = (query @ database.T).topk(k, dim=1)
            scores[start : start + block] = top_scores.cpu().numpy()
            ids[start : start + block] = top_ids.cpu().numpy()
        return scores, ids


def _force_self(
    ids: np.ndarray, scores: np.ndarray, self_ids: np.ndarray, self_scores: np.ndarray
) -> None:
    r"""Puts every query's own id into its neighbour list, in place, replacing the
    lowest-scored neighbour when ties (exact duplicates) pushed it out."""
    missing = ~(ids == self_ids[:, None]).any(axis=1)
    if missing.any():
        ids[missing, -1] = self_ids[missing]
        scores[missing, -1] = self_scores[missing]


def _make_index(
    x: ArrayLike,
    norms: np.ndarray,
    nonzero_ids: np.ndarray,
    k: int,
    mode: str,
    backend: str,
    nlist: int | None,
    nprobe: int | None,
    device: str | int | torch.device | None,
    chunk_size: int,
):
    r"""The filled search index of the chosen backend and its IVF ``(nlist, nprobe)``."""
    if backend == "torch":
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
        index = _TorchFlatIP(int(nonzero_ids.size), int(x.shape[1]), device)
        for _, rows in _normalized_chunks(x, norms, chunk_size):
            index.add(rows)
        return index, None, None
    gpu = _gpu_id(device)
    if gpu is not None and k > _GPU_MAX_K:
        warnings.warn(
            f"knn_graph_cosine: k={k} exceeds FAISS' GPU limit of {_GPU_MAX_K}; "
            f"searching on the CPU",
            stacklevel=3,
        )
        gpu = None
    return _build_index(x, norms, nonzero_ids, mode, nlist, nprobe, gpu, chunk_size)


def knn_graph_cosine(
    x: ArrayLike,
    k: int,
    *,
    mode: str = "exact",
    nlist: int | None = None,
    nprobe: int | None = None,
    chunk_size: int = _DEFAULT_CHUNK_SIZE,
    device: str | int | torch.device | None = None,
    backend: str = "faiss",
    return_scores: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""The cosine top-:math:`k` graph of the rows of :obj:`x`: every row :math:`i`
    gets an edge to each of its :math:`k` most similar rows

    .. math::
        \mathcal{N}_k(i) = \operatorname{top-}k_{j}\;
        \frac{\mathbf{x}_i^\top \mathbf{x}_j}{\|\mathbf{x}_i\|\,\|\mathbf{x}_j\|},

    row :math:`i` itself included (as MMRec's FREEDOM and MGCN do). Its own id is forced
    into the list even when exact duplicates tie with it.

    The search is a FAISS inner-product search on L2-normalized rows, run in query
    chunks so that memory is :math:`O(nk)` plus the index, which holds the only full
    copy of the normalized non-zero rows (float32); rows are normalized chunk by chunk
    on their way into the index and again as queries. FAISS' GPU index is used when
    faiss has GPU support and a GPU is visible, else the CPU one; FAISS' default
    OpenMP thread count is kept.

    All-zero rows have no cosine similarity to anything: such a row gets one edge, to
    itself, and is never a neighbour of another row. Non-zero rows therefore get
    :math:`\min(k, n_{\neq 0})` neighbours, where :math:`n_{\neq 0}` counts the
    non-zero rows.

    Args:
        x (torch.Tensor or numpy.ndarray): Features of shape ``[n, d]`` (any real
            dtype; cast to float32 chunk by chunk; must be finite).
        k (int): Neighbours per row, self included. Clamped to :math:`n` with a
            warning when larger.
        mode (str, optional): ``"exact"`` (:class:`faiss.IndexFlatIP`) or ``"ivf"``
            (:class:`faiss.IndexIVFFlat` with the inner-product metric, trained on a
            random sample of rows). On a CPU, IVF-Flat over high-dimensional rows
            (e.g. 4096-d) is bound by memory bandwidth, since every probed list is
            streamed once per query, and can be slower than exact search, which
            reuses cached blocks in BLAS; it pays off for much larger :math:`n` or on
            a GPU. (default: ``"exact"``)
        nlist (int, optional): IVF lists; ``None`` takes :math:`\sqrt{n}`, capped so
            that each list has at least 39 training rows. (default: ``None``)
        nprobe (int, optional): IVF lists probed per query; ``None`` takes
            :math:`\max(8, \text{nlist}/16)`. Queries whose probed lists hold fewer
            than :math:`k` rows are retried with more lists. (default: ``None``)
        chunk_size (int, optional): Rows normalized and queried at a time.
            (default: ``16384``)
        device (str or int or torch.device, optional): ``"cpu"`` forces the CPU,
            ``"cuda[:i]"`` or ``i`` a GPU; ``None`` picks the GPU when available (for
            ``backend="faiss"``: when faiss has GPU support). (default: ``None``)
        backend (str, optional): ``"faiss"``, or ``"torch"`` for exact search with
            blocked dense torch products and :meth:`torch.Tensor.topk` (CPU or CUDA,
            about 256 MB of scratch). The torch backend helps where FAISS is slow or
            CPU-only: the OpenBLAS bundled with the ``faiss-cpu`` wheels falls back to
            a generic kernel on CPUs it does not recognize (several times slower; the
            environment variable ``OPENBLAS_CORETYPE`` fixes it), and ``faiss-cpu``
            cannot use a GPU. (default: ``"faiss"``)
        return_scores (bool, optional): Also return the cosine of every edge.
            (default: ``False``)

    Shapes:
        - **input:** ``[n, d]``
        - **output:** ``edge_index`` ``[2, E]`` with ``E = n * k`` when no row is
          all-zero; row 0 holds the query row :math:`i`, row 1 its neighbour
          :math:`j`; edges are grouped by query row in increasing order, neighbours
          by decreasing similarity. With ``return_scores``, also ``[E]`` cosines.
    """
    if mode not in ("exact", "ivf"):
        raise ValueError(f"knn_graph_cosine: mode must be 'exact' or 'ivf', got '{mode}'")
    if backend not in ("faiss", "torch"):
        raise ValueError(f"knn_graph_cosine: backend must be 'faiss' or 'torch', got '{backend}'")
    if backend == "torch" and mode != "exact":
        raise ValueError("knn_graph_cosine: backend='torch' only supports mode='exact'")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise ValueError(f"knn_graph_cosine: k must be an integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"knn_graph_cosine: k must be positive, got {k}")
    if chunk_size <= 0:
        raise ValueError(f"knn_graph_cosine: chunk_size must be positive, got {chunk_size}")
    n, _ = _num_rows_and_dim(x)
    if n == 0:
        empty = torch.empty(2, 0, dtype=torch.long)
        return (empty, torch.empty(0)) if return_scores else empty
    if k > n:
        warnings.warn(f"knn_graph_cosine: k={k} exceeds the {n} rows; using k={n}", stacklevel=2)
        k = n

    norms = _row_norms(x, chunk_size)
    nonzero_ids = np.flatnonzero(norms > 0)
    num_nonzero = int(nonzero_ids.size)
    k_eff = min(k, num_nonzero)

    counts = np.ones(n, dtype=np.int64)
    counts[nonzero_ids] = k_eff
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    col = np.arange(n, dtype=np.int64).repeat(counts)  # all-zero rows: self only
    score = np.zeros(int(ptr[-1]), dtype=np.float32)

    if num_nonzero:
        index, nlist, nprobe = _make_index(
            x, norms, nonzero_ids, k_eff, mode, backend, nlist, nprobe, device, chunk_size
        )
        offsets = np.arange(k_eff, dtype=np.int64)
        for first, queries in _normalized_chunks(x, norms, chunk_size):
            if mode == "ivf":
                scores, ids = _search_ivf_complete(index, queries, k_eff, nprobe, nlist)
            else:
                scores, ids = index.search(queries, k_eff)
            self_ids = np.arange(first, first + queries.shape[0], dtype=np.int64)
            self_scores = np.einsum("ij,ij->i", queries, queries)
            _force_self(ids, scores, self_ids, self_scores)
            slots = ptr[nonzero_ids[self_ids]][:, None] + offsets
            col[slots] = nonzero_ids[ids]
            score[slots] = scores
        del index

    row = np.arange(n, dtype=np.int64).repeat(counts)
    edge_index = torch.from_numpy(np.stack([row, col]))
    if return_scores:
        return edge_index, torch.from_numpy(score)
    return edge_index


def _exact_neighbours_of(
    x: ArrayLike, query_ids: np.ndarray, k: int, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""Brute-force cosine top-:math:`k` of the rows ``query_ids`` against every row of
    ``x`` (same conventions as :func:`knn_graph_cosine`), streaming over database
    chunks. Returns ``(query, neighbour)`` pairs."""
    n, _ = _num_rows_and_dim(x)
    norms = _row_norms(x, chunk_size)
    k = min(k, n)
    num_nonzero = int((norms > 0).sum())
    k_eff = min(k, num_nonzero)
    queries = _rows_at(x, query_ids)
    query_norms = norms[query_ids]
    nonzero_query = query_norms > 0
    queries[nonzero_query] /= query_norms[nonzero_query, None].astype(np.float32)

    best_scores = np.full((query_ids.size, k_eff), -np.inf, dtype=np.float32)
    best_ids = np.full((query_ids.size, k_eff), -1, dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk = _rows(x, start, stop)
        chunk_norms = norms[start:stop].astype(np.float32)
        sims = queries @ chunk.T
        valid = chunk_norms > 0
        sims[:, valid] /= chunk_norms[valid]
        sims[:, ~valid] = -np.inf
        all_scores = np.concatenate([best_scores, sims], axis=1)
        all_ids = np.concatenate(
            [best_ids, np.broadcast_to(np.arange(start, stop), sims.shape)], axis=1
        )
        top = np.argpartition(-all_scores, k_eff - 1, axis=1)[:, :k_eff]
        best_scores = np.take_along_axis(all_scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)

    _force_self(
        best_ids,
        best_scores,
        query_ids.astype(np.int64),
        np.full(query_ids.size, np.inf, dtype=np.float32),
    )
    pairs_query = np.repeat(query_ids, k_eff)[np.repeat(nonzero_query, k_eff)]
    pairs_neighbour = best_ids[nonzero_query].reshape(-1)
    zero_query = query_ids[~nonzero_query]
    return (
        np.concatenate([pairs_query, zero_query]),
        np.concatenate([pairs_neighbour, zero_query]),
    )


def _rows_at(x: ArrayLike, ids: np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        picked = x.detach()[torch.from_numpy(ids).to(x.device)].cpu()
        return np.ascontiguousarray(picked.to(torch.float32).numpy())
    return np.ascontiguousarray(x[ids], dtype=np.float32)


def knn_recall(
    x: ArrayLike,
    k: int,
    approx_edge_index: Tensor | np.ndarray,
    sample: int = 2000,
    seed: int = 0,
    chunk_size: int = 8192,
) -> float:
    r"""Recall of an (approximate) cosine top-:math:`k` graph against exact search,
    measured on a random sample of query rows:

    .. math::
        \text{recall} = \frac{\sum_{i \in S} |\hat{\mathcal{N}}_k(i) \cap
        \mathcal{N}_k(i)|}{\sum_{i \in S} |\mathcal{N}_k(i)|}.

    The exact neighbours :math:`\mathcal{N}_k(i)` come from brute-force numpy products
    of the sampled rows with chunks of the database (independent of FAISS), with the
    conventions of :func:`knn_graph_cosine` (self included, all-zero rows only their
    own neighbour).

    Args:
        x (torch.Tensor or numpy.ndarray): Features of shape ``[n, d]``.
        k (int): Neighbours per row the graph was built with.
        approx_edge_index (torch.Tensor or numpy.ndarray): The graph to check,
            ``[2, E]`` (row 0 query, row 1 neighbour).
        sample (int, optional): Query rows sampled without replacement (all rows when
            :math:`n` is smaller). (default: ``2000``)
        seed (int, optional): Seed of the sample. (default: ``0``)
        chunk_size (int, optional): Database rows per brute-force product.
            (default: ``8192``)
    """
    if k <= 0:
        raise ValueError(f"knn_recall: k must be positive, got {k}")
    n, _ = _num_rows_and_dim(x)
    if n == 0:
        raise ValueError("knn_recall: the feature matrix has no rows")
    rng = np.random.default_rng(seed)
    query_ids = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    exact_query, exact_neighbour = _exact_neighbours_of(x, query_ids, k, chunk_size)

    approx = np.asarray(
        approx_edge_index.cpu() if isinstance(approx_edge_index, Tensor) else approx_edge_index,
        dtype=np.int64,
    )
    if approx.ndim != 2 or approx.shape[0] != 2:
        raise ValueError(
            f"knn_recall: approx_edge_index must have shape [2, E], got {approx.shape}"
        )
    in_sample = np.isin(approx[0], query_ids)
    approx_keys = approx[0, in_sample] * n + approx[1, in_sample]
    exact_keys = exact_query * n + exact_neighbour
    return float(np.isin(exact_keys, approx_keys).mean())
