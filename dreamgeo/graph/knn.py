r"""Cosine top-:math:`k` neighbour graphs with FAISS (``DESIGN.md`` section 3.3 and 7).

The modal relation graphs of DREAM (Eq. 5–6) keep, for every row of a feature matrix,
its :math:`k` most cosine-similar rows. Cosine similarity is the inner product of
L2-normalized rows, so the search runs on a FAISS inner-product index: exact
(:class:`faiss.IndexFlatIP`) by default, inverted lists (:class:`faiss.IndexIVFFlat`)
for very large sets; or, with ``backend="torch"``, exact blocked dense products on the
CPU or a CUDA device; or, with ``backend="torch_ivf"``, an inverted-file search whose
per-list scans are dense (bfloat16 where the hardware has fast bfloat16 products)
matrix products, re-ranked exactly in float32. Queries run in chunks, so memory stays
:math:`O(n k)` plus the index; no :math:`n \times n` similarity matrix is ever formed.

This module holds the public entry points and the dispatch; each engine lives in its
own module: :mod:`~dreamgeo.graph.knn_faiss`, :mod:`~dreamgeo.graph.knn_torch` and
:mod:`~dreamgeo.graph.knn_torch_ivf`, with the row reading and normalization they share
in :mod:`~dreamgeo.graph.knn_common`.
"""

from __future__ import annotations

import warnings

import faiss
import numpy as np
import torch
from torch import Tensor

from dreamgeo.graph.knn_common import (
    ArrayLike,
    force_self,
    normalized_chunks,
    num_rows_and_dim,
    read_rows,
    read_rows_at,
    resolve_torch_device,
    row_norms,
)
from dreamgeo.graph.knn_faiss import (
    GPU_MAX_K,
    build_faiss_index,
    faiss_gpu_id,
    search_ivf_complete,
)
from dreamgeo.graph.knn_torch import TorchFlatIP, build_torch_flat_index
from dreamgeo.graph.knn_torch_ivf import TorchIVF

__all__ = ["knn_graph_cosine", "knn_recall"]

_DEFAULT_CHUNK_SIZE = 16384


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
) -> tuple[TorchFlatIP | faiss.Index, int | None, int | None]:
    r"""The filled search index of an exact or FAISS backend (``"torch"``:
    :mod:`~dreamgeo.graph.knn_torch`, ``"faiss"``: :mod:`~dreamgeo.graph.knn_faiss`)
    and its IVF ``(nlist, nprobe)``."""
    if backend == "torch":
        return build_torch_flat_index(x, norms, nonzero_ids, device, chunk_size), None, None
    gpu = faiss_gpu_id(device)
    if gpu is not None and k > GPU_MAX_K:
        warnings.warn(
            f"knn_graph_cosine: k={k} exceeds FAISS' GPU limit of {GPU_MAX_K}; "
            f"searching on the CPU",
            stacklevel=3,
        )
        gpu = None
    return build_faiss_index(x, norms, nonzero_ids, mode, nlist, nprobe, gpu, chunk_size)


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
        nlist (int, optional): IVF lists; ``None`` takes :math:`\sqrt{n}` (FAISS) or
            :math:`n / 256` (``"torch_ivf"``), capped so that each list has at least 39
            rows. (default: ``None``)
        nprobe (int, optional): IVF lists probed per query; ``None`` takes
            :math:`\max(8, \text{nlist}/16)` (FAISS) or 16 (``"torch_ivf"``). Queries
            whose probed lists hold fewer than :math:`k` rows are retried with more lists
            (FAISS) or searched exhaustively (``"torch_ivf"``). (default: ``None``)
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
            cannot use a GPU. ``"torch_ivf"`` (with ``mode="ivf"``) is an inverted-file
            search made of dense products, in bfloat16 on hardware with fast bfloat16
            (AMX, recent GPUs) and d ≥ 1024, re-ranked exactly in float32; when the lists
            are so unbalanced that queries would scan over a quarter of the rows, it
            compares all rows in symmetric blocks instead (see
            ``benchmarks/README.md``). (default: ``"faiss"``)
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
    if backend not in ("faiss", "torch", "torch_ivf"):
        raise ValueError(
            f"knn_graph_cosine: backend must be 'faiss', 'torch' or 'torch_ivf', got '{backend}'"
        )
    if backend == "torch" and mode != "exact":
        raise ValueError(
            "knn_graph_cosine: backend='torch' only supports mode='exact' "
            "(backend='torch_ivf' is its IVF search)"
        )
    if backend == "torch_ivf" and mode != "ivf":
        raise ValueError("knn_graph_cosine: backend='torch_ivf' is an IVF search; pass mode='ivf'")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise ValueError(f"knn_graph_cosine: k must be an integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"knn_graph_cosine: k must be positive, got {k}")
    if chunk_size <= 0:
        raise ValueError(f"knn_graph_cosine: chunk_size must be positive, got {chunk_size}")
    n, _ = num_rows_and_dim(x)
    if n == 0:
        empty = torch.empty(2, 0, dtype=torch.long)
        return (empty, torch.empty(0)) if return_scores else empty
    if k > n:
        warnings.warn(f"knn_graph_cosine: k={k} exceeds the {n} rows; using k={n}", stacklevel=2)
        k = n

    norms = row_norms(x, chunk_size)
    nonzero_ids = np.flatnonzero(norms > 0)
    num_nonzero = int(nonzero_ids.size)
    k_eff = min(k, num_nonzero)

    counts = np.ones(n, dtype=np.int64)
    counts[nonzero_ids] = k_eff
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    col = np.arange(n, dtype=np.int64).repeat(counts)  # all-zero rows: self only
    score = np.zeros(int(ptr[-1]), dtype=np.float32)

    if num_nonzero and backend == "torch_ivf":
        device = resolve_torch_device(device)
        index = TorchIVF(x, norms, nonzero_ids, nlist, nprobe, device, chunk_size)
        scores, ids = index.search(k_eff)
        del index
        self_ids = np.arange(num_nonzero, dtype=np.int64)
        force_self(ids, scores, self_ids, np.ones(num_nonzero, dtype=np.float32))
        slots = ptr[nonzero_ids][:, None] + np.arange(k_eff, dtype=np.int64)
        col[slots] = nonzero_ids[ids]
        score[slots] = scores
    elif num_nonzero:
        index, nlist, nprobe = _make_index(
            x, norms, nonzero_ids, k_eff, mode, backend, nlist, nprobe, device, chunk_size
        )
        offsets = np.arange(k_eff, dtype=np.int64)
        for first, queries in normalized_chunks(x, norms, chunk_size):
            if mode == "ivf":
                scores, ids = search_ivf_complete(index, queries, k_eff, nprobe, nlist)
            else:
                scores, ids = index.search(queries, k_eff)
            self_ids = np.arange(first, first + queries.shape[0], dtype=np.int64)
            self_scores = np.einsum("ij,ij->i", queries, queries)
            force_self(ids, scores, self_ids, self_scores)
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
    n, _ = num_rows_and_dim(x)
    norms = row_norms(x, chunk_size)
    k = min(k, n)
    num_nonzero = int((norms > 0).sum())
    k_eff = min(k, num_nonzero)
    queries = read_rows_at(x, query_ids)
    query_norms = norms[query_ids]
    nonzero_query = query_norms > 0
    queries[nonzero_query] /= query_norms[nonzero_query, None].astype(np.float32)

    best_scores = np.full((query_ids.size, k_eff), -np.inf, dtype=np.float32)
    best_ids = np.full((query_ids.size, k_eff), -1, dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk = read_rows(x, start, stop)
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

    force_self(
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

    Shapes:
        - **input:** ``x`` ``[n, d]``, ``approx_edge_index`` ``[2, E]``
        - **output:** a float in :math:`[0, 1]`
    """
    if k <= 0:
        raise ValueError(f"knn_recall: k must be positive, got {k}")
    n, _ = num_rows_and_dim(x)
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
