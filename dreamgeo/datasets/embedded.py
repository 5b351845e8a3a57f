r"""Real datasets shipped inside the package, loaded with :func:`load`.

Each embedded dataset is an MMRec dataset stored compactly as package data in
``dreamgeo/datasets/data/<name>/``: the ``<name>.inter`` file gzip-compressed
and the item features as float16 ``.npy`` members of one compressed ``.npz``.
:func:`load` checks the files against the SHA-256 digests recorded here,
unpacks them once into the per-user cache as an ordinary MMRec folder and reads
that with :class:`~dreamgeo.datasets.MMRecDataset`, so the embedded data goes
through exactly the same parsing and validation as any MMRec folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from torch_geometric.data import HeteroData

from dreamgeo.datasets.cache import user_cache_root
from dreamgeo.datasets.mmrec import MMRecDataset

__all__ = ["EMBEDDED_DATASETS", "EmbeddedDataset", "embedded_checksum", "load"]

logger = logging.getLogger(__name__)

_FEATURES_FILE = "features.npz"
_COMPLETE_MARKER = "unpacked.json"


@dataclass(frozen=True)
class EmbeddedDataset:
    r"""What is recorded about one embedded dataset.

    Args:
        name (str): The dataset name (folder and ``.inter`` file name).
        files (Mapping[str, str]): Each shipped file's name and SHA-256 digest
            (hex).
        modalities (Mapping[str, str]): Modality name to the ``.npy`` member
            of ``features.npz`` (and the file it is unpacked to).
        num_users (int): Users :math:`M` after loading.
        num_items (int): Items :math:`N`.
        num_interactions (tuple[int, int, int]): Train, valid and test
            interactions.
        source (str): Where the data comes from.
    """

    name: str
    files: Mapping[str, str]
    modalities: Mapping[str, str]
    num_users: int
    num_items: int
    num_interactions: tuple[int, int, int]
    source: str = field(default="")

    @property
    def inter_file(self) -> str:
        r"""The shipped, gzip-compressed interaction file name."""
        return f"{self.name}.inter.gz"


#: The embedded datasets by name, with the SHA-256 digest of every shipped file.
EMBEDDED_DATASETS: dict[str, EmbeddedDataset] = {
    "scientific": EmbeddedDataset(
        name="scientific",
        files={
            "features.npz": "f5a40d1b983b02dc32dd630613e8eb8dcfbc8c58aaa8f1258e2b1d3d61ccebd1",
            "scientific.inter.gz": (
                "70454bb30a7b7da773047b8c6f16385e7c9a6dc0b9efd50f121f8fc2c17324e2"
            ),
        },
        modalities={"image": "image_feat.npy", "text": "text_feat.npy"},
        num_users=2_928,
        num_items=1_585,
        num_interactions=(10_861, 2_902, 2_902),
        source=(
            "Amazon Reviews 2018, 'Industrial and Scientific', 5-core, as published "
            "with DecoRec (github KIKIENAO/decorec, dataset/downstream/Scientific/); "
            "CLIP ViT-B/32 image and text features"
        ),
    ),
}


def _data_dir(name: str) -> Traversable:
    r"""The package-data folder of embedded dataset ``name``."""
    return resources.files("dreamgeo.datasets").joinpath("data", name)


def _info(name: str) -> EmbeddedDataset:
    try:
        return EMBEDDED_DATASETS[name]
    except KeyError:
        raise ValueError(
            f"no embedded dataset {name!r}; embedded: {sorted(EMBEDDED_DATASETS)} "
            f"(give data_root= to read an MMRec folder instead)"
        ) from None


def _combined_digest(files: Mapping[str, str]) -> str:
    r"""One SHA-256 over a ``sha256sum``-style listing of ``files``."""
    listing = "".join(f"{digest}  {file}\n" for file, digest in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def _read_verified(name: str) -> dict[str, bytes]:
    r"""The shipped files of ``name``, each checked against its recorded digest."""
    info = _info(name)
    folder = _data_dir(name)
    contents: dict[str, bytes] = {}
    for file, expected in sorted(info.files.items()):
        entry = folder.joinpath(file)
        if not entry.is_file():
            raise FileNotFoundError(
                f"embedded dataset {name!r}: {file} is missing from the installed package "
                f"({entry}); was dreamgeo installed without its package data?"
            )
        raw = entry.read_bytes()
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected:
            raise ValueError(
                f"embedded dataset {name!r}: {file} ({entry}) fails its checksum: "
                f"SHA-256 {actual}, expected {expected}; the installed package data is "
                f"corrupt or was modified, reinstall dreamgeo"
            )
        contents[file] = raw
    return contents


def embedded_checksum(name: str = "scientific") -> str:
    r"""The SHA-256 checksum of embedded dataset ``name``: one digest over the
    ``sha256sum``-style listing of its shipped files, after checking every
    file against the digest recorded in :data:`EMBEDDED_DATASETS`.

    Args:
        name (str, optional): The embedded dataset. (default: :obj:`"scientific"`)

    Raises:
        ValueError: If ``name`` is not embedded, or a file's digest differs
            from the recorded one (the message names the file).
        FileNotFoundError: If a shipped file is missing.
    """
    _read_verified(name)
    return _combined_digest(_info(name).files)


def _unpack(name: str, contents: Mapping[str, bytes], target: Path) -> dict[str, str]:
    r"""Writes ``target/name`` as an MMRec folder; returns its files' digests."""
    info = _info(name)
    folder = target / name
    folder.mkdir(parents=True)
    (folder / f"{name}.inter").write_bytes(gzip.decompress(contents[info.inter_file]))
    with zipfile.ZipFile(io.BytesIO(contents[_FEATURES_FILE])) as archive:
        members = set(archive.namelist())
        for modality, member in info.modalities.items():
            if member not in members:
                raise ValueError(
                    f"embedded dataset {name!r}: {_FEATURES_FILE} has no member "
                    f"{member!r} for modality {modality!r} (members: {sorted(members)})"
                )
            (folder / member).write_bytes(archive.read(member))
    return {p.name: _file_digest(p) for p in sorted(folder.iterdir())}


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unpacked_dir(name: str, contents: Mapping[str, bytes], base: Path) -> Path:
    r"""The folder holding ``name/`` as an MMRec folder, unpacked once under
    ``base/embedded`` (atomically: written elsewhere and renamed) and checked
    against the digests written at unpacking on every later use."""
    checksum = _combined_digest(_info(name).files)
    target = base / "embedded" / f"{name}-{checksum[:16]}"
    marker = target / _COMPLETE_MARKER
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())
            folder = target / name
            if recorded and all(_file_digest(folder / f) == d for f, d in recorded.items()):
                return target
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        logger.warning(
            "embedded dataset %r: the unpacked copy in %s changed; unpacking again", name, target
        )
    if target.exists():  # changed, or left without its marker: replace it whole
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        digests = _unpack(name, contents, partial)
        (partial / _COMPLETE_MARKER).write_text(json.dumps(digests, indent=1, sort_keys=True))
        try:
            os.replace(partial, target)
        except OSError:
            if not marker.is_file():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    logger.info("embedded dataset %r unpacked to %s", name, target / name)
    return target


def load(
    name: str = "scientific",
    *,
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    modalities: Sequence[str] | None = None,
) -> HeteroData:
    r"""Loads a real dataset: the MMRec folder ``data_root/name`` if
    ``data_root`` is given and that folder exists, else the copy of ``name``
    embedded in the package (see :data:`EMBEDDED_DATASETS`; by default Amazon
    Scientific, 2,928 users, 1,585 items, CLIP ViT-B/32 image and text
    features of 512 dimensions).

    .. code-block:: python

        from dreamgeo.datasets import load

        data = load()                               # embedded Amazon Scientific
        data["item"].x_image                        # [1585, 512] float32
        data["user", "interacts", "item"].edge_index  # train [2, 10861]

    The embedded copy gives the same :class:`HeteroData` as
    ``MMRecDataset(root, name)[0]`` on the original files (same keys, shapes,
    user numbering and train / valid / test splits), except that the item
    features are **float16-rounded**: they are stored as float16 and returned
    as float32, so each value equals ``x.half().float()`` of the original
    (for Amazon Scientific the original CLIP features are float16-exact, so
    nothing is lost). The shipped files are checked against their recorded
    SHA-256 digests (:func:`embedded_checksum`) on every call, unpacked once
    into ``cache_dir`` (default: the per-user cache,
    :func:`~dreamgeo.datasets.cache.user_cache_root`) and read by
    :class:`~dreamgeo.datasets.MMRecDataset`, so every check of the MMRec
    reader (row counts, finite features, ``x_label`` values, ...) applies to
    them as well. An info log line says which copy was loaded.

    Args:
        name (str, optional): The dataset name. (default: :obj:`"scientific"`)
        data_root (str or Path, optional): A folder that may hold a
            full-precision MMRec copy ``data_root/name``; it is read instead
            of the embedded copy when that folder exists (a broken folder is
            an error, never a silent fall-back). (default: :obj:`None`)
        cache_dir (str or Path, optional): Where to unpack the embedded copy
            and keep processed caches (see
            :func:`~dreamgeo.datasets.cache.resolve_cache_dir`).
            (default: :obj:`None`)
        modalities (Sequence[str], optional): The modalities to read, e.g.
            ``["text"]``, in that order. (default: :obj:`None`, all of them:
            ``image`` and ``text`` for Scientific)

    Shapes:
        - **output:** as :class:`~dreamgeo.datasets.MMRecDataset`;
          ``data['item'].x_<m>`` float32 :math:`[N, d_m]`.

    Raises:
        ValueError: If ``name`` is neither in ``data_root`` nor embedded, if an
            embedded file fails its checksum (the message names the file), or
            if the data fails the MMRec reader's validation.
        FileNotFoundError: If an embedded file is missing from the package.
        OSError: If the embedded copy cannot be unpacked into the cache folder.
    """
    if data_root is not None and (Path(data_root).expanduser() / name).is_dir():
        logger.info("dataset %r: MMRec files in %s", name, Path(data_root).expanduser() / name)
        return MMRecDataset(data_root, name, modalities=modalities, cache_dir=cache_dir, log=False)[
            0
        ]
    if data_root is not None and name not in EMBEDDED_DATASETS:
        raise FileNotFoundError(
            f"dataset folder {Path(data_root).expanduser() / name} does not exist and "
            f"{name!r} is not embedded (embedded: {sorted(EMBEDDED_DATASETS)})"
        )
    info = _info(name)
    contents = _read_verified(name)
    base = Path(cache_dir).expanduser() if cache_dir is not None else user_cache_root()
    try:
        root = _unpacked_dir(name, contents, base)
    except OSError as error:
        raise OSError(
            f"embedded dataset {name!r}: cannot unpack it into {base} ({error}); pass "
            f"cache_dir= or set $DREAMGEO_CACHE_DIR to a writable folder"
        ) from error
    logger.info(
        "dataset %r: the embedded copy (features float16-rounded, checksum %s)",
        name,
        _combined_digest(info.files)[:16],
    )
    chosen = dict(info.modalities)
    if modalities is not None:
        names = [modalities] if isinstance(modalities, str) else list(modalities)
        absent = [m for m in names if m not in chosen]
        if absent or not names:
            raise ValueError(
                f"embedded dataset {name!r} has no modality {', '.join(map(repr, absent))}; "
                f"its modalities: {', '.join(chosen)}"
                if absent
                else f"embedded dataset {name!r}: no modality chosen"
            )
        chosen = {m: chosen[m] for m in names}
    return MMRecDataset(root, name, modalities=chosen, log=False)[0]
