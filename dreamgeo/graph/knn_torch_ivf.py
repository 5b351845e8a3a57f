r"""The torch IVF engine of :func:`~dreamgeo.graph.knn_graph_cosine`
(``backend="torch_ivf"``, ``mode="ivf"``): an inverted-file search whose per-list scans
are dense matrix products (bfloat16 where the hardware has fast bfloat16 products),
re-ranked exactly in float32."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from dreamgeo.graph.knn_common import MIN_POINTS_PER_LIST, ArrayLike

__all__ = ["TorchIVF", "bfloat16_is_fast"]

# Records keep the name of the module of the public entry point.
logger = logging.getLogger("dreamgeo.graph.knn")

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


@functools.cache
def bfloat16_is_fast(device_type: str) -> bool:
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


class TorchIVF:
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
    probe it with its rows, in bfloat16 where that is fast (:func:`bfloat16_is_fast`):
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

    Args:
        x (torch.Tensor or numpy.ndarray): Features (read again for the exact
            re-scoring, so kept by reference).
        norms (numpy.ndarray): Row norms
            (:func:`~dreamgeo.graph.knn_common.row_norms`).
        nonzero_ids (numpy.ndarray): Ids of the rows with a non-zero norm.
        nlist (int, optional): Lists; ``None`` takes :math:`n / 256`, capped so that
            each list has at least 39 rows.
        nprobe (int, optional): Lists probed per query; ``None`` takes 16.
        device (torch.device): Where the index and the products live.
        chunk_size (int): Rows normalized at a time.
        seed (int, optional): Seed of the k-means sample and initialization.
            (default: ``0``)

    Shapes:
        - **input:** ``[n, d]``, ``norms`` ``[n]``, ``nonzero_ids`` ``[n_nonzero]``
        - **output:** :meth:`search` cosines ``[n_nonzero, k]`` and positions among
          the non-zero rows ``[n_nonzero, k]``
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
        self.nlist = max(1, min(nlist, n // MIN_POINTS_PER_LIST))
        nprobe = _TORCH_IVF_DEFAULT_NPROBE if nprobe is None else nprobe
        self.nprobe = max(1, min(nprobe, self.nlist))
        fast = self.dim >= _TORCH_IVF_BFLOAT16_MIN_DIM and bfloat16_is_fast(device.type)
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

    def _chunks(self, positions: Tensor) -> Iterator[tuple[int, Tensor]]:
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
