r"""The ids a user of an export speaks: the original user and item ids of the dataset
(MMRec's ``u_id_mapping.csv`` / ``i_id_mapping.csv`` written by ``dreamgeo prepare``,
and the ``userID`` values of the ``.inter`` file, which the MMRec loader keeps as
``data['user'].original_id``), mapped to and from the internal ids :math:`0, \dots,
n - 1`."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from torch_geometric.data import HeteroData

from dreamgeo.datasets.prepare import ITEM_MAPPING_FILE, USER_MAPPING_FILE
from dreamgeo.datasets.schema import ITEM, USER

__all__ = ["IdMap", "UnknownIdError", "read_id_mapping", "original_ids"]


class UnknownIdError(KeyError):
    r"""Ids that an :class:`IdMap` does not hold; the message names them.

    Args:
        kind (str): ``"user"`` or ``"item"``.
        ids (Sequence[str]): The unknown ids (the first 5 are named).
        total (int): How many ids the map holds.
    """

    def __init__(self, kind: str, ids: Sequence[str], total: int):
        self.kind = kind
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5])
        more = f" and {len(self.ids) - 5} more" if len(self.ids) > 5 else ""
        self.message = f"unknown {kind} id {shown}{more}: not among the {total} {kind}s"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class IdMap:
    r"""Original ids of users or items, entry :math:`i` belonging to internal id
    :math:`i`, and the way back (a sorted copy searched with :func:`numpy.searchsorted`:
    :math:`O(n)` memory, no Python dict).

    Args:
        original (Sequence[str] or numpy.ndarray): The original ids, all distinct.
        kind (str, optional): ``"user"`` or ``"item"``, for messages.
            (default: :obj:`"user"`)

    Shapes:
        - **original:** ``[n]``

    A repeated id is a :class:`ValueError` naming it, raised by :meth:`check_unique`
    and by the first look-up.
    """

    def __init__(self, original: Sequence[str] | np.ndarray, kind: str = "user"):
        self.kind = kind
        self.original = np.asarray(original, dtype=str)
        if self.original.ndim != 1:
            raise ValueError(f"{kind} ids must be one-dimensional, got {self.original.shape}")
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.original.shape[0])

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None or self._sorted is None:
            order = np.argsort(self.original, kind="stable")
            ordered = self.original[order]
            repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
            if repeated.size:
                raise ValueError(f"{self.kind} id {str(ordered[repeated[0]])!r} repeats")
            self._order, self._sorted = order, ordered
        return self._order, self._sorted

    def check_unique(self) -> None:
        r"""Raises :class:`ValueError` naming an id that repeats."""
        self._index()

    def find(self, ids: Iterable[str] | np.ndarray) -> np.ndarray:
        r"""The internal ids of :obj:`ids`, :math:`-1` for an unknown one.

        Shapes:
            - **ids:** ``[q]``
            - **output:** int64 ``[q]``
        """
        order, ordered = self._index()
        query = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=str)
        if query.size == 0 or ordered.size == 0:
            return np.full(query.shape, -1, dtype=np.int64)
        position = np.searchsorted(ordered, query).clip(max=ordered.size - 1)
        found = ordered[position] == query
        return np.where(found, order[position], -1).astype(np.int64)

    def to_internal(self, ids: Iterable[str] | np.ndarray) -> np.ndarray:
        r"""The internal ids of :obj:`ids`.

        Raises:
            UnknownIdError: Naming the ids that are not in the map.
        """
        query = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=str)
        internal = self.find(query)
        if (internal < 0).any():
            raise UnknownIdError(self.kind, query[internal < 0].tolist(), len(self))
        return internal

    def to_original(self, internal: np.ndarray) -> np.ndarray:
        r"""The original ids of the internal ids :obj:`internal` (any shape)."""
        return self.original[np.asarray(internal, dtype=np.int64)]


def read_id_mapping(path: str | os.PathLike, id_column: str) -> dict[int, str]:
    r"""Reads an MMRec id mapping file: a header with :obj:`id_column` (``userID`` or
    ``itemID``) and one other column (the original id), tab- or comma-separated.

    Returns:
        The original id of each integer id.

    Raises:
        ValueError: For another header, a line with another number of fields, an id
            that is not an integer, or an integer id or an original id given twice,
            naming the file and the line.
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline()
        delimiter = "\t" if "\t" in first else ","
        header = [c.strip() for c in next(csv.reader([first], delimiter=delimiter), [])]
        if id_column not in header or len(header) != 2:
            raise ValueError(
                f"{path}: the header {header} must name {id_column!r} and one original-id "
                "column (MMRec's mapping file)"
            )
        j_id, j_original = header.index(id_column), 1 - header.index(id_column)
        mapping: dict[int, str] = {}
        seen: set[str] = set()
        for line, row in enumerate(csv.reader(handle, delimiter=delimiter), start=2):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}: line {line}: {len(row)} fields, the header has 2")
            try:
                key = int(row[j_id])
            except ValueError:
                raise ValueError(
                    f"{path}: line {line}: {id_column} {row[j_id]!r} is not an integer"
                ) from None
            original = row[j_original].strip()
            if key in mapping or original in seen:
                raise ValueError(f"{path}: line {line}: {id_column} or original id repeats")
            mapping[key] = original
            seen.add(original)
    return mapping


def _mapped(
    keys: np.ndarray, folder: Path | None, file_name: str, id_column: str
) -> tuple[np.ndarray, str]:
    r"""The original ids of the integer ids ``keys`` from ``folder/file_name`` when it
    exists, else the integers as text."""
    path = None if folder is None else folder / file_name
    if path is None or not path.is_file():
        return keys.astype(str), "internal" if folder is None else "dataset ids"
    mapping = read_id_mapping(path, id_column)
    missing = [int(k) for k in keys if int(k) not in mapping]
    if missing:
        raise ValueError(
            f"{path}: no original id for {id_column} {missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    return np.asarray([mapping[int(k)] for k in keys], dtype=str), file_name


def original_ids(
    data: HeteroData, dataset_dir: str | os.PathLike | None = None
) -> tuple[IdMap, IdMap, dict[str, str]]:
    r"""The original user and item ids of :obj:`data`, and where each came from.

    A user's id is its ``userID`` in the ``.inter`` file (``data['user'].original_id``,
    kept by the MMRec loader when it renumbers users; else the internal id), mapped
    through ``dataset_dir/u_id_mapping.csv`` when that file exists; an item's is its
    ``itemID`` mapped through ``dataset_dir/i_id_mapping.csv`` when that exists.

    Args:
        data (HeteroData): The dataset a model was trained on.
        dataset_dir (str or Path, optional): The dataset folder that may hold the
            mapping files. (default: :obj:`None`)

    Returns:
        ``(users, items, sources)`` with ``sources`` naming, per ``"users"`` and
        ``"items"``, the mapping file read, ``"dataset ids"`` or ``"internal"``.

    Raises:
        ValueError: If a mapping file is malformed, lacks an id, or maps two ids to
            one original id.
    """
    folder = None if dataset_dir is None else Path(dataset_dir)
    num_users, num_items = int(data[USER].num_nodes), int(data[ITEM].num_nodes)
    user_keys = data[USER].get("original_id", None)
    user_keys = np.arange(num_users) if user_keys is None else user_keys.cpu().numpy()
    users, user_source = _mapped(np.asarray(user_keys), folder, USER_MAPPING_FILE, "userID")
    items, item_source = _mapped(np.arange(num_items), folder, ITEM_MAPPING_FILE, "itemID")
    user_map, item_map = IdMap(users, "user"), IdMap(items, "item")
    user_map.check_unique()
    item_map.check_unique()
    return user_map, item_map, {"users": user_source, "items": item_source}
