r"""``dreamgeo recommend``: writes each user's top-K unseen items of a trained run."""

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
    from dreamgeo.train import resolve_device

    model, data = load_run(args.run_dir)
    device = resolve_device(args.device)
    model = model.to(device).eval()
    user_emb, item_emb = model.embeddings()
    user, item = data[INTERACTS].edge_index.to(device)
    num_items = item_emb.size(0)
    top_k = min(args.top_k, num_items)
    seen_key = torch.sort(user * num_items + item).values
    original = data[USER].get("original_id", torch.arange(data[USER].num_nodes))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w") as handle:
        handle.write("userID\titemIDs\n")
        for start in range(0, user_emb.size(0), args.batch_size):
            users = torch.arange(
                start, min(start + args.batch_size, user_emb.size(0)), device=device
            )
            scores = user_emb[users] @ item_emb.t()
            lo = torch.searchsorted(seen_key, users * num_items)
            hi = torch.searchsorted(seen_key, (users + 1) * num_items)
            counts = hi - lo
            rows = torch.repeat_interleave(torch.arange(users.numel(), device=device), counts)
            offsets = torch.repeat_interleave(lo - (counts.cumsum(0) - counts), counts)
            keys = seen_key[offsets + torch.arange(rows.numel(), device=device)]
            scores[rows, keys % num_items] = -torch.inf
            top = scores.topk(top_k, dim=1).indices.cpu().tolist()
            ids = original[users.cpu()].tolist()
            handle.writelines(
                f"{uid}\t{','.join(map(str, items))}\n" for uid, items in zip(ids, top)
            )
    print(f"dreamgeo: wrote the top-{top_k} unseen items of {user_emb.size(0)} users to {output}")
    return 0
