r"""Table 4 with tuned BMA weights, from the committed evidence in
``benchmarks/results/tuning``: each model's tuned configuration without BMA
(``<dataset>-<model>-best.json``, Table 2's retrained best), and the BMA study run on top
of it by ``benchmarks/tune_table4.sh`` (``<dataset>-<model>-bma-trials.csv``: every point
of the 3 x 3 weight grid; ``<dataset>-<model>-bma-best.json``: its best point retrained).

    python benchmarks/collect_table4.py scientific --sync \
        > benchmarks/results/table4-tuned-scientific.md

``--sync`` first copies the studies' tables and retrained best from
``runs/tune/<dataset>-<model>-bma``. ``--seeds`` also collects the two tuned rows over
more training seeds (``dreamgeo experiment table4 --tuned --seeds 1,2 --out-root
runs/experiments/<dataset>-t4-tuned``; seed 0 is the studies' retrained best) into
``tuning/<dataset>-table4-seeds.json`` and prints them as mean ± std. Nothing here
trains; a missing study is "pending".
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

from dreamgeo.models import get_model, models_in_table  # noqa: E402
from dreamgeo.models.registry import BMA_HPARAMS  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import copy_study, mean_std  # noqa: E402

TUNING = ROOT / "benchmarks" / "results" / "tuning"
#: BMA's weights as the paper fixes them (α = β = 0.01), one point of the searched grid.
PAPER_WEIGHTS = (0.01, 0.01)
#: Points of BMA's declared weight grid: a study with fewer ended trials is unfinished.
GRID_SIZE = BMA_HPARAMS.grid_size({"bma": True})
#: Trial states that give a grid point its result (a pruned trial ends early).
ENDED = ("COMPLETE", "PRUNED")


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _trials(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _weights(row: dict[str, str]) -> tuple[float, float]:
    return float(row["bma_intra_weight"]), float(row["bma_inter_weight"])


def _seeds_file(dataset: str) -> Path:
    return TUNING / f"{dataset}-table4-seeds.json"


def _point(rows: list[dict[str, str]], intra: float, inter: float) -> str:
    r"""The valid R@20 of one grid point of the study, or how it ended."""
    for row in rows:
        if row["state"] in ENDED and _weights(row) == (intra, inter):
            if row["state"] == "PRUNED":
                return f"pruned at epoch {row['epochs']} ({float(row['valid_recall@20']):.4f})"
            return f"{float(row['valid_recall@20']):.4f}"
    return "pending"


def _recall(result: dict | None, split: str) -> float | None:
    return None if result is None else result[split]["recall@20"]


def _fmt(value: float | None) -> str:
    return "pending" if value is None else f"{value:.4f}"


def _change(new: float | None, old: float | None) -> str:
    return "—" if new is None or old is None else f"{100 * (new / old - 1):+.1f} %"


def sync(dataset: str, runs: Path) -> None:
    r"""Copies each BMA study's tables and retrained best from :obj:`runs`."""
    for name in models_in_table("table4"):
        study = runs / "tune" / f"{dataset}-{name}-bma"
        copy_study(study, TUNING, f"{dataset}-{name}-bma")


def collect_seeds(dataset: str, runs: Path) -> None:
    r"""Valid/test R@20 of both tuned rows per seed: seed 0 from the committed retrained
    best, other seeds from ``runs/experiments/<dataset>-t4-tuned``. Seeds already in the
    committed file are kept unless a run folder gives them anew (run folders are not
    committed, and a later session may hold only some of them)."""
    seeds_file = _seeds_file(dataset)
    record: dict[str, dict[str, dict[str, dict[str, float]]]] = _json(seeds_file) or {}
    root = runs / "experiments" / f"{dataset}-t4-tuned"
    for name in models_in_table("table4"):
        for row, plain_file, pattern in (
            ("without", f"{dataset}-{name}-best.json", f"{name}-tuned-seed*"),
            ("with", f"{dataset}-{name}-bma-best.json", f"{name}-bma-tuned-seed*"),
        ):
            per_seed = record.setdefault(name, {}).setdefault(row, {})
            seed0 = _json(TUNING / plain_file)
            if seed0 is not None:
                per_seed["0"] = {s: seed0[s]["recall@20"] for s in ("valid", "test")}
            for folder in sorted(root.glob(pattern)):
                result = _json(folder / "result.json")
                if result is not None:
                    seed = folder.name.rsplit("seed", 1)[1]
                    per_seed[seed] = {s: result[s]["recall@20"] for s in ("valid", "test")}
    seeds_file.write_text(json.dumps(record, indent=1) + "\n")


def seeds_table(dataset: str) -> list[str]:
    r"""The tuned rows over seeds as markdown lines (empty without the seeds file)."""
    record = _json(_seeds_file(dataset))
    if not record:
        return []
    lines = [
        "",
        "The same two tuned rows over training seeds (seed 0: the studies' retrained best; "
        "seeds 1 and 2: `dreamgeo experiment table4 --tuned --seeds 1,2`; mean ± sample std, "
        "Δ of the means):",
        "",
        "| model | seeds | without BMA valid R@20 | tuned BMA valid R@20 | Δ valid "
        "| without BMA test R@20 | tuned BMA test R@20 | Δ test |",
        "|" + "---|" * 8,
    ]
    for name, rows in record.items():
        seeds = sorted(set(rows["without"]) & set(rows["with"]), key=int)
        if not seeds:
            continue
        cells = [get_model(name).label, ", ".join(seeds)]
        values = {
            (row, split): [rows[row][seed][split] for seed in seeds]
            for row in ("without", "with")
            for split in ("valid", "test")
        }
        for split in ("valid", "test"):
            plain, tuned = values[("without", split)], values[("with", split)]
            cells += [
                mean_std(plain),
                mean_std(tuned),
                _change(statistics.mean(tuned), statistics.mean(plain)),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default="scientific")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--sync", action="store_true", help="copy the run folders' results first")
    parser.add_argument("--seeds", action="store_true", help="also collect the seeds' runs")
    args = parser.parse_args(argv)
    if args.sync:
        sync(args.dataset, Path(args.runs))
    if args.seeds:
        collect_seeds(args.dataset, Path(args.runs))
    print(f"# Table 4 with tuned BMA weights on {args.dataset}\n")
    print(
        "Each model's tuned configuration (configs/<dataset>/<model>.yaml) is fixed and "
        "BMA's intra/inter weights are searched on {0, 0.01, 0.03}² with no pruning, 9 full "
        "trials, chosen on valid R@20 (`benchmarks/tune_table4.sh`); the best is retrained "
        "with seed 0 (configs/<dataset>/<model>-bma.yaml). 'without BMA' is Table 2's "
        "retrained tuned model; '(0, 0)' is the same model inside the BMA study (weights 0); "
        "'paper weights' is the grid point α = β = 0.01. Test never chooses.\n"
    )
    print(
        "| model | without BMA valid R@20 | test R@20 | (0, 0) valid R@20 "
        "| paper weights valid R@20 | tuned (α, β) | tuned BMA valid R@20 | test R@20 "
        "| Δ valid | Δ test | trials |"
    )
    print("|" + "---|" * 11)
    pruned = []
    for name in models_in_table("table4"):
        label = get_model(name).label
        prefix = f"{args.dataset}-{name}"
        plain = _json(TUNING / f"{prefix}-best.json")
        rows = _trials(TUNING / f"{prefix}-bma-trials.csv")
        tuned = _json(TUNING / f"{prefix}-bma-best.json")
        zero = _point(rows, 0.0, 0.0)
        paper = _point(rows, *PAPER_WEIGHTS)
        complete = [row for row in rows if row["state"] == "COMPLETE"]
        best = max(complete, key=lambda row: float(row["valid_recall@20"]), default=None)
        # two workers on one study can both run a point; it counts once
        ended = {_weights(row) for row in rows if row["state"] in ENDED}
        full = {_weights(row) for row in complete}
        weights = "({:g}, {:g})".format(*_weights(best)) if best else "pending"
        if best and len(ended) < GRID_SIZE:
            weights = f"unfinished (best of {len(full)}: {weights})"
        cells = [
            label,
            _fmt(_recall(plain, "valid")),
            _fmt(_recall(plain, "test")),
            zero,
            paper,
            weights,
            _fmt(_recall(tuned, "valid")),
            _fmt(_recall(tuned, "test")),
            _change(_recall(tuned, "valid"), _recall(plain, "valid")),
            _change(_recall(tuned, "test"), _recall(plain, "test")),
            f"{len(full)} full of {GRID_SIZE}" if rows else "pending",
        ]
        print("| " + " | ".join(cells) + " |")
        if any(row["state"] == "PRUNED" for row in rows):
            pruned.append(label)
    if pruned:
        print(
            f"\nRun with median pruning before tune_table4.sh turned it off: {', '.join(pruned)} "
            "(its pruned points stopped at epoch 10 and are shown with the valid R@20 they had "
            "then; the model without BMA is Table 2's tuned row either way)."
        )
    for line in seeds_table(args.dataset):
        print(line)
    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
