"""Regenerates the ``--help`` blocks of ``docs/cli.md`` from the argument parser.

The flag lists in the CLI reference are never written by hand: each block between

    <!-- BEGIN dreamgeo train --help -->
    ...
    <!-- END dreamgeo train --help -->

is the output of that command's ``--help`` (88 columns wide). Run after changing a flag::

    python docs/gen_cli.py            # rewrite docs/cli.md
    python docs/gen_cli.py --check    # exit 1 if docs/cli.md is out of date

The Sphinx build (``docs/conf.py``) substitutes the same blocks in memory, so the HTML
pages always show the current flags even when the committed file lags behind.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

CLI_PAGE = Path(__file__).resolve().parent / "cli.md"
WIDTH = 88

_BLOCK = re.compile(
    r"(<!-- BEGIN (?P<command>dreamgeo[a-z ]*?) --help -->\n)(?P<body>.*?)"
    r"(<!-- END (?P=command) --help -->)",
    re.DOTALL,
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for sub-commands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def help_text(command: str) -> str:
    r"""The ``--help`` output of ``command`` (``"dreamgeo"`` or ``"dreamgeo NAME"``)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from dreamgeo.commands import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse wraps to the terminal width
    try:
        parser = build_parser()
        words = command.split()[1:]
        for word in words:
            parser = _subparsers(parser)[word]
        return parser.format_help()
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def render(text: str) -> str:
    r"""``text`` (the content of ``cli.md``) with every generated block refreshed."""

    def block(match: re.Match) -> str:
        body = help_text(match["command"]).rstrip("\n")
        return f"{match.group(1)}```text\n{body}\n```\n{match.group(4)}"

    return _BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    old = CLI_PAGE.read_text(encoding="utf-8")
    new = render(old)
    if new == old:
        print(f"{CLI_PAGE.name} is up to date")
        return 0
    if args.check:
        print(f"{CLI_PAGE} is out of date: run python docs/gen_cli.py", file=sys.stderr)
        return 1
    CLI_PAGE.write_text(new, encoding="utf-8")
    print(f"rewrote {CLI_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
