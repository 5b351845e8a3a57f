r"""The batched, resumable writer behind ``dreamgeo features``: item inputs (texts,
image files) through an encoder into one ``.npy`` feature file, row :math:`i` = item
:math:`i`.

A run writes every finished batch's rows into a memory-mapped
``<file>.partial`` (a ``.npy`` of the final shape) and then records the batch in a
small JSON progress file ``<file>.progress.json`` (model, item count, feature size,
batch size, a SHA-256 of the inputs, the finished batches and the items without
features so far). A killed run, started again with the same arguments, checks that
these match and encodes only the batches that are not finished; at the end the
partial file is renamed atomically to ``<file>`` and the progress file removed.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

__all__ = [
    "ItemEncoder",
    "FeatureReport",
    "write_features",
    "partial_paths",
    "missing_report_path",
    "import_features_extra",
    "check_device",
    "MISSING_RULES",
]

logger = logging.getLogger(__name__)

#: How rows of items without usable content are filled: ``"zero"`` (all-zero rows)
#: or ``"mean"`` (the mean of the other items' rows, MMRec's rule for missing images).
MISSING_RULES: tuple[str, ...] = ("zero", "mean")
_PROGRESS_VERSION = 1
_FILL_CHUNK_ROWS = 8192


def import_features_extra(module: str) -> ModuleType:
    r"""Imports a package of the optional ``features`` extra, or raises an
    :class:`ImportError` that says how to install it.

    Args:
        module (str): The module name, e.g. ``"sentence_transformers"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"dreamgeo features needs the package {module!r}, which is not installed "
            f'({error}); install the extra with: pip install "dreamgeo[features]"'
        ) from error


def check_device(device: str) -> None:
    r"""Raises a :class:`ValueError` when :obj:`device` is a CUDA device and CUDA is
    not available (a feature run is long: it never falls back to the CPU silently).

    Args:
        device (str): ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r} ({error})") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here")


class ItemEncoder(Protocol):
    r"""What :func:`write_features` needs from an encoder.

    Attributes:
        model_id (str): Identifies the model (name or resolved path); recorded in the
            progress file so that a resumed run uses the same model.
        dim (int): The feature size :math:`d`.
    """

    model_id: str
    dim: int

    def encode(self, inputs: list[Any]) -> tuple[np.ndarray, dict[int, str]]:
        r"""Encodes one batch. Returns the rows ``[len(inputs), dim]`` and the
        positions in :obj:`inputs` that could not be encoded, with the reason (their
        rows are ignored)."""
        ...


@dataclass
class FeatureReport:
    r"""What :func:`write_features` did.

    Args:
        path (Path): The feature file (written only when :obj:`complete`).
        num_items (int): Rows :math:`N`.
        dim (int): Columns :math:`d`.
        missing (dict[int, str]): Item id to the reason it has no features (its row
            is filled by the missing rule).
        computed_batches (int): Batches encoded by this call.
        resumed_batches (int): Batches found finished by an earlier, interrupted run.
        complete (bool): Whether the feature file was written (:obj:`False` after
            :obj:`max_batches` stopped the run early).
        report_path (Path, optional): The CSV that lists the items without features,
            when there are any.
    """

    path: Path
    num_items: int
    dim: int
    missing: dict[int, str] = field(default_factory=dict)
    computed_batches: int = 0
    resumed_batches: int = 0
    complete: bool = False
    report_path: Path | None = None


def partial_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    r"""The partial array ``<path>.partial`` and progress file
    ``<path>.progress.json`` of an unfinished run that writes :obj:`path`."""
    path = Path(path)
    return path.with_name(path.name + ".partial"), path.with_name(path.name + ".progress.json")


def missing_report_path(path: str | os.PathLike) -> Path:
    r"""The report of items without features that goes with a feature file:
    ``text_feat.npy`` -> ``text_feat.missing.csv``."""
    path = Path(path)
    return path.with_name(path.stem + ".missing.csv")


def write_features(
    inputs: Sequence[Any],
    encoder: ItemEncoder,
    path: str | os.PathLike,
    batch_size: int = 64,
    overwrite: bool = False,
    restart: bool = False,
    missing: str = "zero",
    missing_reason: str = "no input",
    original_ids: Sequence[str] | None = None,
    progress: bool = True,
    max_batches: int | None = None,
) -> FeatureReport:
    r"""Encodes :obj:`inputs` batch by batch into the float32 ``.npy`` file
    :obj:`path` of shape ``[len(inputs), encoder.dim]``, row :math:`i` from
    ``inputs[i]``; resumable (see the module docstring).

    Batch :math:`b` holds the items :math:`bB, \dots, (b+1)B - 1` for the batch size
    :math:`B`. An input :obj:`None` (no content) and an input that the encoder cannot
    encode (e.g. an unreadable image) give the item no features: its row is filled by
    the :obj:`missing` rule and the item is listed, with the reason, in
    :func:`missing_report_path` ``(path)`` (columns ``itemID``, ``original_id``,
    ``reason``) and in :obj:`FeatureReport.missing`. A stale report of an older file
    is removed.

    Args:
        inputs (Sequence): One input per item (a text, an image path, ...) or
            :obj:`None`.
        encoder (ItemEncoder): Turns a list of inputs into rows.
        path (str or Path): The feature file to write.
        batch_size (int, optional): Items per batch :math:`B`. (default: :obj:`64`)
        overwrite (bool, optional): Replace an existing :obj:`path` (it stays in place
            until the new file is complete). (default: :obj:`False`)
        restart (bool, optional): Discard an unfinished run's partial files instead of
            continuing it. (default: :obj:`False`)
        missing (str, optional): ``"zero"`` or ``"mean"`` (see :data:`MISSING_RULES`).
            (default: :obj:`"zero"`)
        missing_reason (str, optional): The reason reported for a :obj:`None` input.
            (default: :obj:`"no input"`)
        original_ids (Sequence[str], optional): Original item ids for the report.
            (default: :obj:`None`)
        progress (bool, optional): Show a tqdm progress bar. (default: :obj:`True`)
        max_batches (int, optional): Stop after encoding this many batches, leaving
            the partial files as an interrupted run would. (default: :obj:`None`)

    Raises:
        FileExistsError: If :obj:`path` exists and :obj:`overwrite` is :obj:`False`.
        ValueError: If the partial files belong to a run with other settings (model,
            item count, feature size, batch size or inputs) and :obj:`restart` is
            :obj:`False`, or the encoder returns rows of another shape.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {MISSING_RULES}, got {missing!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    num_items, dim = len(inputs), int(encoder.dim)
    if num_items == 0:
        raise ValueError("there are no items to encode")
    settings = {
        "version": _PROGRESS_VERSION,
        "model": encoder.model_id,
        "num_items": num_items,
        "dim": dim,
        "batch_size": batch_size,
        "inputs_sha256": _inputs_digest(inputs),
    }
    partial, progress_path = partial_paths(path)
    state = _resume_state(partial, progress_path, settings, restart)
    if state is None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.float32, shape=(num_items, dim)
        )
        state = {**settings, "finished": [], "missing": {}}
        _write_json(progress_path, state)
    else:
        array = np.load(partial, mmap_mode="r+")
    finished = set(state["finished"])
    missing_items = {int(k): v for k, v in state["missing"].items()}
    num_batches = -(-num_items // batch_size)
    report = FeatureReport(path, num_items, dim, resumed_batches=len(finished))
    if finished:
        logger.info(
            "%s: resuming: %d of %d batches were finished by an earlier run",
            path,
            len(finished),
            num_batches,
        )
    bar = tqdm(
        total=num_batches,
        initial=len(finished),
        desc=path.name,
        unit="batch",
        disable=not progress,
    )
    try:
        for batch in range(num_batches):
            if batch in finished:
                continue
            if max_batches is not None and report.computed_batches >= max_batches:
                break
            begin, end = batch * batch_size, min((batch + 1) * batch_size, num_items)
            rows, failed = _encode_batch(encoder, inputs[begin:end], dim, missing_reason)
            array[begin:end] = rows
            array.flush()
            for position, reason in failed.items():
                missing_items[begin + position] = reason
            finished.add(batch)
            state["finished"] = sorted(finished)
            state["missing"] = {str(k): v for k, v in sorted(missing_items.items())}
            _write_json(progress_path, state)
            report.computed_batches += 1
            bar.update(1)
    finally:
        bar.close()
    report.missing = dict(sorted(missing_items.items()))
    if len(finished) < num_batches:
        del array
        return report
    if missing == "mean" and missing_items:
        _fill_mean(array, sorted(missing_items))
    array.flush()
    del array
    report_path = missing_report_path(path)
    if missing_items:
        _write_report(report_path, report.missing, original_ids)
        report.report_path = report_path
        logger.warning(
            "%s: %d of %d items have no features (%s rows); listed in %s",
            path,
            len(missing_items),
            num_items,
            missing,
            report_path,
        )
    elif report_path.exists():
        report_path.unlink()
    os.replace(partial, path)
    progress_path.unlink()
    report.complete = True
    return report


def _encode_batch(
    encoder: ItemEncoder, batch: Sequence[Any], dim: int, missing_reason: str
) -> tuple[np.ndarray, dict[int, str]]:
    r"""The rows of one batch (zero where an item has no features) and the positions
    without features with their reasons."""
    rows = np.zeros((len(batch), dim), dtype=np.float32)
    failed = {p: missing_reason for p, x in enumerate(batch) if x is None}
    present = [p for p, x in enumerate(batch) if x is not None]
    if present:
        out, bad = encoder.encode([batch[p] for p in present])
        out = np.asarray(out, dtype=np.float32)
        if out.shape != (len(present), dim):
            raise ValueError(
                f"the encoder {encoder.model_id!r} returned shape {out.shape} for "
                f"{len(present)} inputs; expected ({len(present)}, {dim})"
            )
        good = [i for i in range(len(present)) if i not in bad]
        rows[[present[i] for i in good]] = out[good]
        for i, reason in bad.items():
            failed[present[i]] = reason
    return rows, dict(sorted(failed.items()))


def _inputs_digest(inputs: Sequence[Any]) -> str:
    digest = hashlib.sha256()
    for x in inputs:
        digest.update(b"\x00" if x is None else str(x).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def _resume_state(
    partial: Path, progress_path: Path, settings: dict[str, Any], restart: bool
) -> dict[str, Any] | None:
    r"""The progress of an unfinished run to continue, or :obj:`None` to start
    afresh (after removing stale partial files)."""
    if restart or not (partial.exists() and progress_path.exists()):
        if partial.exists() or progress_path.exists():
            logger.info("%s: starting afresh (partial files removed)", partial)
        partial.unlink(missing_ok=True)
        progress_path.unlink(missing_ok=True)
        return None
    try:
        state = json.loads(progress_path.read_text())
        shape = np.load(partial, mmap_mode="r").shape
    except (OSError, ValueError) as error:
        logger.warning("%s: unreadable (%s); starting afresh", progress_path, error)
        partial.unlink(missing_ok=True)
        progress_path.unlink(missing_ok=True)
        return None
    differ = [
        f"{key} {state.get(key)!r} (now {value!r})"
        for key, value in settings.items()
        if state.get(key) != value
    ]
    if not differ and shape != (settings["num_items"], settings["dim"]):
        differ = [f"array shape {shape}"]
    if differ:
        raise ValueError(
            f"{partial} belongs to an unfinished run with other settings: "
            f"{'; '.join(differ)}. Rerun with the same settings to continue it, or "
            f"pass restart=True (--restart) to discard it"
        )
    return state


def _write_json(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _fill_mean(array: np.ndarray, missing_items: list[int]) -> None:
    r"""Sets the rows :obj:`missing_items` to the mean of the other rows."""
    is_missing = np.zeros(array.shape[0], dtype=bool)
    is_missing[missing_items] = True
    total = np.zeros(array.shape[1], dtype=np.float64)
    for begin in range(0, array.shape[0], _FILL_CHUNK_ROWS):
        block = array[begin : begin + _FILL_CHUNK_ROWS]
        total += block[~is_missing[begin : begin + _FILL_CHUNK_ROWS]].sum(0, dtype=np.float64)
    count = int((~is_missing).sum())
    array[missing_items] = (total / count).astype(np.float32) if count else 0.0


def _write_report(path: Path, missing: dict[int, str], original_ids: Sequence[str] | None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["itemID", "original_id", "reason"])
        for item, reason in missing.items():
            original = original_ids[item] if original_ids is not None else ""
            writer.writerow([item, original, reason])
    os.replace(tmp, path)
