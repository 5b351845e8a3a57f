r"""Checks of user-given tensors, run in Python before any native code sees them.

Native kernels (sparse COO/CSR construction, coalescing, FAISS) trust their indices: an
item id past the end of the catalogue corrupts memory and aborts the process instead of
raising. Every public constructor and entry point of dreamgeo passes its ids, counts and
features through these functions first, so bad input ends in a :class:`ValueError` that
names the tensor, the offending value and the valid range.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_count", "check_index", "check_edge_index", "check_features", "check_values"]


def check_count(value: object, name: str, owner: str) -> int:
    r"""``value`` as a positive :obj:`int` (a node count).

    Args:
        value (object): The count (an :obj:`int`, or a 0-d integer tensor).
        name (str): Its name in the error message, e.g. ``"num_items"``.
        owner (str): Who checks, e.g. ``"DREAM"``.
    """
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value}")
    return value


def check_index(index: object, size: int, name: str, owner: str) -> Tensor:
    r"""``index`` as a 1-D :obj:`torch.long` tensor of ids in :math:`[0, \text{size})`.

    Args:
        index (object): The ids (an integer tensor).
        size (int): The number of nodes the ids index.
        name (str): Its name in the error message, e.g. ``"users"``.
        owner (str): Who checks.

    Shapes:
        - **output:** ``[n]``
    """
    if not isinstance(index, Tensor):
        raise ValueError(f"{owner}: {name} must be a torch.Tensor, got {type(index).__name__}")
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be an integer tensor, got dtype {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{owner}: {name} must be 1-D, got shape {tuple(index.shape)}")
    _check_range(index, size, name, owner)
    return index.long()


def check_edge_index(
    edge_index: object,
    num_src: int,
    num_dst: int,
    name: str,
    owner: str,
    allow_empty: bool = False,
) -> Tensor:
    r"""``edge_index`` as a ``[2, E]`` :obj:`torch.long` tensor whose row 0 lies in
    :math:`[0, \text{num\_src})` and row 1 in :math:`[0, \text{num\_dst})`.

    Args:
        edge_index (object): The edges (an integer tensor).
        num_src (int): Number of source nodes (users of an interaction graph).
        num_dst (int): Number of target nodes (items).
        name (str): Its name in the error message, e.g. ``"edge_index"``.
        owner (str): Who checks.
        allow_empty (bool, optional): Accept a graph without edges.
            (default: :obj:`False`)

    Shapes:
        - **output:** ``[2, E]``
    """
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"{owner}: {name} must be a torch.Tensor, got {type(edge_index).__name__}")
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be an integer tensor, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{owner}: {name} must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.size(1) == 0 and not allow_empty:
        raise ValueError(f"{owner}: {name} has no edges")
    _check_range(edge_index[0], num_src, f"{name}[0]", owner)
    _check_range(edge_index[1], num_dst, f"{name}[1]", owner)
    return edge_index.long()


def check_features(x: object, num_rows: int, name: str, owner: str) -> Tensor:
    r"""``x`` as a finite, floating ``[num_rows, d]`` tensor (``d >= 1``).

    Args:
        x (object): The features.
        num_rows (int): The rows it must have (one per node).
        name (str): Its name in the error message, e.g. ``"features['image']"``.
        owner (str): Who checks.

    Shapes:
        - **output:** ``[num_rows, d]``
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{owner}: {name} must be a floating tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.size(0) != num_rows or x.size(1) == 0:
        raise ValueError(
            f"{owner}: {name} must have shape [{num_rows}, d] with d >= 1 (one row per "
            f"node), got {tuple(x.shape)}"
        )
    check_values(x, name, owner)
    return x


def check_values(x: Tensor, name: str, owner: str) -> Tensor:
    r"""``x`` unchanged when every entry is finite; a :class:`ValueError` naming the
    first row with a NaN or infinite entry otherwise."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).reshape(x.size(0), -1).any(-1) if x.dim() > 0 else ~finite
        row = int(bad.nonzero()[0, 0]) if x.dim() > 0 else 0
        raise ValueError(
            f"{owner}: {name} holds NaN or infinite values ({int((~finite).sum())} entries, "
            f"the first in row {row})"
        )
    return x


def _check_range(index: Tensor, size: int, name: str, owner: str) -> None:
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{owner}: {name} holds id {bad}, outside the valid range [0, {size - 1}] "
            f"({size} nodes; ids span [{low}, {high}])"
        )
