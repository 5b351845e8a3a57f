r"""Row access to the arrays of an export, whether they are in memory or in ``.npy``
files read a slice at a time (so that a pass over millions of users holds one chunk
of them, never the whole file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["RowSource", "MemoryRows", "NpyRows", "read_npy_header"]


class RowSource(Protocol):
    r"""Rows of an array ``[n, ...]``: a contiguous slice or any rows by index."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def read(self, start: int, stop: int) -> np.ndarray: ...

    def take(self, index: np.ndarray) -> np.ndarray: ...

    def load(self) -> np.ndarray: ...


class MemoryRows:
    r"""A :class:`RowSource` over an array held in memory.

    Args:
        array (numpy.ndarray): The array ``[n, ...]``.
    """

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        r"""Rows ``start:stop`` (a view)."""
        return self.array[start:stop]

    def take(self, index: np.ndarray) -> np.ndarray:
        r"""Rows ``index`` (a copy)."""
        return self.array[np.asarray(index, dtype=np.int64)]

    def load(self) -> np.ndarray:
        r"""The whole array."""
        return self.array


def read_npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, int]:
    r"""The shape, dtype and data offset of a C-ordered ``.npy`` file whose dtype holds
    no Python objects (nothing is unpickled).

    Raises:
        ValueError: If the file is not a ``.npy`` file, is Fortran-ordered, holds
            objects, or is shorter than its header says.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        except ValueError as error:
            raise ValueError(f"{path}: not a readable .npy file ({error})") from None
        offset = handle.tell()
    if fortran:
        raise ValueError(f"{path}: Fortran-ordered arrays are not read; write it C-ordered")
    if dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects, which are never unpickled")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise ValueError(
            f"{path}: {size} bytes, but its header ({shape}, {dtype}) needs {expected}: "
            "truncated or corrupt"
        )
    return tuple(int(s) for s in shape), dtype, offset


class NpyRows:
    r"""A :class:`RowSource` over a ``.npy`` file on disk: :meth:`read` seeks and reads
    one slice (memory of that slice only, no memory map whose pages would stay
    resident), :meth:`take` reads scattered rows through a read-only memory map.

    Args:
        path (str or Path): A C-ordered ``.npy`` file (see :func:`read_npy_header`).

    Shapes:
        - **file:** ``[n, ...]``
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._shape, self._dtype, self._offset = read_npy_header(self.path)
        if len(self._shape) == 0:
            raise ValueError(f"{self.path}: a scalar, expected an array of rows")
        self._row_items = int(np.prod(self._shape[1:], dtype=np.int64))
        self._map: np.memmap | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        r"""Rows ``start:stop`` (clipped to the array), read from the file."""
        start, stop = max(0, int(start)), min(self._shape[0], int(stop))
        count = max(0, stop - start) * self._row_items
        with open(self.path, "rb") as handle:
            handle.seek(self._offset + start * self._row_items * self._dtype.itemsize)
            flat = np.fromfile(handle, dtype=self._dtype, count=count)
        if flat.size != count:
            raise ValueError(f"{self.path}: rows {start}:{stop} could not be read (truncated?)")
        return flat.reshape((max(0, stop - start), *self._shape[1:]))

    def take(self, index: np.ndarray) -> np.ndarray:
        r"""Rows ``index`` (a copy)."""
        if self._map is None:
            self._map = np.memmap(
                self.path, dtype=self._dtype, mode="r", offset=self._offset, shape=self._shape
            )
        return np.array(self._map[np.asarray(index, dtype=np.int64)])

    def load(self) -> np.ndarray:
        r"""The whole array (``numpy.load`` with ``allow_pickle=False``)."""
        return np.load(self.path, allow_pickle=False)
