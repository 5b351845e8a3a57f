r"""``dreamgeo serve``: an export (or a train run, exported in memory) as an HTTP
JSON service on FastAPI, run by uvicorn (see :func:`dreamgeo.serve.create_app`)."""

from __future__ import annotations

import argparse

from dreamgeo.argtypes import positive_int
from dreamgeo.commands.export import add_index_arguments, add_model_arguments
from dreamgeo.commands.recommend import open_export

__all__ = ["add_serve_parser", "build_app", "run_serve"]


def add_serve_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``serve`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.serve import SEARCH_METHODS

    parser = commands.add_parser(
        "serve",
        help="answer top-K queries over HTTP (FastAPI + uvicorn) from an export or a run",
        description="Serves GET /recommend?user=ID&k=20, POST /recommend (a batch), "
        "GET /similar?item=ID&k=20, GET /health and GET /metadata as JSON, with original "
        'ids. Needs the serve extra: pip install "dreamgeo[serve]".',
    )
    add_model_arguments(parser, "a train run folder (exported in memory)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument("--port", type=positive_int, default=8000, help="(default: 8000)")
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=1000,
        help="most users in one POST /recommend (default: 1000)",
    )
    parser.add_argument(
        "--search",
        choices=SEARCH_METHODS,
        default="index",
        help="index: the export's FAISS index (exact when flat); matmul: an exact "
        "product with every item (default: index)",
    )
    parser.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="uvicorn's log level (default: info)",
    )
    add_index_arguments(parser)
    parser.set_defaults(func=run_serve)
    return parser


def build_app(args: argparse.Namespace):
    r"""The FastAPI application of the parsed ``args`` (the export read and checked)."""
    from dreamgeo.commands.common import CommandLineError
    from dreamgeo.serve import create_app
    from dreamgeo.serve.service import require_serve_packages

    try:
        require_serve_packages()
    except ImportError as error:
        raise CommandLineError(str(error)) from None
    exported = open_export(args, in_memory=True)
    return create_app(exported, max_batch=args.max_batch, method=args.search), exported


def run_serve(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo serve`` with the parsed ``args`` until interrupted."""
    app, exported = build_app(args)
    import uvicorn

    manifest = exported.manifest
    print(
        f"dreamgeo: serving {manifest.get('model')} ({exported.num_users} users, "
        f"{exported.num_items} items, {manifest['index']['kind']} index) on "
        f"http://{args.host}:{args.port} (GET /recommend?user=ID&k=20, POST /recommend, "
        "GET /similar?item=ID&k=20, GET /health, GET /metadata)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
