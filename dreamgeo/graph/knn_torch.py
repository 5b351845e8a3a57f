r"""The exact torch engine of :func:`~dreamgeo.graph.knn_graph_cosine`
(``backend="torch"``): blocked dense inner products and :meth:`torch.Tensor.topk`, on
the CPU or a CUDA device."""

from __future__ import annotations

import numpy as np
import torch

from dreamgeo.graph.knn_common import ArrayLike, normalized_chunks, resolve_torch_device

__all__ = ["TorchFlatIP", "build_torch_flat_index"]


class TorchFlatIP:
    r"""Exact inner-product search with dense torch products, a FAISS-like
    ``add``/``search`` pair. Each product covers as many queries as fit in
    ``scratch_bytes`` of similarities, so memory is the database plus that scratch.

    Args:
        num_rows (int): Capacity: rows that will be added.
        dim (int): Row dimension :math:`d`.
        device (torch.device): Where the database and the products live.
        scratch_bytes (int, optional): Bytes of similarities per product.
            (default: ``256 << 20``)

    Shapes:
        - **input:** :meth:`add` ``[m, d]``; :meth:`search` ``[q, d]`` (float32)
        - **output:** :meth:`search` scores ``[q, k]``, ids ``[q, k]``
    """

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


def build_torch_flat_index(
    x: ArrayLike,
    norms: np.ndarray,
    nonzero_ids: np.ndarray,
    device: str | int | torch.device | None,
    chunk_size: int,
) -> TorchFlatIP:
    r"""A :class:`TorchFlatIP` filled with the L2-normalized non-zero rows of ``x``.

    Args:
        x (torch.Tensor or numpy.ndarray): Features.
        norms (numpy.ndarray): Row norms
            (:func:`~dreamgeo.graph.knn_common.row_norms`).
        nonzero_ids (numpy.ndarray): Ids of the rows with a non-zero norm.
        device (str or int or torch.device, optional): ``None`` picks CUDA when
            available.
        chunk_size (int): Rows normalized and added at a time.

    Shapes:
        - **input:** ``[n, d]``, ``norms`` ``[n]``, ``nonzero_ids`` ``[n_nonzero]``
    """
    device = resolve_torch_device(device)
    index = TorchFlatIP(int(nonzero_ids.size), int(x.shape[1]), device)
    for _, rows in normalized_chunks(x, norms, chunk_size):
        index.add(rows)
    return index
