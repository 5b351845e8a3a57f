r"""The tuned Table 2 of one dataset, from the committed evidence in
``benchmarks/results``: each model's study (``tuning/<dataset>-<model>-trials.csv``:
trials, pruned, minutes), its tuned configuration retrained
(``tuning/<dataset>-<model>-best.json``: valid and test) and its untuned defaults
(``defaults/<dataset>.json``, from ``dreamgeo experiment table2``; else the study's
trial of the declared defaults, valid only).

    python benchmarks/collect_table2.py scientific --sync \
        > benchmarks/results/table2-tuned-scientific.md

``--sync`` first copies what the runs produced (``runs/tune/<dataset>-<model>``, and
``runs/experiments/<dataset>-defaults`` when it exists) into ``benchmarks/results``,
so that the table never depends on an uncommitted run folder. Nothing here trains;
missing studies are shown as "pending".
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

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import copy_study  # noqa: E402

METRICS = ("recall@20", "ndcg@20")
RESULTS = ROOT / "benchmarks" / "results"

#: How each dataset's studies were run (``benchmarks/tune_table2.sh``), one budget for
#: every model of the dataset.
BUDGETS = {
    "scientific": (
        "at most 12 finished trials (a smaller MMRec grid is searched whole), the declared "
        "protocol (up to 1000 epochs, early stop after 20 epochs without a better valid "
        "R@20), median pruning after 10 epochs, 1500 s per study after which no new trial "
        "starts (`benchmarks/tune_table2.sh scientific 12`)"
    ),
    "planted_baby": (
        "the same wall time for every model: at most 4 finished trials, each capped at 30 "
        "epochs with early stop after 10 epochs without a better valid R@20, 600 s per "
        "study after which no new trial starts (the running one finishes), so that slow "
        "models get fewer trials; the first trial is the declared defaults (TPE; DREAM's "
        "study, re-run from scratch on 3 Dec 2026 after its default τ went back to the "
        "paper's 0.2, used the random sampler that `--sampler auto` picks now; its 600 s "
        "held that one trial) "
        '(`TIMEOUT=600 TUNE_ARGS="--epochs 30 --patience 10" benchmarks/tune_table2.sh '
        "planted_baby 4`). A 2-core CPU cannot afford the full protocol on this preset "
        "(DREAM, MGCN and FREEDOM take 12-15 s per epoch)"
    ),
}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _cells(result: dict | None) -> list[str]:
    if result is None:
        return ["pending"] * 4
    return [
        f"{result[split][m]:.4f}" if m in result.get(split, {}) else "—"
        for split in ("valid", "test")
        for m in METRICS
    ]


def _trials(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _study(rows: list[dict[str, str]]) -> tuple[str, str]:
    if not rows:
        return "pending", ""
    states = [row["state"] for row in rows]
    seconds = sum(float(row["seconds"] or 0) for row in rows)
    finished = sum(state in ("COMPLETE", "PRUNED") for state in states)
    pruned = states.count("PRUNED")
    return f"{finished} ({pruned} pruned)", f"{seconds / 60:.1f}"


def _defaults_trial(name: str, rows: list[dict[str, str]]) -> dict | None:
    r"""The study's finished trial of the declared defaults (valid metrics only, and its
    trial number)."""
    defaults = get_model(name).hparams.defaults()
    for row in rows:
        if row["state"] != "COMPLETE":
            continue
        columns = list(row)  # number, state, the searched values, then the results
        searched = columns[columns.index("state") + 1 : columns.index("valid_recall@20")]
        params = {k: row[k] for k in searched if k in defaults}
        if "declared defaults" in row.get("note", "") or all(
            float(v) == float(defaults[k]) if _is_number(v) else v == str(defaults[k])
            for k, v in params.items()
        ):
            return {
                "trial": int(row["number"]),
                "valid": {
                    "recall@20": float(row["valid_recall@20"]),
                    "ndcg@20": float(row["valid_ndcg@20"]),
                },
            }
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _readme_table(rows: list[list[str]], best: list[str] | None) -> str:
    r"""The README's columns: tuned valid R@20, tuned test R@20 / N@20, defaults valid
    and test R@20; the best tuned baseline and DREAM in bold, and their ratio."""
    lines = [
        "| model | tuned valid R@20 | tuned test R@20 | tuned test N@20 "
        "| defaults valid R@20 | defaults test R@20 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        label = f"**{row[0]}**" if row[0] == "DREAM" or (best and row[0] == best[0]) else row[0]
        tuned = row[1] if row[1] != "pending" else "not tuned yet"
        lines.append(f"| {label} | {tuned} | {row[3]} | {row[4]} | {row[5]} | {row[7]} |")
    dream = next((row for row in rows if row[0] == "DREAM"), None)
    if best is not None and dream is not None and dream[1] != "pending":
        ratio = float(dream[1]) / float(best[1])
        verdict = "met" if ratio >= 1.03 else "**not met**"
        test = (
            f"{float(dream[3]) / float(best[3]):.3f}x"
            if "pending" not in dream[3] + best[3]
            else "not measured"
        )
        lines.append(
            f"\nDREAM's tuned valid Recall@20 is **{ratio:.3f}x** the best tuned baseline's "
            f"({best[0]}); target 1.03x: {verdict}. On test: {test}."
        )
    return "\n".join(lines)


def sync(dataset: str, runs: Path) -> None:
    r"""Copies every study's tables and retrained best, and the defaults runs, from
    :obj:`runs` into ``benchmarks/results``."""
    tuning = RESULTS / "tuning"
    for name in models_in_table("table2"):
        study = runs / "tune" / f"{dataset}-{name}"
        copy_study(study, tuning, f"{dataset}-{name}")
    folder = runs / "experiments" / f"{dataset}-defaults"
    if folder.is_dir():
        path = RESULTS / "defaults" / f"{dataset}.json"
        stored = _json(path) or {
            "source": f"dreamgeo experiment table2 --out-root {folder.relative_to(runs.parent)}",
            "models": {},
        }
        for name in models_in_table("table2"):
            result = _json(folder / f"{name}-seed0" / "result.json")
            if result is not None:
                stored["models"][name] = {
                    "valid": result["valid"],
                    "test": result["test"],
                    "best_epoch": result.get("best_epoch"),
                }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default="scientific")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--sync", action="store_true", help="copy the run folders' results first")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="print the short table of README.md / docs/results.md instead",
    )
    parser.add_argument(
        "--write-json",
        action="store_true",
        help="also write configs/<dataset>/table2.json (the tuned rows, read by dreamgeo "
        "train to print the best tuned baseline), as experiment table2 --tuned does",
    )
    args = parser.parse_args(argv)
    if args.sync:
        sync(args.dataset, Path(args.runs))
    defaults_file = _json(RESULTS / "defaults" / f"{args.dataset}.json") or {"models": {}}
    tuned_rows = []
    rows = []
    from_trials = []
    for name in models_in_table("table2"):
        info = get_model(name)
        prefix = RESULTS / "tuning" / f"{args.dataset}-{name}"
        tuned = _json(prefix.with_name(prefix.name + "-best.json"))
        trials = _trials(prefix.with_name(prefix.name + "-trials.csv"))
        default = defaults_file["models"].get(name)
        if default is None:
            default = _defaults_trial(name, trials)
            if default is not None:
                from_trials.append(info.label)
                if tuned is not None and tuned.get("trial") == default["trial"]:
                    # the best trial is the defaults' own: its retrain is their test
                    default["test"] = tuned["test"]
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
        finished, minutes = _study(trials)
        grid = info.hparams.grid_size()
        cells = _cells(tuned)
        complete = [row for row in trials if row["state"] == "COMPLETE"]
        if tuned is None and complete:  # the study has a best, its retrain has not ended
            best_trial = max(complete, key=lambda row: float(row["valid_recall@20"]))
            cells = [
                f"{float(best_trial['valid_recall@20']):.4f}",
                f"{float(best_trial['valid_ndcg@20']):.4f}",
                "retrain pending",
                "retrain pending",
            ]
        rows.append([info.label, *cells, *_cells(default), finished, str(grid), minutes])
    best = max(
        (row for row in rows if row[1] != "pending" and row[0] != "DREAM"),
        key=lambda row: float(row[1]),
        default=None,
    )
    if args.readme:
        print(_readme_table(rows, best))
        return 0
    budget = BUDGETS.get(args.dataset, "see the trials tables in benchmarks/results/tuning")
    print(f"# Tuned Table 2 on {args.dataset}\n")
    print(
        "Valid and test Recall/NDCG@20 of each model's tuned configuration "
        f"(configs/{args.dataset}/<model>.yaml, chosen on valid R@20, retrained with seed 0), "
        f"beside the same model at its declared defaults. Budget per model: {budget}. "
        "Test was never used to choose.\n"
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
            f"(target 1.03); on test R@20: "
            + (
                f"{float(dream[3]) / float(best[3]):.3f}."
                if "pending" not in dream[3] + best[3]
                else "not measured yet."
            )
        )
    if from_trials:
        print(
            f"\nDefaults of {', '.join(from_trials)}: the study's trial of the declared "
            "defaults (same epoch cap). Test is only computed for the best configuration: "
            "where that is the defaults' trial, its retrain gives the defaults' test too; "
            "elsewhere the defaults' test is '—'."
        )
    if args.write_json:
        path = ROOT / "configs" / args.dataset / "table2.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tuned_rows, indent=2) + "\n")
    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
