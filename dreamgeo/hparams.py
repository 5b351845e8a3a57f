r"""Hyper-parameter declarations: each model states once, next to its code, the name,
type, default, valid range and search space of every hyper-parameter it takes. The
command line (flags, ``--set``, ``--config``, ``--list-hparams``), the config files, the
tuner and the docs are all derived from these declarations."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HParam", "HParams", "HParamError", "MODEL", "TRAIN"]

#: :attr:`HParam.target` of a model constructor argument.
MODEL = "model"
#: :attr:`HParam.target` of a training-protocol setting (:class:`~dreamgeo.train.TrainConfig`).
TRAIN = "train"

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class HParamError(ValueError):
    r"""A hyper-parameter value or key that cannot be used; the message names the key,
    where it came from and what would be accepted."""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class HParam:
    r"""One declared hyper-parameter.

    Args:
        name (str): The constructor (or :class:`~dreamgeo.train.TrainConfig`) argument.
        type (type): :obj:`int`, :obj:`float`, :obj:`bool` or :obj:`str`.
        default (Any): The value used when none is given.
        help (str, optional): One line saying what it does. (default: :obj:`""`)
        low (float, optional): Smallest valid value. (default: :obj:`None`, unbounded)
        high (float, optional): Largest valid value. (default: :obj:`None`, unbounded)
        low_open (bool, optional): :obj:`low` itself is not valid. (default: :obj:`False`)
        high_open (bool, optional): :obj:`high` itself is not valid.
            (default: :obj:`False`)
        choices (Sequence, optional): The valid values of a :obj:`str` (or other)
            hyper-parameter. (default: :obj:`None`)
        grid (Sequence, optional): The values a grid search tries (MMRec's published
            grid where one exists). (default: :obj:`None`, not searched by a grid)
        search (tuple[float, float], optional): The interval TPE searches instead of the
            grid values. (default: :obj:`None`: TPE picks among :obj:`grid`)
        log (bool, optional): Search :obj:`search` on a log scale. (default: :obj:`False`)
        aliases (Sequence[str], optional): Other accepted key names, e.g. MMRec's
            ``n_layers`` for ``num_layers``. (default: :obj:`()`)
        target (str, optional): :data:`MODEL` (a model argument) or :data:`TRAIN` (a
            training-protocol setting). (default: :data:`MODEL`)
        nullable (bool, optional): :obj:`None` (``none`` on the command line) is a valid
            value. (default: :obj:`False`)
        requires (tuple[str, Any], optional): ``(name, value)``: this hyper-parameter
            matters only when hyper-parameter ``name`` has ``value`` (e.g. BMA's weights
            only with ``bma=True``); a tuner does not search it otherwise.
            (default: :obj:`None`)
        pattern (str, optional): A regular expression a :obj:`str` value must match in
            full, for open sets of values (e.g. ``no_<m>_encoder`` for any modality
            ``m``). (default: :obj:`None`)
        details (str, optional): More than :obj:`help`'s one line, for the API
            documentation only (e.g. which reading of the paper a choice is).
            (default: :obj:`""`)
    """

    name: str
    type: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    grid: tuple | None = None
    search: tuple[float, float] | None = None
    log: bool = False
    aliases: tuple[str, ...] = ()
    target: str = MODEL
    nullable: bool = False
    requires: tuple[str, Any] | None = None
    pattern: str | None = None
    details: str = ""

    def __post_init__(self):
        if self.type not in (int, float, bool, str):
            raise TypeError(f"HParam {self.name}: type must be int, float, bool or str")
        if self.target not in (MODEL, TRAIN):
            raise ValueError(f"HParam {self.name}: target must be '{MODEL}' or '{TRAIN}'")
        for name in ("choices", "grid", "aliases"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        # a declaration whose own default or grid is invalid is a bug in the model file
        for value in (self.default, *(self.grid or ())):
            self.check(value, "declaration")
        if self.search is not None:
            low, high = self.search
            self.check(self.type(low), "declaration")
            self.check(self.type(high), "declaration")
            if not low < high or (self.log and low <= 0):
                raise ValueError(f"HParam {self.name}: bad search interval {self.search}")

    # ------------------------------------------------------------------ values
    def range_text(self) -> str:
        r"""The valid values in words, e.g. ``> 0``, ``[0, 1)``, ``{exact, ivf}``."""
        if self.choices is not None:
            return "{" + ", ".join(_format(c) for c in self.choices) + "}"
        if self.pattern is not None:
            return f"matching {self.pattern}"
        if self.type is bool:
            return "true/false"
        if self.low is None and self.high is None:
            return "any"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_format(self.low)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_format(self.high)}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{left}{_format(self.low)}, {_format(self.high)}{right}"

    def space_text(self) -> str:
        r"""The search space in words: grid values and/or TPE's interval, or ``fixed``."""
        parts = []
        if self.grid is not None:
            parts.append(f"grid {_format(self.grid)}")
        if self.search is not None:
            low, high = self.search
            parts.append(f"tpe {'log-' if self.log else ''}[{_format(low)}, {_format(high)}]")
        return "; ".join(parts) or "fixed"

    @property
    def searched(self) -> bool:
        r"""Whether a tuner varies this hyper-parameter."""
        return self.grid is not None or self.search is not None

    def parse(self, value: Any, source: str) -> Any:
        r"""``value`` (text from the command line, or a YAML / Python value) as this
        hyper-parameter's type, checked against its range; raises
        :class:`HParamError` naming the key and :obj:`source` otherwise."""
        if isinstance(value, str) and self.type is not str:
            text = value.strip()
            if self.nullable and text.lower() in ("none", "null"):
                return self.check(None, source)
            if self.type is bool:
                if text.lower() in _TRUE:
                    value = True
                elif text.lower() in _FALSE:
                    value = False
                else:
                    raise HParamError(f"{source}: {self.name} must be true or false, got '{text}'")
            else:
                try:
                    value = self.type(float(text)) if self.type is float else int(text)
                except ValueError:
                    raise HParamError(
                        f"{source}: {self.name} must be {self._type_name()}, got '{text}'"
                    ) from None
        return self.check(value, source)

    def _type_name(self) -> str:
        return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[
            self.type
        ]

    def check(self, value: Any, source: str) -> Any:
        r"""``value`` if it has the right type (an :obj:`int` is accepted for a
        :obj:`float`) and lies in the valid range, else :class:`HParamError`."""
        if value is None:
            if self.nullable:
                return None
            raise HParamError(f"{source}: {self.name} must be {self._type_name()}, got none")
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise HParamError(
                f"{source}: {self.name} must be {self._type_name()}, got {value!r} "
                f"({type(value).__name__})"
            )
        if self.choices is not None and value not in self.choices:
            raise HParamError(
                f"{source}: {self.name} must be one of {self.range_text()}, got {_format(value)}"
            )
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            raise HParamError(
                f"{source}: {self.name} must be one of {self.pattern.replace('|', ', ')}, "
                f"got {_format(value)}"
            )
        if self.type in (int, float):
            if self.type is float and not math.isfinite(value):
                raise HParamError(f"{source}: {self.name} must be finite, got {value}")
            too_low = self.low is not None and (
                value < self.low or (self.low_open and value == self.low)
            )
            too_high = self.high is not None and (
                value > self.high or (self.high_open and value == self.high)
            )
            if too_low or too_high:
                raise HParamError(
                    f"{source}: {self.name} must be {self.range_text()}, got {_format(value)}"
                )
        return value

    def suggest(self, trial: Any, sampler: str) -> Any:
        r"""A value for an :mod:`optuna` ``trial``: the grid values for the grid sampler,
        the :obj:`search` interval (else the grid values) for TPE."""
        if sampler == "tpe" and self.search is not None:
            low, high = self.search
            if self.type is int:
                return trial.suggest_int(self.name, int(low), int(high), log=self.log)
            return trial.suggest_float(self.name, float(low), float(high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.grid))

    def in_space(self, value: Any, sampler: str) -> bool:
        r"""Whether :meth:`suggest` with this :obj:`sampler` can return :obj:`value`."""
        if sampler == "tpe" and self.search is not None:
            low, high = self.search
            return value is not None and low <= value <= high
        return self.grid is not None and value in self.grid


@dataclass(frozen=True)
class HParams(Mapping[str, HParam]):
    r"""An ordered set of :class:`HParam` by name (a model's whole declaration).

    ``a + b`` is ``a`` with ``b``'s declarations added, those of ``b`` replacing
    ``a``'s of the same name (how a model overrides a common default or grid).

    Args:
        params (Iterable[HParam]): The declarations.
    """

    params: tuple[HParam, ...] = field(default_factory=tuple)

    def __init__(self, params: Iterable[HParam] = ()):
        ordered: dict[str, HParam] = {}
        for param in params:
            ordered[param.name] = param
        object.__setattr__(self, "params", tuple(ordered.values()))
        aliases: dict[str, str] = {}
        for param in self.params:
            for alias in param.aliases:
                if alias in ordered and alias != param.name:
                    continue  # the real name wins over another parameter's alias
                aliases[alias] = param.name
        object.__setattr__(self, "_aliases", aliases)

    def __getitem__(self, name: str) -> HParam:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (param.name for param in self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __add__(self, other: HParams | Iterable[HParam]) -> HParams:
        return HParams([*self.params, *(other.params if isinstance(other, HParams) else other)])

    def canonical(self, key: str) -> str | None:
        r"""The declared name of ``key`` (itself, or the name it is an alias of), or
        :obj:`None` when it is neither."""
        key = key.strip().lstrip("-").replace("-", "_")
        if key in self:
            return key
        return self._aliases.get(key)

    def defaults(self, target: str | None = None) -> dict[str, Any]:
        r"""Every declared default (of one :obj:`target` only, if given)."""
        return {p.name: p.default for p in self.params if target in (None, p.target)}

    def split(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        r"""``values`` divided into model arguments and training settings."""
        model = {k: v for k, v in values.items() if self[k].target == MODEL}
        train = {k: v for k, v in values.items() if self[k].target == TRAIN}
        return model, train

    def searched(
        self, sampler: str = "tpe", values: Mapping[str, Any] | None = None
    ) -> list[HParam]:
        r"""The hyper-parameters a tuner with this :obj:`sampler` varies, given the other
        ``values`` (those whose :attr:`HParam.requires` is not met are left out; without
        ``values``, the declared defaults decide)."""
        values = self.defaults() if values is None else values
        active = [
            p
            for p in self.params
            if p.requires is None or values.get(p.requires[0]) == p.requires[1]
        ]
        if sampler == "grid":
            return [p for p in active if p.grid is not None]
        return [p for p in active if p.searched]

    def grid_space(self, values: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        r"""The grid sampler's search space given the other ``values``: name to grid
        values."""
        return {p.name: list(p.grid) for p in self.searched("grid", values)}

    def grid_size(self, values: Mapping[str, Any] | None = None) -> int:
        r"""The number of points of :meth:`grid_space`."""
        return math.prod(len(v) for v in self.grid_space(values).values())

    def resolve(self, given: Mapping[str, Any], source: str) -> dict[str, Any]:
        r"""Every declared value: the defaults, overridden by ``given`` (declared names
        or aliases; values checked, text parsed). Raises :class:`HParamError` naming
        :obj:`source` for an undeclared key or a bad value."""
        values = self.defaults()
        for key, value in given.items():
            name = self.canonical(str(key))
            if name is None:
                raise HParamError(
                    f"{source}: unknown hyper-parameter '{key}'; it takes: {', '.join(self)}"
                )
            values[name] = self[name].parse(value, source)
        return values

    def pick(self, values: Mapping[str, Any]) -> dict[str, Any]:
        r"""The entries of ``values`` that are declared here (a part's own share of a
        model's values)."""
        return {name: values[name] for name in self if name in values}

    def docstring(self, indent: int = 8) -> str:
        r"""The declarations as the ``Args:`` entries of a PyG-style docstring
        (name, type, help, details, default), for documentation derived from them."""
        pad = " " * indent
        lines = []
        for param in self.params:
            text = param.help[:1].upper() + param.help[1:]
            if param.details:
                text += ". " + param.details
            lines.append(
                f"{pad}{param.name} ({param.type.__name__}, optional): {text}. "
                f"Valid: {param.range_text()}. (default: :obj:`{_format(param.default)}`)"
            )
        return "\n".join(lines)

    def table(self, names: Sequence[str] | None = None) -> str:
        r"""The declarations as a markdown table (name, type, default, range, search
        space, aliases, help)."""
        rows = [
            "| name | type | default | range | search space | aliases | what |",
            "|---|---|---|---|---|---|---|",
        ]
        for param in self.params:
            if names is not None and param.name not in names:
                continue
            rows.append(
                f"| {param.name} | {param.type.__name__} | {_format(param.default)} | "
                f"{param.range_text()} | {param.space_text()} | "
                f"{', '.join(param.aliases) or ''} | {param.help} |"
            )
        return "\n".join(rows)
