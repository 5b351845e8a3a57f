r"""Recommendation files, written a chunk of users at a time into a temporary file
beside the target and renamed at the end (a failure leaves no half-written file).

Formats (original user and item ids throughout):

* ``tsv`` (``dreamgeo recommend``'s historical default): a header ``userID<TAB>itemIDs``,
  then one line per user: the user id, a tab, the item ids best first, comma-separated;
* ``csv``: one row per recommendation, header ``user_id,rank,item_id,score`` (rank from 1);
* ``jsonl``: one JSON object per user, ``{"user_id": ..., "items": [...], "scores": [...]}``;
* ``parquet``: the columns of ``csv`` (``user_id`` and ``item_id`` strings, ``rank``
  int32, ``score`` float32), one row group per chunk (needs :mod:`pyarrow`).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

__all__ = ["OUTPUT_FORMATS", "RecommendationWriter"]

#: The formats of :class:`RecommendationWriter`.
OUTPUT_FORMATS: tuple[str, ...] = ("tsv", "csv", "parquet", "jsonl")


class RecommendationWriter:
    r"""Writes recommendations to :obj:`path` in :obj:`format`, atomically: use it as
    a context manager; the file appears under its name only when the block ends
    without an exception.

    Args:
        path (str or Path): The output file.
        format (str, optional): One of :data:`OUTPUT_FORMATS`. (default: :obj:`"tsv"`)

    Example:
        >>> with RecommendationWriter("recs.csv", "csv") as writer:  # doctest: +SKIP
        ...     writer.write(user_ids, item_ids, scores)
    """

    def __init__(self, path: str | os.PathLike, format: str = "tsv"):
        if format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown format {format!r}; choose one of {list(OUTPUT_FORMATS)}")
        self.path = Path(path)
        self.format = format
        self.rows = 0
        self._tmp: Path | None = None
        self._handle: IO[Any] | None = None
        self._parquet: Any = None

    def __enter__(self) -> RecommendationWriter:
        if self.format == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ImportError(
                    "--format parquet needs pyarrow: pip install pyarrow "
                    '(or pip install "dreamgeo[prepare]")'
                ) from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        if self.format == "parquet":
            os.close(fd)
        else:
            self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
            if self.format == "tsv":
                self._handle.write("userID\titemIDs\n")
            elif self.format == "csv":
                csv.writer(self._handle).writerow(["user_id", "rank", "item_id", "score"])
        return self

    def write(self, user_ids: np.ndarray, item_ids: np.ndarray, scores: np.ndarray) -> None:
        r"""Appends one chunk of users.

        Args:
            user_ids (numpy.ndarray): Original user ids ``[B]``.
            item_ids (numpy.ndarray): Original item ids ``[B, k]``, best first.
            scores (numpy.ndarray): Their scores ``[B, k]``; :math:`-\infty` marks
                padding (a user with fewer unseen items), which is not written.
        """
        valid = ~np.isneginf(scores)
        users = [str(u) for u in user_ids.tolist()]
        items = item_ids.tolist()
        values = scores.tolist()
        counts = valid.sum(axis=1).tolist()
        self.rows += len(users)
        if self.format == "parquet":
            self._write_parquet(user_ids, item_ids, scores, valid)
            return
        handle = self._handle
        if self.format == "tsv":
            handle.writelines(
                f"{user}\t{','.join(row[:n])}\n" for user, row, n in zip(users, items, counts)
            )
        elif self.format == "jsonl":
            handle.writelines(
                json.dumps({"user_id": user, "items": row[:n], "scores": value[:n]}) + "\n"
                for user, row, value, n in zip(users, items, values, counts)
            )
        else:
            writer = csv.writer(handle)
            for user, row, value, n in zip(users, items, values, counts):
                writer.writerows(
                    (user, rank, item, f"{score:.7g}")
                    for rank, (item, score) in enumerate(zip(row[:n], value[:n]), start=1)
                )

    def _write_parquet(
        self, user_ids: np.ndarray, item_ids: np.ndarray, scores: np.ndarray, valid: np.ndarray
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        k = item_ids.shape[1]
        table = pa.table(
            {
                "user_id": pa.array(np.repeat(user_ids.astype(str), k)[valid.ravel()]),
                "rank": pa.array(
                    np.tile(np.arange(1, k + 1, dtype=np.int32), len(user_ids))[valid.ravel()]
                ),
                "item_id": pa.array(item_ids.astype(str).ravel()[valid.ravel()]),
                "score": pa.array(scores.astype(np.float32).ravel()[valid.ravel()]),
            }
        )
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(str(self._tmp), table.schema)
        self._parquet.write_table(table)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._handle is not None:
                self._handle.flush()
                if kind is None:
                    os.fsync(self._handle.fileno())
                self._handle.close()
            if self._parquet is not None:
                self._parquet.close()
            elif self.format == "parquet" and kind is None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                empty = {"user_id": pa.string(), "rank": pa.int32(), "item_id": pa.string()}
                schema = pa.schema([*empty.items(), ("score", pa.float32())])
                pq.write_table(schema.empty_table(), str(self._tmp))
            if kind is None:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
