r"""The practical ceiling of a planted preset: valid and test Recall/NDCG@20 of the
generator-aware ranking (:func:`dreamgeo.datasets.planted_oracle.planted_oracle_factors`:
items ranked by the expected number of times the generator draws each pair, from the
planted preferences, topics and popularities), evaluated with the trainer's own
:class:`~dreamgeo.train.FullRankEvaluator` on the same splits, beside two weaker
references (the user's own draws alone, popularity alone). No training.

    python benchmarks/planted_ceiling.py --preset baby

How close a trained model gets to the first row says how much any model can still gain
on this preset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgeo.commands import load_data  # noqa: E402
from dreamgeo.datasets.planted import generate_planted  # noqa: E402
from dreamgeo.datasets.planted_oracle import (  # noqa: E402
    planted_oracle_factors,
    planted_posterior_factors,
)
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine_header, markdown_table, split_evaluator  # noqa: E402

__all__ = ["main"]


def _keys(edge_index: torch.Tensor, num_items: int) -> torch.Tensor:
    return torch.sort(edge_index[0] * num_items + edge_index[1]).values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--data-root", default="data")
    args = parser.parse_args(argv)

    data, described = load_data(None, args.data_root, args.preset, args.data_seed)
    planted = generate_planted(args.preset, args.data_seed)
    store = data[INTERACTS]
    num_users, num_items = data[USER].num_nodes, data[ITEM].num_nodes
    if (num_users, num_items) != (planted.num_users, planted.num_items):
        raise SystemExit(
            f"planted_ceiling.py: the loaded data has {num_users} users / {num_items} items, "
            f"the generator {planted.num_users} / {planted.num_items}"
        )
    edges = [store.edge_index, store.val_edge_index, store.test_edge_index]
    every = torch.cat(edges, dim=1)
    generated = torch.from_numpy(planted.interactions[:, :2].T.copy())
    if not torch.equal(_keys(every, num_items), _keys(generated, num_items)):
        raise SystemExit("planted_ceiling.py: the loaded interactions are not the generator's")
    degree = torch.bincount(every[0], minlength=num_users)

    evaluator = split_evaluator(data)
    popularity = torch.from_numpy(planted.item_popularity).view(-1, 1)
    references = {
        "generator-aware ranking (both terms)": planted_oracle_factors(planted, degree),
        "the user's own draws alone": planted_oracle_factors(planted, degree, item_side=False),
        "item side known, preferences inferred from train": planted_posterior_factors(
            planted, store.edge_index
        ),
        "planted popularity alone": (torch.ones(num_users, 1, dtype=torch.float64), popularity),
    }
    rows = []
    for name, (user, item) in references.items():
        result = evaluator.evaluate(user, item)
        rows.append(
            [name]
            + [
                f"{result[split][m]:.4f}"
                for split in ("valid", "test")
                for m in ("recall@20", "ndcg@20")
            ]
        )
    print(f"# Practical ceiling of the planted preset: {described}\n")
    print(machine_header() + "\n")
    print(markdown_table(["ranking", "valid R@20", "valid N@20", "test R@20", "test N@20"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
