r"""Which data a command trains on: MMRec files under a data root, the embedded real
default (:func:`dreamgeo.datasets.embedded.load`) or a planted synthetic preset."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, feature_key, modality_names

__all__ = [
    "DataSource",
    "resolve_source",
    "load_source",
    "check_held_out",
    "data_checksum",
    "parse_modalities",
]


@dataclass(frozen=True)
class DataSource:
    r"""Where a run's data comes from.

    Args:
        kind (str): ``"mmrec"`` (files under :obj:`root`), ``"embedded"`` (package data)
            or ``"planted"`` (a generated preset).
        name (str): Dataset name (``planted_<preset>`` for planted data).
        root (str): The data root (MMRec files, or where planted data is written).
        preset (str, optional): The planted preset. (default: :obj:`None`)
        data_seed (int, optional): Seed of the planted generator. (default: :obj:`0`)
        selected_modalities (tuple[str, ...], optional): The modalities chosen
            (``--modalities``), in that order; :obj:`None` for all of them.
            (default: :obj:`None`)
    """

    kind: str
    name: str
    root: str
    preset: str | None = None
    data_seed: int = 0
    selected_modalities: tuple[str, ...] | None = None

    def describe(self) -> str:
        r"""One phrase for logs, e.g. ``"MMRec files in data/baby"`` (with
        ``" (modalities image, audio)"`` when some were chosen)."""
        if self.kind == "mmrec":
            text = f"MMRec files in {Path(self.root) / self.name}"
        elif self.kind == "embedded":
            text = f"the embedded '{self.name}' dataset (Amazon, real CLIP features)"
        else:
            text = f"planted '{self.preset}' preset (seed {self.data_seed})"
        if self.selected_modalities is not None:
            text += f" (modalities {', '.join(self.selected_modalities)})"
        return text

    def available_modalities(self) -> list[str]:
        r"""Every modality the data has, found without reading data files."""
        from dreamgeo.datasets.embedded import EMBEDDED_DATASETS
        from dreamgeo.datasets.mmrec import find_modalities
        from dreamgeo.datasets.planted import PLANTED_PRESETS

        if self.kind == "planted":
            return list(PLANTED_PRESETS[self.preset].modality_dims)
        if self.kind == "embedded":
            return list(EMBEDDED_DATASETS[self.name].modalities)
        return list(find_modalities(Path(self.root) / self.name))

    def modalities(self) -> list[str]:
        r"""The item modalities a run reads: the chosen ones, else all of them
        (found without reading the interactions)."""
        if self.selected_modalities is not None:
            return list(self.selected_modalities)
        return self.available_modalities()

    def inter_path(self) -> Path | None:
        r"""The ``name.inter`` file read (:obj:`None` for embedded data, which is
        unpacked into a cache)."""
        if self.kind == "embedded":
            return None
        return Path(self.root) / self.name / f"{self.name}.inter"


def parse_modalities(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    r"""``--modalities image,audio`` as ``("image", "audio")`` (:obj:`None` stays
    :obj:`None`, all modalities).

    Raises:
        ValueError: For an empty list or a name given twice.
    """
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(part.strip() for part in parts if part.strip())
    if not names:
        raise ValueError(f"--modalities {text!r}: give one or more names, e.g. image,text")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--modalities {text!r}: {', '.join(repeated)} given twice")
    return names


def _check_selection(source: DataSource) -> None:
    r"""Raises :class:`FileNotFoundError` when a chosen modality is not in the data."""
    if source.selected_modalities is None:
        return
    if source.kind == "mmrec":
        from dreamgeo.datasets.mmrec import resolve_modalities

        resolve_modalities(Path(source.root) / source.name, list(source.selected_modalities))
        return
    available = source.available_modalities()
    absent = [m for m in source.selected_modalities if m not in available]
    if absent:
        raise FileNotFoundError(
            f"--modalities: {source.describe()} has no modality "
            f"{', '.join(repr(m) for m in absent)}; its modalities: {', '.join(available)}"
        )


def resolve_source(
    dataset: str | None,
    data_root: str = "data",
    preset: str | None = None,
    data_seed: int = 0,
    modalities: str | Sequence[str] | None = None,
) -> DataSource:
    r"""The :class:`DataSource` of a command's data flags, checked without reading data:
    a planted :obj:`preset` when given; else the MMRec files ``data_root/dataset``; else
    the embedded dataset of that name (``scientific`` when :obj:`dataset` is
    :obj:`None`). :obj:`modalities` (``"image,audio"`` or a list) chooses some of the
    data's modalities (:obj:`None`: all of them).

    Raises:
        FileNotFoundError: When :obj:`dataset` is neither on disk nor embedded, naming
            the datasets that were found, or when a chosen modality is not in the data,
            naming the modalities found.
    """
    from dreamgeo.datasets.embedded import EMBEDDED_DATASETS

    selected = parse_modalities(modalities)
    if preset is not None:
        source = DataSource("planted", f"planted_{preset}", data_root, preset, data_seed, selected)
        _check_selection(source)
        return source
    dataset = dataset or "scientific"
    inter = Path(data_root) / dataset / f"{dataset}.inter"
    if inter.is_file():
        source = DataSource("mmrec", dataset, data_root, selected_modalities=selected)
        _check_selection(source)
        return source
    if inter.parent.is_dir():
        raise FileNotFoundError(
            f"--dataset {dataset}: the folder {inter.parent} exists but has no {inter.name}; "
            "add it (MMRec format: see docs/data.md), or make the folder from raw "
            "interactions with `dreamgeo prepare`"
        )
    if dataset in EMBEDDED_DATASETS:
        source = DataSource("embedded", dataset, data_root, selected_modalities=selected)
        _check_selection(source)
        return source
    root = Path(data_root)
    found = sorted(p.parent.name for p in root.glob("*/*.inter") if p.stem == p.parent.name)
    raise FileNotFoundError(
        f"--dataset {dataset}: no MMRec files at {inter}; datasets in {root}: "
        f"{', '.join(found) or 'none'}; embedded: {', '.join(EMBEDDED_DATASETS)} (make a "
        "dataset folder from raw files with `dreamgeo prepare`, see docs/data.md)"
    )


def load_source(source: DataSource, cache_dir: str | None = None) -> HeteroData:
    r"""The :class:`~torch_geometric.data.HeteroData` of ``source`` (planted data is
    generated into ``root/planted_<preset>`` first if absent), with its chosen
    modalities."""
    from dreamgeo.datasets.embedded import load
    from dreamgeo.datasets.mmrec import MMRecDataset
    from dreamgeo.datasets.planted import write_planted

    selected = None if source.selected_modalities is None else list(source.selected_modalities)
    if source.kind == "embedded":
        return load(source.name, cache_dir=cache_dir, modalities=selected)
    if source.kind == "planted":
        write_planted(source.root, source.name, preset=source.preset, seed=source.data_seed)
    return MMRecDataset(source.root, source.name, modalities=selected, cache_dir=cache_dir)[0]


def check_held_out(source: DataSource, data: HeteroData) -> None:
    r"""Raises :class:`ValueError` when ``data`` (loaded from ``source``) has no valid
    or no test interactions, naming the ``.inter`` file and its rows per ``x_label``
    (:func:`dreamgeo.datasets.mmrec.require_held_out`); called before training."""
    from dreamgeo.datasets.mmrec import require_held_out

    require_held_out(data, source.inter_path())


def data_checksum(data: HeteroData) -> str:
    r"""A SHA-256 (first 16 hex digits) of the interactions, splits and features of
    ``data``: two runs on data with the same checksum saw the same data."""
    digest = hashlib.sha256()
    store = data[INTERACTS]
    for key in ("edge_index", "val_edge_index", "test_edge_index"):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(store[key].cpu().numpy()).tobytes())
    for modality in modality_names(data):
        x = data[ITEM][feature_key(modality)]
        digest.update(modality.encode())
        digest.update(np.ascontiguousarray(x.cpu().numpy()).tobytes())
    return digest.hexdigest()[:16]
