r"""Each user's seen items as one CSR, for excluding them from a ranking."""

from __future__ import annotations

import torch
from torch import Tensor

from dreamgeo.checks import check_edge_index

__all__ = ["SeenItems", "csr_rows"]


def csr_rows(rowptr: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    r"""The entries of the CSR rows ``rows`` as ``(position in rows, entry index)``
    pairs, without a Python loop over rows.

    Shapes:
        - **output:** two ``[nnz(rows)]`` tensors
    """
    start = rowptr[rows]
    count = rowptr[rows + 1] - start
    total = int(count.sum())
    local_row = torch.repeat_interleave(
        torch.arange(rows.numel(), device=rows.device), count, output_size=total
    )
    first = torch.repeat_interleave(start - (count.cumsum(0) - count), count, output_size=total)
    return local_row, first + torch.arange(total, device=rows.device)


class SeenItems:
    r"""The distinct items of every user in ``edge_index`` as a CSR (``rowptr``,
    ``col``), to mask them out of score blocks: :math:`O(E)` memory, no loop over
    users.

    Args:
        edge_index (torch.Tensor): Interactions ``[2, E]`` (row 0 users, row 1 items);
            duplicates count once.
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.

    Shapes:
        - **edge_index:** ``[2, E]``
    """

    def __init__(self, edge_index: Tensor, num_users: int, num_items: int):
        edge_index = check_edge_index(
            edge_index, num_users, num_items, "edge_index", "SeenItems", allow_empty=True
        ).cpu()
        self.num_users, self.num_items = int(num_users), int(num_items)
        keys = torch.unique(edge_index[0] * num_items + edge_index[1], sorted=True)
        #: The distinct interactions as sorted keys ``user * num_items + item``.
        self.keys = keys
        self.rowptr = torch.zeros(num_users + 1, dtype=torch.long)
        self.rowptr[1:] = torch.bincount(keys // num_items, minlength=num_users).cumsum(0)
        self.col = keys % num_items
        self._on: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def _state(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._on:
            self._on[device] = (self.rowptr.to(device), self.col.to(device))
        return self._on[device]

    def pairs(self, users: Tensor) -> tuple[Tensor, Tensor]:
        r"""The seen items of ``users`` ``[B]`` as ``(position in users, item)`` pairs,
        on the device of :obj:`users`.

        Shapes:
            - **output:** two ``[nnz(users)]`` tensors
        """
        rowptr, col = self._state(users.device)
        local_row, entry = csr_rows(rowptr, users)
        return local_row, col[entry]

    def mask_(self, users: Tensor, scores: Tensor) -> Tensor:
        r"""Sets the scores ``[B, N]`` of each row's seen items to :math:`-\infty`, in
        place, and returns them; row :math:`b` belongs to user ``users[b]``."""
        local_row, item = self.pairs(users.to(scores.device))
        minus_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
        return scores.index_put_((local_row, item), minus_inf)

    def top_k(self, users: Tensor, scores: Tensor, k: int) -> Tensor:
        r"""The ``k`` best unseen items ``[B, k]`` of each row of ``scores`` (masked in
        place), best first."""
        return self.mask_(users, scores).topk(k, dim=1, sorted=True).indices
