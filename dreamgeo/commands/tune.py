r"""``dreamgeo tune``: tunes one model's declared hyper-parameters with Optuna (see
:class:`dreamgeo.train.tune.Tuner` and ``docs/tuning.md``)."""

from __future__ import annotations

import argparse
from typing import Any

from dreamgeo.argtypes import non_negative_int, positive_float, positive_int
from dreamgeo.commands.common import add_data_arguments, default_cache_dir

__all__ = ["add_tune_parser", "parse_searches", "run_tune"]


def add_tune_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``tune`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.models import MODELS

    parser = commands.add_parser(
        "tune",
        help="tune a model's hyper-parameters (Optuna)",
        description="Searches a model's declared grid (MMRec's) or TPE space with Optuna, "
        "pruning hopeless trials by their per-epoch valid Recall@20, into a run folder: "
        "study.db, trials.md / trials.csv, best.yaml (for dreamgeo train --config) and "
        "best_result.json / .md (the best configuration retrained: valid and test metrics; "
        "the test split is never used to choose). Killed at any moment, the same command "
        "resumes the study. See docs/tuning.md.",
    )
    add_data_arguments(parser, verb="tune")
    model = parser.add_argument_group("model and fixed values")
    model.add_argument(
        "--model", choices=list(MODELS), default=None, help="the model (default: dream)"
    )
    model.add_argument(
        "--config",
        default=None,
        help="YAML file of fixed hyper-parameter values (as dreamgeo train --config)",
    )
    model.add_argument(
        "--set",
        dest="assignments",
        action="append",
        metavar="KEY=VALUE",
        default=None,
        help="fix one hyper-parameter (repeatable); a searched key given here or in "
        "--config is taken out of the search",
    )
    search = parser.add_argument_group("search")
    search.add_argument(
        "--search",
        dest="searches",
        action="append",
        metavar="KEY=V1,V2,...",
        default=None,
        help="search exactly these values of KEY instead of the declared space "
        "(repeatable); with --search only the keys given are searched and every other value "
        "is fixed (declared default, --config, --set), e.g. --config "
        "configs/scientific/mgcn.yaml --search knn_k=5,10 --search num_layers=2,3",
    )
    search.add_argument(
        "--sampler",
        choices=("auto", "grid", "random", "tpe"),
        default="auto",
        help="grid: every point of the declared grid; random: the grid's points in random "
        "order, none twice (Optuna's BruteForceSampler); tpe: Optuna's TPE; auto: grid when "
        "it has at most --trials points, else random when every searched value is a grid "
        "value, else tpe; random and tpe try the declared defaults first (default auto)",
    )
    search.add_argument(
        "--sampler-seed", type=non_negative_int, default=0, help="seed of the sampler (default 0)"
    )
    search.add_argument(
        "--trials",
        type=positive_int,
        default=20,
        help="finished (complete + pruned) trials the study should have in all, earlier "
        "runs included (default 20; a grid ends when exhausted)",
    )
    search.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="seconds after which no new trial starts (default: none)",
    )
    search.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="trials in parallel in this process, torch threads split between them (default 1)",
    )
    prune = parser.add_argument_group("pruning (per-epoch valid Recall@20)")
    prune.add_argument(
        "--pruner",
        choices=("median", "halving"),
        default="median",
        help="median: MedianPruner (after 5 trials and the warm-up); halving: "
        "SuccessiveHalvingPruner (default median)",
    )
    prune.add_argument("--no-prune", action="store_true", help="never prune a trial")
    prune.add_argument(
        "--prune-warmup",
        type=non_negative_int,
        default=10,
        help="epochs before a trial may be pruned (default 10)",
    )
    budget = parser.add_argument_group("each trial")
    budget.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="most epochs per trial (default: the declared 1000, or --config / --set)",
    )
    budget.add_argument(
        "--patience",
        type=positive_int,
        default=None,
        help="early-stopping patience in epochs (default: the declared 20)",
    )
    budget.add_argument(
        "--max-time",
        type=positive_float,
        default=None,
        help="wall-clock seconds per trial (default: none; makes results time-dependent)",
    )
    budget.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    store = parser.add_argument_group("study and outputs")
    store.add_argument(
        "--out-dir",
        default=None,
        help="run folder (default: runs/tune/<dataset>-<model>)",
    )
    store.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL shared by several processes or machines, e.g. "
        "postgresql://user@host/db or sqlite:////shared/study.db (default: "
        "sqlite:///OUT_DIR/study.db, locked to one process)",
    )
    store.add_argument("--study-name", default=None, help="study name (default: <dataset>-<model>)")
    store.add_argument(
        "--heartbeat",
        type=positive_int,
        default=60,
        help="with --storage: heartbeat seconds; a worker silent for 3 heartbeats has its "
        "trial failed and queued again (default 60)",
    )
    store.add_argument(
        "--export",
        default=None,
        metavar="PATH",
        help="also copy best.yaml to PATH, e.g. configs/scientific/dream.yaml",
    )
    store.add_argument(
        "--no-retrain",
        action="store_true",
        help="do not retrain the best configuration for its test metrics",
    )
    parser.set_defaults(func=run_tune)
    return parser


def _fixed_values(args: argparse.Namespace, info: Any, values: dict[str, Any]) -> dict[str, Any]:
    r"""The values the user fixed (``--config``, ``--set``, ``--epochs``,
    ``--patience``), by declared name."""
    from dreamgeo.config import load_config, parse_assignments

    keys: list[str] = []
    if args.config is not None:
        keys += list(load_config(args.config)[1])
    keys += list(parse_assignments(args.assignments))
    keys += [name for name in ("epochs", "patience") if getattr(args, name) is not None]
    names = [info.hparams.canonical(key) for key in keys]
    return {name: values[name] for name in names if name is not None}


def parse_searches(searches: list[str] | None) -> dict[str, list[str]]:
    r"""``--search KEY=V1,V2,...`` flags as key to the list of value texts; raises
    :class:`~dreamgeo.train.tune.TuneError` on a flag without ``=`` or values."""
    from dreamgeo.train.tune import TuneError

    parsed: dict[str, list[str]] = {}
    for text in searches or []:
        key, sep, values = text.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not items:
            raise TuneError(f"--search {text}: expected KEY=V1,V2,..., e.g. knn_k=5,10")
        if key.strip() in parsed:
            raise TuneError(f"--search {text}: '{key.strip()}' is given twice")
        parsed[key.strip()] = items
    return parsed


def run_tune(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo tune`` with the parsed ``args``."""
    import optuna

    from dreamgeo.config import resolve_run
    from dreamgeo.datasets.source import check_held_out, load_source, resolve_source
    from dreamgeo.train.tune import Tuner

    flags = {name: getattr(args, name) for name in ("epochs", "patience")}
    flags = {name: value for name, value in flags.items() if value is not None}
    info, values = resolve_run(args.model, args.config, args.assignments, flags)
    fixed = _fixed_values(args, info, values)
    searches = parse_searches(args.searches)
    source = resolve_source(
        args.dataset, args.data_root, args.preset, args.data_seed, args.modalities
    )
    out_dir = args.out_dir or f"runs/tune/{source.name}-{info.name}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_source(source, args.cache_dir)
    check_held_out(source, data)
    tuner = Tuner(
        info,
        data,
        out_dir,
        fixed=fixed,
        fixed_source="--config/--set",
        search=searches,
        dataset=source.name,
        data_description=source.describe(),
        sampler=args.sampler,
        sampler_seed=args.sampler_seed,
        trials=args.trials,
        timeout=args.timeout,
        pruner=None if args.no_prune else args.pruner,
        prune_warmup=args.prune_warmup,
        jobs=args.jobs,
        storage=args.storage,
        study_name=args.study_name,
        max_time=args.max_time,
        device=args.device,
        runtime={"graph_cache_dir": default_cache_dir(args.data_root, args.cache_dir)},
        heartbeat=args.heartbeat,
        retrain=not args.no_retrain,
        export=args.export,
    )
    try:
        tuner.run()
    except KeyboardInterrupt:
        print(
            f"dreamgeo tune: interrupted; the study is kept in {out_dir}: run the same command "
            "again to resume it",
            flush=True,
        )
        return 130
    return 0
