r"""Writes the robustness proxies of issue 34 (:mod:`dreamgeo.datasets.proxies`) under a
data root, then prints each folder's shape as the loader reads it.

    python benchmarks/make_proxies.py --root data/proxies \
        --source ../shared/data/scientific            # all of them
    python benchmarks/make_proxies.py --root data/proxies --only planted_9k
    dreamgeo train --dataset planted_9k --data-root data/proxies --model dream

Deterministic: the same --seed writes byte-identical files; an up-to-date folder is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dreamgeo.datasets import MMRecDataset  # noqa: E402
from dreamgeo.datasets.proxies import PROXIES, DerivedProxy, write_proxy  # noqa: E402
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key, modality_names  # noqa: E402

__all__ = ["main", "describe"]


def describe(root: Path, name: str) -> dict:
    r"""Users, items, interactions per split, train per user, cold items and modality
    sizes of the folder ``root/name`` as :class:`MMRecDataset` reads it."""
    data = MMRecDataset(root, name, log=False)[0]
    store = data[INTERACTS]
    train = store.edge_index.size(1)
    held = store.val_edge_index[1].tolist() + store.test_edge_index[1].tolist()
    seen = set(store.edge_index[1].tolist())
    return {
        "users": data[USER].num_nodes,
        "items": data[ITEM].num_nodes,
        "train": train,
        "valid": store.val_edge_index.size(1),
        "test": store.test_edge_index.size(1),
        "train_per_user": round(train / data[USER].num_nodes, 2),
        "cold_items": len(set(held) - seen),
        "modalities": {m: data[ITEM][feature_key(m)].size(1) for m in modality_names(data)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data/proxies", help="data root to write into")
    parser.add_argument(
        "--source",
        default=str(REPO.parent / "shared" / "data" / "scientific"),
        help="the scientific MMRec folder the derived proxies start from",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="comma-separated proxy names")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(PROXIES)
    root = Path(args.root)
    summary = {}
    for name in names:
        tic = time.perf_counter()
        source = args.source if isinstance(PROXIES[name], DerivedProxy) else None
        folder = write_proxy(root, name, args.seed, source=source, overwrite=args.overwrite)
        summary[name] = describe(root, name)
        sidecar = json.loads((folder / "proxy.json").read_text())
        if sidecar.get("realized_snr"):
            summary[name]["realized_snr"] = sidecar["realized_snr"]
        print(f"{name}: {summary[name]} ({time.perf_counter() - tic:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
