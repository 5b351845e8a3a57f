r"""Top-:math:`k` unseen items for many users in bounded memory: users in chunks,
items by a chunked matrix product (exact, the default) or through the FAISS item
index, each user's seen items excluded.

Memory is :math:`O(B \cdot C)` for the product of a chunk of :math:`B` users with
:math:`C` items at a time (:math:`C = N` unless ``item_batch_size`` is given), plus the
item rows: it grows with the chunk, never with the number of users (the user rows,
ids and seen items of an export on disk are read one chunk at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from dreamgeo.serve.exported import ExportedModel
from dreamgeo.serve.index import search_index

__all__ = ["SEARCH_METHODS", "RecommendationBatch", "UnseenTopK", "recommend_batches"]

#: How items are ranked: an exact chunked matrix product, or the export's FAISS index.
SEARCH_METHODS: tuple[str, ...] = ("matmul", "index")


@dataclass
class RecommendationBatch:
    r"""The top-:math:`k` unseen items of a chunk of users.

    Args:
        users (numpy.ndarray): Internal user ids ``[B]``.
        user_ids (numpy.ndarray): Their original ids ``[B]``.
        items (numpy.ndarray): Internal item ids ``[B, k]``, best first; :math:`-1`
            pads the rows of users with fewer than :math:`k` unseen items.
        scores (numpy.ndarray): Their scores ``[B, k]`` float32 (:math:`-\infty`
            where padded).
    """

    users: np.ndarray
    user_ids: np.ndarray
    items: np.ndarray
    scores: np.ndarray


class UnseenTopK:
    r"""Each user's :math:`k` best items by inner product, seen items excluded.

    With ``method="matmul"`` the scores of a chunk of users against every item
    (:math:`C` items at a time) are one matrix product in :mod:`torch`, seen items set
    to :math:`-\infty`, and :func:`torch.topk` keeps the best :math:`k` (the
    computation of :meth:`~dreamgeo.train.FullRankEvaluator.top_items`). With
    ``method="index"`` the FAISS index returns the best :math:`k + s` items of each
    user, :math:`s` the largest number of seen items in the chunk, and the seen ones are
    dropped; rows that an approximate index leaves short are ranked exactly.

    Args:
        items (numpy.ndarray): Item rows ``[N, d]`` float32.
        index (faiss.Index, optional): The item index (``method="index"``).
            (default: :obj:`None`)
        method (str, optional): ``"matmul"`` or ``"index"``. (default: :obj:`"matmul"`)
        item_batch_size (int, optional): Items per product with ``"matmul"``.
            (default: :obj:`None`, all items at once)
        device (str or torch.device, optional): Where the products run.
            (default: :obj:`"cpu"`)
    """

    def __init__(
        self,
        items: np.ndarray,
        index=None,
        method: str = "matmul",
        item_batch_size: int | None = None,
        device: str | torch.device = "cpu",
    ):
        if method not in SEARCH_METHODS:
            raise ValueError(f"unknown search method {method!r}; choose one of {SEARCH_METHODS}")
        if method == "index" and index is None:
            raise ValueError("method='index' needs the item index")
        if item_batch_size is not None and item_batch_size <= 0:
            raise ValueError(f"item_batch_size must be positive, got {item_batch_size}")
        self.items = np.ascontiguousarray(items, dtype=np.float32)
        self.num_items = int(self.items.shape[0])
        self.index = index
        self.method = method
        self.item_batch_size = item_batch_size or self.num_items
        self.device = torch.device(device)
        self._items_t = torch.from_numpy(self.items).to(self.device)

    def search(
        self, queries: np.ndarray, seen: tuple[np.ndarray, np.ndarray], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""The top-:obj:`k` unseen items of each query row.

        Args:
            queries (numpy.ndarray): User rows ``[B, d]``.
            seen (tuple[numpy.ndarray, numpy.ndarray]): ``(row, item)`` pairs to
                exclude, ``row`` a position in :obj:`queries`.
            k (int): Items per row, in :math:`[1, N]`.

        Returns:
            Items int64 ``[B, k]`` and scores float32 ``[B, k]``, best first, padded
            with :math:`-1` / :math:`-\infty` where a row has fewer unseen items.
        """
        if not 0 < k <= self.num_items:
            raise ValueError(f"k must lie in [1, {self.num_items}], got {k}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.method == "index":
            return self._search_index(queries, seen, k)
        return self._search_matmul(queries, seen, k)

    def _search_matmul(
        self, queries: np.ndarray, seen: tuple[np.ndarray, np.ndarray], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        user = torch.from_numpy(queries).to(self.device)
        row = torch.from_numpy(np.asarray(seen[0], dtype=np.int64)).to(self.device)
        col = torch.from_numpy(np.asarray(seen[1], dtype=np.int64)).to(self.device)
        minus_inf = torch.tensor(float("-inf"), device=self.device)
        best_scores = best_items = None
        for start in range(0, self.num_items, self.item_batch_size):
            stop = min(self.num_items, start + self.item_batch_size)
            scores = user @ self._items_t[start:stop].t()
            inside = (col >= start) & (col < stop) if stop - start < self.num_items else None
            if inside is None:
                scores.index_put_((row, col), minus_inf)
            else:
                scores.index_put_((row[inside], col[inside] - start), minus_inf)
            top = scores.topk(min(k, stop - start), dim=1, sorted=True)
            values, indices = top.values, top.indices + start
            if best_scores is not None:
                values = torch.cat([best_scores, values], dim=1)
                indices = torch.cat([best_items, indices], dim=1)
                merged = values.topk(min(k, values.size(1)), dim=1, sorted=True)
                values, indices = merged.values, indices.gather(1, merged.indices)
            best_scores, best_items = values, indices
        scores_np = best_scores.cpu().numpy().astype(np.float32, copy=False)
        items_np = best_items.cpu().numpy().astype(np.int64, copy=False)
        items_np[np.isneginf(scores_np)] = -1
        return items_np, scores_np

    def _search_index(
        self, queries: np.ndarray, seen: tuple[np.ndarray, np.ndarray], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        num_rows = queries.shape[0]
        row, col = (np.asarray(a, dtype=np.int64) for a in seen)
        degree = np.bincount(row, minlength=num_rows)
        wide = min(self.num_items, k + int(degree.max(initial=0)))
        scores, items = search_index(self.index, queries, wide)
        keys = np.arange(num_rows, dtype=np.int64)[:, None] * self.num_items + items
        invalid = (items < 0) | np.isin(keys, row * self.num_items + col)
        order = np.argsort(invalid, axis=1, kind="stable")[:, :k]
        items = np.take_along_axis(items, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False)
        invalid = np.take_along_axis(invalid, order, axis=1)
        items[invalid], scores[invalid] = -1, -np.inf
        # an approximate index may return fewer than k unseen items for a user who has
        # more: rank those users exactly
        available = np.minimum(k, self.num_items - degree)
        short = np.flatnonzero((~invalid).sum(axis=1) < available)
        if short.size:
            in_short = np.isin(row, short)
            local = np.searchsorted(short, row[in_short])
            exact = self._search_matmul(queries[short], (local, col[in_short]), k)
            items[short], scores[short] = exact
        return items, scores


def recommend_batches(
    exported: ExportedModel,
    k: int,
    users: np.ndarray | None = None,
    batch_size: int = 1024,
    method: str = "matmul",
    item_batch_size: int | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[RecommendationBatch]:
    r"""Yields the top-:obj:`k` unseen items of :obj:`users` (internal ids, in that
    order; every user when :obj:`None`), :obj:`batch_size` users at a time.

    Args:
        exported (ExportedModel): The export (in memory or on disk).
        k (int): Items per user, in :math:`[1, N]`.
        users (numpy.ndarray, optional): Internal user ids ``[U]``.
            (default: :obj:`None`, all users, read in contiguous chunks)
        batch_size (int, optional): Users per chunk. (default: :obj:`1024`)
        method (str, optional): ``"matmul"`` (exact) or ``"index"`` (the export's
            FAISS index). (default: :obj:`"matmul"`)
        item_batch_size (int, optional): Items per product with ``"matmul"``.
            (default: :obj:`None`, all items)
        device (str or torch.device, optional): Where the products run.
            (default: :obj:`"cpu"`)
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ranker = UnseenTopK(
        exported.item_embeddings,
        exported.index if method == "index" else None,
        method,
        item_batch_size,
        device,
    )
    if users is None:
        for start in range(0, exported.num_users, batch_size):
            chunk = slice(start, min(exported.num_users, start + batch_size))
            items, scores = ranker.search(exported.user_rows(chunk), exported.seen(chunk), k)
            users_of_chunk = np.arange(chunk.start, chunk.stop)
            user_ids = exported.user_ids.read(chunk.start, chunk.stop)
            yield RecommendationBatch(users_of_chunk, user_ids, items, scores)
        return
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= exported.num_users):
        raise ValueError(f"user ids must lie in [0, {exported.num_users})")
    for start in range(0, users.size, batch_size):
        chunk = users[start : start + batch_size]
        items, scores = ranker.search(exported.user_rows(chunk), exported.seen(chunk), k)
        yield RecommendationBatch(chunk, exported.user_ids.take(chunk), items, scores)
