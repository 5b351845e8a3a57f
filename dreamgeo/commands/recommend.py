r"""``dreamgeo recommend``: each user's top-K unseen items of a trained run or an
export, for every user (or the users of a file) in bounded memory: users in chunks,
items by an exact chunked matrix product (the ranking
:meth:`dreamgeo.train.FullRankEvaluator.top_items` computes) or through the export's
FAISS index, training items excluded, original ids out (see
:func:`dreamgeo.serve.recommend_batches`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dreamgeo.argtypes import positive_int
from dreamgeo.commands.common import CommandLineError
from dreamgeo.commands.export import (
    add_index_arguments,
    add_model_arguments,
    check_export_matches_run,
    export_run,
    index_options,
)

__all__ = ["add_recommend_parser", "run_recommend", "read_user_file", "open_export"]

_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".tsv": "tsv"}
_HEADER_NAMES = {"user", "user_id", "userid", "users"}


def add_recommend_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``recommend`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.serve import OUTPUT_FORMATS, SEARCH_METHODS

    parser = commands.add_parser(
        "recommend",
        help="write each user's top-K unseen items from a trained run or an export",
        description="Writes the top-K unseen items of every user (or of --users) of a "
        "train run (--run-dir) or an export (--export), with original ids, in chunks of "
        "users: peak memory grows with --batch-size, not with the number of users.",
    )
    add_model_arguments(parser, "a train run folder (exported in memory)")
    parser.add_argument("--top-k", type=positive_int, default=20)
    parser.add_argument(
        "--output",
        required=True,
        metavar="FILE",
        help="the recommendations (written to a temporary file beside it, renamed at the end)",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="tsv: userID <tab> item ids best first, comma-separated; csv and parquet: "
        "user_id,rank,item_id,score rows; jsonl: one object per user (default: from the "
        "--output suffix, else tsv)",
    )
    parser.add_argument(
        "--users",
        metavar="FILE",
        default=None,
        help="only these users: one original user id per line (an optional header line "
        "'user_id'); an unknown id is an error naming it (default: every user)",
    )
    parser.add_argument(
        "--search",
        choices=SEARCH_METHODS,
        default="matmul",
        help="matmul: exact chunked product with every item; index: the FAISS item "
        "index (exact for --index flat) (default: matmul)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=1024, help="users per chunk (default 1024)"
    )
    parser.add_argument(
        "--item-batch-size",
        type=positive_int,
        default=None,
        help="items per product with --search matmul (default: all items)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    add_index_arguments(parser)
    parser.set_defaults(func=run_recommend)
    return parser


def open_export(args: argparse.Namespace, in_memory: bool = False):
    r"""The :class:`~dreamgeo.serve.ExportedModel` of ``--export`` (checked against
    ``--run-dir`` when both are given) or of ``--run-dir`` (exported in memory)."""
    from dreamgeo.serve import load_export

    if args.export is None and args.run_dir is None:
        raise CommandLineError("give --run-dir RUN or --export DIR")
    if args.export is None:
        return export_run(args.run_dir, **index_options(args))
    exported = load_export(args.export, in_memory=in_memory)
    if args.run_dir is not None:
        check_export_matches_run(args.export, exported.manifest, args.run_dir)
    return exported


def read_user_file(path: str | Path, exported) -> np.ndarray:
    r"""The internal ids of the users listed in :obj:`path` (one original id per line,
    blank lines skipped, an optional first line naming the column).

    Raises:
        CommandLineError: Naming the unknown ids and their lines, or for a file
            without users.
    """
    path = Path(path)
    if not path.exists():
        raise CommandLineError(f"--users {path} does not exist")
    lines = [
        (number, line.strip())
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip()
    ]
    internal = exported.user_map.find([text for _, text in lines])
    if lines and internal[0] < 0 and lines[0][1].lower() in _HEADER_NAMES:
        lines, internal = lines[1:], internal[1:]
    unknown = [(number, text) for (number, text), i in zip(lines, internal) if i < 0]
    if unknown:
        shown = ", ".join(f"{text!r} (line {number})" for number, text in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise CommandLineError(
            f"--users {path}: unknown user id {shown}{more}; not among the "
            f"{exported.num_users} users of the model"
        )
    if not lines:
        raise CommandLineError(f"--users {path} lists no user")
    return internal


def run_recommend(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo recommend`` with the parsed ``args``."""
    from dreamgeo.serve import RecommendationWriter, recommend_batches
    from dreamgeo.train import resolve_device

    output = Path(args.output)
    output_format = args.format or _SUFFIX_FORMATS.get(output.suffix.lower(), "tsv")
    exported = open_export(args)
    users = None if args.users is None else read_user_file(args.users, exported)
    top_k = min(args.top_k, exported.num_items)
    batches = recommend_batches(
        exported,
        top_k,
        users,
        batch_size=args.batch_size,
        method=args.search,
        item_batch_size=args.item_batch_size,
        device=resolve_device(args.device),
    )
    with RecommendationWriter(output, output_format) as writer:
        for batch in batches:
            writer.write(batch.user_ids, exported.item_map.to_original(batch.items), batch.scores)
    print(
        f"dreamgeo: wrote the top-{top_k} unseen items of {writer.rows} users to {output} "
        f"({output_format})"
    )
    return 0
