r"""What the ``dreamgeo`` verbs share: the command-line error, the data flags, where
data, graph caches and tuned configurations live, and loading a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch_geometric.data import HeteroData

from dreamgeo.argtypes import non_negative_int

__all__ = [
    "CommandLineError",
    "add_data_arguments",
    "default_cache_dir",
    "load_data",
    "load_run",
    "configs_root",
]


class CommandLineError(ValueError):
    r"""A command-line argument that cannot be used; printed without a traceback."""


def add_data_arguments(parser: argparse.ArgumentParser, verb: str = "train") -> None:
    r"""Adds the data flags shared by ``train`` and ``tune`` (``--dataset``,
    ``--data-root``, ``--modalities``, ``--preset``, ``--data-seed``, ``--cache-dir``)
    to ``parser``; the :obj:`verb` goes into ``--preset``'s help."""
    from dreamgeo.datasets import PLANTED_PRESETS

    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        default=None,
        help="MMRec dataset name: reads DATA_ROOT/NAME/NAME.inter and the feature .npy "
        "files; without files there, an embedded dataset of that name (default: the "
        "embedded real 'scientific' dataset)",
    )
    group.add_argument("--data-root", default="data", help="directory of datasets")
    group.add_argument(
        "--modalities",
        default=None,
        metavar="NAME,...",
        help="the item modalities to use, e.g. image,audio: each is the file "
        "NAME_feat.npy of the dataset folder, in the order given (default: every "
        "*_feat.npy there, sorted by name)",
    )
    group.add_argument(
        "--preset",
        choices=sorted(PLANTED_PRESETS),
        default=None,
        help=f"{verb} on the planted synthetic preset instead (written to DATA_ROOT)",
    )
    group.add_argument(
        "--data-seed", type=non_negative_int, default=0, help="seed of the planted generator"
    )
    group.add_argument(
        "--cache-dir",
        default=None,
        help="processed data and relation graphs (default: DATA_ROOT/cache when writable, "
        "else the per-user cache directory; $DREAMGEO_CACHE_DIR overrides it)",
    )


def default_cache_dir(data_root: str, cache_dir: str | None = None) -> str:
    r"""Where relation graphs are cached: ``<cache_dir>/<key>/cache`` if :obj:`cache_dir`
    is given, else ``data_root/cache`` when the data root exists and can be written,
    else ``<per-user cache>/<key>/cache`` (see
    :func:`dreamgeo.datasets.cache.resolve_cache_dir`; ``$DREAMGEO_CACHE_DIR``
    overrides the per-user folder)."""
    from dreamgeo.datasets.cache import resolve_cache_dir

    return str(resolve_cache_dir(Path(data_root), cache_dir) / "cache")


def load_data(
    dataset: str | None,
    data_root: str = "data",
    preset: str | None = None,
    data_seed: int = 0,
    cache_dir: str | None = None,
    modalities: str | list[str] | None = None,
) -> tuple[HeteroData, str]:
    r"""The dataset to train on and a description of where it came from (see
    :func:`dreamgeo.datasets.source.resolve_source`)."""
    from dreamgeo.datasets.source import load_source, resolve_source

    source = resolve_source(dataset, data_root, preset, data_seed, modalities)
    return load_source(source, cache_dir), source.describe()


def configs_root() -> Path:
    r"""The repository's ``configs/`` folder of tuned configurations (written by
    ``dreamgeo tune --export``, read by ``dreamgeo experiment --tuned`` and by
    ``dreamgeo train`` for the best tuned baseline)."""
    return Path(__file__).resolve().parents[2] / "configs"


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, HeteroData]:
    r"""The model of a ``dreamgeo train`` run folder with its best epoch's weights,
    rebuilt on its data from the model, hyper-parameters and data source stored in the
    checkpoint."""
    from dreamgeo.datasets.source import DataSource, load_source
    from dreamgeo.models import get_model
    from dreamgeo.train.trainer import CHECKPOINT_NAME

    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        raise CommandLineError(f"{path} does not exist: give the --out-dir of a train run")
    state = torch.load(path, map_location="cpu", weights_only=False)
    run_info = state["run_info"]
    if "hparams" not in run_info:
        raise CommandLineError(
            f"{path} was written by an older dreamgeo (no stored hyper-parameters); retrain it"
        )
    source = DataSource(**run_info["source"])
    data = load_source(source, run_info.get("cache_dir"))
    info = get_model(run_info["model"])
    cache_dir = default_cache_dir(source.root, run_info.get("cache_dir"))
    model = info.build(
        data, run_info["hparams"], **{**run_info["options"], "graph_cache_dir": cache_dir}
    )
    model.load_state_dict(state["best"]["state"] or state["model"])
    return model, data
