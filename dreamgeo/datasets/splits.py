r"""Train / valid / test splits of interactions as MMRec ``x_label`` values
(:obj:`0` train, :obj:`1` valid, :obj:`2` test), vectorized and
deterministic: ``"mmrec"`` (:func:`split_mmrec`), ``"loo"``
(:func:`split_leave_one_out`) and ``"temporal"`` (:func:`split_temporal`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "SPLIT_RULES",
    "split_mmrec",
    "split_leave_one_out",
    "split_temporal",
    "split_labels",
]

SPLIT_RULES: tuple[str, ...] = ("mmrec", "loo", "temporal")
TRAIN, VALID, TEST = 0, 1, 2
# MMRec's split: users with fewer interactions get exactly one valid and one test row
_MMREC_SMALL_USER = 10
_MMREC_HELD_OUT = 0.2
# with fewer rows a user keeps them all for training (at least one train row is needed)
_MIN_ROWS_TO_HOLD_OUT = 3


def _positions(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""For the rows taken in :obj:`order` (grouped by user), each row's rank
    within its user and its user's row count, both in row order."""
    grouped = users[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    counts = np.diff(np.r_[starts, len(grouped)])
    rank_sorted = np.arange(len(grouped)) - np.repeat(starts, counts)
    rank = np.empty(len(users), dtype=np.int64)
    count = np.empty(len(users), dtype=np.int64)
    rank[order] = rank_sorted
    count[order] = np.repeat(counts, counts)
    return rank, count


def _last_two(rank: np.ndarray, count: np.ndarray) -> np.ndarray:
    r"""Last row of a user to test, second last to valid, the rest to train;
    users with fewer than 3 rows keep them all for training."""
    labels = np.zeros(len(rank), dtype=np.int64)
    big = count >= _MIN_ROWS_TO_HOLD_OUT
    labels[big & (rank == count - 1)] = TEST
    labels[big & (rank == count - 2)] = VALID
    return labels


def split_mmrec(users: np.ndarray, seed: int = 0) -> np.ndarray:
    r"""MMRec's random per-user split (``preprocessing/1splitting.ipynb`` of
    `MMRec <https://github.com/enoche/MMRec>`_): the rows are shuffled, grouped
    by user keeping the shuffled order, and each user's :math:`n` rows are
    labelled in that order:

    * :math:`n < 10`: the first :math:`n - 2` train, then one valid, one test
      (the notebook's ``[0] * (n - 2) + [1] + [2]``);
    * :math:`n \geq 10`: :math:`h = \lfloor 0.2 n \rfloor` held out
      (``int(n * 0.2)``), the first :math:`n - h` train, then
      :math:`\lfloor h / 2 \rfloor` valid and :math:`h - \lfloor h / 2
      \rfloor` test; e.g. :math:`n = 15`: 12 / 1 / 2.

    Differences: the shuffle is NumPy's seeded permutation (MMRec calls
    pandas' ``df.sample(frac=1)`` without a seed, so its split cannot be
    reproduced row for row; the rule is the same), and a user with fewer than
    3 rows (possible only when the :math:`k`-core is off or :math:`k < 3`)
    keeps all of them for training, where MMRec's formula would give none.

    Args:
        users (numpy.ndarray): Integer user codes :math:`[E]`.
        seed (int, optional): The shuffle's seed. (default: :obj:`0`)

    Returns:
        ``x_label`` per row, int64 :math:`[E]`.
    """
    permutation = np.random.default_rng(seed).permutation(len(users))
    order = permutation[np.argsort(users[permutation], kind="stable")]
    rank, count = _positions(users, order)
    labels = _last_two(rank, count)
    held_out = (count * _MMREC_HELD_OUT).astype(np.int64)
    num_train = count - held_out
    num_valid = held_out // 2
    large = count >= _MMREC_SMALL_USER
    labels[large] = np.where(
        rank[large] < num_train[large],
        TRAIN,
        np.where(rank[large] < num_train[large] + num_valid[large], VALID, TEST),
    )
    return labels


def split_leave_one_out(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    r"""Leave-one-out by time: each user's latest row is the test row, the
    second latest the valid row, the rest train. Equal times are ordered by
    row order (the later row counts as later). A user with fewer than 3 rows
    keeps them all for training.

    Args:
        users (numpy.ndarray): Integer user codes :math:`[E]`.
        timestamps (numpy.ndarray): Times :math:`[E]`.

    Returns:
        ``x_label`` per row, int64 :math:`[E]`.
    """
    order = np.lexsort((np.arange(len(users)), timestamps, users))
    rank, count = _positions(users, order)
    return _last_two(rank, count)


def split_temporal(timestamps: np.ndarray, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> np.ndarray:
    r"""A global time cut, as in MMRec's ``preprocessing/0rating2inter.ipynb``:
    with :math:`q_1, q_2` the :func:`numpy.quantile` of all times at
    :math:`r_0` and :math:`r_0 + r_1` (ratios normalized to sum to 1), a row
    at time :math:`t` is train if :math:`t < q_1`, valid if :math:`q_1 \leq t
    < q_2`, test if :math:`t \geq q_2`. Ties at a cut go to the later split, so
    the sizes are the ratios only up to ties. Users first seen after a cut
    have no training row (the MMRec reader drops them with their held-out
    rows).

    Args:
        timestamps (numpy.ndarray): Times :math:`[E]`.
        ratios (Sequence[float], optional): Train, valid and test shares.
            (default: :obj:`(0.8, 0.1, 0.1)`)

    Returns:
        ``x_label`` per row, int64 :math:`[E]`.
    """
    shares = np.asarray(ratios, dtype=np.float64)
    if shares.shape != (3,) or (shares <= 0).any() or not np.isfinite(shares).all():
        raise ValueError(f"ratios must be three positive numbers, got {list(ratios)}")
    cuts = np.quantile(timestamps, np.cumsum(shares / shares.sum())[:2])
    return np.searchsorted(cuts, timestamps, side="right").astype(np.int64)


def split_labels(
    rule: str,
    users: np.ndarray,
    timestamps: np.ndarray | None = None,
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
) -> np.ndarray:
    r"""``x_label`` per row by the split :obj:`rule` (one of
    :data:`SPLIT_RULES`).

    Args:
        rule (str): ``"mmrec"``, ``"loo"`` or ``"temporal"``.
        users (numpy.ndarray): Integer user codes :math:`[E]`.
        timestamps (numpy.ndarray, optional): Times :math:`[E]`, required by
            ``"loo"`` and ``"temporal"``. (default: :obj:`None`)
        seed (int, optional): Seed of ``"mmrec"``'s shuffle. (default: :obj:`0`)
        ratios (Sequence[float], optional): ``"temporal"``'s shares.
            (default: :obj:`(0.8, 0.1, 0.1)`)

    Raises:
        ValueError: For an unknown rule, a time-based rule without times, or
            a split that leaves no valid or no test row.
    """
    if rule not in SPLIT_RULES:
        raise ValueError(f"unknown split {rule!r}; choose one of {list(SPLIT_RULES)}")
    if rule != "mmrec" and timestamps is None:
        raise ValueError(f"split {rule!r} orders interactions by time: it needs a time column")
    if rule == "mmrec":
        labels = split_mmrec(users, seed)
    elif rule == "loo":
        labels = split_leave_one_out(users, timestamps)
    else:
        labels = split_temporal(timestamps, ratios)
    sizes = np.bincount(labels, minlength=3)
    for split, name in ((VALID, "valid"), (TEST, "test")):
        if sizes[split] == 0:
            raise ValueError(
                f"split {rule!r} leaves no {name} interactions ({sizes[0]} train, "
                f"{sizes[1]} valid, {sizes[2]} test of {len(labels)}): "
                + (
                    "too many equal timestamps at the cut?"
                    if rule == "temporal"
                    else "every user has fewer than 3 interactions"
                )
            )
    return labels
