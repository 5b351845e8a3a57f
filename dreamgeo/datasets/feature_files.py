r"""Item feature files keyed by original item ids, read and re-indexed to the
item ids of a prepared dataset (for :func:`~dreamgeo.datasets.prepare_dataset`).

Four forms are read, told apart by the suffix (``.gz`` aside for text):

* ``.npz``: a NumPy archive with an ``ids`` array (text or integers, one per
  row) and a ``features`` array :math:`[R, d]`, e.g.
  ``numpy.savez(path, ids=ids, features=x)``;
* ``.csv`` / ``.tsv``: a header line, the item id in the first column and one
  number per remaining column;
* ``.parquet``: the item id in the first column, then either one list column
  (the vector) or one numeric column per dimension (needs :mod:`pyarrow`);
* ``.b``: the Amazon 2014 binary image features (see
  :func:`~dreamgeo.datasets.amazon.read_amazon_image_features`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamgeo.datasets.amazon import read_amazon_image_features
from dreamgeo.datasets.raw_io import base_suffix, iter_csv_rows, read_parquet_columns

__all__ = ["FEATURE_FILE_SUFFIXES", "ItemFeatureFile", "read_item_features"]

FEATURE_FILE_SUFFIXES: tuple[str, ...] = (".npz", ".csv", ".tsv", ".parquet", ".pq", ".b")


@dataclass(frozen=True)
class ItemFeatureFile:
    r"""The rows of one item feature file.

    Args:
        path (str): The file.
        ids (numpy.ndarray): Item id (str) per row :math:`[R]`.
        features (numpy.ndarray): Float array :math:`[R, d]` (possibly
            memory-mapped: rows are read when indexed).
        duplicates (int): Rows whose id occurred on an earlier row; the first
            row of an id is used.
    """

    path: str
    ids: np.ndarray
    features: np.ndarray
    duplicates: int

    @property
    def dim(self) -> int:
        r"""The feature dimension :math:`d`."""
        return int(self.features.shape[1])

    def row_of(self, item_ids: Sequence[str]) -> np.ndarray:
        r"""The row of each id in :obj:`item_ids`, :obj:`-1` where the file has
        none (the first row when an id repeats)."""
        index: dict[str, int] = {}
        for row, item in enumerate(self.ids.tolist()):
            index.setdefault(item, row)
        return np.asarray([index.get(str(i), -1) for i in item_ids], dtype=np.int64)

    def gather(self, rows: np.ndarray, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        r"""The feature rows :obj:`rows` (from :meth:`row_of`) as float32
        :math:`[N, d]`, zero where a row is :obj:`-1`, and the mask of those
        missing items :math:`[N]`.

        Args:
            rows (numpy.ndarray): A row per item, :obj:`-1` for none.
            item_ids (Sequence[str]): The items' ids, for error messages.

        Raises:
            ValueError: If a used row holds NaN or infinite values, naming the
                row and the item.
        """
        missing = rows < 0
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        present = np.flatnonzero(~missing)
        order = present[np.argsort(rows[present])]  # ascending rows: sequential memmap reads
        with np.errstate(over="ignore", invalid="ignore"):
            out[order] = self.features[rows[order]]
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise ValueError(
                f"{self.path}: row {int(rows[bad]) + 1} (item {item_ids[bad]!r}) holds NaN or "
                f"infinite values (after conversion to float32)"
            )
        return out, missing


def _check_matrix(path: Path, features: np.ndarray) -> None:
    if features.ndim != 2:
        raise ValueError(f"{path}: features must be 2-D [rows, dim], got shape {features.shape}")
    if not (
        np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)
    ):
        raise ValueError(f"{path}: features of dtype {features.dtype} are not numbers")
    if features.shape[1] == 0:
        raise ValueError(f"{path}: 0 feature columns (shape {features.shape})")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path}: a single .npy array has no item ids; write an .npz with "
            f"numpy.savez(path, ids=ids, features=features)"
        )
    with archive:
        names = list(archive.files)
        missing = [n for n in ("ids", "features") if n not in names]
        if missing:
            raise ValueError(
                f"{path}: no array {missing[0]!r}; the archive holds {names} (expected 'ids', "
                f"one item id per row, and 'features' [rows, dim])"
            )
        try:
            ids, features = archive["ids"], archive["features"]
        except ValueError as error:  # object arrays need pickle, which is refused
            raise ValueError(f"{path}: {error}; store ids as text or integers") from None
    if ids.ndim != 1 or len(ids) != len(features):
        raise ValueError(
            f"{path}: 'ids' has shape {ids.shape} but 'features' has {len(features)} rows"
        )
    if ids.dtype.kind == "S":
        ids = np.char.decode(ids, "utf-8")
    return ids.astype(str), features


def _read_delimited(path: Path, delimiter: str) -> tuple[np.ndarray, np.ndarray]:
    rows = iter_csv_rows(path, delimiter)
    first = next(rows, None)
    if first is None:
        raise ValueError(f"{path}: the file is empty (no header line)")
    header = first[1]
    if len(header) < 2:
        raise ValueError(
            f"{path}: line 1: {len(header)} column; expected the item id and one column per "
            f"feature dimension"
        )
    ids, vectors = [], []
    for line, fields in rows:
        if len(fields) != len(header):
            raise ValueError(
                f"{path}: line {line}: {len(fields)} fields, but the header has {len(header)}"
            )
        try:
            vectors.append(np.asarray(fields[1:], dtype=np.float32))
        except ValueError:
            for column, text in enumerate(fields[1:], 1):
                try:
                    float(text)
                except ValueError:
                    raise ValueError(
                        f"{path}: line {line}: column {header[column]!r}: {text!r} is not a number"
                    ) from None
            raise
        ids.append(fields[0].strip())
    if not ids:
        raise ValueError(f"{path}: no feature rows after the header")
    return np.asarray(ids, dtype=str), np.stack(vectors)


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    names, columns = read_parquet_columns(path)
    names = [n for n in names if not n.startswith("__index_level_")]  # pandas' saved index
    if len(names) < 2:
        raise ValueError(f"{path}: expected the item id column and feature columns, got {names}")
    ids = np.asarray([str(v) for v in columns[names[0]]], dtype=str)
    values = [columns[n] for n in names[1:]]
    try:
        if len(values) == 1 and values[0] and isinstance(values[0][0], (list, tuple)):
            features = np.asarray(values[0], dtype=np.float32)
        else:
            features = np.column_stack([np.asarray(v, dtype=np.float32) for v in values])
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: feature columns {names[1:]} are not numbers or equal-length number lists "
            f"({error})"
        ) from None
    return ids, features


def read_item_features(path: str | os.PathLike) -> ItemFeatureFile:
    r"""Reads an item feature file in one of the forms listed in
    :mod:`dreamgeo.datasets.feature_files`.

    Args:
        path (str or Path): The file.

    Raises:
        FileNotFoundError: If the file does not exist.
        ImportError: For Parquet without :mod:`pyarrow`.
        ValueError: If the form is unknown or the file malformed, naming the
            file and the line or array at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist")
    suffix = base_suffix(path)
    if suffix == ".npz":
        ids, features = _read_npz(path)
    elif suffix in (".csv", ".tsv"):
        ids, features = _read_delimited(path, "," if suffix == ".csv" else "\t")
    elif suffix in (".parquet", ".pq"):
        ids, features = _read_parquet(path)
    elif suffix == ".b":
        ids, features = read_amazon_image_features(path)
    else:
        raise ValueError(
            f"{path}: unknown feature file type {suffix or '(no suffix)'!r}: expected one of "
            f"{list(FEATURE_FILE_SUFFIXES)} (a .npy array has no item ids: write an .npz with "
            f"numpy.savez(path, ids=ids, features=features))"
        )
    _check_matrix(path, features)
    duplicates = len(ids) - len(np.unique(ids))
    return ItemFeatureFile(str(path), ids, features, duplicates)
