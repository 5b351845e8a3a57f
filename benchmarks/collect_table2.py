r"""The tuned Table 2 of one dataset, from the runs that produced it: each model's study
(``runs/tune/<dataset>-<model>``: budget, trials, best valid R@20), its tuned
configuration retrained (``best_result.json``, or the ``experiment table2 --tuned`` run
when it exists; both must agree) and its untuned defaults
(``dreamgeo experiment table2 --out-root runs/experiments/<dataset>-defaults``).

    python benchmarks/collect_table2.py scientific > benchmarks/results/table2-tuned-scientific.md

Nothing here trains; missing runs are shown as "pending".
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgeo.models import get_model, models_in_table  # noqa: E402

METRICS = ("recall@20", "ndcg@20")


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _cells(result: dict | None) -> list[str]:
    if result is None:
        return ["pending"] * 4
    return [f"{result[split][m]:.4f}" for split in ("valid", "test") for m in METRICS]


def _study(folder: Path) -> tuple[str, str]:
    trials = folder / "trials.csv"
    if not trials.is_file():
        return "pending", ""
    rows = list(csv.DictReader(trials.open()))
    states = [row["state"] for row in rows]
    seconds = sum(float(row["seconds"] or 0) for row in rows)
    finished = sum(state in ("COMPLETE", "PRUNED") for state in states)
    pruned = states.count("PRUNED")
    return f"{finished} ({pruned} pruned)", f"{seconds / 60:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default="scientific")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument(
        "--write-json",
        action="store_true",
        help="also write configs/<dataset>/table2.json (the tuned rows, read by dreamgeo "
        "train to print the best tuned baseline), as experiment table2 --tuned does",
    )
    args = parser.parse_args(argv)
    tuned_rows = []
    runs = Path(args.runs)
    rows = []
    for name in models_in_table("table2"):
        info = get_model(name)
        study = runs / "tune" / f"{args.dataset}-{name}"
        tuned = _json(study / "best_result.json")
        table_run = _json(
            runs / "experiments" / args.dataset / f"{name}-tuned-seed0" / "result.json"
        )
        if tuned and table_run:
            same = abs(tuned["valid"]["recall@20"] - table_run["valid"]["recall@20"]) < 1e-9
            if not same:
                raise SystemExit(f"{name}: the tuner's retrain and experiment --tuned disagree")
        default = _json(
            runs / "experiments" / f"{args.dataset}-defaults" / f"{name}-seed0" / "result.json"
        )
        if tuned is not None:
            tuned_rows.append(
                {
                    "model": name,
                    "label": info.label,
                    "config": f"{name}.yaml",
                    "valid": tuned["valid"],
                    "test": tuned["test"],
                    "best_epoch": tuned["best_epoch"],
                }
            )
        trials, minutes = _study(study)
        grid = info.hparams.grid_size()
        rows.append([info.label, *_cells(tuned), *_cells(default), trials, str(grid), minutes])
    best = max(
        (row for row in rows if row[1] != "pending" and row[0] != "DREAM"),
        key=lambda row: float(row[1]),
        default=None,
    )
    print(f"# Tuned Table 2 on {args.dataset}\n")
    print(
        "Valid and test Recall/NDCG@20 of each model's tuned configuration "
        f"(configs/{args.dataset}/<model>.yaml, chosen on valid R@20, retrained with seed 0), "
        "beside the same model at its declared defaults. Budget per model: at most 12 "
        "finished trials (a smaller MMRec grid is searched whole), the declared protocol "
        "(up to 1000 epochs, early stop after 20 epochs without a better valid R@20), median "
        "pruning after 10 epochs, 1500 s per study after which no new trial starts "
        "(`benchmarks/tune_table2.sh`). Test was never used to choose.\n"
    )
    print(
        "| model | tuned valid R@20 | tuned valid N@20 | tuned test R@20 | tuned test N@20 "
        "| default valid R@20 | default valid N@20 | default test R@20 | default test N@20 "
        "| trials | grid size | study min |"
    )
    print("|" + "---|" * 12)
    for row in rows:
        print("| " + " | ".join(row) + " |")
    dream = next((row for row in rows if row[0] == "DREAM"), None)
    if best is not None and dream is not None and dream[1] != "pending":
        ratio = float(dream[1]) / float(best[1])
        print(
            f"\nDREAM / best tuned baseline ({best[0]}) on valid R@20: {ratio:.3f} "
            f"(target 1.03); on test R@20: {float(dream[3]) / float(best[3]):.3f}."
        )
    if args.write_json:
        path = ROOT / "configs" / args.dataset / "table2.json"
        path.write_text(json.dumps(tuned_rows, indent=2) + "\n")
    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
