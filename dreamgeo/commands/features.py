r"""``dreamgeo features``: writes item text and image features (``<modality>_feat.npy``)
into a dataset folder in the MMRec layout (see
:mod:`dreamgeo.datasets.features`)."""

from __future__ import annotations

import argparse

from dreamgeo.argtypes import name_list, positive_int
from dreamgeo.commands.common import CommandLineError

__all__ = ["add_features_parser", "run_features"]


def add_features_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``features`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.datasets.features_image import DEFAULT_IMAGE_MODEL
    from dreamgeo.datasets.features_text import DEFAULT_TEXT_COLUMNS, DEFAULT_TEXT_MODEL
    from dreamgeo.datasets.features_writer import MISSING_RULES

    parser = commands.add_parser(
        "features",
        help="encode item text (sentence-transformers) and images (CLIP) into <modality>_feat.npy",
        description="Writes ROOT/NAME/<modality>_feat.npy (float32 [num_items, d], "
        "row i = item i) from the items table and id mapping of the dataset folder. "
        "Batched and resumable: rerun a killed run with the same arguments to continue "
        'it. Needs pip install "dreamgeo[features]".',
    )
    parser.add_argument(
        "--dataset", required=True, metavar="NAME", help="dataset name: the folder ROOT/NAME"
    )
    parser.add_argument("--data-root", default="data", metavar="ROOT", help="directory of datasets")
    parser.add_argument(
        "--items",
        default=None,
        metavar="FILE",
        help="items table, JSON lines or CSV/TSV with an id column and the text fields "
        "(default: ROOT/NAME/items.jsonl)",
    )
    parser.add_argument(
        "--mapping",
        default=None,
        metavar="FILE",
        help="id mapping, MMRec's 'asin<TAB>itemID' (default: ROOT/NAME/"
        "i_id_mapping.csv; without one the items table needs an itemID column)",
    )
    parser.add_argument(
        "--id-column",
        default=None,
        metavar="COL",
        help="the items table's original-id column (default: the mapping's, else asin, "
        "parent_asin, original_id, item_id or id)",
    )
    text = parser.add_argument_group("text")
    text.add_argument("--text", action="store_true", help="write text features")
    text.add_argument(
        "--text-model",
        default=DEFAULT_TEXT_MODEL,
        metavar="MODEL",
        help="sentence-transformers model name or local folder (default: %(default)s)",
    )
    text.add_argument(
        "--text-columns",
        type=name_list,
        metavar="COL,COL,...",
        default=list(DEFAULT_TEXT_COLUMNS),
        help="comma-separated item fields joined into the text, as MMRec does "
        "(default: title,brand,categories,description)",
    )
    text.add_argument(
        "--text-name", default="text", metavar="NAME", help="modality name (default: %(default)s)"
    )
    image = parser.add_argument_group("images")
    image.add_argument(
        "--image-dir",
        default=None,
        metavar="DIR",
        help="write image features from the files <original item id>.jpg/.png/... here",
    )
    image.add_argument(
        "--image-model",
        default=DEFAULT_IMAGE_MODEL,
        metavar="MODEL",
        help="CLIP model name or local folder (default: %(default)s)",
    )
    image.add_argument(
        "--image-name", default="image", metavar="NAME", help="modality name (default: %(default)s)"
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="N",
        help="items per batch (default: 64)",
    )
    run.add_argument(
        "--device", default="cpu", metavar="DEVICE", help="cpu, cuda or cuda:N (default: cpu)"
    )
    run.add_argument(
        "--missing",
        choices=MISSING_RULES,
        default="zero",
        help="row of an item without text or image: zero, or the mean of the others "
        "(MMRec's rule for images); listed in <modality>_feat.missing.csv either way "
        "(default: zero)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace existing <modality>_feat.npy"
    )
    run.add_argument(
        "--restart",
        action="store_true",
        help="discard an unfinished run's partial files instead of continuing it",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_features)
    return parser


def run_features(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo features`` with the parsed ``args``."""
    from dreamgeo.datasets.features import extract_item_features

    if not args.text and args.image_dir is None:
        raise CommandLineError("nothing to do: pass --text, --image-dir DIR, or both")
    if args.text and not args.text_columns:
        raise CommandLineError("--text-columns names no column")
    try:
        reports = extract_item_features(
            args.data_root,
            args.dataset,
            text=args.text,
            image_dir=args.image_dir,
            text_model=args.text_model,
            text_columns=args.text_columns,
            image_model=args.image_model,
            items=args.items,
            mapping=args.mapping,
            id_column=args.id_column,
            text_name=args.text_name,
            image_name=args.image_name,
            batch_size=args.batch_size,
            device=args.device,
            overwrite=args.overwrite,
            restart=args.restart,
            missing=args.missing,
            progress=not args.no_progress,
        )
    except (FileExistsError, ImportError) as error:
        raise CommandLineError(str(error)) from None
    for modality, report in reports.items():
        resumed = f", {report.resumed_batches} batches resumed" if report.resumed_batches else ""
        print(
            f"dreamgeo: {modality}: wrote {report.path} [{report.num_items}, {report.dim}]{resumed}"
        )
        if report.missing:
            print(
                f"dreamgeo: {modality}: {len(report.missing)} items without features "
                f"({args.missing} rows), listed in {report.report_path}"
            )
    return 0
