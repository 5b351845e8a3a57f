r"""Where dreamgeo writes caches derived from a dataset folder (processed
:class:`~torch_geometric.data.HeteroData`, relation graphs, the unpacked
embedded datasets).

The rule, in order:

1. an explicit ``cache_dir`` given by the caller:
   ``cache_dir/<dataset key>``;
2. else the dataset folder itself when it is writable (the historical layout,
   e.g. ``root/name/processed``);
3. else the per-user cache: ``$DREAMGEO_CACHE_DIR`` if set, else
   ``platformdirs.user_cache_dir("dreamgeo")``, then ``/<dataset key>``.

The ``<dataset key>`` is the folder's name plus a hash of its resolved path, so
two datasets of the same name in different places never share (or evict) a
cache. Nothing is ever written into a folder that is not writable, and a
read-only dataset folder is never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

__all__ = [
    "CACHE_ENV_VAR",
    "dataset_cache_key",
    "is_writable",
    "resolve_cache_dir",
    "user_cache_root",
]

logger = logging.getLogger(__name__)

#: Environment variable that replaces the platformdirs per-user cache folder.
CACHE_ENV_VAR = "DREAMGEO_CACHE_DIR"

_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def user_cache_root() -> Path:
    r"""The per-user cache folder: ``$DREAMGEO_CACHE_DIR`` when that is set and
    not empty, else ``platformdirs.user_cache_dir("dreamgeo")`` (e.g.
    ``~/.cache/dreamgeo`` on Linux). Creates nothing."""
    override = os.environ.get(CACHE_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dreamgeo"))


def is_writable(path: str | os.PathLike) -> bool:
    r"""Whether ``path`` is an existing folder this process may create files
    in: :func:`os.access` grants write and search permission, and, for the
    super-user (who passes :func:`os.access` anyway), the folder's mode has at
    least one write bit, so a folder made read-only on purpose
    (``chmod -R a-w``) is treated as read-only by root too.

    Args:
        path (str or Path): The folder.
    """
    path = Path(path)
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        return False
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and geteuid() == 0:
        return bool(path.stat().st_mode & _WRITE_BITS)
    return True


def dataset_cache_key(dataset_dir: str | os.PathLike) -> str:
    r"""The sub-folder name that keeps caches of different dataset folders
    apart: ``<folder name>-<first 16 hex digits of the SHA-256 of its resolved
    path>``.

    Args:
        dataset_dir (str or Path): The dataset folder.
    """
    resolved = Path(dataset_dir).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return f"{resolved.name or 'root'}-{digest}"


def resolve_cache_dir(
    dataset_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    r"""The folder under which caches derived from ``dataset_dir`` go (callers
    add their own sub-folder, e.g. ``processed`` or ``cache``): ``cache_dir /
    key`` if ``cache_dir`` is given, else ``dataset_dir`` if it is writable
    (:func:`is_writable`), else :func:`user_cache_root` ``/ key``, with ``key``
    from :func:`dataset_cache_key`. Logs one info line saying which and why.
    Creates nothing.

    Args:
        dataset_dir (str or Path): The dataset folder the cache derives from.
        cache_dir (str or Path, optional): An explicit cache folder; always
            used when given. (default: :obj:`None`)
    """
    dataset_dir = Path(dataset_dir).expanduser()
    if cache_dir is not None:
        where = Path(cache_dir).expanduser() / dataset_cache_key(dataset_dir)
        reason = "cache_dir given"
    elif is_writable(dataset_dir):
        where = dataset_dir
        reason = "the dataset folder is writable"
    else:
        source = (
            f"${CACHE_ENV_VAR}" if os.environ.get(CACHE_ENV_VAR, "").strip() else "platformdirs"
        )
        where = user_cache_root() / dataset_cache_key(dataset_dir)
        state = "not writable" if dataset_dir.exists() else "missing"
        reason = f"the folder is {state}; per-user cache from {source}"
    logger.info("cache for %s: %s (%s)", dataset_dir, where, reason)
    return where
