r"""``dreamgeo prepare``: raw interactions (CSV, TSV, JSON lines, Parquet or
Amazon's review files) and item feature files to a dataset folder in the
MMRec layout (:func:`dreamgeo.datasets.prepare_dataset`)."""

from __future__ import annotations

import argparse

from dreamgeo.argtypes import non_negative_int
from dreamgeo.commands.common import CommandLineError

__all__ = ["add_prepare_parser", "run_prepare", "feature_argument"]


def feature_argument(text: str) -> tuple[str, str]:
    r"""One ``--feature MODALITY=FILE`` value as ``(modality, file)``."""
    modality, sep, path = text.partition("=")
    if not sep or not modality or not path:
        raise argparse.ArgumentTypeError(f"expected MODALITY=FILE, got '{text}'")
    if not modality.isidentifier():
        raise argparse.ArgumentTypeError(
            f"modality '{modality}' must be a Python identifier (e.g. image, text)"
        )
    return modality, path


def add_prepare_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``prepare`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.datasets.prepare import MISSING_FEATURE_RULES
    from dreamgeo.datasets.raw_interactions import INTERACTION_FORMATS
    from dreamgeo.datasets.splits import SPLIT_RULES

    parser = commands.add_parser(
        "prepare",
        help="turn raw interactions (and item feature files) into an MMRec dataset folder",
        description="Reads raw interactions, drops duplicate (user, item) rows (the earliest "
        "kept), keeps the k-core, numbers users and items 0..N-1, splits train/valid/test "
        "and writes ROOT/NAME in the MMRec layout (NAME.inter, u_id_mapping.csv, "
        "i_id_mapping.csv, <modality>_feat.npy, prepare.json); then: dreamgeo train "
        "--dataset NAME --data-root ROOT. See docs/data.md.",
    )
    parser.add_argument(
        "--interactions", required=True, metavar="FILE", help="interaction file (gzipped or not)"
    )
    parser.add_argument(
        "--format",
        choices=INTERACTION_FORMATS,
        default=None,
        help="input format (default: from the file name; Amazon 2018/2023 JSON lines "
        "from their keys)",
    )
    parser.add_argument(
        "--user-col",
        default=None,
        metavar="COL",
        help="user id column (not needed for Amazon formats)",
    )
    parser.add_argument(
        "--item-col",
        default=None,
        metavar="COL",
        help="item id column (not needed for Amazon formats)",
    )
    parser.add_argument(
        "--time-col",
        default=None,
        metavar="COL",
        help="time column (numbers or ISO 8601 date-times)",
    )
    parser.add_argument("--rating-col", default=None, metavar="COL", help="rating column")
    parser.add_argument("--name", required=True, help="dataset name (folder and .inter name)")
    parser.add_argument(
        "--out", required=True, metavar="ROOT", help="data root to write ROOT/NAME into"
    )
    parser.add_argument(
        "--kcore",
        type=non_negative_int,
        metavar="K",
        default=5,
        help="keep users and items with at least K interactions, iterated; 0 or 1: off "
        "(default: 5)",
    )
    parser.add_argument(
        "--split",
        choices=SPLIT_RULES,
        default="mmrec",
        help="mmrec: MMRec's seeded per-user random split; loo: last interaction to test, "
        "second last to valid; temporal: global time cut at the 80%%/90%% quantiles "
        "(default: mmrec)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        metavar="SEED",
        help="seed of the mmrec split (default: 0)",
    )
    parser.add_argument(
        "--feature",
        type=feature_argument,
        action="append",
        default=[],
        metavar="MODALITY=FILE",
        help="item features keyed by original item id (.npz with ids and features, "
        "CSV/TSV/Parquet of id + vector columns, or Amazon 2014 image_features_*.b); "
        "written as MODALITY_feat.npy; repeat per modality",
    )
    parser.add_argument(
        "--missing-features",
        choices=MISSING_FEATURE_RULES,
        default="drop",
        help="items without a feature row: drop them before the k-core, or write a zero "
        "row (listed in missing_features.tsv) (default: drop)",
    )
    parser.add_argument(
        "--meta",
        default=None,
        metavar="FILE",
        help="item metadata (e.g. Amazon meta_<Category>.json.gz) written to items.jsonl",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing ROOT/NAME folder"
    )
    parser.set_defaults(func=run_prepare)
    return parser


def run_prepare(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo prepare`` with the parsed ``args``."""
    from dreamgeo.datasets.prepare import prepare_dataset

    features: dict[str, str] = {}
    for modality, path in args.feature:
        if modality in features:
            raise CommandLineError(f"--feature {modality}=... is given twice")
        features[modality] = path
    try:
        summary = prepare_dataset(
            args.interactions,
            args.name,
            args.out,
            user_col=args.user_col,
            item_col=args.item_col,
            time_col=args.time_col,
            rating_col=args.rating_col,
            format=args.format,
            kcore=args.kcore,
            split=args.split,
            seed=args.seed,
            features=features,
            missing_features=args.missing_features,
            meta=args.meta,
            overwrite=args.overwrite,
        )
    except FileExistsError as error:
        raise CommandLineError(f"{error}") from None
    except ImportError as error:
        raise CommandLineError(f"{error}") from None
    print(summary.format())
    print(f"dreamgeo: train with: dreamgeo train --dataset {args.name} --data-root {args.out}")
    return 0
