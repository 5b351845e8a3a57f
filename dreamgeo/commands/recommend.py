r"""``dreamgeo recommend``: writes each user's top-K unseen items of a trained run,
ranked by :meth:`dreamgeo.train.FullRankEvaluator.top_items` (the ranking the metrics
are computed from: training items masked, best first)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dreamgeo.argtypes import positive_int
from dreamgeo.commands.common import load_run

__all__ = ["add_recommend_parser", "run_recommend"]


def add_recommend_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``recommend`` sub-command to ``dreamgeo``'s sub-parsers."""
    parser = commands.add_parser(
        "recommend", help="write each user's top-K unseen items from a trained run"
    )
    parser.add_argument("--run-dir", required=True, help="the --out-dir of a train run")
    parser.add_argument("--top-k", type=positive_int, default=20)
    parser.add_argument(
        "--output",
        required=True,
        help="TSV file: userID <tab> item IDs, best first, comma-separated",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=positive_int, default=4096)
    parser.set_defaults(func=run_recommend)
    return parser


def run_recommend(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo recommend`` with the parsed ``args``."""
    from dreamgeo.datasets.schema import INTERACTS, USER
    from dreamgeo.train import FullRankEvaluator, resolve_device

    model, data = load_run(args.run_dir)
    device = resolve_device(args.device)
    model = model.to(device).eval()
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    top_k = min(args.top_k, num_items)
    store = data[INTERACTS]
    # the trainer's evaluator; its ranking masks the training items (the splits are unused)
    evaluator = FullRankEvaluator(
        store.edge_index.to(device),
        {"valid": store.val_edge_index.to(device), "test": store.test_edge_index.to(device)},
        num_users,
        num_items,
        ks=(top_k,),
        batch_size=args.batch_size,
    )
    item_emb_t = item_emb.t()

    def scores(users: torch.Tensor) -> torch.Tensor:
        return user_emb[users.to(device)] @ item_emb_t

    original = data[USER].get("original_id", torch.arange(data[USER].num_nodes))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w") as handle:
        handle.write("userID\titemIDs\n")
        for users in torch.arange(num_users).split(args.batch_size):
            top = evaluator.top_items(scores, users, top_k).cpu().tolist()
            ids = original[users].tolist()
            handle.writelines(
                f"{uid}\t{','.join(map(str, items))}\n" for uid, items in zip(ids, top)
            )
    print(f"dreamgeo: wrote the top-{top_k} unseen items of {num_users} users to {output}")
    return 0
