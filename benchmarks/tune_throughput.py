r"""Tuning throughput: trials per hour of ``dreamgeo tune`` (:class:`dreamgeo.train.Tuner`)
on the embedded real ``scientific`` dataset, with median pruning on and off, for each
model asked for. Every configuration is a fresh study (grid sampler by default, so that
both runs try the same points in the same order) under an equal share of
``--time-budget``; Optuna's timeout starts no trial after the share is spent, so a run
may overrun its share by at most one trial (the elapsed column says by how much). Prints
a markdown table after a header naming the machine, the CPU count and the versions.

    python benchmarks/tune_throughput.py --models lightgcn --time-budget 420
    python benchmarks/tune_throughput.py --models lightgcn,dream --time-budget 3600
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_header, markdown_table  # noqa: E402

__all__ = ["main", "measure"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from dreamgeo.argtypes import name_list, non_negative_int, positive_float, positive_int

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", type=name_list, default=["lightgcn"], help="comma-separated (default lightgcn)"
    )
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        default=420.0,
        help="seconds for the whole benchmark, shared equally by the runs (default 420)",
    )
    parser.add_argument("--dataset", default=None, help="default: embedded 'scientific'")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--sampler", choices=("grid", "tpe"), default="grid")
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="per trial (default: declared 1000)"
    )
    parser.add_argument(
        "--patience", type=positive_int, default=None, help="per trial (default: declared 20)"
    )
    parser.add_argument(
        "--prune-warmup",
        type=non_negative_int,
        default=10,
        help="epochs before the median pruner may prune (default 10, as dreamgeo tune)",
    )
    parser.add_argument(
        "--prune-startup",
        type=positive_int,
        default=5,
        help="complete trials before the median pruner prunes (default 5, as dreamgeo tune)",
    )
    parser.add_argument("--output", default=None, help="also write the markdown here")
    return parser.parse_args(argv)


def measure(
    model: str,
    data,
    prune: bool,
    seconds: float,
    args: argparse.Namespace,
    dataset: str,
    cache_dir: str,
) -> dict:
    r"""One fresh study of ``model`` for ``seconds``; its throughput and outcome."""
    import optuna

    from dreamgeo.models import get_model
    from dreamgeo.train import Tuner

    info = get_model(model)
    fixed = {k: getattr(args, k) for k in ("epochs", "patience") if getattr(args, k)}
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        tuner = Tuner(
            info,
            data,
            folder,
            fixed=fixed,
            dataset=dataset,
            sampler=args.sampler,
            trials=10_000 if args.sampler == "tpe" else info.hparams.grid_size(),
            timeout=seconds,
            pruner=optuna.pruners.MedianPruner(args.prune_startup, args.prune_warmup)
            if prune
            else None,
            runtime={"graph_cache_dir": cache_dir},
            retrain=False,
            log=lambda line: (lines.append(line), print(f"  {line}", flush=True)),
        )
        tic = time.perf_counter()
        result = tuner.run()
        elapsed = time.perf_counter() - tic
        study = optuna.load_study(study_name=result.study_name, storage=tuner.storage)
        trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    epochs = [t.user_attrs.get("result", {}).get("epochs", 0) for t in trials]
    finished = states.count("COMPLETE") + states.count("PRUNED")
    return {
        "model": info.label,
        "pruning": (
            f"median (after {args.prune_startup} trials, warm-up {args.prune_warmup})"
            if prune
            else "off"
        ),
        "budget": seconds,
        "elapsed": elapsed,
        "finished": finished,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "per_hour": finished / elapsed * 3600 if elapsed else 0.0,
        "epochs": sum(epochs) / max(len(epochs), 1),
        "best": result.best_value,
    }


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    import optuna

    from dreamgeo.commands import default_cache_dir
    from dreamgeo.datasets.source import load_source, resolve_source

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    header = machine_header("cpu") + f"; optuna {optuna.__version__}"
    print(header, flush=True)
    start = time.perf_counter()
    source = resolve_source(args.dataset, args.data_root)
    data = load_source(source, args.cache_dir)
    cache_dir = default_cache_dir(args.data_root, args.cache_dir)
    runs = [(model, prune) for model in args.models for prune in (True, False)]
    share = (args.time_budget - (time.perf_counter() - start)) / len(runs)
    rows = []
    for model, prune in runs:
        left = args.time_budget - (time.perf_counter() - start)
        if left < 0.25 * share:
            print(f"time budget spent: {model} pruning {prune} not run", flush=True)
            continue
        print(f"{model}, pruning {'on' if prune else 'off'}: {min(share, left):.0f} s", flush=True)
        row = measure(model, data, prune, min(share, left), args, source.name, cache_dir)
        rows.append(
            [
                row["model"],
                row["pruning"],
                f"{row['budget']:.0f}",
                f"{row['elapsed']:.0f}",
                row["finished"],
                row["complete"],
                row["pruned"],
                f"{row['per_hour']:.0f}",
                f"{row['epochs']:.1f}",
                f"{row['best']:.4f}" if row["best"] is not None else "-",
            ]
        )
    protocol = (
        f"{args.sampler} sampler, epochs {args.epochs or 'declared (1000)'}, patience "
        f"{args.patience or 'declared (20)'}; one trial at a time"
    )
    table = markdown_table(
        [
            "model",
            "pruning",
            "budget s",
            "elapsed s",
            "finished trials",
            "complete",
            "pruned",
            "trials / hour",
            "epochs / trial",
            "best valid R@20",
        ],
        rows,
    )
    text = (
        f"{header}\n\ndata: {source.describe()}; {protocol}; total "
        f"{time.perf_counter() - start:.0f} s\n\n{table}\n"
    )
    print("\n" + text, flush=True)
    if args.output:
        Path(args.output).write_text(text)
    return text


if __name__ == "__main__":
    main()
