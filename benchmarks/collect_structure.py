r"""Stage 2 of the tuning (``benchmarks/tune_structure.sh``), from the committed evidence
in ``benchmarks/results/tuning``: for each model, Table 2's tuned configuration (stage
1, ``<dataset>-<model>-best.json``) and the grid over ``knn_k`` {5, 10} x
``num_layers`` {2, 3} on top of it (``<dataset>-<model>-structure-trials.csv``; its best
retrained: ``-structure-best.json``), plus the finalists' seeds when they were run
(``<dataset>-structure-seeds.json``, from ``--seeds``).

    python benchmarks/collect_structure.py scientific --sync --seeds \
        > benchmarks/results/table2-structure-scientific.md

``--sync`` first copies the studies' tables and retrained best from
``runs/tune/<dataset>-<model>-structure``; ``--seeds`` also collects
``runs/structure-seeds/<dataset>/<model>-s<seed>/result.json`` (``dreamgeo train
--config configs/<dataset>/structure/<model>.yaml --seed S``). Nothing here trains.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgeo.models import get_model  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import copy_study, mean_std  # noqa: E402

TUNING = ROOT / "benchmarks" / "results" / "tuning"
MODELS = ("mgcn", "lgmrec", "freedom", "dream")
POINTS = ((2, 10), (3, 10), (2, 5), (3, 5))


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _recall(result: dict | None, split: str) -> float | None:
    return None if result is None else result[split]["recall@20"]


def _fmt(value: float | None) -> str:
    return "pending" if value is None else f"{value:.4f}"


def _change(new: float | None, old: float | None) -> str:
    return "—" if new is None or old is None else f"{100 * (new / old - 1):+.1f} %"


def _point(rows: list[dict[str, str]], layers: int, knn: int) -> str:
    r"""The valid R@20 of one grid point; ``n/a`` for a model without ``knn_k``."""
    has_knn = bool(rows) and "knn_k" in rows[0]
    if rows and not has_knn and knn != 10:
        return "n/a"
    for row in rows:
        if row["state"] == "COMPLETE" and int(row["num_layers"]) == layers:
            if not has_knn or int(row["knn_k"]) == knn:
                return f"{float(row['valid_recall@20']):.4f}"
    return "pending"


def sync(dataset: str, runs: Path) -> None:
    r"""Copies each structure study's tables and retrained best from :obj:`runs`."""
    for name in MODELS:
        study = runs / "tune" / f"{dataset}-{name}-structure"
        copy_study(study, TUNING, f"{dataset}-{name}-structure")


def collect_seeds(dataset: str, runs: Path) -> None:
    r"""Gathers the finalists' per-seed valid/test R@20 into one committed JSON file."""
    record: dict[str, dict[str, dict[str, float]]] = {}
    for name in MODELS:  # seed 0: the study's retrained best
        seed0 = _json(TUNING / f"{dataset}-{name}-structure-best.json")
        if seed0 is not None and (runs / "structure-seeds" / dataset / f"{name}-s1").is_dir():
            record[name] = {
                "0": {
                    "valid": seed0["valid"]["recall@20"],
                    "test": seed0["test"]["recall@20"],
                    "best_epoch": seed0["best_epoch"],
                }
            }
    for folder in sorted((runs / "structure-seeds" / dataset).glob("*-s*")):
        result = _json(folder / "result.json")
        if result is None or not folder.is_dir():
            continue
        name, seed = folder.name.rsplit("-s", 1)
        record.setdefault(name, {})[seed] = {
            "valid": result["valid"]["recall@20"],
            "test": result["test"]["recall@20"],
            "best_epoch": result["best_epoch"],
        }
    (TUNING / f"{dataset}-structure-seeds.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default="scientific")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--sync", action="store_true", help="copy the run folders' results first")
    parser.add_argument("--seeds", action="store_true", help="also collect the finalists' seeds")
    args = parser.parse_args(argv)
    if args.sync:
        sync(args.dataset, Path(args.runs))
    if args.seeds:
        collect_seeds(args.dataset, Path(args.runs))
    print(f"# Tuning stage 2 (structure) on {args.dataset}\n")
    print(
        "Each model's Table 2 configuration (stage 1: at most 12 trials over its declared "
        "space, configs/<dataset>/<model>.yaml) is fixed and its structure is grid-searched "
        "on top of it, the same grid for every model: knn_k {5, 10} (the item-item graph; "
        "DREAM's relation graphs) x num_layers {2, 3} (the user-item depth), 4 full trials "
        "without pruning, seed 0, chosen on valid R@20 (`benchmarks/tune_structure.sh`; "
        "LGMRec has no knn_k: 2 trials). Stage 1's point is re-run inside the grid "
        "(L2, k10). The best is retrained with seed 0 (configs/<dataset>/structure/"
        "<model>.yaml). Run for the models within 4 % of the best tuned baseline in stage 1 "
        "and for DREAM. Test never chooses.\n"
    )
    header = (
        "| model | stage 1 valid R@20 | L2 k10 | L3 k10 | L2 k5 | L3 k5 | best valid R@20 "
        "| test R@20 | Δ valid vs stage 1 | Δ test vs stage 1 |"
    )
    print(header)
    print("|" + "---|" * 10)
    best_valid: dict[str, float] = {}
    best_test: dict[str, float] = {}
    for name in MODELS:
        prefix = f"{args.dataset}-{name}"
        stage1 = _json(TUNING / f"{prefix}-best.json")
        path = TUNING / f"{prefix}-structure-trials.csv"
        rows = list(csv.DictReader(path.open())) if path.is_file() else []
        tuned = _json(TUNING / f"{prefix}-structure-best.json")
        if tuned is not None:
            best_valid[name], best_test[name] = _recall(tuned, "valid"), _recall(tuned, "test")
        cells = [
            get_model(name).label,
            _fmt(_recall(stage1, "valid")),
            *(_point(rows, layers, knn) for layers, knn in POINTS),
            _fmt(_recall(tuned, "valid")),
            _fmt(_recall(tuned, "test")),
            _change(_recall(tuned, "valid"), _recall(stage1, "valid")),
            _change(_recall(tuned, "test"), _recall(stage1, "test")),
        ]
        print("| " + " | ".join(cells) + " |")
    baselines = {k: v for k, v in best_valid.items() if k != "dream"}
    if "dream" in best_valid and baselines:
        top = max(baselines, key=baselines.get)
        print(
            f"\nDREAM / best baseline after stage 2 ({get_model(top).label}), seed 0: "
            f"{best_valid['dream'] / baselines[top]:.3f} on valid R@20 (target 1.03), "
            f"{best_test['dream'] / best_test[top]:.3f} on test R@20."
        )
    seeds = _json(TUNING / f"{args.dataset}-structure-seeds.json") or {}
    if seeds:
        print(
            "\nFinalists over training seeds (each stage-2 configuration retrained with "
            "`dreamgeo train --config configs/<dataset>/structure/<model>.yaml --seed S`; "
            "mean ± sample std):\n"
        )
        print("| model | seeds | valid R@20 | test R@20 | best epochs |")
        print("|---|---|---|---|---|")
        means = {}
        for name, per_seed in seeds.items():
            valid = [v["valid"] for v in per_seed.values()]
            test = [v["test"] for v in per_seed.values()]
            means[name] = (statistics.mean(valid), statistics.mean(test))
            epochs = ", ".join(str(v["best_epoch"]) for v in per_seed.values())
            print(
                f"| {get_model(name).label} | {', '.join(per_seed)} | {mean_std(valid)} | "
                f"{mean_std(test)} | {epochs} |"
            )
        others = {k: v for k, v in means.items() if k != "dream"}
        if "dream" in means and others:
            top = max(others, key=lambda k: others[k][0])
            print(
                f"\nDREAM / {get_model(top).label} over these seeds: "
                f"{means['dream'][0] / others[top][0]:.3f} on valid R@20, "
                f"{means['dream'][1] / others[top][1]:.3f} on test R@20."
            )
    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
