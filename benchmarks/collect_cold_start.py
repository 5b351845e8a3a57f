r"""The cold-start table from the runs of ``benchmarks/cold_start.sh``
(``runs/cold-start/<model>-seed<s>/result.json``): Recall/NDCG@20 of ranking the held-out
10 % of the items for each model's own feature path (DREAM) and the content-neighbour
fold-in every model gets, beside the feature-similarity baseline (no model), as
mean ± std over the seeds found, with the warm valid/test Recall@20 of the same runs.

    python benchmarks/collect_cold_start.py > benchmarks/results/cold-start-scientific.md

Nothing here trains; a missing run is left out and counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import mean_std  # noqa: E402

LABELS = {
    "dream": "DREAM",
    "mgcn": "MGCN",
    "freedom": "FREEDOM",
    "lattice": "LATTICE",
    "vbpr": "VBPR",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "cold-start"))
    args = parser.parse_args()
    runs = Path(args.runs)
    results: dict[str, list[dict]] = {}
    similarity: dict[str, dict] = {}  # per seed: the same split and training items
    for path in sorted(runs.glob("*-seed*/result.json")):
        model, seed = path.parent.name.rsplit("-seed", 1)
        result = json.loads(path.read_text())
        results.setdefault(model, []).append(result)
        similarity[seed] = result["cold_items"]["feature_similarity"]
    print("# Cold-start items on the embedded scientific data\n")
    print(
        "10 % of the items (158 of 1,585) held out with all their interactions, drawn with "
        "the training seed (the same held-out items for every model at one seed); each "
        "model trained at its declared defaults with the paper's protocol on the rest; the "
        "held-out items then ranked (only them) from their features for every user with "
        "an interaction with one of them (`benchmarks/cold_start.sh`, "
        "`dreamgeo train --cold-items 0.1`). Mean ± std over seeds.\n"
    )
    print(
        "| model | seeds | cold path | cold R@20 | cold N@20 | warm valid R@20 | warm test R@20 |"
    )
    print("|---|---|---|---|---|---|---|")
    for model in ("dream", "mgcn", "freedom", "lattice", "vbpr"):
        rows = results.get(model, [])
        if not rows:
            print(f"| {LABELS[model]} | 0 | pending | | | | |")
            continue
        valid = mean_std([r["valid"]["recall@20"] for r in rows])
        test = mean_std([r["test"]["recall@20"] for r in rows])
        paths = [("own_path", "its modal path")] if "own_path" in rows[0]["cold_items"] else []
        for key, name in [*paths, ("content_fold_in", "content-neighbour fold-in")]:
            recall = mean_std([r["cold_items"][key]["recall@20"] for r in rows])
            ndcg = mean_std([r["cold_items"][key]["ndcg@20"] for r in rows])
            print(
                f"| {LABELS[model]} | {len(rows)} | {name} | {recall} | {ndcg} | {valid} | {test} |"
            )
    if similarity:
        recall = mean_std([s["recall@20"] for s in similarity.values()])
        ndcg = mean_std([s["ndcg@20"] for s in similarity.values()])
        print(
            f"| feature similarity (no model) | {len(similarity)} | mean cosine to the "
            f"user's items | {recall} | {ndcg} | | |"
        )
    print(f"\nMachine: {platform.machine()}, Python {platform.python_version()}.")


if __name__ == "__main__":
    main()
