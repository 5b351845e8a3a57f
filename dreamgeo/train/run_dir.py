r"""Run folders that never lose or mix results: a folder that holds a run is reused
only to resume that same run (same model, data, hyper-parameters and library version)
or when the user asks to overwrite it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dreamgeo.train.checkpoint import atomic_write_text

__all__ = [
    "RunDirError",
    "RUN_RECORD",
    "check_run_dir",
    "prepare_run_dir",
    "record_differences",
]

#: The file in a run folder that records what the run is.
RUN_RECORD = "run.json"

# files a run writes; --overwrite removes exactly these
_RUN_FILES = (
    RUN_RECORD,
    "checkpoint.pt",
    "metrics.jsonl",
    "metrics.csv",
    "result.md",
    "result.json",
    "training_curve.png",
)


class RunDirError(RuntimeError):
    r"""A run folder that cannot be used as asked; the message says why and what to do."""


def record_differences(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    r"""Each difference between two run records as ``"key: stored X, now Y"`` (nested
    mappings such as ``hparams`` compared key by key)."""
    differences = []
    for key in sorted(set(stored) | set(new)):
        old, now = stored.get(key), new.get(key)
        if isinstance(old, Mapping) and isinstance(now, Mapping):
            differences += [f"{key}.{line}" for line in record_differences(old, now)]
        elif old != now:
            differences.append(f"{key}: stored {old!r}, now {now!r}")
    return differences


def check_run_dir(out_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    r"""The checks of :func:`prepare_run_dir` that need no run record, so that a run
    that would be refused is refused before its data is read.

    Raises:
        RunDirError: When ``out_dir`` holds a run and neither :obj:`resume` nor
            :obj:`overwrite` is set, or when both are.
    """
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite contradict each other; give one")
    present = [name for name in _RUN_FILES if (Path(out_dir) / name).exists()]
    if present and not resume and not overwrite:
        raise RunDirError(
            f"{out_dir} already holds a run ({', '.join(present)}); pass --resume to "
            "continue it, --overwrite to replace it, or --out-dir for a new folder"
        )


def prepare_run_dir(
    out_dir: str | Path, record: Mapping[str, Any], *, resume: bool, overwrite: bool
) -> bool:
    r"""Makes ``out_dir`` ready for the run described by ``record`` (JSON-able: model,
    data and its checksum, every hyper-parameter, library version) and returns whether
    an existing checkpoint is to be resumed.

    * A new or empty folder: the record is written.
    * A folder that holds a run: with :obj:`resume`, the stored record must equal
      ``record`` (else :class:`RunDirError` naming each difference); with
      :obj:`overwrite`, the old run's files are removed; with neither,
      :class:`RunDirError`.

    Raises:
        RunDirError: As above, or when both :obj:`resume` and :obj:`overwrite` are set.
    """
    check_run_dir(out_dir, resume=resume, overwrite=overwrite)
    out_dir = Path(out_dir)
    record = json.loads(json.dumps(record))  # the form it takes once stored
    present = [name for name in _RUN_FILES if (out_dir / name).exists()]
    if present and overwrite:
        for name in present:
            (out_dir / name).unlink()
        present = []
    resuming = False
    if present:
        path = out_dir / RUN_RECORD
        if not path.exists():
            raise RunDirError(
                f"{out_dir} holds a run without {RUN_RECORD} (written by an older dreamgeo), "
                "so it cannot be checked; pass --overwrite or another --out-dir"
            )
        stored = json.loads(path.read_text())
        differences = record_differences(stored, record)
        if differences:
            raise RunDirError(
                f"--resume: {out_dir} holds another run; it differs in\n  "
                + "\n  ".join(differences)
                + "\nresume with the stored settings, or use --out-dir for a new run"
            )
        resuming = (out_dir / "checkpoint.pt").exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(record, indent=2) + "\n", out_dir / RUN_RECORD)
    return resuming
