r"""Why DREAM peaks early where features are weak (issue 34, point 2): trains DREAM at its
declared defaults, DREAM without S3 (``--ablation no_s3``) and MGCN on one dataset folder
for a fixed number of epochs (patience = epochs, so nothing stops early; a wall-clock
budget per run), each with ``dreamgeo train``'s per-epoch diagnostics
(:class:`~dreamgeo.diagnostics.DualRepresentationDiagnostics`: loss parts BPR, reg,
intra, inter, S3 as the step logs it and the full S3 on a sample, mean filter-gate
activation per modality on items and users, mean norms of the four representations,
modal forgetting, behaviour–modal cosine), then writes

* ``OUT/<dataset>.csv``: one row per run and epoch, every logged column;
* ``OUT/<dataset>.json``: the same rows, the runs' results and settings;
* ``OUT/<dataset>.md``: per run the best epoch, valid and test Recall@20 there, and for
  the DREAM runs the trajectory of the loss parts (raw and weighted by the run's
  weights), gates, norms and valid Recall@20 around the valid peak.

    nice python benchmarks/diagnose_dream.py --dataset planted_9k --data-root data/proxies \
        --epochs 60 --max-time 1500

Runs go to ``runs/robustness/<dataset>/<variant>-s<seed>``; a finished run (its
``result.json``) is reused, a killed one resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dreamgeo.diagnostics import read_metrics  # noqa: E402

__all__ = ["main", "VARIANTS", "summary_markdown"]

#: Variant name to ``dreamgeo train`` arguments.
VARIANTS: dict[str, list[str]] = {
    "dream": ["--model", "dream"],
    "dream-no_s3": ["--model", "dream", "--ablation", "no_s3"],
    "mgcn": ["--model", "mgcn"],
}
RECALL = "valid_recall@20"
TEST_RECALL = "test_recall@20"
# loss part column to the hyper-parameter that weights it in DREAM's objective (Eq. 14)
PART_WEIGHTS = {
    "bpr": None,
    "reg": "reg_weight",
    "intra": "intra_weight",
    "inter": "inter_weight",
    "s3": "s3_weight",
}


def run_variant(variant: str, args: argparse.Namespace, out: Path, log: Path) -> dict | None:
    result = out / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    cmd = [sys.executable, "-m", "dreamgeo.commands", "train", *VARIANTS[variant]]
    cmd += ["--dataset", args.dataset, "--data-root", args.data_root]
    cmd += ["--epochs", str(args.epochs), "--patience", str(args.patience or args.epochs)]
    cmd += ["--seed", str(args.seed), "--out-dir", str(out), "--no-progress"]
    if args.max_time:
        cmd += ["--max-time", str(args.max_time)]
    if (out / "checkpoint.pt").exists():
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    print(f"[diagnose] {args.dataset} {variant}: {' '.join(cmd[3:])}", flush=True)
    tic = time.perf_counter()
    with log.open("a") as handle:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not result.exists():
        print(f"[diagnose]   {variant} failed (rc {proc.returncode}); see {log}", flush=True)
        return None
    print(f"[diagnose]   done in {time.perf_counter() - tic:.0f} s", flush=True)
    return json.loads(result.read_text())


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4f}"


def _peak(rows: list[dict]) -> dict:
    return max(rows, key=lambda row: (row.get(RECALL, float("-inf")), -row["epoch"]))


def _trajectory_epochs(rows: list[dict], peak: int) -> list[int]:
    epochs = [row["epoch"] for row in rows]
    wanted = {1, 2, 3, peak - 5, peak - 2, peak, peak + 2, peak + 5, peak + 10, peak + 20}
    wanted |= {epochs[-1], *epochs[:: max(1, len(epochs) // 8)]}
    return sorted(e for e in wanted if e in epochs)


def summary_markdown(dataset: str, runs: dict[str, dict]) -> str:
    r"""The markdown summary of one dataset's runs (``runs[variant]`` holds ``rows``,
    ``result`` and ``hparams``)."""
    lines = [f"# Diagnosis on `{dataset}` (issue 34)", ""]
    lines += [
        "| run | epochs run | best valid epoch | valid R@20 | test R@20 at it | "
        "last valid R@20 | valid drop after peak | s/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, run in runs.items():
        rows = run["rows"]
        if not rows:
            continue
        peak = _peak(rows)
        last = rows[-1]
        drop = 1.0 - last[RECALL] / peak[RECALL] if peak[RECALL] > 0 else 0.0
        seconds = sum(r["train_time"] + r["eval_time"] for r in rows) / len(rows)
        lines.append(
            f"| {variant} | {len(rows)} | {peak['epoch']} | {peak[RECALL]:.4f} | "
            f"{peak[TEST_RECALL]:.4f} | {last[RECALL]:.4f} | {100 * drop:.1f} % | "
            f"{seconds:.1f} |"
        )
    for variant, run in runs.items():
        rows, hparams = run["rows"], run["hparams"]
        if not rows or not variant.startswith("dream"):
            continue
        peak = _peak(rows)["epoch"]
        by_epoch = {row["epoch"]: row for row in rows}
        parts = [p for p in PART_WEIGHTS if p in rows[0]]
        extra = [c for c in ("s3_full_item", "s3_full_user") if c in rows[0]]
        gates = sorted(c for c in rows[0] if c.startswith("gate_") and "_std_" not in c)
        norms = [c for c in rows[0] if c.startswith("norm_")]
        lines += ["", f"## {variant}: trajectory around the valid peak (epoch {peak})", ""]
        weights = {
            p: 1.0 if PART_WEIGHTS[p] is None else float(hparams.get(PART_WEIGHTS[p], 0.0))
            for p in parts
        }
        lines.append(
            "Loss parts are epoch means of the training steps, unweighted (weights: "
            + ", ".join(f"{p} {w:g}" for p, w in weights.items())
            + "); `s3` omits its constant (it can be negative), `s3_full_*` is Eq. 8 "
            "with the constant on a fixed sample of 1000 items / users."
        )
        lines.append("")
        columns = ["loss", *parts, *extra, RECALL]
        lines.append("| epoch | " + " | ".join(columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for epoch in _trajectory_epochs(rows, peak):
            row = by_epoch[epoch]
            mark = " (peak)" if epoch == peak else ""
            cells = [_fmt(row.get(c)) for c in columns]
            lines.append(f"| {epoch}{mark} | " + " | ".join(cells) + " |")
        lines += ["", "Gates (mean sigmoid) and mean representation norms:", ""]
        columns = [*gates, *norms]
        lines.append("| epoch | " + " | ".join(columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for epoch in _trajectory_epochs(rows, peak):
            row = by_epoch[epoch]
            cells = [_fmt(row.get(c)) for c in columns]
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
        lines += ["", "Weighted parts (weight x part), mean of the epoch:", ""]
        lines.append("| epoch | " + " | ".join(f"{p}" for p in parts) + " |")
        lines.append("|---" * (len(parts) + 1) + "|")
        for epoch in _trajectory_epochs(rows, peak):
            row = by_epoch[epoch]
            cells = [_fmt(weights[p] * row[p]) for p in parts]
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def write_outputs(dataset: str, runs: dict[str, dict], results: Path) -> None:
    r"""Writes ``<dataset>.csv``, ``.json`` (values to 6 significant digits) and ``.md``."""
    results.mkdir(parents=True, exist_ok=True)
    columns: list[str] = ["variant"]
    for run in runs.values():
        for row in run["rows"]:
            columns.extend(k for k in row if k not in columns)
    with (results / f"{dataset}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for variant, run in runs.items():
            for row in run["rows"]:
                writer.writerow({"variant": variant, **_rounded(row)})
    payload = {
        variant: {
            "result": {k: v for k, v in (run["result"] or {}).items() if k != "hparams"},
            "hparams": run["hparams"],
            "rows": run["rows"],
        }
        for variant, run in runs.items()
    }
    (results / f"{dataset}.json").write_text(json.dumps(_rounded(payload)) + "\n")
    (results / f"{dataset}.md").write_text(summary_markdown(dataset, runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-root", default="data/proxies")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=None, help="default: --epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-time", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--runs", default="runs/robustness")
    parser.add_argument("--results", default="benchmarks/results/robustness")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    run_root = Path(args.runs) / args.dataset
    run_root.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict] = {}
    for variant in variants:
        out = run_root / f"{variant}-s{args.seed}"
        result = run_variant(variant, args, out, run_root / f"{variant}-s{args.seed}.log")
        rows = read_metrics(out) if (out / "metrics.jsonl").exists() else []
        run_json = out / "run.json"
        hparams = json.loads(run_json.read_text()).get("hparams", {}) if run_json.exists() else {}
        runs[variant] = {"rows": rows, "result": result, "hparams": hparams}
        write_outputs(args.dataset, runs, Path(args.results))
    print(f"[diagnose] wrote {args.results}/{args.dataset}.{{csv,json,md}}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
