r"""The ``dreamgeo`` command: ``train``, ``tune``, ``experiment``, ``recommend`` and
``generate``.

``python examples/train_amazon.py ...`` is ``dreamgeo train ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dreamgeo.commands.common import CommandLineError
from dreamgeo.commands.experiment import add_experiment_parser
from dreamgeo.commands.export import add_export_parser
from dreamgeo.commands.features import add_features_parser
from dreamgeo.commands.generate import add_generate_parser
from dreamgeo.commands.prepare import add_prepare_parser
from dreamgeo.commands.recommend import add_recommend_parser
from dreamgeo.commands.serve import add_serve_parser
from dreamgeo.commands.train import add_train_parser
from dreamgeo.commands.tune import add_tune_parser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    r"""The argument parser of the ``dreamgeo`` command."""
    parser = argparse.ArgumentParser(
        prog="dreamgeo", description="DREAM and multimodal recommendation on PyG"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_parser(commands)
    add_recommend_parser(commands)
    add_generate_parser(commands)
    add_tune_parser(commands)
    add_experiment_parser(commands)
    add_features_parser(commands)
    add_prepare_parser(commands)
    add_export_parser(commands)
    add_serve_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    r"""Entry point of the ``dreamgeo`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    from dreamgeo.config import join_negative_values

    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    from dreamgeo.train.run_dir import RunDirError

    try:
        return args.func(args)
    except (CommandLineError, FileNotFoundError, ValueError, RunDirError) as error:
        parser.exit(2, f"dreamgeo {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
