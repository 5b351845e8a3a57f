r"""Atomic writes for checkpoints and caches: a crash leaves the old file or the new
one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_save", "atomic_write_text"]


def _atomic_replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    r"""``torch.save(obj, path)`` through a temporary file in the same directory and
    :func:`os.replace`."""
    _atomic_replace(Path(path), lambda handle: torch.save(obj, handle))


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    r"""Writes ``text`` to ``path`` atomically (UTF-8)."""
    _atomic_replace(Path(path), lambda handle: handle.write(text.encode("utf-8")))
