r"""An exported model: user and item representations, id maps, each user's seen
items and the item index, in memory or read from an export folder with every file
checked against the manifest's checksums.

An export folder holds:

* ``manifest.json``: what the export is (see :func:`dreamgeo.serve.export_model`);
* ``user_embeddings.npy`` float32 ``[M, d]`` and ``item_embeddings.npy`` float32
  ``[N, d]``: scores are inner products of their rows;
* ``user_ids.npy`` and ``item_ids.npy``: the original ids (text) of the internal
  ids :math:`0, \dots, M - 1` and :math:`0, \dots, N - 1`;
* ``seen_rowptr.npy`` int64 ``[M + 1]`` and ``seen_items.npy`` int32 ``[E]``: each
  user's training items as a CSR (user :math:`u`'s are
  ``seen_items[seen_rowptr[u]:seen_rowptr[u + 1]]``), excluded from recommendations;
* ``items.faiss``: the FAISS inner-product index over the item rows.

Every array is a plain ``.npy`` file read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from dreamgeo.serve.arrays import MemoryRows, NpyRows, RowSource
from dreamgeo.serve.ids import IdMap
from dreamgeo.serve.index import read_index, write_index

__all__ = [
    "ExportError",
    "ExportedModel",
    "load_export",
    "check_export_target",
    "file_sha256",
    "MANIFEST_FILE",
    "EXPORT_FORMAT",
    "EXPORT_FORMAT_VERSION",
    "EXPORT_ARRAYS",
    "INDEX_FILE",
]

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "items.faiss"
EXPORT_FORMAT = "dreamgeo-export"
EXPORT_FORMAT_VERSION = 1
#: The array files of an export, by the attribute of :class:`ExportedModel` they hold.
EXPORT_ARRAYS: dict[str, str] = {
    "user_embeddings": "user_embeddings.npy",
    "item_embeddings": "item_embeddings.npy",
    "user_ids": "user_ids.npy",
    "item_ids": "item_ids.npy",
    "seen_rowptr": "seen_rowptr.npy",
    "seen_items": "seen_items.npy",
}


class ExportError(ValueError):
    r"""An export that cannot be written or used as asked; the message names the file
    or the setting at fault and what to do."""


def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    r"""The SHA-256 of a file (hex), read in blocks of :obj:`block` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _csr_positions(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""``(row, position)`` of every entry of the ranges ``start[r]:stop[r]``."""
    count = stop - start
    total = int(count.sum())
    row = np.repeat(np.arange(count.size, dtype=np.int64), count)
    offset = np.repeat(start - (np.cumsum(count) - count), count)
    return row, offset + np.arange(total, dtype=np.int64)


class ExportedModel:
    r"""A trained model reduced to what ranking needs: user and item rows whose inner
    products are the scores, the original ids, the seen items and the item index.

    Built by :func:`~dreamgeo.serve.export_model` (in memory) or read by
    :func:`load_export`; :meth:`save` writes it as an export folder.

    Args:
        manifest (Mapping[str, Any]): What the export is (model, data checksum,
            hyper-parameters, counts, index settings and recall).
        user_embeddings (RowSource): User rows ``[M, d]`` float32.
        item_embeddings (numpy.ndarray): Item rows ``[N, d]`` float32 (in memory).
        user_ids (RowSource): Original user ids ``[M]`` (text).
        item_ids (numpy.ndarray): Original item ids ``[N]`` (text).
        seen_rowptr (RowSource): CSR row pointer of the seen items ``[M + 1]``.
        seen_items (RowSource): CSR columns ``[E]``.
        index (faiss.Index, optional): The item index; read from :obj:`path` on first
            use when :obj:`None`. (default: :obj:`None`)
        path (Path, optional): The export folder it was read from. (default: :obj:`None`)
    """

    def __init__(
        self,
        manifest: Mapping[str, Any],
        user_embeddings: RowSource,
        item_embeddings: np.ndarray,
        user_ids: RowSource,
        item_ids: np.ndarray,
        seen_rowptr: RowSource,
        seen_items: RowSource,
        index: faiss.Index | None = None,
        path: Path | None = None,
    ):
        self.manifest = dict(manifest)
        self.user_embeddings = user_embeddings
        self.item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        self.user_ids = user_ids
        self.item_map = IdMap(item_ids, "item")
        self.seen_rowptr = seen_rowptr
        self.seen_items = seen_items
        self._index = index
        self._user_map: IdMap | None = None
        self.path = path
        self.num_users = int(user_embeddings.shape[0])
        self.num_items, self.dim = (int(s) for s in self.item_embeddings.shape)

    @property
    def user_map(self) -> IdMap:
        r"""The user :class:`IdMap` (all user ids read into memory on first use)."""
        if self._user_map is None:
            self._user_map = IdMap(self.user_ids.load(), "user")
        return self._user_map

    @property
    def index(self) -> faiss.Index:
        r"""The FAISS item index (read from the export folder on first use)."""
        if self._index is None:
            if self.path is None:
                raise ExportError("this export has no item index")
            self._index = read_index(self.path / INDEX_FILE, self.num_items, self.dim)
            settings = self.manifest.get("index", {})
            if "nprobe" in settings:
                self._index.nprobe = int(settings["nprobe"])
            if "ef_search" in settings:
                self._index.hnsw.efSearch = int(settings["ef_search"])
        return self._index

    def user_rows(self, users: np.ndarray | slice) -> np.ndarray:
        r"""User rows ``[B, d]`` float32 of the internal ids :obj:`users` (a slice
        ``start:stop`` reads that range in one pass)."""
        if isinstance(users, slice):
            rows = self.user_embeddings.read(users.start, users.stop)
        else:
            rows = self.user_embeddings.take(users)
        return np.ascontiguousarray(rows, dtype=np.float32)

    def seen(self, users: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        r"""The seen items of :obj:`users` (internal ids, or a slice) as
        ``(row, item)``: ``row`` the position of the user in :obj:`users`.

        Shapes:
            - **output:** two int64 ``[nnz]``
        """
        if isinstance(users, slice):
            rowptr = self.seen_rowptr.read(users.start, users.stop + 1).astype(np.int64)
            items = self.seen_items.read(int(rowptr[0]), int(rowptr[-1])).astype(np.int64)
            row, _ = _csr_positions(rowptr[:-1] - rowptr[0], rowptr[1:] - rowptr[0])
            return row, items
        users = np.asarray(users, dtype=np.int64)
        start = self.seen_rowptr.take(users).astype(np.int64)
        stop = self.seen_rowptr.take(users + 1).astype(np.int64)
        row, position = _csr_positions(start, stop)
        return row, self.seen_items.take(position).astype(np.int64)

    def seen_of(self, user: int) -> np.ndarray:
        r"""The seen items of one user (internal id)."""
        return self.seen(np.array([user]))[1]

    def save(self, out: str | os.PathLike, overwrite: bool = False) -> Path:
        r"""Writes the export folder :obj:`out`: every file into a temporary folder
        beside it, the manifest (with each file's SHA-256 and size) last, then one
        rename; an existing :obj:`out` is replaced only with :obj:`overwrite` (moved
        aside first, removed after). A failure leaves nothing behind.

        Raises:
            ExportError: If :obj:`out` exists and not :obj:`overwrite`.
        """
        target = Path(out).expanduser()
        check_export_target(target, overwrite)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        staging.mkdir()
        try:
            files = {}
            for attribute, name in EXPORT_ARRAYS.items():
                if attribute == "item_ids":
                    array = self.item_map.original
                else:
                    array = getattr(self, attribute)
                    array = array if isinstance(array, np.ndarray) else array.load()
                np.save(staging / name, np.ascontiguousarray(array), allow_pickle=False)
            write_index(self.index, staging / INDEX_FILE)
            for name in [*EXPORT_ARRAYS.values(), INDEX_FILE]:
                path = staging / name
                files[name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
            manifest = {**self.manifest, "files": files}
            text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
            with open(staging / MANIFEST_FILE, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            _install(staging, target, overwrite)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.manifest = manifest
        return target


def check_export_target(target: Path, overwrite: bool) -> None:
    r"""Refuses an existing :obj:`target` unless :obj:`overwrite` (and then only a
    folder)."""
    if target.exists() and not overwrite:
        raise ExportError(f"{target} exists; pass --overwrite (overwrite=True) to replace it")
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder")


def _install(staging: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    check_export_target(target, overwrite)
    old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
    os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ExportError(f"{folder} is not an export folder (give the --out of dreamgeo export)")
    if not path.is_file():
        raise ExportError(f"{folder} has no {MANIFEST_FILE}: not a finished export")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExportError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: not a dreamgeo export manifest")
    if manifest.get("format_version") != EXPORT_FORMAT_VERSION:
        raise ExportError(
            f"{path}: export format version {manifest.get('format_version')}, this dreamgeo "
            f"reads {EXPORT_FORMAT_VERSION}; export the run again"
        )
    return manifest


def _verify_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    files = manifest.get("files", {})
    for name in [*EXPORT_ARRAYS.values(), INDEX_FILE]:
        path = folder / name
        if name not in files:
            raise ExportError(f"{folder / MANIFEST_FILE} lists no checksum of {name}")
        if not path.is_file():
            raise ExportError(f"{path} is missing")
        if path.stat().st_size != files[name]["bytes"]:
            raise ExportError(
                f"{path}: {path.stat().st_size} bytes, the manifest says {files[name]['bytes']}: "
                "the file changed or is corrupt since the export; export the run again"
            )
        if file_sha256(path) != files[name]["sha256"]:
            raise ExportError(
                f"{path}: its SHA-256 does not match the manifest: the file changed or is "
                "corrupt since the export; export the run again"
            )


def load_export(
    path: str | os.PathLike, verify: bool = True, in_memory: bool = False
) -> ExportedModel:
    r"""Reads an export folder written by :meth:`ExportedModel.save`.

    Args:
        path (str or Path): The export folder.
        verify (bool, optional): Check every file's size and SHA-256 against the
            manifest first. (default: :obj:`True`)
        in_memory (bool, optional): Read the user arrays into memory (a service);
            else they are read a slice at a time (a batch over every user holds one
            chunk of them). Item rows and ids are always read into memory.
            (default: :obj:`False`)

    Raises:
        ExportError: If the folder is not a finished export, a file is missing, its
            checksum or size differs from the manifest's, an array's shape or dtype
            disagrees with the manifest, or the item index is not readable; the
            message names the file.
    """
    folder = Path(path).expanduser()
    manifest = _read_manifest(folder)
    if verify:
        _verify_files(folder, manifest)
    try:
        sources = {attribute: NpyRows(folder / name) for attribute, name in EXPORT_ARRAYS.items()}
    except (OSError, ValueError) as error:
        raise ExportError(str(error)) from None
    num_users, num_items, dim = (int(manifest[key]) for key in ("num_users", "num_items", "dim"))
    expected = {
        "user_embeddings": ((num_users, dim), "f"),
        "item_embeddings": ((num_items, dim), "f"),
        "user_ids": ((num_users,), "U"),
        "item_ids": ((num_items,), "U"),
        "seen_rowptr": ((num_users + 1,), "i"),
        "seen_items": (None, "i"),
    }
    for attribute, (shape, kind) in expected.items():
        source = sources[attribute]
        if (shape is not None and source.shape != shape) or source.dtype.kind != kind:
            raise ExportError(
                f"{source.path}: shape {source.shape} dtype {source.dtype}, the manifest "
                f"needs {shape or '[E]'} of kind {kind!r}"
            )
    if (
        int(sources["seen_rowptr"].read(num_users, num_users + 1)[0])
        != sources["seen_items"].shape[0]
    ):
        raise ExportError(f"{folder}: seen_rowptr.npy and seen_items.npy disagree")
    users: dict[str, RowSource] = {
        a: (MemoryRows(sources[a].load()) if in_memory else sources[a])
        for a in ("user_embeddings", "user_ids", "seen_rowptr", "seen_items")
    }
    exported = ExportedModel(
        manifest,
        users["user_embeddings"],
        sources["item_embeddings"].load(),
        users["user_ids"],
        sources["item_ids"].load(),
        users["seen_rowptr"],
        users["seen_items"],
        path=folder,
    )
    try:
        exported.index  # noqa: B018 - read and check it now, not at the first query
    except ValueError as error:
        raise ExportError(str(error)) from None
    return exported
