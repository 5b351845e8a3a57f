r"""Filters of raw interactions, vectorized with NumPy: duplicate
``(user, item)`` pairs and the :math:`k`-core (every user and every item with
at least :math:`k` interactions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["deduplicate", "KCoreResult", "k_core"]


def deduplicate(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray | None = None
) -> np.ndarray:
    r"""The rows to keep so that each ``(user, item)`` pair occurs once: the
    earliest by :obj:`timestamps` and, among equally early rows (or without
    times), the first in row order.

    Args:
        users (numpy.ndarray): Integer user codes :math:`[E]`.
        items (numpy.ndarray): Integer item codes :math:`[E]`.
        timestamps (numpy.ndarray, optional): Times :math:`[E]`.
            (default: :obj:`None`)

    Returns:
        The kept row positions, ascending (so the kept rows stay in row order).
    """
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    key = users.astype(np.int64) * (int(items.max()) + 1) + items
    position = np.arange(len(key))
    sort_keys = (position, key) if timestamps is None else (position, timestamps, key)
    order = np.lexsort(sort_keys)
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order[1:]] != key[order[:-1]]
    return np.sort(order[first])


@dataclass(frozen=True)
class KCoreResult:
    r"""What :func:`k_core` kept and removed.

    Args:
        keep (numpy.ndarray): Boolean mask of the kept rows :math:`[E]`.
        rounds (int): Rounds that removed something (0 when nothing was).
        rows_removed (int): Rows removed.
        users_removed (int): Users that had rows and have none left.
        items_removed (int): Items that had rows and have none left.
    """

    keep: np.ndarray
    rounds: int
    rows_removed: int
    users_removed: int
    items_removed: int


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> KCoreResult:
    r"""The :math:`k`-core of a bipartite interaction graph: repeatedly
    removes, in the same round, every user and every item with fewer than
    :math:`k` remaining rows, until no count is below :math:`k` (a fixed point:
    removing an item can push a user below :math:`k`, which needs another
    round). This is MMRec's ``filter_by_k_core`` (``preprocessing/
    0rating2inter.ipynb``), with :func:`numpy.bincount` instead of a
    :class:`~collections.Counter`. Each round is vectorized; there are at
    most as many rounds as users and items.

    Args:
        users (numpy.ndarray): Integer user codes :math:`[E]` in
            :math:`0, \dots, M-1`.
        items (numpy.ndarray): Integer item codes :math:`[E]`.
        k (int): The minimum count; :obj:`0` or :obj:`1` keeps every row.
    """
    keep = np.ones(len(users), dtype=bool)
    num_users = int(users.max()) + 1 if len(users) else 0
    num_items = int(items.max()) + 1 if len(items) else 0
    rounds = 0
    while k > 1:
        user_count = np.bincount(users[keep], minlength=num_users)
        item_count = np.bincount(items[keep], minlength=num_items)
        bad_user = (user_count > 0) & (user_count < k)
        bad_item = (item_count > 0) & (item_count < k)
        drop = keep & (bad_user[users] | bad_item[items])
        if not drop.any():
            break
        keep &= ~drop
        rounds += 1
    had_user = np.bincount(users, minlength=num_users) > 0
    had_item = np.bincount(items, minlength=num_items) > 0
    has_user = np.bincount(users[keep], minlength=num_users) > 0
    has_item = np.bincount(items[keep], minlength=num_items) > 0
    return KCoreResult(
        keep=keep,
        rounds=rounds,
        rows_removed=int((~keep).sum()),
        users_removed=int((had_user & ~has_user).sum()),
        items_removed=int((had_item & ~has_item).sum()),
    )
