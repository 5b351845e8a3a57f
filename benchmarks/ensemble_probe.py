r"""How far is a dataset's Recall@20 from what two trained models reach together? For two
``dreamgeo train`` run folders on the same data, the best epochs' scores are mixed as

.. math::
    s_{ui} = w \frac{s^A_{ui}}{\sigma_A} + (1 - w) \frac{s^B_{ui}}{\sigma_B},

(:math:`\sigma` the standard deviation of a model's scores over 100,000 random
(user, item) pairs) for a few weights :math:`w`, and scored with the trainer's evaluator
on the same splits; no training. The weight is read off valid, so the best row's valid
number is optimistic by construction and test is the check. An ensemble of two models
is a reference for what the data allows beyond one model, not a model of the library.

    python benchmarks/ensemble_probe.py RUN_A RUN_B --weights 0,0.25,0.5,0.75,1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgeo.commands import load_run  # noqa: E402
from dreamgeo.datasets.schema import INTERACTS  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine_header, markdown_table, split_evaluator  # noqa: E402

__all__ = ["main", "probe", "score_scale"]


def score_scale(user_emb: torch.Tensor, item_emb: torch.Tensor, samples: int = 100_000) -> float:
    r"""Standard deviation of :math:`u^\top i` over random (user, item) pairs (generator
    seeded, so the scale is the same in every call)."""
    generator = torch.Generator().manual_seed(0)
    users = torch.randint(user_emb.size(0), (samples,), generator=generator)
    items = torch.randint(item_emb.size(0), (samples,), generator=generator)
    return float((user_emb[users] * item_emb[items]).sum(1).std())


@torch.no_grad()
def probe(run_a: str, run_b: str, weights: list[float]) -> list[list[str]]:
    r"""One row per weight :math:`w`: valid and test Recall@20 of the mixed scores."""
    embeddings = []
    data = None
    for run_dir in (run_a, run_b):
        model, run_data = load_run(run_dir)
        model.eval()
        user_emb, item_emb = (x.double() for x in model())
        if data is not None and not torch.equal(
            run_data[INTERACTS].edge_index, data[INTERACTS].edge_index
        ):
            raise ValueError(f"{run_a} and {run_b} were trained on different data")
        data = run_data
        embeddings.append((user_emb, item_emb, score_scale(user_emb, item_emb)))
    evaluator = split_evaluator(data)
    (user_a, item_a, scale_a), (user_b, item_b, scale_b) = embeddings
    rows = []
    for weight in weights:
        # the mixture as one dot product of concatenated rows
        result = evaluator.evaluate(
            torch.cat([weight / scale_a * user_a, (1 - weight) / scale_b * user_b], dim=1),
            torch.cat([item_a, item_b], dim=1),
        )
        rows.append(
            [f"{weight:g}"] + [f"{result[split]['recall@20']:.4f}" for split in ("valid", "test")]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", help="dreamgeo train run folder (weight w)")
    parser.add_argument("run_b", help="dreamgeo train run folder (weight 1 - w)")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="the w values")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    print(machine_header() + "\n")
    print(f"A: {args.run_a}\nB: {args.run_b}\n")
    print(
        markdown_table(
            ["w (share of A)", "valid R@20", "test R@20"], probe(args.run_a, args.run_b, weights)
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
