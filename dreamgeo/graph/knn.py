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
"""

from __future__ import annotations

import functools
import logging
import math
import time
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
# backend="torch_ivf": k-means sample rows per list, Lloyd iterations, default lists
# probed, and the largest block of similarities (entries) held at once.
_TORCH_IVF_TRAIN_PER_LIST = 32
_TORCH_IVF_ITERATIONS = 10
_TORCH_IVF_DEFAULT_NPROBE = 16
# Default list size: on CPUs, products with fewer columns run far below peak.
_TORCH_IVF_ROWS_PER_LIST = 256
# Below this dimension, float32 products with a fused bias beat bfloat16 ones plus the
# passes that convert their results.
_TORCH_IVF_BFLOAT16_MIN_DIM = 1024
_TORCH_IVF_BLOCK_ENTRIES = 1 << 24
# Above this share of rows scanned per query, comparing all rows in symmetric blocks
# (half the products, large efficient ones) is cheaper than scanning lists.
_TORCH_IVF_EXHAUSTIVE_FRACTION = 0.25
_TORCH_IVF_EXHAUSTIVE_SIDE = 2048

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


@functools.cache
def _bfloat16_is_fast(device_type: str) -> bool:
    r"""Whether bfloat16 matrix products are clearly faster than float32 ones on this
    machine: on CUDA when the GPU supports bfloat16; on the CPU measured once with a
    1024-wide product (true with AMX or AVX-512 BF16, false where bfloat16 is emulated
    and slower than float32)."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    base = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        matrix = base.to(dtype)
        matrix @ matrix  # warm-up
        tic = time.perf_counter()
        for _ in range(3):
            matrix @ matrix
        seconds[dtype] = time.perf_counter() - tic
    return seconds[torch.bfloat16] * 1.5 < seconds[torch.float32]


def _gather_float(x: ArrayLike, ids: Tensor, device: torch.device) -> Tensor:
    r"""Rows ``ids`` of ``x`` as a float32 tensor on ``device`` (copies those rows only)."""
    if isinstance(x, Tensor):
        rows = x.detach().index_select(0, ids.to(x.device))
        return rows.to(device=device, dtype=torch.float32)
    rows = np.ascontiguousarray(x[ids.cpu().numpy()], dtype=np.float32)
    return torch.from_numpy(rows).to(device)


def _nearest_lists(rows: Tensor, centroids: Tensor, count: int) -> Tensor:
    r"""The ``count`` centroids nearest (Euclidean) to each row, nearest first, in
    blocks of at most :data:`_TORCH_IVF_BLOCK_ENTRIES` distances."""
    half_norm = 0.5 * (centroids * centroids).sum(1)
    weights = centroids.to(rows.dtype).T
    block = max(1, _TORCH_IVF_BLOCK_ENTRIES // centroids.size(0))
    out = torch.empty(rows.size(0), count, dtype=torch.long, device=rows.device)
    for start in range(0, rows.size(0), block):
        closeness = (rows[start : start + block] @ weights).float() - half_norm
        out[start : start + block] = closeness.topk(count, dim=1).indices
    return out


def _merge_triples(
    best_score: Tensor, best_slot: Tensor, triples: list[tuple[Tensor, Tensor, Tensor]]
) -> None:
    r"""Merges ``(row, slot, score)`` triples into the per-row best lists ``best_score``
    / ``best_slot`` ``[n, c]`` (best first), in place, with sorts instead of per-row
    selection: the survivors of each row are ranked and the first ``c`` kept."""
    n, width = best_score.shape
    rows = torch.cat([t[0] for t in triples])
    slots = torch.cat([t[1] for t in triples])
    scores = torch.cat([t[2] for t in triples])
    touched = torch.unique(rows)
    old_rows = touched.repeat_interleave(width)
    rows = torch.cat([old_rows, rows])
    slots = torch.cat([best_slot[touched].reshape(-1), slots])
    scores = torch.cat([best_score[touched].reshape(-1), scores])
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(rows[order], stable=True).indices]
    rows, slots, scores = rows[order], slots[order], scores[order]
    count = torch.bincount(rows, minlength=n)
    start = torch.cumsum(count, 0) - count
    rank = torch.arange(rows.numel(), device=rows.device) - start[rows]
    keep = rank < width
    best_score[touched] = -torch.inf
    best_slot[touched] = -1
    best_score[rows[keep], rank[keep]] = scores[keep]
    best_slot[rows[keep], rank[keep]] = slots[keep]


class _TorchIVF:
    r"""Inverted-file cosine top-:math:`k` search over the non-zero rows of ``x`` whose
    work is dense matrix products.

    Lloyd's k-means on a random sample of L2-normalized rows
    (:data:`_TORCH_IVF_TRAIN_PER_LIST` per list, :data:`_TORCH_IVF_ITERATIONS`
    iterations) places ``nlist`` centroids; each row lives in the list of its nearest
    centroid and, as a query, scans the lists of its ``nprobe`` nearest ones. The rows are
    stored once, sorted by list, as residuals :math:`\mathbf{r}_i = \hat{\mathbf{x}}_i -
    \boldsymbol{\mu}` from their mean direction, so that

    .. math::
        \hat{\mathbf{x}}_i^\top \hat{\mathbf{x}}_j = \boldsymbol{\mu}^\top\boldsymbol{\mu}
        + \boldsymbol{\mu}^\top\mathbf{r}_i + \boldsymbol{\mu}^\top\mathbf{r}_j
        + \mathbf{r}_i^\top\mathbf{r}_j,

    of which a query :math:`i` ranks by :math:`\boldsymbol{\mu}^\top\mathbf{r}_j +
    \mathbf{r}_i^\top\mathbf{r}_j`. A list is scanned by one product of all queries that
    probe it with its rows, in bfloat16 where that is fast (:func:`_bfloat16_is_fast`):
    residual products are small, so rounding them costs little. Each query keeps its
    :math:`2k` best candidates over its lists; they are re-scored exactly in float32 from
    ``x`` and the best :math:`k` kept. Queries whose probed lists hold fewer than
    :math:`k` rows are searched exhaustively. When the lists are so unbalanced that a
    query would scan more than :data:`_TORCH_IVF_EXHAUSTIVE_FRACTION` of the rows, all
    rows are compared instead, in symmetric blocks (:meth:`_scan_all`), which costs
    half the products of brute force at the best efficiency.

    Memory beyond ``x``: the sorted residuals (``n × d`` in 2 or 4 bytes), ``n × nprobe``
    probe ids, ``n × nprobe × 2k`` or ``n × 2k`` candidates and blocks of
    :data:`_TORCH_IVF_BLOCK_ENTRIES` similarities.
    """

    def __init__(
        self,
        x: ArrayLike,
        norms: np.ndarray,
        nonzero_ids: np.ndarray,
        nlist: int | None,
        nprobe: int | None,
        device: torch.device,
        chunk_size: int,
        seed: int = 0,
    ):
        self.x = x
        self.device = device
        self.chunk_size = chunk_size
        n = int(nonzero_ids.size)
        self.num_rows, self.dim = n, int(x.shape[1])
        if nlist is None:
            nlist = int(round(n / _TORCH_IVF_ROWS_PER_LIST))
        self.nlist = max(1, min(nlist, n // _MIN_POINTS_PER_LIST))
        nprobe = _TORCH_IVF_DEFAULT_NPROBE if nprobe is None else nprobe
        self.nprobe = max(1, min(nprobe, self.nlist))
        fast = self.dim >= _TORCH_IVF_BFLOAT16_MIN_DIM and _bfloat16_is_fast(device.type)
        self.dtype = torch.bfloat16 if fast else torch.float32
        self.row_ids = torch.from_numpy(nonzero_ids).to(device)
        self.inv_norm = torch.from_numpy((1.0 / norms[nonzero_ids]).astype(np.float32)).to(device)
        generator = torch.Generator().manual_seed(seed)
        self.mean = torch.zeros(self.dim, device=device)
        sample = self._train_sample(generator)
        self.centroids = self._kmeans(sample, generator)
        del sample
        self._fill()

    def _normalized(self, positions: Tensor) -> Tensor:
        r"""L2-normalized float32 rows at ``positions`` among the non-zero rows."""
        rows = _gather_float(self.x, self.row_ids[positions], self.device)
        return rows * self.inv_norm[positions, None]

    def _chunks(self, positions: Tensor):
        for start in range(0, positions.numel(), self.chunk_size):
            yield start, positions[start : start + self.chunk_size]

    def _train_sample(self, generator: torch.Generator) -> Tensor:
        r"""Residuals of a random sample of rows (scan dtype); sets :obj:`mean`."""
        size = min(self.num_rows, _TORCH_IVF_TRAIN_PER_LIST * self.nlist)
        positions = torch.randperm(self.num_rows, generator=generator)[:size].sort().values
        positions = positions.to(self.device)
        total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for _, chunk in self._chunks(positions):
            total += self._normalized(chunk).sum(0, dtype=torch.float64)
        self.mean = (total / size).to(torch.float32)
        sample = torch.empty(size, self.dim, dtype=self.dtype, device=self.device)
        for start, chunk in self._chunks(positions):
            sample[start : start + chunk.numel()] = self._normalized(chunk) - self.mean
        return sample

    def _kmeans(self, sample: Tensor, generator: torch.Generator) -> Tensor:
        size = sample.size(0)
        pick = torch.randperm(size, generator=generator)[: self.nlist].to(self.device)
        centroids = sample[pick].float()
        for _ in range(_TORCH_IVF_ITERATIONS):
            assign = _nearest_lists(sample, centroids, 1).squeeze(1)
            sums = torch.zeros(self.nlist, self.dim, device=self.device)
            for start in range(0, size, self.chunk_size):
                stop = start + self.chunk_size
                sums.index_add_(0, assign[start:stop], sample[start:stop].float())
            counts = torch.bincount(assign, minlength=self.nlist)
            empty = counts == 0
            if empty.any():  # re-seed empty lists with random sample rows
                reseed = torch.randint(0, size, (int(empty.sum()),), generator=generator)
                sums[empty] = sample[reseed.to(self.device)].float()
                counts[empty] = 1
            centroids = sums / counts[:, None]
        return centroids

    def _fill(self) -> None:
        r"""Assigns every row, sorts the residuals by list and groups the probes."""
        n, device = self.num_rows, self.device
        all_positions = torch.arange(n, device=device)
        probes = torch.empty(n, self.nprobe, dtype=torch.long, device=device)
        mean_dot = torch.empty(n, device=device)
        for start, chunk in self._chunks(all_positions):
            residual = self._normalized(chunk) - self.mean
            mean_dot[start : start + chunk.numel()] = residual @ self.mean
            probes[start : start + chunk.numel()] = _nearest_lists(
                residual.to(self.dtype), self.centroids, self.nprobe
            )
        home = probes[:, 0]
        self.order = torch.argsort(home, stable=True)  # sorted slot -> row position
        self.slot = torch.empty_like(self.order)
        self.slot[self.order] = all_positions  # row position -> sorted slot
        # two extra columns [1, mu.r_j] (padded to a multiple of 32 for bfloat16 tiles)
        # let one product give the symmetric score of the exhaustive scan
        width = self.dim + (32 if self.dtype == torch.bfloat16 else 2)
        self.residuals = torch.zeros(n, width, dtype=self.dtype, device=device)
        for _, chunk in self._chunks(all_positions):
            residual = self._normalized(chunk) - self.mean
            self.residuals[self.slot[chunk], : self.dim] = residual.to(self.dtype)
        self.mean_dot = mean_dot[self.order]
        self.residuals[:, self.dim] = 1.0
        self.residuals[:, self.dim + 1] = self.mean_dot.to(self.dtype)
        list_size = torch.bincount(home, minlength=self.nlist)
        self.list_ptr = torch.zeros(self.nlist + 1, dtype=torch.long, device=device)
        torch.cumsum(list_size, 0, out=self.list_ptr[1:])
        # the probes beyond each row's own list, grouped by list
        other = probes[:, 1:].reshape(-1)
        self.probe_order = torch.argsort(other, stable=True)
        probe_count = torch.bincount(other, minlength=self.nlist)
        self.probe_ptr = torch.zeros(self.nlist + 1, dtype=torch.long, device=device)
        torch.cumsum(probe_count, 0, out=self.probe_ptr[1:])
        scanned = float((list_size.double() * (probe_count + list_size).double()).sum())
        self.scanned_fraction = scanned / max(1.0, float(n) * n)

    def _similarity(self, query_rows: Tensor, first: int, last: int) -> Tensor:
        r"""Ranking scores :math:`\mathbf{r}_i^\top\mathbf{r}_j + \boldsymbol{\mu}^\top
        \mathbf{r}_j` (float32) of residual rows against the sorted slots
        ``first:last``."""
        members = self.residuals[first:last, : self.dim].T
        bias = self.mean_dot[first:last]
        if self.dtype == torch.float32:
            return torch.addmm(bias, query_rows[:, : self.dim], members)
        return (query_rows[:, : self.dim] @ members).float() + bias

    def _scan(self, candidates: int) -> Tensor:
        r"""Every row's ``candidates`` best sorted slots over its probed lists, ``[n,
        candidates]`` indexed by sorted slot (``-1`` where the lists held fewer).

        A row's own list is scanned first (one square product per list) and sets its
        threshold, the score of its ``candidates``-th best so far; in the other probed
        lists only entries above the threshold are kept, as (row, slot, score) triples
        merged in batches, each merge raising the thresholds. Per-row top-k over short
        rows is slow on CPUs; comparisons and one sort of the survivors are not."""
        n, device = self.num_rows, self.device
        best_score = torch.full((n, candidates), -torch.inf, device=device)
        best_slot = torch.full((n, candidates), -1, dtype=torch.long, device=device)
        list_ptr, probe_ptr = self.list_ptr.tolist(), self.probe_ptr.tolist()
        for index in range(self.nlist):
            first, last = list_ptr[index], list_ptr[index + 1]
            if first == last:
                continue
            width = min(candidates, last - first)
            similarity = self._similarity(self.residuals[first:last], first, last)
            top_score, top_slot = similarity.topk(width, dim=1)
            best_score[first:last, :width] = top_score
            best_slot[first:last, :width] = top_slot + first

        pending: list[tuple[Tensor, Tensor, Tensor]] = []
        pending_size = 0
        others = self.nprobe - 1
        for index in range(self.nlist if others else 0):
            first, last = list_ptr[index], list_ptr[index + 1]
            pair_first, pair_last = probe_ptr[index], probe_ptr[index + 1]
            if first == last or pair_first == pair_last:
                continue
            block = max(1, _TORCH_IVF_BLOCK_ENTRIES // (last - first))
            for start in range(pair_first, pair_last, block):
                stop = min(start + block, pair_last)
                query = self.slot[self.probe_order[start:stop] // others]
                similarity = self._similarity(self.residuals.index_select(0, query), first, last)
                hit_row, hit_column = (similarity > best_score[query, -1:]).nonzero().unbind(1)
                if hit_row.numel():
                    pending.append(
                        (query[hit_row], hit_column + first, similarity[hit_row, hit_column])
                    )
                    pending_size += hit_row.numel()
                if pending_size > _TORCH_IVF_BLOCK_ENTRIES // 4:
                    _merge_triples(best_score, best_slot, pending)
                    pending, pending_size = [], 0
        if pending:
            _merge_triples(best_score, best_slot, pending)
        return best_slot

    def _scan_all(self, candidates: int) -> Tensor:
        r"""Every row's ``candidates`` best sorted slots among all rows, ``[n,
        candidates]`` indexed by sorted slot.

        The symmetric score :math:`t_{ij} = \mathbf{r}_i^\top\mathbf{r}_j +
        \boldsymbol{\mu}^\top\mathbf{r}_i + \boldsymbol{\mu}^\top\mathbf{r}_j` (the
        cosine minus a constant, small, so cheap to round) comes out of one product of
        :math:`[\mathbf{r}_i, \boldsymbol{\mu}^\top\mathbf{r}_i, 1]` with
        :math:`[\mathbf{r}_j, 1, \boldsymbol{\mu}^\top\mathbf{r}_j]`, in square blocks,
        each computed once for both of its row blocks. A row or column is merged into
        the candidates only when the block holds an entry above its current worst one,
        so the selection costs little once the candidates settle."""
        n, device = self.num_rows, self.device
        best_score = torch.full((n, candidates), -torch.inf, device=device)
        best_slot = torch.zeros(n, candidates, dtype=torch.long, device=device)
        side = _TORCH_IVF_EXHAUSTIVE_SIDE
        swap = torch.arange(self.residuals.size(1), device=device)
        swap[self.dim], swap[self.dim + 1] = self.dim + 1, self.dim

        def merge(first: int, hit: Tensor | None, similarity: Tensor, column_first: int) -> None:
            # similarity: [hit rows, block columns] for the rows first + hit of best_score
            # (hit None: all rows first, first + 1, ...)
            rows = slice(first, first + similarity.size(0)) if hit is None else hit + first
            width = min(candidates, similarity.size(1))
            top_score, top_slot = similarity.topk(width, dim=1)
            score = torch.cat([best_score[rows], top_score.float()], dim=1)
            slot = torch.cat([best_slot[rows], top_slot + column_first], dim=1)
            kept_score, kept = score.topk(candidates, dim=1)
            best_score[rows] = kept_score
            best_slot[rows] = slot.gather(1, kept)

        for row_first in range(0, n, side):
            row_last = min(row_first + side, n)
            rows = self.residuals[row_first:row_last].index_select(1, swap)
            for column_first in range(row_first, n, side):
                column_last = min(column_first + side, n)
                score = rows @ self.residuals[column_first:column_last].T
                worst = best_score[row_first:row_last, -1]
                hit = (score.amax(1).float() > worst).nonzero().squeeze(1)
                if hit.numel() == score.size(0):
                    merge(row_first, None, score, column_first)
                elif hit.numel():
                    merge(row_first, hit, score.index_select(0, hit), column_first)
                if column_first == row_first:
                    continue
                worst = best_score[column_first:column_last, -1]
                hit = (score.amax(0).float() > worst).nonzero().squeeze(1)
                if hit.numel() == score.size(1):
                    merge(column_first, None, score.T, row_first)
                elif hit.numel():
                    merge(column_first, hit, score.index_select(1, hit).T, row_first)
        return best_slot

    def _exhaustive(self, positions: Tensor, k: int) -> tuple[Tensor, Tensor]:
        r"""Exact float32 top-:math:`k` of the rows ``positions`` among all rows."""
        queries = self._normalized(positions)
        best_score = torch.full((positions.numel(), k), -torch.inf, device=self.device)
        best_pos = torch.zeros(positions.numel(), k, dtype=torch.long, device=self.device)
        for _, chunk in self._chunks(torch.arange(self.num_rows, device=self.device)):
            score = torch.cat([best_score, queries @ self._normalized(chunk).T], dim=1)
            pos = torch.cat([best_pos, chunk.expand(positions.numel(), -1)], dim=1)
            best_score, kept = score.topk(k, dim=1)
            best_pos = pos.gather(1, kept)
        return best_score, best_pos

    def search(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        r"""Cosines ``[n, k]`` and positions among the non-zero rows ``[n, k]`` of every
        row's approximate top-:math:`k`, best first."""
        n, device = self.num_rows, self.device
        candidates = min(n, 2 * k)
        exhaustive = self.scanned_fraction > _TORCH_IVF_EXHAUSTIVE_FRACTION
        tic = time.perf_counter()
        all_slot = self._scan_all(candidates) if exhaustive else self._scan(candidates)
        del self.residuals
        scan_seconds = time.perf_counter() - tic
        scores = torch.empty(n, k, device=device)
        ids = torch.empty(n, k, dtype=torch.long, device=device)
        block = max(1, _TORCH_IVF_BLOCK_ENTRIES // (candidates * self.dim))
        for start in range(0, n, block):
            stop = min(start + block, n)
            slot = all_slot.index_select(0, self.slot[start:stop])
            pos = torch.where(slot >= 0, self.order[slot.clamp(min=0)], -1)
            flat = pos.clamp(min=0).reshape(-1)
            rows = _gather_float(self.x, self.row_ids[flat], device)
            query = self._normalized(torch.arange(start, stop, device=device))
            score = torch.bmm(rows.view(stop - start, -1, self.dim), query.unsqueeze(2))
            score = score.squeeze(2) * self.inv_norm[flat].view(stop - start, -1)
            score[pos < 0] = -torch.inf
            top_score, top = score.topk(k, dim=1)
            scores[start:stop], ids[start:stop] = top_score, pos.gather(1, top)
        short = torch.isinf(scores).any(dim=1).nonzero().squeeze(1)
        if short.numel():
            scores[short], ids[short] = self._exhaustive(short, k)
        logger.info(
            "torch IVF: %d rows, nlist=%d nprobe=%d (%s): each query would scan %.1f%% of "
            "the rows%s; search %.1fs",
            n,
            self.nlist,
            self.nprobe,
            str(self.dtype).removeprefix("torch."),
            100 * self.scanned_fraction,
            ", so all rows were compared (symmetric blocks)" if exhaustive else "",
            scan_seconds,
        )
        return scores.cpu().numpy(), ids.cpu().numpy()


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

    if num_nonzero and backend == "torch_ivf":
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
        index = _TorchIVF(x, norms, nonzero_ids, nlist, nprobe, device, chunk_size)
        scores, ids = index.search(k_eff)
        del index
        self_ids = np.arange(num_nonzero, dtype=np.int64)
        _force_self(ids, scores, self_ids, np.ones(num_nonzero, dtype=np.float32))
        slots = ptr[nonzero_ids][:, None] + np.arange(k_eff, dtype=np.int64)
        col[slots] = nonzero_ids[ids]
        score[slots] = scores
    elif num_nonzero:
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
