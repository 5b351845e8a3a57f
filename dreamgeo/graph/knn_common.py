r"""Helpers shared by the cosine top-:math:`k` engines of
:func:`~dreamgeo.graph.knn_graph_cosine`: reading rows of a feature matrix as float32,
their norms, chunked L2 normalization, and the self-neighbour convention."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ArrayLike",
    "MIN_POINTS_PER_LIST",
    "num_rows_and_dim",
    "read_rows",
    "read_rows_at",
    "row_norms",
    "normalized_chunks",
    "force_self",
    "resolve_torch_device",
]

ArrayLike = Tensor | np.ndarray

# k-means on fewer than this many points per list is poorly trained (FAISS warns).
MIN_POINTS_PER_LIST = 39


def num_rows_and_dim(x: ArrayLike) -> tuple[int, int]:
    r"""The shape ``(n, d)`` of a feature matrix, raising unless it is 2-D.

    Args:
        x (torch.Tensor or numpy.ndarray): Features.

    Shapes:
        - **input:** ``[n, d]``
    """
    if x.ndim != 2:
        raise ValueError(
            f"knn_graph_cosine expects a 2-D feature matrix [n, d], got shape {tuple(x.shape)}"
        )
    return int(x.shape[0]), int(x.shape[1])


def read_rows(x: ArrayLike, start: int, stop: int) -> np.ndarray:
    r"""Rows ``start:stop`` of ``x`` as a C-contiguous float32 numpy array (a view when
    ``x`` already is one, else a copy of the chunk only).

    Args:
        x (torch.Tensor or numpy.ndarray): Features (any real dtype, any device).
        start (int): First row.
        stop (int): Row after the last one (clipped to :math:`n`).

    Shapes:
        - **input:** ``[n, d]``
        - **output:** ``[stop - start, d]``
    """
    if isinstance(x, Tensor):
        chunk = x[start:stop].detach()
        if chunk.device.type != "cpu":
            chunk = chunk.cpu()
        chunk = chunk.to(torch.float32).numpy()
    else:
        chunk = x[start:stop]
    return np.ascontiguousarray(chunk, dtype=np.float32)


def read_rows_at(x: ArrayLike, ids: np.ndarray) -> np.ndarray:
    r"""Rows ``ids`` of ``x`` as a C-contiguous float32 numpy array (a copy of those
    rows only).

    Args:
        x (torch.Tensor or numpy.ndarray): Features (any real dtype, any device).
        ids (numpy.ndarray): Row ids (int64).

    Shapes:
        - **input:** ``[n, d]``, ``ids`` ``[m]``
        - **output:** ``[m, d]``
    """
    if isinstance(x, Tensor):
        picked = x.detach()[torch.from_numpy(ids).to(x.device)].cpu()
        return np.ascontiguousarray(picked.to(torch.float32).numpy())
    return np.ascontiguousarray(x[ids], dtype=np.float32)


def row_norms(x: ArrayLike, chunk_size: int) -> np.ndarray:
    r"""L2 norm of every row (accumulated in float64), raising on non-finite values.

    Args:
        x (torch.Tensor or numpy.ndarray): Features.
        chunk_size (int): Rows read at a time.

    Shapes:
        - **input:** ``[n, d]``
        - **output:** ``[n]`` (float64)
    """
    n, _ = num_rows_and_dim(x)
    norms = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk_size):
        chunk = read_rows(x, start, start + chunk_size).astype(np.float64)
        if not np.isfinite(chunk).all():
            bad = start + int(np.flatnonzero(~np.isfinite(chunk).all(axis=1))[0])
            raise ValueError(
                f"knn_graph_cosine: row {bad} of the feature matrix has a NaN or "
                f"infinite value; cosine similarity is undefined for it"
            )
        norms[start : start + chunk.shape[0]] = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
    return norms


def normalized_chunks(
    x: ArrayLike, norms: np.ndarray, chunk_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    r"""Yields ``(first, rows)``: the L2-normalized non-zero rows of consecutive chunks
    of ``x`` as float32, and the position of the first of them among all non-zero rows
    (the non-zero rows of a chunk are consecutive in that order).

    Args:
        x (torch.Tensor or numpy.ndarray): Features.
        norms (numpy.ndarray): Row norms from :func:`row_norms`.
        chunk_size (int): Rows of ``x`` read at a time.

    Shapes:
        - **input:** ``[n, d]``, ``norms`` ``[n]``
        - **output:** ``rows`` ``[c, d]`` with ``c <= chunk_size``
    """
    n = norms.shape[0]
    first = 0
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        keep = norms[start:stop] > 0
        if not keep.any():
            continue
        rows = read_rows(x, start, stop)[keep]
        rows /= norms[start:stop][keep, None].astype(np.float32)
        yield first, rows
        first += rows.shape[0]


def force_self(
    ids: np.ndarray, scores: np.ndarray, self_ids: np.ndarray, self_scores: np.ndarray
) -> None:
    r"""Puts every query's own id into its neighbour list, in place, replacing the
    lowest-scored neighbour when ties (exact duplicates) pushed it out.

    Args:
        ids (numpy.ndarray): Neighbour ids, best first (modified in place).
        scores (numpy.ndarray): Their scores (modified in place).
        self_ids (numpy.ndarray): Every query's own id.
        self_scores (numpy.ndarray): The score stored where the own id is put in.

    Shapes:
        - **input:** ``ids``, ``scores`` ``[q, k]``; ``self_ids``, ``self_scores`` ``[q]``
    """
    missing = ~(ids == self_ids[:, None]).any(axis=1)
    if missing.any():
        ids[missing, -1] = self_ids[missing]
        scores[missing, -1] = self_scores[missing]


def resolve_torch_device(device: str | int | torch.device | None) -> torch.device:
    r"""The device of the torch engines: ``None`` picks CUDA when available, an
    integer ``i`` means ``cuda:i``.

    Args:
        device (str or int or torch.device, optional): The requested device.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(f"cuda:{device}" if isinstance(device, int) else device)
