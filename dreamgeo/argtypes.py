r"""Argument types shared by every command-line parser of dreamgeo: each turns the text
of one flag into a value or raises :class:`argparse.ArgumentTypeError` with a message
that says what was expected."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = [
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "probability",
    "existing_path",
    "name_list",
    "int_list",
]


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def positive_int(text: str) -> int:
    r"""An integer :math:`> 0`."""
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def non_negative_int(text: str) -> int:
    r"""An integer :math:`\geq 0`."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    r"""A finite number :math:`\geq 0`."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    r"""A finite number :math:`> 0`."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def probability(text: str) -> float:
    r"""A number in :math:`[0, 1]`."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def existing_path(text: str) -> Path:
    r"""A path that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def name_list(text: str) -> list[str]:
    r"""Comma-separated names, blanks dropped: ``"a, b"`` → ``["a", "b"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def int_list(text: str) -> list[int]:
    r"""Comma-separated integers: ``"0,1,2"`` → ``[0, 1, 2]``."""
    try:
        return [int(part) for part in name_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2, got '{text}'") from None
