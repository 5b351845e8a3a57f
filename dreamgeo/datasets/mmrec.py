r"""Reader for datasets in the MMRec on-disk format.

A dataset ``name`` lives in one folder ``root/name``:

* ``name.inter``: tab-separated interactions with a header line, e.g.
  ``userID  itemID  rating  timestamp  x_label``. Columns may come in any
  order and extra columns are ignored; ``userID``, ``itemID`` and ``x_label``
  (``0`` train, ``1`` valid, ``2`` test) are required.
* one ``.npy`` file per modality, ``<modality>_feat.npy`` (``image_feat.npy``,
  ``text_feat.npy``, ``audio_feat.npy``, ...), a float array ``[N, d_m]`` whose
  row :math:`j` holds the features of item :math:`j`. Without a choice, every
  ``<modality>_feat.npy`` in the folder is read, by name in sorted order
  (:func:`find_modalities`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData, InMemoryDataset

from dreamgeo.datasets.cache import resolve_cache_dir
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key

__all__ = [
    "MMRecDataset",
    "read_mmrec",
    "FEATURE_SUFFIX",
    "find_modalities",
    "resolve_modalities",
    "require_held_out",
]

logger = logging.getLogger(__name__)

#: The file name ending that makes a file in a dataset folder a modality:
#: ``<modality>_feat.npy``.
FEATURE_SUFFIX = "_feat.npy"
_PREPARE_HINT = (
    "make a dataset folder from raw files with `dreamgeo prepare` (interactions, "
    "--feature MODALITY=FILE) and `dreamgeo features` (item text and images); see "
    "docs/data.md"
)
_REQUIRED_COLUMNS: tuple[str, ...] = ("userID", "itemID", "x_label")
_SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")
# Bump when the processed HeteroData changes meaning, so old caches are not reused.
_PROCESSED_VERSION = 1
# Largest number of decimal digits that always fits into int64.
_MAX_DIGITS = 18
_FEATURE_CHUNK_ROWS = 8192
_SAMPLED_BYTES = 1 << 16
_NPY_MAGIC = b"\x93NUMPY"


class MMRecDataset(InMemoryDataset):
    r"""A multimodal recommendation dataset in the MMRec format
    (`Zhou et al., 2023 <https://arxiv.org/abs/2302.03497>`_), read into one
    :class:`~torch_geometric.data.HeteroData` following
    :mod:`dreamgeo.datasets.schema`.

    .. code-block:: python

        data = MMRecDataset(root="data", name="baby")[0]
        data["item"].x_text                                      # [N, 384]
        data["user", "interacts", "item"].edge_index             # train [2, E]
        data["user", "interacts", "item"].test_edge_index        # test  [2, E_test]

    Item ids index the feature rows directly, so item :math:`j` is row
    :math:`j` of every feature file and :math:`N` is the number of feature
    rows (items that never occur in ``name.inter`` are kept; items that occur
    only in valid or test rows are kept as cold-start items and counted in an
    info log). Users without a training interaction are dropped together with
    their valid and test rows (counted in an info log, as MMRec does), and the
    remaining users are renumbered :math:`0, \dots, M-1` in the order of their
    original ids (kept as ``data['user'].original_id``). Repeated
    ``(userID, itemID)`` rows are dropped with a warning that counts them per
    ``x_label``; the one kept is the earliest split (train before valid before
    test), among equal splits the first in the file. Feature rows past the
    largest item id of ``name.inter`` are kept as items without interactions
    (MMRec's convention) and counted in a warning, since they are also what
    features of another numbering look like. All-zero feature rows are
    kept and counted in a warning: cosine similarity is undefined for them, so
    :func:`~dreamgeo.graph.knn_graph_cosine` links such an item to itself only.

    Anything else that is not exactly this format is an error, never a silent
    repair: a NUL byte (UTF-16 or binary file), a carriage return that does not
    end a line, a line with another number of tab-separated fields than the
    header (with a hint when it holds commas, semicolons or spaces), an id that
    is not a non-negative integer of at most 18 digits (text ids are an error
    that points to ``dreamgeo prepare``), an ``x_label`` outside
    :math:`\{0, 1, 2\}`, an item id past the feature rows, and a feature file
    that is empty, truncated, followed by extra bytes, not 2-D, not float,
    without rows or columns, or holding NaN or infinite values.

    The processed :class:`HeteroData` is cached under a name that
    fingerprints the raw files (size, modification time, inode and the first
    and last 64 KiB of each) and the modality mapping, so a changed file is
    not served from a stale cache; ``force_reload=True`` re-reads
    unconditionally. The cache goes to the ``processed`` sub-folder of
    :func:`~dreamgeo.datasets.cache.resolve_cache_dir`: ``cache_dir/<key>`` if
    ``cache_dir`` is given, else ``root/name`` if that folder is writable, else
    the per-user cache (``$DREAMGEO_CACHE_DIR`` or
    ``platformdirs.user_cache_dir("dreamgeo")``) ``/<key>``; ``<key>`` is the
    dataset folder's name and a hash of its path. A read-only dataset folder
    is read, never written.

    Args:
        root (str or Path): The folder that holds the dataset folder ``name``.
        name (str): The dataset name, e.g. ``"baby"``; the interactions are
            read from ``root/name/name.inter``.
        modalities (Sequence[str] or Mapping[str, str], optional): The
            modalities to read: a list of names, each read from its file
            ``<name>_feat.npy`` (or the file a ``planted.json`` sidecar lists
            for it), in the order given, e.g. ``["image", "audio"]``; or a
            mapping of modality name to any ``.npy`` file name inside
            ``root/name``, e.g. ``{"audio": "vggish.npy"}``. The features of
            modality ``m`` are stored as ``data['item'].x_<m>``; ``{}`` reads
            the interactions alone. (default: :obj:`None`, meaning every
            modality of the folder, see :func:`find_modalities`)
        transform (callable, optional): A function applied to the
            :class:`HeteroData` on every access. (default: :obj:`None`)
        force_reload (bool, optional): Re-process even if a matching cache
            exists. (default: :obj:`False`)
        log (bool, optional): Print PyG's "Processing..." messages.
            (default: :obj:`True`)
        cache_dir (str or Path, optional): Where to keep the processed cache
            (in a sub-folder per dataset folder) instead of ``root/name`` or
            the per-user cache. (default: :obj:`None`)

    Shapes:
        - **output:** ``data['item'].x_<m>`` float32 :math:`[N, d_m]`;
          ``edge_index``, ``val_edge_index``, ``test_edge_index`` long
          :math:`[2, E_{split}]` (row 0 user, row 1 item);
          ``data['user'].original_id`` long :math:`[M]`.

    Raises:
        FileNotFoundError: If the folder or one of the files is missing, the
            folder has no ``<name>_feat.npy`` file, or a chosen modality has
            none; the message lists the feature files found.
        ValueError: If a file is malformed; the message names the file and the
            line, column or row at fault.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        name: str,
        modalities: Sequence[str] | Mapping[str, str] | None = None,
        transform: Callable[[HeteroData], HeteroData] | None = None,
        force_reload: bool = False,
        log: bool = True,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        self.name = name
        self._root_path = Path(root).expanduser()
        # Checked before InMemoryDataset.__init__, which would create the folder.
        if not self._dataset_dir.is_dir():
            raise FileNotFoundError(
                f"dataset folder {self._dataset_dir} does not exist; expected "
                f"{self.inter_file_name} and one <modality>{FEATURE_SUFFIX} file per "
                f"modality in it; {_PREPARE_HINT}"
            )
        self.modalities = resolve_modalities(self._dataset_dir, modalities)
        if self._missing_files():
            self.download()
        self._fingerprint = self._compute_fingerprint()
        self._processed_dir = resolve_cache_dir(self._dataset_dir, cache_dir) / "processed"
        super().__init__(str(self._root_path), transform, force_reload=force_reload, log=log)
        self.load(self.processed_paths[0], data_cls=HeteroData)

    @staticmethod
    def default_modalities(root: str | os.PathLike, name: str) -> dict[str, str]:
        r"""The modality files read when none are given (:func:`find_modalities`
        of ``root/name``; empty when the folder does not exist). Reads no data
        file, so callers can check modality names before loading.

        Args:
            root (str or Path): The folder that holds the dataset folder ``name``.
            name (str): The dataset name.
        """
        return find_modalities(Path(root).expanduser() / name)

    @property
    def _dataset_dir(self) -> Path:
        return self._root_path / self.name

    @property
    def inter_file_name(self) -> str:
        r"""The interaction file name, ``name.inter``."""
        return f"{self.name}.inter"

    @property
    def raw_dir(self) -> str:
        return str(self._dataset_dir)

    @property
    def processed_dir(self) -> str:
        return str(self._processed_dir)

    @property
    def raw_file_names(self) -> list[str]:
        return [self.inter_file_name, *self.modalities.values()]

    @property
    def processed_file_names(self) -> list[str]:
        return [f"data_{self._fingerprint}.pt"]

    @property
    def num_users(self) -> int:
        r"""The number of users :math:`M` (after dropping users without a
        training interaction)."""
        return int(self._data[USER].num_nodes)

    @property
    def num_items(self) -> int:
        r"""The number of items :math:`N` (rows of the feature files)."""
        return int(self._data[ITEM].num_nodes)

    def _file_list(self) -> str:
        return ", ".join(self.raw_file_names)

    def _missing_files(self) -> list[str]:
        return [f for f in self.raw_file_names if not (self._dataset_dir / f).is_file()]

    def _compute_fingerprint(self) -> str:
        r"""A hash of the modality mapping and of each raw file's size,
        modification time, inode and first and last :data:`_SAMPLED_BYTES`
        bytes: cheap for gigabyte files, yet a rewrite within the file
        system's timestamp resolution still shows if the sampled bytes differ."""
        digest = hashlib.sha256()
        digest.update(f"mmrec-v{_PROCESSED_VERSION}".encode())
        digest.update(json.dumps(list(self.modalities.items())).encode())
        for file_name in self.raw_file_names:
            path = self._dataset_dir / file_name
            stat = path.stat()
            digest.update(f"|{file_name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}|".encode())
            with open(path, "rb") as handle:
                digest.update(handle.read(_SAMPLED_BYTES))
                handle.seek(max(stat.st_size - _SAMPLED_BYTES, 0))
                digest.update(handle.read(_SAMPLED_BYTES))
        return digest.hexdigest()[:16]

    def download(self) -> None:
        r"""Nothing can be downloaded: raises :class:`FileNotFoundError`
        naming the missing files."""
        missing = self._missing_files()
        if self.inter_file_name in missing:
            hint = f"{self.inter_file_name} holds the interactions; {_PREPARE_HINT}"
        else:
            hint = (
                f"feature files found: {_feature_listing(self._dataset_dir)}; "
                f"{_NAMING_RULE}; {_PREPARE_HINT}"
            )
        raise FileNotFoundError(
            f"dataset {self.name!r} in {self._dataset_dir} is missing "
            f"{', '.join(missing)} (expected: {self._file_list()}); {hint}"
        )

    def process(self) -> None:
        data = read_mmrec(self._dataset_dir, self.name, self.modalities)
        path = Path(self.processed_paths[0])
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        self.save([data], str(partial))
        os.replace(partial, path)  # never leave a half-written cache under its name
        for stale in path.parent.glob("data_*.pt"):
            if stale != path:
                stale.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.name!r}, num_users={self.num_users}, "
            f"num_items={self.num_items}, modalities={list(self.modalities)})"
        )


_NAMING_RULE = (
    f"a modality is a file <name>{FEATURE_SUFFIX} (image{FEATURE_SUFFIX}, "
    f"text{FEATURE_SUFFIX}, audio{FEATURE_SUFFIX}, ...), all of them read unless "
    "--modalities NAME,... (modalities=[...] in Python) chooses some"
)


def find_modalities(dataset_dir: str | os.PathLike) -> dict[str, str]:
    r"""The modalities of a dataset folder, modality name to file name: those
    a ``planted.json`` sidecar lists (as :func:`~dreamgeo.datasets.write_planted`
    writes it; it may name files of any name) if there is one, else every file
    ``<modality>_feat.npy`` in the folder, sorted by name (so ``image`` comes
    before ``text``). Reads no data file; a folder that does not exist has
    none.

    Args:
        dataset_dir (str or Path): The dataset folder.
    """
    dataset_dir = Path(dataset_dir)
    listed = _planted_modalities(dataset_dir)
    if listed:
        return listed
    if not dataset_dir.is_dir():
        return {}
    names = sorted(
        path.name[: -len(FEATURE_SUFFIX)]
        for path in dataset_dir.iterdir()
        if path.name.endswith(FEATURE_SUFFIX) and len(path.name) > len(FEATURE_SUFFIX)
    )
    return {
        m: f"{m}{FEATURE_SUFFIX}" for m in names if (dataset_dir / f"{m}{FEATURE_SUFFIX}").is_file()
    }


def _feature_listing(dataset_dir: Path) -> str:
    r"""The feature files of ``dataset_dir`` for error messages, e.g.
    ``"image (image_feat.npy), audio (audio_feat.npy)"``, else what the folder holds."""
    found = find_modalities(dataset_dir)
    if found:
        return ", ".join(f"{m} ({f})" for m, f in found.items())
    try:
        files = sorted(p.name for p in dataset_dir.iterdir() if p.is_file())
    except OSError:
        files = []
    shown = ", ".join(files[:20]) + (f", ... ({len(files)} files)" if len(files) > 20 else "")
    return f"none (the folder holds: {shown or 'nothing'})"


def resolve_modalities(
    dataset_dir: str | os.PathLike,
    modalities: Sequence[str] | Mapping[str, str] | None = None,
) -> dict[str, str]:
    r"""The modality name to file name mapping that :class:`MMRecDataset` reads
    from ``dataset_dir``, checked without reading any data file.

    Args:
        dataset_dir (str or Path): The dataset folder.
        modalities (Sequence[str] or Mapping[str, str], optional): :obj:`None`
            for every modality of the folder (:func:`find_modalities`), a list
            of names for those (in the order given; a single string is one
            name), or a mapping of name to file name, taken as it is.
            (default: :obj:`None`)

    Raises:
        FileNotFoundError: When the folder has no modality at all (and none was
            asked for), or a listed name has no file; the message lists the
            feature files found and how modalities are named.
        ValueError: For an empty list, a name given twice, or a name that is
            not a Python identifier.
    """
    dataset_dir = Path(dataset_dir)
    if isinstance(modalities, Mapping):
        return _check_modalities(modalities)
    found = find_modalities(dataset_dir)
    if modalities is None:
        if not found:
            raise FileNotFoundError(
                f"{dataset_dir}: no feature files: {_NAMING_RULE}; found "
                f"{_feature_listing(dataset_dir)}; {_PREPARE_HINT} (to read the "
                f"interactions alone, pass modalities={{}})"
            )
        return _check_modalities(found)
    names = [modalities] if isinstance(modalities, str) else list(modalities)
    if not names:
        raise ValueError(
            f"{dataset_dir}: no modality chosen; found {_feature_listing(dataset_dir)}"
        )
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated:
        raise ValueError(f"{dataset_dir}: modality {', '.join(repeated)} chosen twice")
    absent = [m for m in names if m not in found]
    if absent:
        files = ", ".join(f"{m}{FEATURE_SUFFIX}" for m in absent)
        raise FileNotFoundError(
            f"{dataset_dir}: no modality {', '.join(repr(m) for m in absent)} (no {files}); "
            f"modalities found: {_feature_listing(dataset_dir)}; {_NAMING_RULE}"
        )
    return _check_modalities({m: found[m] for m in names})


def _planted_modalities(dataset_dir: Path) -> dict[str, str] | None:
    r"""The modality files listed by a ``planted.json`` sidecar, if any."""
    try:
        sidecar = json.loads((dataset_dir / "planted.json").read_text())
    except (OSError, ValueError):
        return None
    listed = sidecar.get("modalities") if isinstance(sidecar, dict) else None
    return dict(listed) if isinstance(listed, dict) and listed else None


def _check_modalities(modalities: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for modality, file_name in modalities.items():
        if not isinstance(modality, str) or not modality.isidentifier():
            raise ValueError(
                f"modality name {modality!r} (file {file_name!r}) must be a Python "
                f"identifier (it becomes the attribute x_<modality>): rename the file, "
                f"e.g. {_identifier(str(modality))}{FEATURE_SUFFIX}, or choose the "
                f"other modalities with --modalities"
            )
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"modality {modality!r}: file name {file_name!r} is invalid")
        checked[modality] = file_name
    return checked


def _identifier(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in text) or "modality"
    return cleaned if cleaned.isidentifier() else f"m_{cleaned}"


def read_mmrec(
    dataset_dir: str | os.PathLike,
    name: str,
    modalities: Mapping[str, str],
) -> HeteroData:
    r"""Reads and validates ``dataset_dir/name.inter`` and the modality files
    into a :class:`HeteroData` (the work behind :class:`MMRecDataset`, without
    the cache).

    Args:
        dataset_dir (str or Path): The folder holding the files.
        name (str): The dataset name (``name.inter``).
        modalities (Mapping[str, str]): Modality name to ``.npy`` file name.
    """
    dataset_dir = Path(dataset_dir)
    inter_path = dataset_dir / f"{name}.inter"
    feature_paths = {m: dataset_dir / f for m, f in modalities.items()}
    for path in [inter_path, *feature_paths.values()]:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")

    arrays = {m: _open_features(p, m) for m, p in feature_paths.items()}
    num_items = _check_row_counts(arrays, feature_paths)

    columns, line_numbers = _read_inter(inter_path)
    users, items, labels = (columns[c] for c in _REQUIRED_COLUMNS)
    _check_values(inter_path, items, labels, line_numbers, num_items, feature_paths)
    if num_items is None:  # no modality: the catalogue is what the file shows
        num_items = int(items.max()) + 1
    _warn_rows_past_items(inter_path, items, num_items, feature_paths)

    features = {m: _load_features(arrays[m], feature_paths[m], m) for m in feature_paths}

    data = HeteroData()
    edges, original_user_ids = _build_splits(
        inter_path, users, items, labels, line_numbers, num_items
    )
    data[USER].num_nodes = len(original_user_ids)
    data[USER].original_id = torch.from_numpy(original_user_ids)
    data[ITEM].num_nodes = num_items
    for modality, x in features.items():
        data[ITEM][feature_key(modality)] = torch.from_numpy(x)
    store = data[INTERACTS]
    store.edge_index, store.val_edge_index, store.test_edge_index = edges
    logger.info(
        "%s: %d users, %d items, %d train / %d valid / %d test interactions, modalities %s",
        name,
        len(original_user_ids),
        num_items,
        edges[0].size(1),
        edges[1].size(1),
        edges[2].size(1),
        {m: tuple(x.shape) for m, x in features.items()},
    )
    return data


def _read_inter(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    r"""Tokenizes a tab-separated file with a header, vectorized over bytes,
    and parses the required columns as non-negative integers. Returns the
    columns and the 1-based file line number of every row."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        raw = raw[3:]
    if not raw.strip():
        raise ValueError(f"{path}: the file is empty (expected a header line)")
    buf = np.frombuffer(raw, dtype=np.uint8)
    if not buf.all():  # a NUL byte
        line = int(np.count_nonzero(buf[: int(np.argmin(buf))] == ord("\n"))) + 1
        raise ValueError(
            f"{path}: line {line}: NUL byte: not a text file (UTF-16 or binary?); "
            f"expected UTF-8 tab-separated text"
        )
    is_cr = buf == ord("\r")
    if is_cr.any():  # \r\n line endings (and a final \r) are fine, a lone \r is not
        lone_cr = is_cr[:-1] & (buf[1:] != ord("\n"))
        if lone_cr.any():
            position = int(np.argmax(lone_cr))
            line = int(np.count_nonzero(buf[:position] == ord("\n"))) + 1
            raise ValueError(
                f"{path}: line {line}: carriage return (\\r) inside a line; lines must "
                f"end in \\n or \\r\\n (old Mac \\r-only line endings are not supported)"
            )
        buf = buf[~is_cr]
    if buf[-1] != ord("\n"):
        buf = np.concatenate([buf, np.array([ord("\n")], dtype=np.uint8)])

    is_newline = buf == ord("\n")
    line_end = np.flatnonzero(is_newline)
    line_start = np.concatenate([[0], line_end[:-1] + 1])

    header = buf[: line_end[0]].tobytes().decode("utf-8", errors="replace")
    names = [n.strip() for n in header.split("\t")]
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(
            f"{path}: line 1 (header): missing column(s) {', '.join(missing)}; "
            f"found {names} (the header must name the tab-separated columns "
            f"{', '.join(_REQUIRED_COLUMNS)}){_separator_hint(header)}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1 and n})
    if repeated:
        raise ValueError(f"{path}: line 1 (header): repeated column(s) {repeated}")
    num_columns = len(names)

    is_tab = buf == ord("\t")
    tab_positions = np.flatnonzero(is_tab)
    tabs_per_line = np.searchsorted(tab_positions, line_end) - np.searchsorted(
        tab_positions, line_start
    )
    is_row = line_end > line_start  # blank lines are skipped
    is_row[0] = False  # header
    row_lines = np.flatnonzero(is_row)
    if len(row_lines) == 0:
        raise ValueError(f"{path}: the file has a header line but no interaction rows")
    wrong_width = is_row & (tabs_per_line != num_columns - 1)
    if wrong_width.any():
        first = int(np.argmax(wrong_width))
        line = buf[line_start[first] : line_end[first]].tobytes().decode("utf-8", "replace")
        raise ValueError(
            f"{path}: line {first + 1}: {int(tabs_per_line[first]) + 1} "
            f"tab-separated fields, but the header has {num_columns}"
            f"{_separator_hint(line)}"
        )

    separators = is_tab | is_newline
    separators[: line_end[0] + 1] = False
    blank_lines = np.flatnonzero(~is_row)[1:]
    separators[line_end[blank_lines]] = False
    separators = np.flatnonzero(separators).reshape(-1, num_columns)

    line_numbers = row_lines + 1
    columns: dict[str, np.ndarray] = {}
    faults: list[tuple[int, str, str]] = []
    for column in _REQUIRED_COLUMNS:
        j = names.index(column)
        start = line_start[row_lines] if j == 0 else separators[:, j - 1] + 1
        values, fault_row, reason = _parse_non_negative(buf, start, separators[:, j])
        columns[column] = values
        if fault_row is not None:
            faults.append((fault_row, column, reason))
    if faults:
        row, column, reason = min(faults)
        j = names.index(column)
        start = line_start[row_lines[row]] if j == 0 else separators[row, j - 1] + 1
        text = buf[start : separators[row, j]].tobytes().decode("utf-8", "replace")
        hint = ""
        if column != "x_label" and reason == "is not an integer":
            hint = (
                f"; {column} must be an integer 0..N-1: a file with text ids (e.g. "
                f"Amazon user ids and ASINs) is made into this format, with the id "
                f"mappings u_id_mapping.csv / i_id_mapping.csv, by `dreamgeo prepare "
                f"--interactions FILE --user-col C --item-col C --name NAME --out ROOT` "
                f"(docs/data.md)"
            )
        raise ValueError(f"{path}: line {line_numbers[row]}: {column} {text!r} {reason}{hint}")
    return columns, line_numbers


def _separator_hint(line: str) -> str:
    r"""A hint for a line that looks separated by something other than tabs."""
    for separator, name in ((",", "commas"), (";", "semicolons"), (" ", "spaces")):
        if separator in line.strip():
            return f"; the line contains {name}: fields must be separated by tabs"
    return ""


def _parse_non_negative(
    buf: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, int | None, str]:
    r"""Parses the decimal fields ``buf[start:end]`` digit position by digit
    position. Returns the values, the first faulty row (or :obj:`None`) and
    why it is faulty."""
    length = end - start
    negative = (length > 1) & (buf[np.minimum(start, len(buf) - 1)] == ord("-"))
    not_integer = length == 0
    value = np.zeros(len(start), dtype=np.int64)
    for k in range(int(length.max(initial=0))):
        active = k < length
        digit = buf[np.minimum(start + k, len(buf) - 1)].astype(np.int64) - ord("0")
        is_digit = (digit >= 0) & (digit <= 9)
        is_sign = negative if k == 0 else False
        not_integer |= active & ~(is_digit | is_sign)
        # Faulty rows may wrap around here; they are reported, never returned.
        value = np.where(active & is_digit, value * 10 + digit, value)
    too_long = ~not_integer & (length - negative > _MAX_DIGITS)
    negative &= ~not_integer
    fault = not_integer | negative | too_long
    if not fault.any():
        return value, None, ""
    row = int(np.argmax(fault))
    if not_integer[row]:
        reason = "is not an integer" if length[row] else "is empty"
    elif negative[row]:
        reason = "is negative (ids must be non-negative integers)"
    else:
        reason = f"has more than {_MAX_DIGITS} digits"
    return value, row, reason


def _open_features(path: Path, modality: str) -> np.ndarray:
    r"""Memory-maps a ``.npy`` feature file after checking that it is one whole
    2-D float array: not empty, not truncated, no bytes after the data."""
    where = f"{path} (modality {modality!r})"
    with open(path, "rb") as handle:
        magic = handle.read(len(_NPY_MAGIC))
    if not magic:
        raise ValueError(f"{where}: the file is empty (0 bytes)")
    if magic != _NPY_MAGIC:
        if _NPY_MAGIC.startswith(magic):
            raise ValueError(f"{where}: truncated: only {len(magic)} bytes, not even a .npy header")
        raise ValueError(
            f"{where}: not a .npy file: it does not start with the .npy magic bytes "
            f"(found {magic!r}; an .npz archive, text or pickle file?)"
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{where}: {_npy_fault(path, error)}") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{where}: not a single .npy array")
    trailing = path.stat().st_size - int(getattr(array, "offset", 0)) - array.nbytes
    if isinstance(array, np.memmap) and trailing > 0:
        raise ValueError(
            f"{where}: {trailing} bytes follow the array data of shape {array.shape} "
            f"{array.dtype} (corrupt, or not written by numpy.save)"
        )
    if array.ndim != 2:
        raise ValueError(f"{where}: features must be 2-D [num_items, dim], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{where}: dtype {array.dtype} is not a float dtype")
    if array.shape[0] == 0:
        raise ValueError(f"{where}: no rows (shape {array.shape}): there are no items")
    if array.shape[1] == 0:
        raise ValueError(f"{where}: 0 feature columns (shape {array.shape})")
    return array


def _npy_fault(path: Path, error: Exception) -> str:
    r"""Why :func:`numpy.load` could not read ``path``: truncation, told apart by
    the size the header declares, or numpy's own reason."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }[version]
            shape, _, dtype = read_header(handle)
            data_bytes = path.stat().st_size - handle.tell()
    except (ValueError, OSError, EOFError, KeyError) as header_error:
        if str(header_error).startswith("EOF"):
            return f"truncated inside the .npy header ({header_error})"
        return f"not a readable .npy array ({error})"
    if dtype.hasobject:
        return f"holds Python objects (dtype {dtype}), not float features"
    needed = math.prod(shape) * dtype.itemsize
    if data_bytes < needed:
        return (
            f"truncated: the header declares shape {shape} {dtype} ({needed} bytes of "
            f"data) but only {data_bytes} bytes follow it"
        )
    return f"not a readable .npy array ({error})"


def _check_row_counts(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> int | None:
    if not arrays:
        return None
    rows = {m: a.shape[0] for m, a in arrays.items()}
    if len(set(rows.values())) > 1:
        listing = ", ".join(f"{paths[m].name} has {n}" for m, n in rows.items())
        raise ValueError(f"modality files disagree on the number of items (rows): {listing}")
    return next(iter(rows.values()))


def _load_features(array: np.ndarray, path: Path, modality: str) -> np.ndarray:
    r"""Copies ``array`` into float32 block by block, checking that every
    value is finite and counting all-zero rows."""
    out = np.empty(array.shape, dtype=np.float32)
    num_zero_rows = 0
    for begin in range(0, array.shape[0], _FEATURE_CHUNK_ROWS):
        block = out[begin : begin + _FEATURE_CHUNK_ROWS]
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below
            block[...] = array[begin : begin + _FEATURE_CHUNK_ROWS]
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = begin + int(np.argmin(finite))
            raise ValueError(
                f"{path} (modality {modality!r}): row {row} (item {row}) holds "
                f"NaN or infinite values (after conversion to float32)"
            )
        num_zero_rows += int((~block.any(axis=1)).sum())
    if num_zero_rows:
        logger.warning(
            "%s (modality %r): %d of %d items have all-zero features",
            path,
            modality,
            num_zero_rows,
            array.shape[0],
        )
    return out


def _check_values(
    path: Path,
    items: np.ndarray,
    labels: np.ndarray,
    line_numbers: np.ndarray,
    num_items: int | None,
    feature_paths: dict[str, Path],
) -> None:
    bad_label = labels > 2
    if bad_label.any():
        row = int(np.argmax(bad_label))
        raise ValueError(
            f"{path}: line {line_numbers[row]}: x_label {labels[row]} is not 0 "
            f"(train), 1 (valid) or 2 (test)"
        )
    if num_items is not None:
        out_of_range = items >= num_items
        if out_of_range.any():
            row = int(np.argmax(out_of_range))
            files = ", ".join(p.name for p in feature_paths.values())
            raise ValueError(
                f"{path}: line {line_numbers[row]}: itemID {items[row]} is out of "
                f"range: the feature files ({files}) have {num_items} rows, so "
                f"item ids must lie in 0..{num_items - 1}"
            )
    if not (labels == 0).any():
        raise ValueError(
            f"{path}: no training rows (x_label 0); every user needs training interactions"
        )


def _warn_rows_past_items(
    path: Path, items: np.ndarray, num_items: int, feature_paths: dict[str, Path]
) -> None:
    r"""Warns when the feature files have rows past the largest item id of
    ``path``: MMRec's item ids index the feature rows and an item may have no
    interaction, so such rows are kept as items, but they are also what feature
    files of another numbering (e.g. before a k-core filter) look like."""
    largest = int(items.max())
    extra = num_items - largest - 1
    if extra <= 0:
        return
    no_interaction = num_items - int(np.count_nonzero(np.bincount(items, minlength=num_items)))
    files = ", ".join(p.name for p in feature_paths.values())
    warnings.warn(
        f"{path}: the feature files ({files}) have {num_items} rows but the largest "
        f"itemID is {largest}: the {extra} row(s) past it are kept as items without "
        f"interactions ({no_interaction} item(s) in all have none; MMRec's rule: row j "
        f"is item j). If the items were numbered anew (e.g. after a k-core filter), "
        f"re-index the features too (dreamgeo prepare --feature does)",
        stacklevel=3,
    )


def require_held_out(data: HeteroData, inter_path: str | os.PathLike | None = None) -> None:
    r"""Raises :class:`ValueError` when ``data`` has no valid or no test
    interactions, before a model trains on it: early stopping and the best epoch
    need valid rows and the reported metrics need test rows, else every metric
    is zero. The message names ``inter_path`` and its rows per ``x_label``
    (read again from the file, so only on this error path) beside those left
    after dropping duplicates and users without training rows.

    Args:
        data (HeteroData): A dataset (``DESIGN.md`` section 2).
        inter_path (str or Path, optional): The ``name.inter`` file it was read
            from, named in the message. (default: :obj:`None`)
    """
    store = data[INTERACTS]
    kept = [int(store[key].size(1)) for key in ("edge_index", "val_edge_index", "test_edge_index")]
    absent = [
        f"no {split} rows (x_label {label})"
        for label, split in ((1, "valid"), (2, "test"))
        if kept[label] == 0
    ]
    if not absent:
        return
    where = "the data"
    counts = ""
    if inter_path is not None:
        where = str(inter_path)
        try:
            labels = _read_inter(Path(inter_path))[0]["x_label"]
            in_file = np.bincount(labels, minlength=3)[:3].tolist()
            counts = "rows per x_label in the file: " + ", ".join(
                f"{label} ({split}) {n}"
                for label, (split, n) in enumerate(zip(_SPLIT_NAMES, in_file))
            )
        except (OSError, ValueError):
            pass
    used = ", ".join(
        f"{label} ({split}) {n}" for label, (split, n) in enumerate(zip(_SPLIT_NAMES, kept))
    )
    raise ValueError(
        f"{where}: {' and '.join(absent)}; "
        + (f"{counts}; " if counts else "")
        + f"used (after dropping duplicates and users without training rows): {used}. "
        "Training needs valid rows (x_label 1) to choose the best epoch and test rows "
        "(x_label 2) to report on, else every metric is 0; split the interactions with "
        "`dreamgeo prepare --split mmrec|loo|temporal` (docs/data.md)"
    )


def _build_splits(
    path: Path,
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    line_numbers: np.ndarray,
    num_items: int,
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], np.ndarray]:
    r"""Drops duplicates and users without training rows, renumbers users and
    returns the train / valid / test edge indices and the original user ids."""
    unique_users, user_index = np.unique(users, return_inverse=True)
    key = user_index.astype(np.int64) * num_items + items
    # By (user, item), then split priority, then file order; keep the first.
    order = np.lexsort((line_numbers, labels, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order[1:]] != key[order[:-1]]
    keep = order[first]
    num_duplicates = len(order) - len(keep)
    if num_duplicates:
        dropped = np.ones(len(order), dtype=bool)
        dropped[keep] = False
        per_label = np.bincount(labels[dropped], minlength=3)[:3]
        warnings.warn(
            f"{path}: dropped {num_duplicates} duplicate (userID, itemID) rows, "
            f"keeping one per pair (train before valid before test, then the first in "
            f"the file); dropped per x_label: "
            + ", ".join(
                f"{s} ({name}) {n}" for s, (name, n) in enumerate(zip(_SPLIT_NAMES, per_label))
            ),
            stacklevel=2,
        )
    user_index, items, labels = user_index[keep], items[keep], labels[keep]

    has_train = np.bincount(user_index[labels == 0], minlength=len(unique_users)) > 0
    num_dropped = int((~has_train).sum())
    if num_dropped:
        dropped_rows = int((~has_train[user_index]).sum())
        logger.info(
            "%s: dropped %d users without training interactions (%d valid/test rows)",
            path,
            num_dropped,
            dropped_rows,
        )
        new_index = np.cumsum(has_train) - 1
        kept_rows = has_train[user_index]
        user_index = new_index[user_index[kept_rows]]
        items, labels = items[kept_rows], labels[kept_rows]

    is_train = labels == 0
    in_train = np.bincount(items[is_train], minlength=num_items) > 0
    cold = np.unique(items[~is_train & ~in_train[items]])
    if cold.size:
        logger.info(
            "%s: %d items occur in valid/test rows but in no training row (kept as "
            "cold-start items: never a positive during training)",
            path,
            cold.size,
        )

    edges = tuple(
        torch.from_numpy(np.stack([user_index[labels == s], items[labels == s]]))
        for s in range(len(_SPLIT_NAMES))
    )
    return edges, unique_users[has_train].astype(np.int64)
