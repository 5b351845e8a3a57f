r"""Low-level readers of raw text, JSON-lines and Parquet files for
:func:`~dreamgeo.datasets.prepare_dataset`: gzip read transparently (told by
its magic bytes, not the file name), every record paired with its line
number so that errors can name the line at fault."""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "PARQUET_EXTRA",
    "is_gzip",
    "open_text",
    "base_suffix",
    "iter_records",
    "iter_csv_rows",
    "parquet_column_names",
    "read_parquet_columns",
]

PARQUET_EXTRA = "prepare"
_GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike) -> bool:
    r"""Whether ``path`` starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_text(path: str | os.PathLike) -> TextIO:
    r"""Opens ``path`` as UTF-8 text (a leading byte-order mark is skipped),
    decompressing it on the fly when it is gzipped."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def base_suffix(path: str | os.PathLike) -> str:
    r"""The lower-case suffix of ``path`` without a trailing ``.gz``, e.g.
    ``".json"`` for ``reviews_Baby_5.json.gz``."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


def _decode_error(path: str | os.PathLike, line: int, error: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{path}: line {line}: not UTF-8 text ({error.reason})")


def iter_records(
    path: str | os.PathLike, python_literals: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    r"""Yields ``(line_number, record)`` for every non-blank line of a
    JSON-lines file.

    Args:
        path (str or Path): The file (gzipped or not).
        python_literals (bool, optional): Also accept lines that are Python
            dict literals (single quotes, ``True``/``None``), as in the Amazon
            2014 review and meta files; they are parsed by
            :func:`ast.literal_eval`, never evaluated. (default: :obj:`False`)

    Raises:
        ValueError: If a line is not a JSON object (or Python dict literal),
            naming the line.
    """
    kind = "a JSON object or Python dict literal" if python_literals else "a JSON object"
    line_number = 0
    with open_text(path) as handle:
        try:
            for line_number, line in enumerate(handle, start=1):  # noqa: B007
                text = line.strip()
                if not text:
                    continue
                try:
                    record = json.loads(text)
                except ValueError as error:
                    if not python_literals:
                        raise ValueError(
                            f"{path}: line {line_number}: not {kind} ({error})"
                        ) from None
                    try:
                        record = ast.literal_eval(text)
                    except (ValueError, SyntaxError, MemoryError, RecursionError):
                        raise ValueError(
                            f"{path}: line {line_number}: not {kind}: {text[:80]!r}"
                        ) from None
                if not isinstance(record, dict):
                    raise ValueError(
                        f"{path}: line {line_number}: not {kind} (found a {type(record).__name__})"
                    )
                yield line_number, record
        except UnicodeDecodeError as error:
            raise _decode_error(path, line_number + 1, error) from None


def iter_csv_rows(path: str | os.PathLike, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    r"""Yields ``(line_number, fields)`` for every non-blank row of a
    delimited text file, a header row included. Quoted fields may span lines;
    the number is the row's first line.

    Args:
        path (str or Path): The file (gzipped or not).
        delimiter (str): ``","`` or ``"\t"``.
    """
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        start = 1
        try:
            for fields in reader:
                if fields:  # a blank line is no row
                    yield start, fields
                start = reader.line_num + 1
        except csv.Error as error:
            raise ValueError(f"{path}: line {reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise _decode_error(path, reader.line_num + 1, error) from None


def _parquet(path: str | os.PathLike):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"{path}: reading Parquet needs pyarrow: pip install "
            f"'dreamgeo[{PARQUET_EXTRA}]' (or pip install pyarrow)"
        ) from None
    return pq


def parquet_column_names(path: str | os.PathLike) -> list[str]:
    r"""The column names of a Parquet file (its schema only is read).

    Raises:
        ImportError: If :mod:`pyarrow` is not installed, naming the
            ``dreamgeo[prepare]`` extra.
        ValueError: If the file is not Parquet.
    """
    pq = _parquet(path)
    try:
        return list(pq.read_schema(path).names)
    except Exception as error:  # pyarrow raises its own ArrowInvalid, an Exception
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None


def read_parquet_columns(
    path: str | os.PathLike, columns: Sequence[str] | None = None
) -> tuple[list[str], dict[str, list[Any]]]:
    r"""Reads ``columns`` (all when :obj:`None`) of a Parquet file with
    :mod:`pyarrow`. Returns every column name of the file and the requested
    columns as Python lists.

    Raises:
        ImportError: If :mod:`pyarrow` is not installed, naming the
            ``dreamgeo[prepare]`` extra.
        ValueError: If a requested column is missing, listing the columns found.
    """
    names = parquet_column_names(path)
    wanted = names if columns is None else list(columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r}; the columns are {names}")
    table = _parquet(path).read_table(path, columns=wanted)
    return names, {c: table.column(c).to_pylist() for c in wanted}
