r"""Run configurations: hyper-parameter values from YAML config files, ``--set
KEY=VALUE`` and the per-hyper-parameter flags of the command line, checked against the
chosen model's declaration (:mod:`dreamgeo.hparams`) so that no key is ever silently
ignored.

A config file is a flat YAML mapping, MMRec's key names accepted where they mean the
same thing::

    model: freedom        # optional; must agree with --model when both are given
    dropout: 0.9
    reg_weight: 1.0e-4    # MMRec's name of FREEDOM's modal_loss_weight
    learning_rate: 0.001  # MMRec's name of lr
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dreamgeo.hparams import HParamError
from dreamgeo.models import MODELS, ModelInfo, get_model

__all__ = [
    "ConfigError",
    "join_negative_values",
    "load_config",
    "write_config",
    "parse_assignments",
    "add_hparam_arguments",
    "given_hparam_flags",
    "resolve_run",
    "hparam_flag_names",
]


class ConfigError(HParamError):
    r"""A config file or ``--set`` assignment that cannot be used."""


def load_config(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    r"""The model named in the YAML config file at ``path`` (or :obj:`None`) and its
    other keys.

    Raises:
        ConfigError: When the file is missing, is not YAML or is not a flat mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path}: not valid YAML ({error})") from None
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"--config {path}: expected a mapping of hyper-parameter names to values, got "
            f"{type(content).__name__}"
        )
    nested = [key for key, value in content.items() if isinstance(value, (dict, list))]
    if nested:
        raise ConfigError(
            f"--config {path}: {', '.join(map(str, nested))} must be single values (the file "
            "is a flat mapping like 'num_layers: 2')"
        )
    model = content.pop("model", None)
    if model is not None and not isinstance(model, str):
        raise ConfigError(f"--config {path}: model must be a name, got {model!r}")
    return model, {str(key): value for key, value in content.items()}


def write_config(
    path: str | Path,
    model: str,
    values: Mapping[str, Any],
    comments: Sequence[str] = (),
) -> Path:
    r"""Writes a config file that :func:`load_config` (and ``dreamgeo train --config``)
    reads back to the same ``model`` and ``values``; ``comments`` become ``#`` lines at
    its top."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comments)
    body = yaml.safe_dump({"model": model, **dict(values)}, sort_keys=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(path)
    return path


def parse_assignments(assignments: Sequence[str] | None) -> dict[str, str]:
    r"""``["key=value", ...]`` (the ``--set`` flags) as a mapping of text values.

    Raises:
        ConfigError: For an item without ``=`` or a key given twice.
    """
    values: dict[str, str] = {}
    for item in assignments or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, like num_layers=3")
        if key in values:
            raise ConfigError(f"--set: {key} is given twice")
        values[key] = value.strip()
    return values


def _union() -> dict[str, list[ModelInfo]]:
    r"""Every declared hyper-parameter name to the models that declare it."""
    names: dict[str, list[ModelInfo]] = {}
    for info in MODELS.values():
        for name in info.hparams:
            names.setdefault(name, []).append(info)
    return names


def hparam_flag_names() -> list[str]:
    r"""The ``dest`` of every per-hyper-parameter flag of :func:`add_hparam_arguments`."""
    return list(_union())


def add_hparam_arguments(parser: argparse.ArgumentParser) -> None:
    r"""Adds ``--config``, ``--set`` and one flag per declared hyper-parameter of any
    model (``--num-layers``, ``--knn-k``, ...) to ``parser``. Flags default to
    :obj:`None` (not given); :func:`resolve_run` checks the given ones against the
    chosen model."""
    group = parser.add_argument_group(
        "hyper-parameters",
        "each model's own are listed by --list-hparams; a flag the chosen model does not "
        "take is an error. Precedence: declared default < --config < --set < flag.",
    )
    group.add_argument(
        "--config",
        default=None,
        help="YAML file of hyper-parameters (flat mapping; MMRec key names accepted), e.g. "
        "configs/scientific/dream.yaml",
    )
    group.add_argument(
        "--set",
        dest="assignments",
        action="append",
        metavar="KEY=VALUE",
        default=None,
        help="set one hyper-parameter (repeatable), e.g. --set knn_k=5",
    )
    for name, infos in _union().items():
        first = infos[0].hparams[name]
        owners = "all models" if len(infos) == len(MODELS) else ", ".join(i.name for i in infos)
        kwargs: dict[str, Any] = {"default": None, "dest": name, "metavar": "VALUE"}
        if first.type is bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        group.add_argument(
            f"--{name.replace('_', '-')}",
            help=f"{first.help} ({owners})",
            **kwargs,
        )


def given_hparam_flags(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    r"""The per-hyper-parameter flags that were given (not :obj:`None`) in ``args``."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {name: values[name] for name in hparam_flag_names() if values.get(name) is not None}


def resolve_run(
    model: str | None,
    config: str | Path | None = None,
    assignments: Sequence[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    default_model: str = "dream",
) -> tuple[ModelInfo, dict[str, Any]]:
    r"""The model and every hyper-parameter value of a run: the declared defaults, then
    the config file, then ``--set``, then the flags.

    Args:
        model (str, optional): ``--model`` (:obj:`None` when not given).
        config (str or Path, optional): ``--config`` file. (default: :obj:`None`)
        assignments (Sequence[str], optional): ``--set`` items. (default: :obj:`None`)
        flags (Mapping[str, Any], optional): Given per-hyper-parameter flags.
            (default: :obj:`None`)
        default_model (str, optional): The model when neither :obj:`model` nor the
            config names one. (default: :obj:`"dream"`)

    Raises:
        HParamError: For any key the model does not take, or a bad value, naming it.
    """
    sources: list[tuple[str, Mapping[str, Any]]] = []
    config_model = None
    if config is not None:
        config_model, values = load_config(config)
        sources.append((f"--config {config}", values))
        if model is not None and config_model is not None and model != config_model:
            raise ConfigError(
                f"--config {config} is for model '{config_model}' but --model is '{model}'"
            )
    info = get_model(model or config_model or default_model)
    sources.append(("--set", parse_assignments(assignments)))
    for name, value in (flags or {}).items():
        flag = f"--{name.replace('_', '-')}"
        sources.append((flag, {flag: value}))
    return info, info.resolve(*sources)


def join_negative_values(argv: Sequence[str]) -> list[str]:
    r"""``argv`` with ``--flag -1e-3`` written as ``--flag=-1e-3``: argparse takes a
    value such as ``-1e-3`` for an option, so a negative number in scientific notation
    would otherwise be refused as a missing value instead of reaching the range check
    that says what is valid."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and token.startswith("-"):
            try:
                float(token)
            except ValueError:
                pass
            else:
                out[-1] = f"{out[-1]}={token}"
                continue
        out.append(token)
    return out
