r"""The ``dreamgeo`` command line, one module per verb: :mod:`~dreamgeo.commands.train`,
:mod:`~dreamgeo.commands.tune`, :mod:`~dreamgeo.commands.experiment`,
:mod:`~dreamgeo.commands.recommend` and :mod:`~dreamgeo.commands.generate`, what they
share in :mod:`~dreamgeo.commands.common`, and :func:`main` / :func:`build_parser` in
:mod:`~dreamgeo.commands.main`.

This package is the top floor of dreamgeo: it imports the library, and no other module of
dreamgeo imports it. ``python -m dreamgeo.commands ARGS`` is ``dreamgeo ARGS``.
"""

from dreamgeo.commands.common import (
    CommandLineError,
    configs_root,
    default_cache_dir,
    load_data,
    load_run,
)
from dreamgeo.commands.main import build_parser, main
from dreamgeo.commands.train import model_from_arguments

__all__ = [
    "main",
    "build_parser",
    "CommandLineError",
    "load_data",
    "load_run",
    "model_from_arguments",
    "default_cache_dir",
    "configs_root",
]
