r"""``dreamgeo generate``: writes a planted synthetic dataset in the MMRec format."""

from __future__ import annotations

import argparse

from dreamgeo.argtypes import non_negative_int
from dreamgeo.commands.common import CommandLineError

__all__ = ["add_generate_parser", "run_generate"]


def add_generate_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``generate`` sub-command to ``dreamgeo``'s sub-parsers."""
    parser = commands.add_parser(
        "generate", help="write a planted synthetic dataset in the MMRec format"
    )
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--name", default=None, help="dataset name (default: planted_<preset>)")
    parser.add_argument("--data-seed", type=non_negative_int, default=0)
    parser.set_defaults(func=run_generate)
    return parser


def run_generate(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo generate`` with the parsed ``args``."""
    from dreamgeo.datasets import PLANTED_PRESETS, write_planted

    if args.preset not in PLANTED_PRESETS:
        raise CommandLineError(
            f"unknown preset '{args.preset}'; choose one of {sorted(PLANTED_PRESETS)}"
        )
    path = write_planted(
        args.data_root,
        args.name or f"planted_{args.preset}",
        preset=args.preset,
        seed=args.data_seed,
    )
    print(f"dreamgeo: planted '{args.preset}' dataset in {path}")
    return 0
