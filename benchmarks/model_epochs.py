r"""Times one model in this (fresh) process: building it (relation graphs and other
precomputation included), training epochs (median of ``--repeats`` after one warm-up
epoch) and full valid + test evaluations, and reports the peak resident memory of the
whole run. Run by ``run_all.py`` (table A and F); prints one JSON line.

    python benchmarks/model_epochs.py --model dream --preset baby --data-root data
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_benchmark_model, emit_result, peak_rss_mb, synchronize  # noqa: E402

__all__ = ["main", "disable_accelerators"]


def disable_accelerators() -> None:
    r"""Makes ``import torch_scatter`` / ``torch_sparse`` / ``pyg_lib`` fail in this
    process, so that PyG falls back to its pure-torch code paths. Must run before
    :mod:`torch_geometric` is imported."""
    for name in ("torch_scatter", "torch_sparse", "pyg_lib"):
        sys.modules[name] = None  # type: ignore[assignment]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--knn-mode", choices=("exact", "ivf"), default="exact")
    parser.add_argument("--knn-backend", choices=("torch", "faiss", "torch_ivf"), default="torch")
    parser.add_argument(
        "--feature-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="DREAM's feature_dtype",
    )
    parser.add_argument(
        "--no-accelerators",
        action="store_true",
        help="hide torch_scatter / torch_sparse / pyg_lib from PyG",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.no_accelerators:
        disable_accelerators()
    import torch

    from dreamgeo.commands import load_data
    from dreamgeo.graph import build_relation_graphs
    from dreamgeo.models import get_model
    from dreamgeo.train import TrainConfig, Trainer

    torch.manual_seed(0)
    data, info = load_data(args.preset, args.data_root, args.preset)
    cli_backend = "faiss" if args.knn_backend == "faiss" else "torch"
    options = {
        "knn_mode": args.knn_mode,
        "knn_backend": cli_backend,
        "feature_dtype": args.feature_dtype,
    }
    knn_k = get_model(args.model).hparams.defaults().get("knn_k", 10)
    graph_seconds = None
    if args.model == "dream":
        # built here, with the chosen engine, so that their time is reported on its own;
        # DREAM then finds them stored in ``data`` and does not search again
        synchronize()
        tic = time.perf_counter()
        backend = args.knn_backend
        if args.knn_mode == "ivf" and backend == "torch":
            backend = "torch_ivf"
        build_relation_graphs(data, k=knn_k, mode=args.knn_mode, backend=backend)
        graph_seconds = time.perf_counter() - tic
    synchronize()
    tic = time.perf_counter()
    model = build_benchmark_model(args.model, data, **options)
    synchronize()
    build_seconds = time.perf_counter() - tic + (graph_seconds or 0.0)
    config = TrainConfig(
        epochs=args.repeats + 1,
        batch_size=args.batch_size,
        device=args.device,
        progress=False,
        seed=0,
    )
    trainer = Trainer(model, data, config)
    trainer.train_epoch(1)  # warm-up: allocator, caches, lazily built operators
    epoch_seconds = []
    for epoch in range(2, args.repeats + 2):
        synchronize()
        tic = time.perf_counter()
        trainer.train_epoch(epoch)
        synchronize()
        epoch_seconds.append(time.perf_counter() - tic)
    trainer.evaluate()  # warm-up
    eval_seconds = []
    for _ in range(max(1, args.repeats)):
        synchronize()
        tic = time.perf_counter()
        trainer.evaluate()
        synchronize()
        eval_seconds.append(time.perf_counter() - tic)
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    emit_result(
        {
            "model": args.model,
            "feature_dtype": args.feature_dtype,
            "data": info,
            "device": str(trainer.device),
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps_per_epoch": len(trainer.sampler),
            "graph_seconds": graph_seconds,
            "build_seconds": build_seconds,
            "epoch_seconds": epoch_seconds,
            "epoch_median": statistics.median(epoch_seconds),
            "eval_seconds": eval_seconds,
            "eval_median": statistics.median(eval_seconds),
            "peak_rss_mb": peak_rss_mb(),
            "gpu_peak_mb": gpu_peak,
            "accelerators_hidden": args.no_accelerators,
        }
    )


if __name__ == "__main__":
    main()
