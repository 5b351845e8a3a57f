r"""Which data a command trains on: MMRec files under a data root, the embedded real
default (:func:`dreamgeo.datasets.embedded.load`) or a planted synthetic preset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, feature_key, modality_names

__all__ = ["DataSource", "resolve_source", "load_source", "data_checksum"]


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
    """

    kind: str
    name: str
    root: str
    preset: str | None = None
    data_seed: int = 0

    def describe(self) -> str:
        r"""One phrase for logs, e.g. ``"MMRec files in data/baby"``."""
        if self.kind == "mmrec":
            return f"MMRec files in {Path(self.root) / self.name}"
        if self.kind == "embedded":
            return f"the embedded '{self.name}' dataset (Amazon, real CLIP features)"
        return f"planted '{self.preset}' preset (seed {self.data_seed})"

    def modalities(self) -> list[str]:
        r"""Its item modalities, found without reading the interactions."""
        from dreamgeo.datasets.mmrec import MMRecDataset
        from dreamgeo.datasets.planted import PLANTED_PRESETS

        if self.kind == "planted":
            return list(PLANTED_PRESETS[self.preset].modality_dims)
        if self.kind == "embedded":
            return ["image", "text"]
        return list(MMRecDataset.default_modalities(Path(self.root), self.name))


def resolve_source(
    dataset: str | None, data_root: str = "data", preset: str | None = None, data_seed: int = 0
) -> DataSource:
    r"""The :class:`DataSource` of a command's data flags, checked without reading data:
    a planted :obj:`preset` when given; else the MMRec files ``data_root/dataset``; else
    the embedded dataset of that name (``scientific`` when :obj:`dataset` is
    :obj:`None`).

    Raises:
        FileNotFoundError: When :obj:`dataset` is neither on disk nor embedded, naming
            the datasets that were found.
    """
    from dreamgeo.datasets.embedded import EMBEDDED_DATASETS

    if preset is not None:
        return DataSource("planted", f"planted_{preset}", data_root, preset, data_seed)
    dataset = dataset or "scientific"
    inter = Path(data_root) / dataset / f"{dataset}.inter"
    if inter.is_file():
        return DataSource("mmrec", dataset, data_root)
    if inter.parent.is_dir():
        raise FileNotFoundError(
            f"--dataset {dataset}: the folder {inter.parent} exists but has no {inter.name}; "
            "add it (MMRec format: see docs/data.md), or pass --preset NAME for planted data"
        )
    if dataset in EMBEDDED_DATASETS:
        return DataSource("embedded", dataset, data_root)
    root = Path(data_root)
    found = sorted(p.parent.name for p in root.glob("*/*.inter") if p.stem == p.parent.name)
    raise FileNotFoundError(
        f"--dataset {dataset}: no MMRec files at {inter}; datasets in {root}: "
        f"{', '.join(found) or 'none'}; embedded: {', '.join(EMBEDDED_DATASETS)} (pass "
        "--preset NAME to train on planted synthetic data)"
    )


def load_source(source: DataSource, cache_dir: str | None = None) -> HeteroData:
    r"""The :class:`~torch_geometric.data.HeteroData` of ``source`` (planted data is
    generated into ``root/planted_<preset>`` first if absent)."""
    from dreamgeo.datasets.embedded import load
    from dreamgeo.datasets.mmrec import MMRecDataset
    from dreamgeo.datasets.planted import write_planted

    if source.kind == "embedded":
        return load(source.name, cache_dir=cache_dir)
    if source.kind == "planted":
        write_planted(source.root, source.name, preset=source.preset, seed=source.data_seed)
    return MMRecDataset(source.root, source.name, cache_dir=cache_dir)[0]


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
