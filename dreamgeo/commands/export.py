r"""``dreamgeo export``: a trained run's best epoch out of the library, as an export
folder (user and item representations, original ids, seen items, a FAISS item index
with its measured recall, and a manifest); see :mod:`dreamgeo.serve`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dreamgeo.argtypes import positive_int
from dreamgeo.commands.common import CommandLineError, load_run

__all__ = [
    "add_export_parser",
    "add_model_arguments",
    "check_export_matches_run",
    "add_index_arguments",
    "export_run",
    "index_options",
    "run_export",
    "run_record",
]


def add_model_arguments(parser: argparse.ArgumentParser, run_help: str) -> None:
    r"""``--run-dir`` and ``--export``, the model of ``recommend`` and ``serve``."""
    group = parser.add_argument_group(
        "model (one of, or both: the export is used once its model and data checksum "
        "match the run's)"
    )
    group.add_argument("--run-dir", metavar="RUN", default=None, help=run_help)
    group.add_argument(
        "--export", metavar="DIR", default=None, help="an export folder of dreamgeo export"
    )


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    r"""The item-index flags shared by ``export``, ``recommend`` and ``serve``."""
    from dreamgeo.serve import INDEX_KINDS

    group = parser.add_argument_group("item index (FAISS, inner product)")
    group.add_argument(
        "--index",
        choices=INDEX_KINDS,
        default="flat",
        help="flat: exact (IndexFlatIP); ivf or hnsw: approximate, for large catalogues, "
        "with their recall@K against exact measured and written in the manifest "
        "(default: flat)",
    )
    group.add_argument("--nlist", type=positive_int, default=None, help="IVF lists (sqrt N)")
    group.add_argument(
        "--nprobe", type=positive_int, default=None, help="IVF lists probed (max(8, nlist/8))"
    )
    group.add_argument("--hnsw-m", type=positive_int, default=32, help="HNSW links per node")
    group.add_argument("--ef-search", type=positive_int, default=128, help="HNSW search beam")
    group.add_argument(
        "--recall-k", type=positive_int, default=20, help="K of the recall check (default 20)"
    )
    group.add_argument(
        "--recall-sample",
        type=positive_int,
        default=1000,
        help="users whose representations are the recall queries (default 1000)",
    )


def index_options(args: argparse.Namespace) -> dict[str, Any]:
    r"""The :func:`dreamgeo.serve.export_model` arguments of the index flags."""
    options = {"hnsw_m": args.hnsw_m, "ef_search": args.ef_search}
    if args.nlist is not None:
        options["nlist"] = args.nlist
    if args.nprobe is not None:
        options["nprobe"] = args.nprobe
    return {
        "index": args.index,
        "index_options": options,
        "recall_k": args.recall_k,
        "recall_sample": args.recall_sample,
    }


def run_record(run_dir: str | Path) -> dict[str, Any]:
    r"""The ``run.json`` of a train run folder (model, data checksum,
    hyper-parameters, version)."""
    from dreamgeo.train.run_dir import RUN_RECORD

    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        raise CommandLineError(f"{path} does not exist: give the --out-dir of a train run")
    return json.loads(path.read_text(encoding="utf-8"))


def _checkpoint_facts(run_dir: Path) -> dict[str, Any]:
    r"""The data source and best epoch stored in the run's checkpoint (read lazily:
    the weights are not loaded again)."""
    import torch

    from dreamgeo.train.trainer import CHECKPOINT_NAME

    state = torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=False, mmap=True)
    return {
        "source": state.get("run_info", {}).get("source", {}),
        "best_epoch": state.get("best", {}).get("epoch"),
    }


def export_run(run_dir: str | Path, add_items: str | Path | None = None, **options: Any):
    r"""The :class:`~dreamgeo.serve.ExportedModel` of a train run's best epoch (in
    memory), after checking that the data on disk is still the data it was trained
    on, with the new items of the ``.npz`` :obj:`add_items` appended
    (:func:`~dreamgeo.serve.new_items.read_new_items`); :obj:`options` go to
    :func:`dreamgeo.serve.export_model`."""
    from dreamgeo.datasets.source import data_checksum
    from dreamgeo.serve import export_model

    run_dir = Path(run_dir)
    record = run_record(run_dir)
    model, data = load_run(run_dir)
    checksum = data_checksum(data)
    if record.get("data_checksum") not in (None, checksum):
        raise CommandLineError(
            f"the data of {run_dir} changed since training: checksum {checksum} now, "
            f"{record['data_checksum']} in {run_dir / 'run.json'}; retrain on this data"
        )
    facts = _checkpoint_facts(run_dir)
    source = facts["source"]
    dataset_dir = None
    if source.get("kind") in ("mmrec", "planted"):
        dataset_dir = Path(source["root"]) / source["name"]
    info = {
        "run_dir": str(run_dir.resolve()),
        "best_epoch": facts["best_epoch"],
        "data": record.get("data"),
        "hparams": record.get("hparams", {}),
        "options": record.get("options", {}),
        "trained_with_version": record.get("version"),
    }
    new_items = None
    if add_items is not None:
        from dreamgeo.serve.new_items import read_new_items

        new_items = read_new_items(add_items, data)
    return export_model(
        model.cpu(), data, dataset_dir=dataset_dir, info=info, new_items=new_items, **options
    )


def check_export_matches_run(export_dir: str | Path, manifest: dict, run_dir: str | Path) -> None:
    r"""Refuses an export that was not made from the run :obj:`run_dir`: another
    model, or another data checksum than the run's ``run.json``, naming both."""
    record = run_record(run_dir)
    for key in ("model", "data_checksum"):
        if manifest.get(key) != record.get(key):
            raise CommandLineError(
                f"the export {export_dir} does not match the run {run_dir}: {key} "
                f"{manifest.get(key)!r} in the export, {record.get(key)!r} in the run; "
                "export the run again"
            )


def add_export_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``export`` sub-command to ``dreamgeo``'s sub-parsers."""
    parser = commands.add_parser(
        "export",
        help="write a trained run's representations, ids, seen items and item index",
        description="Writes the best epoch of a train run as an export folder: user and "
        "item representations (float32 .npy; scores are their inner products), original "
        "ids, each user's seen items (CSR), a FAISS inner-product index over the items "
        "and manifest.json (model, data checksum, hyper-parameters, counts, index recall, "
        "file checksums). Written into a temporary folder beside --out and renamed at "
        "the end.",
    )
    parser.add_argument("--run-dir", required=True, metavar="RUN", help="a train run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="the export folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    parser.add_argument(
        "--add-items",
        metavar="FEATURES",
        default=None,
        help="a .npz of new items (array 'ids' plus one float array per modality, named "
        "after it): they join the catalogue with rows from their features alone (DREAM: "
        "its encoders, gates and relation-graph rows to the content-nearest items; other "
        "models: the mean rows of the 10 content-nearest items), recommendable at once",
    )
    add_index_arguments(parser)
    parser.set_defaults(func=run_export)
    return parser


def run_export(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo export`` with the parsed ``args``."""
    from dreamgeo.serve.exported import check_export_target

    check_export_target(Path(args.out).expanduser(), args.overwrite)
    exported = export_run(args.run_dir, add_items=args.add_items, **index_options(args))
    out = exported.save(args.out, overwrite=args.overwrite)
    manifest = exported.manifest
    recall = manifest["index"]["recall"]
    print(
        f"dreamgeo: exported {manifest['model']} ({manifest['num_users']} users, "
        f"{manifest['num_items']} items, {manifest['dim']} dimensions; ids: "
        f"{manifest['ids']['users']} / {manifest['ids']['items']}) to {out}; "
        f"{manifest['index']['kind']} index recall@{recall['k']} {recall['value']:.4f} "
        f"on {recall['queries']} users"
    )
    if manifest.get("added_items"):
        added = manifest["added_items"]
        print(f"dreamgeo: {added['count']} new items added by their features ({added['method']})")
    return 0
