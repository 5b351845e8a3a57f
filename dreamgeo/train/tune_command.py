r"""``dreamgeo tune``: tunes one model's declared hyper-parameters with Optuna."""

from __future__ import annotations

import argparse

__all__ = ["add_tune_parser"]


def add_tune_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``tune`` sub-command to ``dreamgeo``'s sub-parsers."""
    parser = commands.add_parser("tune", help="tune a model's hyper-parameters (Optuna)")
    parser.set_defaults(func=lambda args: parser.error("not built yet"))
    return parser
