r"""Datasets: the MMRec on-disk format (:class:`MMRecDataset`), the planted
synthetic generator (:func:`generate_planted`, :func:`write_planted`) and the
shared :class:`~torch_geometric.data.HeteroData` schema."""

from dreamgeo.datasets.mmrec import MMRecDataset
from dreamgeo.datasets.planted import (
    PLANTED_PRESETS,
    PlantedConfig,
    PlantedData,
    generate_planted,
    write_planted,
)
from dreamgeo.datasets.schema import *  # noqa: F403
from dreamgeo.datasets.schema import __all__ as _schema_all

__all__ = [
    "MMRecDataset",
    "generate_planted",
    "write_planted",
    "PLANTED_PRESETS",
    "PlantedConfig",
    "PlantedData",
    *_schema_all,
]
