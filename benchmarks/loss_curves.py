r"""Loss curves of DREAM runs: per epoch, the mean of each weighted training term
(BPR, :math:`\lambda`-weighted L2, :math:`\alpha` Intra, :math:`\beta` Inter) of the
first run, and the valid Recall@20 of every run, from the run folders' ``metrics.csv``
(written by ``dreamgeo train``). The S3 term is left out of the loss panel: during
training its parameter-free constant is skipped (same gradient), so its logged value
is shifted by an unknown per-batch constant; its true size against BPR's is in the loss
scales of ``dream_options.py --scales``.

    python benchmarks/loss_curves.py runs/dream-options/scientific-r3/default-s0 \
        runs/experiments/scientific-table3-tuned/dream-no_s3-tuned-seed0 \
        --labels "tuned DREAM,w/o S3" --out benchmarks/results/dream-loss-curves-scientific.png
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamgeo.models.dream import bma_decay_factor  # noqa: E402

__all__ = ["main", "weighted_terms"]


def _rows(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"loss_curves: {path} does not exist (not a finished run folder?)")
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def weighted_terms(run: Path) -> dict[str, list[float]]:
    r"""The per-epoch weighted training terms of one DREAM run folder."""
    hparams = json.loads((run / "run.json").read_text())["hparams"]
    weights = {
        "BPR": 1.0,
        "λ·reg": float(hparams.get("reg_weight", 0.0)),
        "α·intra": float(hparams.get("intra_weight", 0.0)) if hparams.get("use_intra", True) else 0,
        "β·inter": float(hparams.get("inter_weight", 0.0)) if hparams.get("use_inter", True) else 0,
    }
    columns = {"BPR": "bpr", "λ·reg": "reg", "α·intra": "intra", "β·inter": "inter"}
    decay = float(hparams.get("bma_decay", 1.0))
    rows = _rows(run)
    return {
        name: [
            weights[name]
            * row[columns[name]]
            * (bma_decay_factor(decay, int(row["epoch"])) if name in ("α·intra", "β·inter") else 1)
            for row in rows
        ]
        for name in weights
        if weights[name] > 0 and all(columns[name] in row for row in rows)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="dreamgeo train run folders")
    parser.add_argument("--labels", default=None, help="comma-separated, one per run")
    parser.add_argument("--out", required=True, type=Path, help="PNG file")
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(labels)} labels for {len(args.runs)} runs")

    from dreamgeo.diagnostics.pyplot import import_pyplot

    plt = import_pyplot()
    figure, (loss_axis, recall_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    first = args.runs[0]
    epochs = [int(row["epoch"]) for row in _rows(first)]
    for name, values in weighted_terms(first).items():
        loss_axis.plot(epochs, values, label=name)
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("mean weighted term per epoch")
    loss_axis.set_title(f"training terms: {labels[0]}")
    loss_axis.legend(fontsize=8)
    for run, label in zip(args.runs, labels):
        rows = _rows(run)
        recall_axis.plot([row["epoch"] for row in rows], [row["valid_recall@20"] for row in rows])
        recall_axis.lines[-1].set_label(label)
    recall_axis.set_xlabel("epoch")
    recall_axis.set_ylabel("valid Recall@20")
    recall_axis.legend(fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"loss_curves: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
