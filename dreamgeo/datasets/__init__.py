r"""Datasets: the MMRec on-disk format (:class:`MMRecDataset`, its modalities
:func:`find_modalities`, the held-out check :func:`require_held_out`), the real
datasets embedded in the package (:func:`load`, :data:`EMBEDDED_DATASETS`),
the planted synthetic generator (:func:`generate_planted`,
:func:`write_planted`) and its reference rankings (:func:`planted_oracle_factors`,
:func:`planted_posterior_factors`), the cache-folder rule (:mod:`dreamgeo.datasets.cache`)
and the shared :class:`~torch_geometric.data.HeteroData` schema."""

from dreamgeo.datasets.cache import resolve_cache_dir, user_cache_root
from dreamgeo.datasets.embedded import (
    EMBEDDED_DATASETS,
    EmbeddedDataset,
    embedded_checksum,
    load,
)
from dreamgeo.datasets.mmrec import MMRecDataset, find_modalities, require_held_out
from dreamgeo.datasets.planted import (
    PLANTED_PRESETS,
    PlantedConfig,
    PlantedData,
    generate_planted,
    write_planted,
)
from dreamgeo.datasets.planted_oracle import planted_oracle_factors, planted_posterior_factors
from dreamgeo.datasets.prepare import PrepareSummary, prepare_dataset
from dreamgeo.datasets.schema import *  # noqa: F403
from dreamgeo.datasets.schema import __all__ as _schema_all

__all__ = [
    "MMRecDataset",
    "find_modalities",
    "require_held_out",
    "load",
    "EMBEDDED_DATASETS",
    "EmbeddedDataset",
    "embedded_checksum",
    "resolve_cache_dir",
    "user_cache_root",
    "generate_planted",
    "write_planted",
    "PLANTED_PRESETS",
    "PlantedConfig",
    "PlantedData",
    "planted_oracle_factors",
    "planted_posterior_factors",
    "prepare_dataset",
    "PrepareSummary",
    *_schema_all,
]
