r"""Scale workers, each run in a fresh process (so that its peak RSS is its own) and
printing one JSON line; ``run_all.py`` turns them into tables D and E.

``graphs``: loads a planted preset and builds its four relation graphs (item–item and
user–user, every modality, k = 10) one at a time with
:func:`dreamgeo.graph.build_relation_graphs`, timing each; the peak RSS is read before
the recall check, which then compares each graph with exact search on a sample of rows
(:func:`dreamgeo.graph.knn_recall`). With ``--cache-dir`` the graphs are saved there for
``dream``.

``dream``: loads the preset and the graphs saved by ``graphs``, builds DREAM, trains one
epoch and evaluates every user on valid + test, timing each, and reports the peak RSS.

``curve``: one point of the scaling curve: ``--rows`` synthetic clustered features of
``--dim`` dimensions (1,000 topics, Gaussian noise), then one
:func:`dreamgeo.graph.knn_graph_cosine`; reports the time and the peak RSS above what the
features themselves take.

    python benchmarks/scale.py graphs --preset large --data-root data --cache-dir /tmp/g
    python benchmarks/scale.py dream --preset large --data-root data --cache-dir /tmp/g
    python benchmarks/scale.py curve --rows 1000000 --dim 384
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_benchmark_model, emit_result, peak_rss_mb, synchronize  # noqa: E402

__all__ = ["main", "synthetic_features"]

_GRAPH_ORDER = (("item", "text"), ("item", "image"), ("user", "text"), ("user", "image"))


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--mode", choices=("exact", "ivf"), default="ivf")
    parser.add_argument("--backend", choices=("torch", "faiss", "torch_ivf"), default="torch_ivf")
    parser.add_argument("--nlist", type=int, default=None)
    parser.add_argument("--nprobe", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--recall-sample", type=int, default=2000)


def _graphs(args: argparse.Namespace) -> dict:
    from dreamgeo.commands import load_data
    from dreamgeo.datasets.schema import ITEM, feature_key, modality_names, similarity_edge_type
    from dreamgeo.graph import build_relation_graphs, knn_recall, user_mean_features

    tic = time.perf_counter()
    data, info = load_data(args.preset, args.data_root, args.preset)
    load_seconds = time.perf_counter() - tic
    rss_after_load = peak_rss_mb()
    modalities = modality_names(data)
    built = []
    for node_type, m in _GRAPH_ORDER:
        if m not in modalities:
            continue
        synchronize()
        tic = time.perf_counter()
        build_relation_graphs(
            data,
            k=args.k,
            node_types=(node_type,),
            modalities=(m,),
            mode=args.mode,
            cache_dir=args.cache_dir,
            nlist=args.nlist,
            nprobe=args.nprobe,
            device=args.device,
            backend=args.backend,
        )
        synchronize()
        built.append(
            {
                "node_type": node_type,
                "modality": m,
                "rows": int(data[node_type].num_nodes),
                "dim": int(data[ITEM][feature_key(m)].size(1)),
                "seconds": time.perf_counter() - tic,
                "peak_rss_mb_so_far": peak_rss_mb(),
            }
        )
    peak = peak_rss_mb()
    if args.recall_sample > 0 and args.mode == "ivf":
        for graph in built:
            tic = time.perf_counter()
            m = graph["modality"]
            x = (
                data[ITEM][feature_key(m)]
                if graph["node_type"] == "item"
                else user_mean_features(data, m)
            )
            edge_index = data[similarity_edge_type(graph["node_type"], m)].edge_index
            graph["recall"] = knn_recall(x, args.k, edge_index, sample=args.recall_sample)
            graph["recall_seconds"] = time.perf_counter() - tic
            del x
    return {
        "data": info,
        "load_seconds": load_seconds,
        "rss_after_load_mb": rss_after_load,
        "graphs": built,
        "total_seconds": sum(graph["seconds"] for graph in built),
        "peak_rss_mb": peak,
        "search": {
            "k": args.k,
            "mode": args.mode,
            "backend": args.backend,
            "nlist": args.nlist,
            "nprobe": args.nprobe,
        },
    }


def _dream(args: argparse.Namespace) -> dict:
    import torch

    from dreamgeo.commands import load_data
    from dreamgeo.graph import build_relation_graphs
    from dreamgeo.train import TrainConfig, Trainer

    torch.manual_seed(0)
    data, info = load_data(args.preset, args.data_root, args.preset)
    tic = time.perf_counter()
    # with the cache written by ``graphs`` this only loads; without it, it searches
    build_relation_graphs(
        data,
        k=args.k,
        mode=args.mode,
        cache_dir=args.cache_dir,
        nlist=args.nlist,
        nprobe=args.nprobe,
        backend=args.backend,
    )
    graph_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    model = build_benchmark_model("dream", data, feature_dtype=args.feature_dtype)
    build_seconds = time.perf_counter() - tic
    trainer = Trainer(
        model,
        data,
        TrainConfig(batch_size=args.batch_size, device=args.device, progress=False, seed=0),
    )
    synchronize()
    tic = time.perf_counter()
    trainer.train_epoch(1)
    synchronize()
    epoch_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    trainer.evaluate()
    synchronize()
    eval_seconds = time.perf_counter() - tic
    return {
        "data": info,
        "users": int(data["user"].num_nodes),
        "items": int(data["item"].num_nodes),
        "steps": len(trainer.sampler),
        "feature_dtype": args.feature_dtype,
        "graph_load_seconds": graph_seconds,
        "build_seconds": build_seconds,
        "epoch_seconds": epoch_seconds,
        "eval_seconds": eval_seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def synthetic_features(rows: int, dim: int, topics: int = 1000, noise: float = 0.5, seed: int = 0):
    r"""Clustered float32 features ``[rows, dim]``: a random Gaussian centre per topic
    plus ``noise`` times standard Gaussian noise (scaled to the centres), generated in
    blocks so that no float64 copy of the whole matrix exists."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim), dtype=np.float32)
    topic = rng.integers(0, topics, rows)
    x = np.empty((rows, dim), dtype=np.float32)
    block = 65536
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        x[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        x[start:stop] *= noise
        x[start:stop] += centres[topic[start:stop]]
    return x


def _curve(args: argparse.Namespace) -> dict:
    from dreamgeo.graph import knn_graph_cosine, knn_recall

    tic = time.perf_counter()
    x = synthetic_features(args.rows, args.dim, seed=args.seed)
    generate_seconds = time.perf_counter() - tic
    baseline = peak_rss_mb()
    synchronize()
    tic = time.perf_counter()
    edge_index = knn_graph_cosine(
        x,
        args.k,
        mode=args.mode,
        backend=args.backend,
        nlist=args.nlist,
        nprobe=args.nprobe,
        device=args.device,
    )
    synchronize()
    seconds = time.perf_counter() - tic
    peak = peak_rss_mb()
    recall = None
    if args.recall_sample > 0 and args.mode == "ivf":
        recall = knn_recall(x, args.k, edge_index, sample=args.recall_sample)
    return {
        "rows": args.rows,
        "dim": args.dim,
        "k": args.k,
        "generate_seconds": generate_seconds,
        "seconds": seconds,
        "features_mb": x.nbytes / 2**20,
        "rss_before_mb": baseline,
        "peak_rss_mb": peak,
        "extra_mb": peak - baseline,
        "graph_mb": edge_index.numel() * edge_index.element_size() / 2**20,
        "recall": recall,
        "search": {
            "mode": args.mode,
            "backend": args.backend,
            "nlist": args.nlist,
            "nprobe": args.nprobe,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    graphs = commands.add_parser("graphs")
    dream = commands.add_parser("dream")
    for sub in (graphs, dream):
        sub.add_argument("--preset", default="large")
        sub.add_argument("--data-root", default="data")
        sub.add_argument("--cache-dir", default=None)
        _add_search_arguments(sub)
    dream.add_argument("--batch-size", type=int, default=2048)
    dream.add_argument("--feature-dtype", choices=("float32", "bfloat16"), default="float32")
    curve = commands.add_parser("curve")
    curve.add_argument("--rows", type=int, required=True)
    curve.add_argument("--dim", type=int, default=384)
    curve.add_argument("--seed", type=int, default=0)
    _add_search_arguments(curve)
    args = parser.parse_args(argv)
    handler = {"graphs": _graphs, "dream": _dream, "curve": _curve}[args.command]
    emit_result(handler(args))


if __name__ == "__main__":
    main()
