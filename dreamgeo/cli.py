r"""The ``dreamgeo`` command: ``train``, ``tune``, ``experiment``, ``recommend`` and
``generate``.

``python examples/train_amazon.py ...`` is ``dreamgeo train ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from dreamgeo.argtypes import non_negative_int, positive_int
from dreamgeo.datasets.schema import INTERACTS, USER
from dreamgeo.train_command import (
    CommandLineError,
    add_train_parser,
    build_model,
    load_data,
    load_run,
)

__all__ = ["main", "build_parser", "load_data", "build_model", "load_run", "CommandLineError"]


def build_parser() -> argparse.ArgumentParser:
    r"""The argument parser of the ``dreamgeo`` command."""
    from dreamgeo.experiments.command import add_experiment_parser
    from dreamgeo.train.tune_command import add_tune_parser

    parser = argparse.ArgumentParser(
        prog="dreamgeo", description="DREAM and multimodal recommendation on PyG"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_parser(commands)
    recommend = commands.add_parser(
        "recommend", help="write each user's top-K unseen items from a trained run"
    )
    recommend.add_argument("--run-dir", required=True, help="the --out-dir of a train run")
    recommend.add_argument("--top-k", type=positive_int, default=20)
    recommend.add_argument(
        "--output",
        required=True,
        help="TSV file: userID <tab> item IDs, best first, comma-separated",
    )
    recommend.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    recommend.add_argument("--batch-size", type=positive_int, default=4096)

    generate = commands.add_parser(
        "generate", help="write a planted synthetic dataset in the MMRec format"
    )
    generate.add_argument("--preset", default="baby")
    generate.add_argument("--data-root", default="data")
    generate.add_argument("--name", default=None, help="dataset name (default: planted_<preset>)")
    generate.add_argument("--data-seed", type=non_negative_int, default=0)
    add_tune_parser(commands)
    add_experiment_parser(commands)
    return parser


def _recommend(args: argparse.Namespace) -> int:
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


def _generate(args: argparse.Namespace) -> int:
    from dreamgeo.datasets import PLANTED_PRESETS, write_planted

    if args.preset not in PLANTED_PRESETS:
        raise CommandLineError(
            f"unknown preset '{args.preset}'; choose one of {sorted(PLANTED_PRESETS)}"
        )
    path = write_planted(
        args.data_root,
        args.name or f"planted_{args.preset}",
        preset=args.preset,
        seed=args.data_seed,
    )
    print(f"dreamgeo: planted '{args.preset}' dataset in {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    r"""Entry point of the ``dreamgeo`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    from dreamgeo.config import join_negative_values

    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    from dreamgeo.train.run_dir import RunDirError

    handlers = {"recommend": _recommend, "generate": _generate}
    handler = handlers.get(args.command, getattr(args, "func", None))
    try:
        return handler(args)
    except (CommandLineError, FileNotFoundError, ValueError, RunDirError) as error:
        parser.exit(2, f"dreamgeo {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
