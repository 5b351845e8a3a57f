r"""Times the foundation on a planted preset: propagation (ours vs PyG's LGConv, forward
+ backward of the 2-layer behaviour line), the full evaluator (valid + test, all users),
one sampler epoch, and relation-graph building (FAISS top-k of items and users per
modality). Prints a markdown table with the machine and versions.

    python benchmarks/bench_foundation.py --preset baby
    python benchmarks/bench_foundation.py --preset large --knn-mode ivf --skip-lgconv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch_geometric.nn import LGConv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_header, markdown_table, median_time, peak_rss_mb  # noqa: E402

from dreamgeo.commands import load_data  # noqa: E402
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key, modality_names  # noqa: E402
from dreamgeo.graph import knn_graph_cosine, knn_recall, user_mean_features  # noqa: E402
from dreamgeo.nn import BipartiteLGConv  # noqa: E402
from dreamgeo.train import BPRSampler, FullRankEvaluator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--knn-mode", choices=("exact", "ivf"), default="exact")
    parser.add_argument(
        "--skip-lgconv", action="store_true", help="skip PyG's LGConv (slow on large graphs)"
    )
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument(
        "--knn-backend",
        choices=("torch", "faiss"),
        default="torch",
        help="search engine; with --knn-mode ivf, torch means the torch IVF engine",
    )
    args = parser.parse_args()

    data, info = load_data(args.preset, args.data_root, args.preset)
    num_users, num_items = data[USER].num_nodes, data[ITEM].num_nodes
    store = data[INTERACTS]
    edge_index = store.edge_index
    rows: list[list[object]] = []
    d = 64

    user = torch.randn(num_users, d, requires_grad=True)
    item = torch.randn(num_items, d, requires_grad=True)
    conv = BipartiteLGConv()

    def ours():
        u, i = user, item
        out_u, out_i = u, i
        for _ in range(2):
            u, i = conv(u, i, edge_index)
            out_u, out_i = out_u + u, out_i + i
        (out_u.sum() + out_i.sum()).backward()

    t_ours = median_time(ours, args.repeat)
    rows.append(
        ["propagation, ours (BipartiteLGConv, CSR), 2 layers fwd+bwd", f"{t_ours * 1000:.1f} ms"]
    )
    if not args.skip_lgconv:
        homogeneous = torch.cat(
            [
                torch.stack([edge_index[0], edge_index[1] + num_users]),
                torch.stack([edge_index[1] + num_users, edge_index[0]]),
            ],
            dim=1,
        )
        pyg = LGConv()
        x = torch.randn(num_users + num_items, d, requires_grad=True)

        def theirs():
            h, out = x, x
            for _ in range(2):
                h = pyg(h, homogeneous)
                out = out + h
            out.sum().backward()

        t_pyg = median_time(theirs, args.repeat)
        rows.append(
            [
                "propagation, PyG LGConv (edge list), 2 layers fwd+bwd",
                f"{t_pyg * 1000:.1f} ms ({t_pyg / t_ours:.1f}x ours)",
            ]
        )

    evaluator = FullRankEvaluator(
        edge_index,
        {"valid": store.val_edge_index, "test": store.test_edge_index},
        num_users,
        num_items,
    )
    user_emb, item_emb = torch.randn(num_users, d), torch.randn(num_items, d)
    t_eval = median_time(lambda: evaluator.evaluate(user_emb, item_emb), args.repeat)
    rows.append(
        [
            f"evaluation, valid + test, {num_users} users x {num_items} items, K in (5,10,20,50)",
            f"{t_eval:.2f} s",
        ]
    )

    sampler = BPRSampler(edge_index, num_users, num_items, batch_size=2048)
    t_sampler = median_time(lambda: [None for _ in sampler.epoch()], args.repeat)
    rows.append(
        [f"BPR sampler, one epoch ({edge_index.size(1)} triples)", f"{t_sampler * 1000:.1f} ms"]
    )

    if not args.skip_knn:
        for m in modality_names(data):
            x_item = data[ITEM][feature_key(m)]
            tic = time.perf_counter()
            backend = args.knn_backend
            if args.knn_mode == "ivf" and backend == "torch":
                backend = "torch_ivf"
            graph = knn_graph_cosine(x_item, 10, mode=args.knn_mode, backend=backend)
            elapsed = time.perf_counter() - tic
            label = f"kNN graph, items, {m} {tuple(x_item.shape)}, k=10, {args.knn_mode}/{backend}"
            if args.knn_mode == "ivf":
                recall = knn_recall(x_item, 10, graph, sample=2000)
                label += f" (recall@10 vs exact on 2,000 rows: {recall:.3f})"
            rows.append([label, f"{elapsed:.2f} s"])
            print(f"{label}: {elapsed:.2f} s", flush=True)
            tic = time.perf_counter()
            x_user = user_mean_features(data, m)
            graph = knn_graph_cosine(x_user, 10, mode=args.knn_mode, backend=backend)
            label = f"kNN graph, users, {m} {tuple(x_user.shape)}, k=10, {args.knn_mode}/{backend}"
            elapsed = time.perf_counter() - tic
            if args.knn_mode == "ivf":
                recall = knn_recall(x_user, 10, graph, sample=2000)
                label += f" (recall@10 vs exact on 2,000 rows: {recall:.3f})"
            rows.append([label + ", incl. user mean features", f"{elapsed:.2f} s"])
            print(f"{label}: {elapsed:.2f} s", flush=True)
            del x_user, graph

    print(f"## Foundation benchmark, {info}\n")
    print(machine_header())
    print(f"medians of {args.repeat} runs; peak memory {peak_rss_mb():.0f} MB\n")
    print(markdown_table(["what", "time"], rows))


if __name__ == "__main__":
    main()
