r"""How much each modality's feature similarities say about held-out interactions, per
dataset (issue 34: S3 pulls DREAM's modal representations toward these similarities):
valid and test Recall@20 of training-free rankings on the trainer's full-ranking
evaluator (training items masked):

* ``popularity``: items by training degree;
* ``profile <m>``: :math:`s_{ui} = \frac{1}{|I_u|}\sum_{j \in I_u} \cos(x^m_i, x^m_j)`,
  the mean cosine of an item to the user's training items in modality :math:`m`;
* ``S3 target``: the same with DREAM's S3 target similarity
  :math:`\sum_m \alpha_m \cos(x^m_i, x^m_j)` at the default weights (``image`` 0.3 /
  ``text`` 0.7 for image + text, uniform otherwise).

    python benchmarks/feature_signal.py --data-root data/proxies planted_9k \
        scientific_weak_text --extra ../shared/data/scientific \
        --out benchmarks/results/robustness/feature-signal.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import split_evaluator  # noqa: E402
from dreamgeo.datasets import MMRecDataset  # noqa: E402
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key, modality_names  # noqa: E402
from dreamgeo.nn.modal_line import modality_weights  # noqa: E402

__all__ = ["main", "signal_rows"]


def _user_mean(data, rows: torch.Tensor) -> torch.Tensor:
    edge = data[INTERACTS].edge_index
    num_users = data[USER].num_nodes
    out = torch.zeros(num_users, rows.size(1)).index_add_(0, edge[0], rows[edge[1]])
    return out / torch.bincount(edge[0], minlength=num_users).clamp(min=1)[:, None]


def signal_rows(data) -> list[tuple[str, float, float]]:
    r"""``(ranking, valid Recall@20, test Recall@20)`` for popularity, each modality's
    profile and the S3 target mix of ``data``."""
    evaluator = split_evaluator(data, ks=(20,))
    out = []

    def add(name: str, user_emb: torch.Tensor, item_emb: torch.Tensor) -> None:
        metrics = evaluator.evaluate(user_emb, item_emb)
        out.append((name, metrics["valid"]["recall@20"], metrics["test"]["recall@20"]))

    degree = torch.bincount(data[INTERACTS].edge_index[1], minlength=data[ITEM].num_nodes)
    add("popularity", torch.ones(data[USER].num_nodes, 1), degree[:, None].float())
    modalities = modality_names(data)
    normalized = {m: F.normalize(data[ITEM][feature_key(m)].float(), dim=1) for m in modalities}
    for m, x in normalized.items():
        add(f"profile {m}", _user_mean(data, x), x)
    if len(modalities) > 1:
        weights = modality_weights(0.3, modalities)
        z = torch.cat([normalized[m] * weights[m] ** 0.5 for m in modalities], dim=1)
        add(
            "S3 target (" + ", ".join(f"{m} {w:g}" for m, w in weights.items()) + ")",
            _user_mean(data, z),
            z,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", help="dataset names under --data-root")
    parser.add_argument("--data-root", default="data/proxies")
    parser.add_argument("--extra", nargs="*", default=[], help="more dataset folders")
    parser.add_argument("--out", default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    folders = [Path(args.data_root) / name for name in args.datasets] + [
        Path(p) for p in args.extra
    ]
    lines = [
        "# Feature signal: training-free rankings from feature similarities (Recall@20)",
        "",
        "| dataset | ranking | valid R@20 | test R@20 |",
        "|---|---|---|---|",
    ]
    for folder in folders:
        data = MMRecDataset(folder.parent, folder.name, log=False)[0]
        for name, valid, test in signal_rows(data):
            lines.append(f"| {folder.name} | {name} | {valid:.4f} | {test:.4f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
