r"""Does a trained model miss item popularity? For each ``dreamgeo train`` run folder, the
best epoch's scores :math:`s_{ui}` are re-ranked as :math:`s_{ui} + c \log(1 + n_i)`
(:math:`n_i` the item's training interactions) for a few weights :math:`c`, with the
trainer's evaluator on the same splits; no training. A gain at some :math:`c > 0` says
the model's scores under-use popularity (a learned item bias could take it up); the
weight is read off valid, so the best row's valid number is optimistic by construction
and test is the check.

    python benchmarks/popularity_probe.py RUN_DIR [RUN_DIR ...] --weights 0,0.2,0.4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgeo.commands import load_run  # noqa: E402
from dreamgeo.datasets.schema import INTERACTS, ITEM  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine_header, markdown_table, split_evaluator  # noqa: E402

__all__ = ["main", "probe"]


@torch.no_grad()
def probe(run_dir: str, weights: list[float]) -> list[list[str]]:
    r"""One row per weight :math:`c`: valid and test Recall@20 of the re-ranked scores."""
    model, data = load_run(run_dir)
    model.eval()
    user_emb, item_emb = model()
    num_items = data[ITEM].num_nodes
    evaluator = split_evaluator(data)
    train_items = data[INTERACTS].edge_index[1]
    log_count = torch.log1p(torch.bincount(train_items, minlength=num_items).float())
    ones = torch.ones(user_emb.size(0), 1, dtype=user_emb.dtype)
    rows = []
    for weight in weights:
        # s_ui + c log(1 + n_i) as one dot product of augmented rows
        result = evaluator.evaluate(
            torch.cat([user_emb, ones], dim=1),
            torch.cat([item_emb, weight * log_count.view(-1, 1).to(item_emb.dtype)], dim=1),
        )
        rows.append(
            [run_dir, f"{weight:g}"]
            + [f"{result[split]['recall@20']:.4f}" for split in ("valid", "test")]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="dreamgeo train run folders")
    parser.add_argument("--weights", default="0,0.1,0.2,0.4,0.6,0.8", help="the c values")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    rows = [row for run in args.runs for row in probe(run, weights)]
    print(machine_header() + "\n")
    print(markdown_table(["run", "c", "valid R@20", "test R@20"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
