r"""The item table that ``dreamgeo features`` reads: one record per item with its
original id and content fields, aligned to the MMRec item ids :math:`0, \dots, N-1`
through an id mapping.

Two files in the dataset folder (as ``dreamgeo prepare`` writes them, or given
explicitly):

* the **id mapping** ``i_id_mapping.csv``, MMRec's file: a header line and one line
  per item, separated by tabs (MMRec) or commas, with the column ``itemID`` (the
  MMRec item id, :math:`0, \dots, N-1`, each exactly once) and one other column, the
  original id (``asin`` in MMRec's Amazon sets);
* the **items table**: JSON lines (``.jsonl`` / ``.json``, optionally gzipped; one
  object per line, Python dict literals as in Amazon's 2014 metadata dumps are
  accepted too) or CSV / TSV with a header line, holding the original id in a column
  and any content fields (Amazon-style ``title``, ``brand``, ``categories``,
  ``description``).

An items table with an ``itemID`` column (MMRec's ``meta-<name>.csv``) needs no
mapping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamgeo.datasets.raw_io import base_suffix, iter_csv_rows, iter_records, open_text

__all__ = [
    "ItemTable",
    "read_item_mapping",
    "read_item_records",
    "read_item_table",
    "ITEM_ID_COLUMN",
    "ORIGINAL_ID_COLUMNS",
]

logger = logging.getLogger(__name__)

#: The column of the MMRec item id in ``i_id_mapping.csv`` and MMRec's metadata CSVs.
ITEM_ID_COLUMN = "itemID"
#: Original-id columns looked for in the items table, in this order, when neither
#: ``id_column`` nor the mapping names one.
ORIGINAL_ID_COLUMNS: tuple[str, ...] = ("asin", "parent_asin", "original_id", "item_id", "id")


@dataclass
class ItemTable:
    r"""Item records aligned to the MMRec item ids.

    Args:
        original_ids (list[str]): Entry :math:`i` is the original id of item :math:`i`.
        records (list[dict or None]): Entry :math:`i` is the items-table record of item
            :math:`i`, or :obj:`None` when the table has no row for it.
        id_column (str): The items-table column that holds the original id.
        num_unmapped (int): Rows of the items table whose id is not in the mapping
            (ignored, e.g. items removed by the k-core filter). (default: :obj:`0`)
    """

    original_ids: list[str]
    records: list[dict[str, Any] | None]
    id_column: str
    num_unmapped: int = 0

    @property
    def num_items(self) -> int:
        r"""The number of items :math:`N`."""
        return len(self.original_ids)


def read_item_mapping(path: str | os.PathLike) -> tuple[list[str], str]:
    r"""Reads an MMRec id mapping (``i_id_mapping.csv``).

    Args:
        path (str or Path): A header line with ``itemID`` and one other column (the
            original id), separated by tabs or commas, then one line per item.

    Returns:
        The original ids in item-id order (entry :math:`i` belongs to item :math:`i`)
        and the name of the original-id column.

    Raises:
        ValueError: If the header lacks ``itemID`` or has not exactly one other column,
            an ``itemID`` is not an integer, or the ``itemID`` values are not
            :math:`0, \dots, N-1` each once, or an original id repeats.
    """
    path = Path(path)
    with open_text(path) as handle:
        delimiter = "\t" if "\t" in handle.readline() else ","
    rows = iter_csv_rows(path, delimiter)
    columns = [c.strip() for c in next(rows, (1, []))[1]]
    if ITEM_ID_COLUMN not in columns:
        raise ValueError(
            f"{path}: the header {columns} has no {ITEM_ID_COLUMN!r} column "
            f"(expected MMRec's 'asin<TAB>itemID')"
        )
    others = [c for c in columns if c != ITEM_ID_COLUMN]
    if len(others) != 1:
        raise ValueError(
            f"{path}: expected {ITEM_ID_COLUMN!r} and one original-id column, got {columns}"
        )
    j_item, j_orig = columns.index(ITEM_ID_COLUMN), columns.index(others[0])
    by_item: dict[int, str] = {}
    seen: dict[str, int] = {}
    for line_number, row in rows:
        if len(row) != len(columns):
            raise ValueError(
                f"{path}: line {line_number}: {len(row)} fields, the header has {len(columns)}"
            )
        original = row[j_orig].strip()
        item = _new_item_id(path, line_number, row[j_item], by_item)
        if original in seen:
            raise ValueError(
                f"{path}: line {line_number}: original id {original!r} repeats "
                f"(also itemID {seen[original]})"
            )
        by_item[item] = original
        seen[original] = item
    num_items = len(by_item)
    if num_items == 0:
        raise ValueError(f"{path}: no items")
    outside = [i for i in by_item if not 0 <= i < num_items]
    if outside:
        raise ValueError(
            f"{path}: {ITEM_ID_COLUMN} must be 0..{num_items - 1} (each once), but "
            f"{min(outside) if min(outside) < 0 else max(outside)} occurs"
        )
    return [by_item[i] for i in range(num_items)], others[0]


def read_item_records(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    r"""Yields ``(line number, record)`` for every row of an items table.

    Args:
        path (str or Path): JSON lines (``.jsonl``, ``.json``, ``.ndjson``; Python dict
            literals accepted too), CSV (``.csv``) or TSV (``.tsv``), each optionally
            gzipped (``.gz``). CSV/TSV values are strings; an empty one is missing.
    """
    kind = base_suffix(path)
    if kind not in (".csv", ".tsv"):
        yield from iter_records(path, python_literals=True)
        return
    rows = iter_csv_rows(path, "\t" if kind == ".tsv" else ",")
    header = [c.strip() for c in next(rows, (1, []))[1]]
    for line_number, fields in rows:
        if len(fields) != len(header):
            raise ValueError(
                f"{path}: line {line_number}: {len(fields)} fields, the header has {len(header)}"
            )
        yield line_number, {k: (v if v != "" else None) for k, v in zip(header, fields) if k}


def read_item_table(
    items: str | os.PathLike,
    mapping: str | os.PathLike | None = None,
    id_column: str | None = None,
) -> ItemTable:
    r"""Reads an items table and aligns it to the MMRec item ids.

    Rows whose original id is not in the mapping are skipped (counted in
    :obj:`ItemTable.num_unmapped`, logged); a repeated id keeps its first row (with a
    warning); items of the mapping without a row get the record :obj:`None`.

    Args:
        items (str or Path): The items table (see :func:`read_item_records`).
        mapping (str or Path, optional): The id mapping (see
            :func:`read_item_mapping`); :obj:`None` when the table carries the item
            ids itself in an ``itemID`` column. (default: :obj:`None`)
        id_column (str, optional): The table's original-id column. (default:
            :obj:`None`, meaning the mapping's original-id column when the table has
            it, else the first of :data:`ORIGINAL_ID_COLUMNS` that the first row has)

    Raises:
        ValueError: If no id column is found, a row lacks it, or (without a mapping)
            the ``itemID`` values are not :math:`0, \dots, N-1` each once.
    """
    items = Path(items)
    mapping_ids, mapping_column = (None, None)
    if mapping is not None:
        mapping_ids, mapping_column = read_item_mapping(mapping)
    rows = read_item_records(items)
    first = next(rows, None)
    if first is None:
        raise ValueError(f"{items}: the items table is empty")
    _, first_record = first
    if mapping_ids is None:
        if ITEM_ID_COLUMN not in first_record:
            raise ValueError(
                f"{items}: no id mapping was given and the table has no "
                f"{ITEM_ID_COLUMN!r} column: give the mapping (i_id_mapping.csv)"
            )
        return _table_with_item_ids(items, _chain(first, rows), id_column)
    if id_column is None:
        candidates = [mapping_column, *ORIGINAL_ID_COLUMNS]
        id_column = next((c for c in candidates if c in first_record), None)
        if id_column is None:
            raise ValueError(
                f"{items}: none of the id columns {candidates} is in the first row "
                f"(columns {sorted(first_record)}); name one with id_column / --id-column"
            )
    index = {original: item for item, original in enumerate(mapping_ids)}
    records: list[dict[str, Any] | None] = [None] * len(mapping_ids)
    num_unmapped = num_repeated = 0
    for line_number, record in _chain(first, rows):
        original = _original_id(items, line_number, record, id_column)
        item = index.get(original)
        if item is None:
            num_unmapped += 1
        elif records[item] is not None:
            num_repeated += 1
        else:
            records[item] = record
    if num_repeated:
        logger.warning("%s: %d repeated ids; the first row of each is used", items, num_repeated)
    if num_unmapped:
        logger.info("%s: %d rows are not in the id mapping and are skipped", items, num_unmapped)
    return ItemTable(list(mapping_ids), records, id_column, num_unmapped)


def _new_item_id(path: Path, line_number: int, value: Any, by_item: dict[int, Any]) -> int:
    r"""The ``itemID`` :obj:`value` as an integer not yet in :obj:`by_item`."""
    text = str(value).strip()
    try:
        item = int(text)
    except ValueError:
        raise ValueError(
            f"{path}: line {line_number}: {ITEM_ID_COLUMN} {text!r} is not an integer"
        ) from None
    if item in by_item:
        raise ValueError(f"{path}: line {line_number}: {ITEM_ID_COLUMN} {item} repeats")
    return item


def _chain(first: tuple[int, dict[str, Any]], rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _original_id(path: Path, line_number: int, record: dict[str, Any], column: str) -> str:
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{path}: line {line_number}: no {column!r} (the item's id)")
    return str(value).strip()


def _table_with_item_ids(
    path: Path, rows: Iterator[tuple[int, dict[str, Any]]], id_column: str | None
) -> ItemTable:
    r"""An :class:`ItemTable` from a table that has an ``itemID`` column."""
    by_item: dict[int, dict[str, Any]] = {}
    for line_number, record in rows:
        item = _new_item_id(path, line_number, record.get(ITEM_ID_COLUMN, ""), by_item)
        by_item[item] = record
    num_items = len(by_item)
    if sorted(by_item) != list(range(num_items)):
        raise ValueError(f"{path}: {ITEM_ID_COLUMN} must be 0..{num_items - 1}, each once")
    records: Sequence[dict[str, Any]] = [by_item[i] for i in range(num_items)]
    if id_column is None:
        id_column = next((c for c in ORIGINAL_ID_COLUMNS if c in records[0]), ITEM_ID_COLUMN)
    original_ids = [
        str(r.get(id_column, i)).strip() if r.get(id_column) is not None else str(i)
        for i, r in enumerate(records)
    ]
    return ItemTable(original_ids, list(records), id_column)
