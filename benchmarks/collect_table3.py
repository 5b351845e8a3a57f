r"""Table 3 (DREAM's ablations) with valid and test metrics, mean ± sample std over the
training seeds that have finished, from the run folders of

    dreamgeo experiment table3 --tuned --seeds 0,1,2 \
        --out-root runs/experiments/scientific-table3-tuned

(``dreamgeo experiment``'s own table3.md shows test metrics per run only). ``--sync``
stores each finished run's metrics in ``benchmarks/results/table3-tuned-<dataset>.json``
(the committed evidence); the table is always built from that file, never from an
uncommitted run folder. Nothing here trains.

    python benchmarks/collect_table3.py scientific --sync \
        > benchmarks/results/table3-tuned-scientific.md

``--stage structure`` does the same for the stage-2 configuration
(``configs/<dataset>/structure/dream.yaml``, i.e. ``dreamgeo experiment table3 --tuned
--set knn_k=5 --set num_layers=3 --seeds 0,1,2 --out-root
runs/experiments/<dataset>-table3-structure``), into ``table3-structure-<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgeo.experiments.report import ABLATION_LABELS  # noqa: E402
from dreamgeo.experiments.spec import TABLE3_ABLATIONS  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import mean_std  # noqa: E402

__all__ = ["main", "rows"]

RESULTS = ROOT / "benchmarks" / "results"
METRICS = (("valid", "recall@20"), ("valid", "ndcg@20"), ("test", "recall@20"), ("test", "ndcg@20"))


def sync(runs: Path, evidence: Path) -> None:
    r"""Stores the valid/test metrics and best epoch of every finished DREAM run in
    :obj:`runs`, keyed by the ablation and seed its ``result.json`` records. An entry
    with a ``"source"`` (a run of the same protocol made by another script, e.g. the
    options study) is kept unless a run here replaces it; the table marks its seed."""
    stored = json.loads(evidence.read_text()) if evidence.is_file() else {}
    for path in sorted(runs.glob("*/result.json")):
        result = json.loads(path.read_text())
        if result.get("model") != "dream" or result.get("ablation") not in TABLE3_ABLATIONS:
            continue
        stored.setdefault(result["ablation"], {})[str(result["hparams"]["seed"])] = {
            "valid": {m: result["valid"][m] for _, m in METRICS[:2]},
            "test": {m: result["test"][m] for _, m in METRICS[2:]},
            "best_epoch": result.get("best_epoch"),
        }
    evidence.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def rows(stored: dict) -> list[list[str]]:
    r"""One row per ablation: seeds, valid/test R@20 and N@20 (mean ± std), the change of
    the mean valid and test R@20 against the full model over the same seeds."""
    full = stored.get("full", {})
    table = []
    for ablation in TABLE3_ABLATIONS:
        runs = stored.get(ablation, {})
        if not runs:
            continue
        seeds = sorted(runs, key=int)
        cells = [mean_std([runs[s][split][m] for s in seeds]) for split, m in METRICS]
        changes = []
        for split in ("valid", "test"):
            shared = [s for s in seeds if s in full]
            if ablation == "full" or not shared:
                changes.append("")
                continue
            own = statistics.mean(runs[s][split]["recall@20"] for s in shared)
            base = statistics.mean(full[s][split]["recall@20"] for s in shared)
            changes.append(f"{100 * (own / base - 1):+.1f} %")
        epochs = ", ".join(str(runs[s]["best_epoch"]) for s in seeds)
        label = ABLATION_LABELS.get(ablation, ablation)
        marked = [s + ("*" if "source" in runs[s] else "") for s in seeds]
        table.append([label, ", ".join(marked), *cells, *changes, epochs])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default="scientific")
    parser.add_argument(
        "--stage",
        choices=("tuned", "structure"),
        default="tuned",
        help="tuned: Table 2's configuration (stage 1); structure: stage 2's",
    )
    parser.add_argument(
        "--runs", default=None, help="(default: runs/experiments/<dataset>-table3-<stage>)"
    )
    parser.add_argument("--sync", action="store_true", help="store the finished runs first")
    args = parser.parse_args(argv)
    evidence = RESULTS / f"table3-{args.stage}-{args.dataset}.json"
    if args.sync:
        folder = f"{args.dataset}-table3-{args.stage}"
        runs = Path(args.runs or ROOT / "runs" / "experiments" / folder)
        sync(runs, evidence)
    stored = json.loads(evidence.read_text()) if evidence.is_file() else {}
    config, command = f"configs/{args.dataset}/dream.yaml", "--tuned"
    protocol = "the paper's protocol"
    if args.stage == "structure":
        config = f"configs/{args.dataset}/structure/dream.yaml"
        command = "--tuned --set knn_k=5 --set num_layers=3"
    if args.dataset.startswith("planted_"):
        preset = args.dataset.removeprefix("planted_")
        script = f"benchmarks/table3_planted_{preset}.sh"
        command += f" --preset {preset} --epochs 30 --patience 20`, via `{script}"
        protocol = "the planted Table 2's 30-epoch cap"
    print(f"# Table 3 (ablations) with DREAM's {args.stage} configuration on {args.dataset}\n")
    print(
        f"Each row is `{config}` with one part switched off "
        f"(`dreamgeo experiment table3 {command}`), {protocol}, valid and test "
        "Recall/NDCG@20 at the best valid-R@20 epoch, mean ± sample std over the seeds "
        "listed; Δ is the change of the mean against the full model over the same seeds. "
        "Test never chooses.\n"
    )
    print(
        "| variant | seeds | valid R@20 | valid N@20 | test R@20 | test N@20 "
        "| Δ valid R@20 | Δ test R@20 | best epoch |"
    )
    print("|" + "---|" * 9)
    for row in rows(stored):
        print("| " + " | ".join(row) + " |")
    sources = sorted(
        {r["source"] for runs in stored.values() for r in runs.values() if "source" in r}
    )
    for source in sources:
        print(f"\n\\* {source}")
    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
