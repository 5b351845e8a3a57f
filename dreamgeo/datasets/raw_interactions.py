r"""Raw user-item interactions read from one file (CSV, TSV, JSON lines,
Parquet or an Amazon review / rating file) into integer codes, before any
filtering: the first step of :func:`~dreamgeo.datasets.prepare_dataset`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dreamgeo.datasets.amazon import (
    AMAZON_FORMATS,
    RATINGS_2014_NAMES,
    amazon_columns,
    detect_amazon_format,
)
from dreamgeo.datasets.raw_io import (
    base_suffix,
    iter_csv_rows,
    iter_records,
    parquet_column_names,
    read_parquet_columns,
)

__all__ = ["INTERACTION_FORMATS", "RawInteractions", "detect_format", "read_interactions"]

INTERACTION_FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "parquet", *AMAZON_FORMATS)
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".inter": "tsv",
    ".json": "jsonl",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# float64 holds every integer up to 2**53 exactly
_MAX_EXACT_INT = 2**53


@dataclass(frozen=True)
class RawInteractions:
    r"""Interactions as read, one entry per row of the source file, with
    users and items coded :math:`0, 1, \dots` in the order of their first
    appearance in the file.

    Args:
        users (numpy.ndarray): User code per row, int64 :math:`[E]`.
        items (numpy.ndarray): Item code per row, int64 :math:`[E]`.
        user_ids (numpy.ndarray): The original id (str) of each user code.
        item_ids (numpy.ndarray): The original id (str) of each item code.
        timestamps (numpy.ndarray, optional): Time per row, int64 (or float64
            when some are fractional) :math:`[E]`; date-time text is converted
            to POSIX seconds (UTC when no zone is given).
        ratings (numpy.ndarray, optional): Rating per row, float64 :math:`[E]`.
        lines (numpy.ndarray): The source line (row for Parquet) of each row.
        path (str): The source file.
        format (str): Its format, one of :data:`INTERACTION_FORMATS`.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None
    ratings: np.ndarray | None
    lines: np.ndarray
    path: str
    format: str

    def __len__(self) -> int:
        return len(self.users)

    def select(self, index: np.ndarray) -> RawInteractions:
        r"""The rows :obj:`index` (a boolean mask or positions); codes and id
        tables are unchanged."""
        return replace(
            self,
            users=self.users[index],
            items=self.items[index],
            timestamps=None if self.timestamps is None else self.timestamps[index],
            ratings=None if self.ratings is None else self.ratings[index],
            lines=self.lines[index],
        )


def detect_format(path: str | os.PathLike, user_col: str | None = None) -> str:
    r"""The format of ``path``: an Amazon release when
    :func:`~dreamgeo.datasets.amazon.detect_amazon_format` recognizes it (the
    2014 file names always; 2018 and 2023 JSON lines by their keys, only when
    no :obj:`user_col` is given), else from the suffix (gzip's ``.gz`` aside):
    ``.csv``; ``.tsv``, ``.tab``, ``.inter``; ``.json``, ``.jsonl``,
    ``.ndjson``; ``.parquet``, ``.pq``.

    Raises:
        ValueError: If the suffix is none of these.
    """
    amazon = detect_amazon_format(path)
    if amazon == "amazon2014" or (amazon is not None and user_col is None):
        return amazon
    fmt = _SUFFIX_FORMATS.get(base_suffix(path))
    if fmt is None:
        raise ValueError(
            f"{path}: cannot tell the format from the name; pass a format, one of "
            f"{list(INTERACTION_FORMATS)}"
        )
    return fmt


class _Builder:
    r"""Codes ids in order of first appearance and collects the columns."""

    def __init__(self, path: str, label: str, columns: dict[str, str | None]) -> None:
        self.path, self.label, self.columns = path, label, columns
        self.user_codes: dict[str, int] = {}
        self.item_codes: dict[str, int] = {}
        self.users: list[int] = []
        self.items: list[int] = []
        self.times: list[Any] = []
        self.ratings: list[Any] = []
        self.lines: list[int] = []

    def _id(self, value: Any, role: str, line: int) -> str:
        text = "" if value is None else str(value).strip()
        if not text:
            raise ValueError(
                f"{self.path}: {self.label} {line}: empty {role} id (column {self.columns[role]!r})"
            )
        return text

    def add(self, line: int, user: Any, item: Any, time: Any, rating: Any) -> None:
        user_code = self.user_codes.setdefault(self._id(user, "user", line), len(self.user_codes))
        item_code = self.item_codes.setdefault(self._id(item, "item", line), len(self.item_codes))
        self.users.append(user_code)
        self.items.append(item_code)
        self.times.append(time)
        self.ratings.append(rating)
        self.lines.append(line)

    def build(self, fmt: str) -> RawInteractions:
        if not self.users:
            raise ValueError(f"{self.path}: no interactions (the file has no data rows)")
        lines = np.asarray(self.lines, dtype=np.int64)
        times = ratings = None
        if self.columns["time"] is not None:
            times = _to_numbers(self.times, lines, self, "time", dates=True)
        if self.columns["rating"] is not None:
            ratings = _to_numbers(self.ratings, lines, self, "rating").astype(np.float64)
        return RawInteractions(
            users=np.asarray(self.users, dtype=np.int64),
            items=np.asarray(self.items, dtype=np.int64),
            user_ids=np.asarray(list(self.user_codes), dtype=object),
            item_ids=np.asarray(list(self.item_codes), dtype=object),
            timestamps=times,
            ratings=ratings,
            lines=lines,
            path=self.path,
            format=fmt,
        )


def _parse_number(value: Any, dates: bool) -> float:
    r"""One value as a float: a number, numeric text or, with :obj:`dates`, a
    date-time (object or ISO 8601 text) as POSIX seconds."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    else:
        text = "" if value is None else str(value).strip()
        try:
            return float(text)
        except ValueError:
            if not dates or not text:
                raise
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _to_numbers(
    values: list[Any], lines: np.ndarray, builder: _Builder, role: str, dates: bool = False
) -> np.ndarray:
    r"""The column as int64 when every value is a whole number, else float64;
    the first value that is not a finite number is an error naming its line."""
    try:
        array = np.asarray(
            [v if isinstance(v, (int, float)) else float(v) for v in values], dtype=np.float64
        )
    except (TypeError, ValueError):
        array = None
    if array is None or not np.isfinite(array).all():
        parsed = []
        for value, line in zip(values, lines.tolist()):
            try:
                number = _parse_number(value, dates)
            except (TypeError, ValueError, OverflowError):
                number = math.nan
            if not math.isfinite(number):
                expected = "a number or an ISO 8601 date-time" if dates else "a number"
                raise ValueError(
                    f"{builder.path}: {builder.label} {line}: {role} {value!r} (column "
                    f"{builder.columns[role]!r}) is not {expected}"
                )
            parsed.append(number)
        array = np.asarray(parsed, dtype=np.float64)
    if (np.abs(array) < _MAX_EXACT_INT).all() and (array == np.round(array)).all():
        return array.astype(np.int64)
    return array


def _csv_rows(
    path: str, delimiter: str, columns: dict[str, str | None], names: Sequence[str] | None
) -> Iterator[tuple[int, list[Any]]]:
    r"""``(line, [user, item, time, rating])`` per data row of a delimited file;
    :obj:`names` are the column names of a file without a header line."""
    rows = iter_csv_rows(path, delimiter)
    if names is None:
        first = next(rows, None)
        if first is None:
            raise ValueError(f"{path}: the file is empty (no header line)")
        header = [name.strip() for name in first[1]]
    else:
        header = list(names)
    positions = []
    for role, column in columns.items():
        if column is None:
            positions.append(None)
            continue
        if column not in header:
            hint = ""
            if len(header) == 1 and ("\t" in header[0] or "," in header[0]):
                hint = " (is the file separated by another character? pass the format)"
            raise ValueError(
                f"{path}: line 1: no {role} column {column!r}; the columns are {header}{hint}"
            )
        positions.append(header.index(column))
    for line, fields in rows:
        if len(fields) != len(header):
            raise ValueError(
                f"{path}: line {line}: {len(fields)} fields, but the header has "
                f"{len(header)} ({header})"
            )
        yield line, [None if p is None else fields[p] for p in positions]


def _json_rows(
    path: str, columns: dict[str, str | None], python_literals: bool
) -> Iterator[tuple[int, list[Any]]]:
    for line, record in iter_records(path, python_literals=python_literals):
        values = []
        for role, column in columns.items():
            if column is None:
                values.append(None)
            elif column in record:
                values.append(record[column])
            else:
                raise ValueError(
                    f"{path}: line {line}: no {role} key {column!r}; the keys are {sorted(record)}"
                )
        yield line, values


def _parquet_rows(path: str, columns: dict[str, str | None]) -> Iterator[tuple[int, list[Any]]]:
    names = parquet_column_names(path)
    for role, column in columns.items():
        if column is not None and column not in names:
            raise ValueError(f"{path}: no {role} column {column!r}; the columns are {names}")
    wanted = list(dict.fromkeys(c for c in columns.values() if c is not None))
    _, table = read_parquet_columns(path, wanted)
    lists = [None if c is None else table[c] for c in columns.values()]
    for row in range(len(table[wanted[0]])):
        yield row + 1, [None if values is None else values[row] for values in lists]


def read_interactions(
    path: str | os.PathLike,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    format: str | None = None,
) -> RawInteractions:
    r"""Reads the interactions of one file, gzipped or not.

    Formats (see :func:`detect_format` for how one is chosen when
    :obj:`format` is :obj:`None`): ``"csv"`` and ``"tsv"`` with a header line,
    ``"jsonl"`` (one JSON object per line), ``"parquet"`` (needs
    :mod:`pyarrow`: ``pip install 'dreamgeo[prepare]'``) and the Amazon
    releases ``"amazon2014"`` (``reviews_*.json.gz`` with Python-literal lines,
    or the headerless ``ratings_*.csv``), ``"amazon2018"`` and ``"amazon2023"``
    (see :mod:`dreamgeo.datasets.amazon`), whose columns are known: for them
    the ``*_col`` arguments are optional overrides and time and rating are
    always read.

    Ids are text (numbers in JSON become their decimal text), stripped of
    surrounding blanks. Times may be numbers or ISO 8601 date-times.

    Args:
        path (str or Path): The file.
        user_col (str, optional): The user id column (required except for
            the Amazon formats). (default: :obj:`None`)
        item_col (str, optional): The item id column (required except for
            the Amazon formats). (default: :obj:`None`)
        time_col (str, optional): A time column. (default: :obj:`None`)
        rating_col (str, optional): A rating column. (default: :obj:`None`)
        format (str, optional): One of :data:`INTERACTION_FORMATS`.
            (default: :obj:`None`, detected)

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ImportError: For Parquet without :mod:`pyarrow`.
        ValueError: If a column is missing (listing the columns found), a
            row is malformed, an id is empty or a time or rating is not a
            number; the message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"interactions file {path} does not exist")
    fmt = format or detect_format(path, user_col)
    if fmt not in INTERACTION_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {list(INTERACTION_FORMATS)}")
    names: Sequence[str] | None = None
    python_literals = False
    if fmt in AMAZON_FORMATS:
        known = amazon_columns(fmt, path)
        user_col, item_col = user_col or known.user, item_col or known.item
        time_col, rating_col = time_col or known.time, rating_col or known.rating
        names = None if known.header else RATINGS_2014_NAMES
        python_literals = known.python_literals
    missing = [flag for flag, c in (("user", user_col), ("item", item_col)) if not c]
    if missing:
        raise ValueError(
            f"{path}: the {' and '.join(missing)} column must be given for format {fmt!r}"
        )
    columns = {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    text_path = str(path)
    if fmt == "parquet":
        rows = _parquet_rows(text_path, columns)
    elif fmt in ("jsonl", "amazon2018", "amazon2023") or (fmt == "amazon2014" and names is None):
        rows = _json_rows(text_path, columns, python_literals)
    else:
        rows = _csv_rows(text_path, "\t" if fmt == "tsv" else ",", columns, names)
    builder = _Builder(text_path, "row" if fmt == "parquet" else "line", columns)
    for line, (user, item, time, rating) in rows:
        builder.add(line, user, item, time, rating)
    return builder.build(fmt)
