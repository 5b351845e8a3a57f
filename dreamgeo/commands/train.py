r"""``dreamgeo train``: trains one model with the paper's protocol, its
hyper-parameters resolved from the model's declaration, ``--config``, ``--set`` and
flags, into a run folder that is never silently overwritten or mixed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData

from dreamgeo.argtypes import positive_float
from dreamgeo.commands.common import (
    CommandLineError,
    add_data_arguments,
    configs_root,
    default_cache_dir,
)
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, modality_names
from dreamgeo.train.checkpoint import atomic_write_text
from dreamgeo.train.evaluate import format_metrics_table

__all__ = ["add_train_parser", "train_parser", "model_from_arguments", "run_train"]

log = logging.getLogger("dreamgeo")


def _add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how models are computed (DREAM, FREEDOM, MGCN)")
    group.add_argument(
        "--knn-mode", choices=("exact", "ivf"), default=None, help="top-k search (default exact)"
    )
    group.add_argument(
        "--knn-backend",
        choices=("torch", "faiss"),
        default=None,
        help="DREAM's top-k engine: torch (blocked products; with --knn-mode ivf, the torch "
        "IVF of dreamgeo.graph) or faiss (default torch)",
    )
    group.add_argument(
        "--feature-dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="DREAM: dtype of the stored item features and S3 targets; bfloat16 halves "
        "their memory and speeds up the projections on GPUs and AMX / AVX-512 BF16 CPUs",
    )


def add_train_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``train`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.config import add_hparam_arguments
    from dreamgeo.models import MODELS

    train = commands.add_parser(
        "train",
        help="train a model with the paper's protocol and print its metrics",
        description="Trains one model. Hyper-parameters come from the model's declared "
        "defaults, --config FILE, --set KEY=VALUE and the flags below, in that order; a "
        "key the model does not take is an error. --list-hparams shows them.",
    )
    add_data_arguments(train)
    model = train.add_argument_group("model")
    model.add_argument(
        "--model", choices=list(MODELS), default=None, help="the model (default: dream)"
    )
    model.add_argument(
        "--list-hparams",
        action="store_true",
        help="print the model's hyper-parameters (name, type, default, range, search "
        "space) and exit",
    )
    add_hparam_arguments(train)
    _add_runtime_arguments(train)
    run = train.add_argument_group("run")
    run.add_argument(
        "--max-time",
        type=positive_float,
        default=None,
        help="wall-clock budget in seconds (training + evaluation): stop after the epoch "
        "that reaches it and keep the best epoch so far (default: no budget)",
    )
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument(
        "--out-dir",
        default=None,
        help="run folder: logs, checkpoint, results, training curve (default: "
        "runs/<data>-<model>[-<ablation>]-seed<seed>)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out-dir (refused if its stored settings differ)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out-dir"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--cold-items",
        type=float,
        default=None,
        metavar="FRACTION",
        help="hold out this share of the items with all their interactions (drawn with "
        "--seed), train on the rest and report Recall/NDCG of ranking the held-out items "
        "from their features alone (docs/results.md, cold-start items)",
    )
    run.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="do not log the per-epoch Modal Information Forgetting and behaviour-modal "
        "cosine of models with dual representations (dreamgeo.diagnostics; ~1%% of an epoch)",
    )
    train.set_defaults(func=run_train)
    return train


def train_parser() -> argparse.ArgumentParser:
    r"""A parser of ``dreamgeo train`` arguments alone (``["train", ...]``)."""
    parser = argparse.ArgumentParser(prog="dreamgeo")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _runtime_options(args: Mapping[str, Any], cache_dir: str | None) -> dict[str, Any]:
    options = {key: args.get(key) for key in ("knn_mode", "knn_backend", "feature_dtype")}
    options["graph_cache_dir"] = cache_dir
    return options


def model_from_arguments(
    name: str, data: HeteroData, args: Mapping[str, Any], cache_dir: str | None
):
    r"""The model ``name`` built on ``data`` from command-line arguments ``args`` (a
    ``vars(namespace)`` of ``dreamgeo train``): its declared defaults, ``--config``,
    ``--set`` and the given flags, checked against its declaration."""
    from dreamgeo.config import given_hparam_flags, resolve_run

    info, values = resolve_run(
        name, args.get("config"), args.get("assignments"), given_hparam_flags(args)
    )
    return info.build(data, values, **_runtime_options(args, cache_dir))


def _list_hparams(info) -> str:
    grid = info.hparams.grid_size()
    return (
        f"{info.label} ({info.name}) hyper-parameters; grid size {grid}\n\n{info.hparams.table()}\n"
    )


def _results_table(result, model_name: str, data_info: str) -> str:
    return (
        f"{model_name} on {data_info}: best epoch {result.best_epoch} "
        f"({len(result.history)} epochs run, {result.epoch_time:.2f} s/epoch training, "
        f"{result.eval_time:.2f} s/evaluation)\n\n"
        + format_metrics_table({"valid": result.valid, "test": result.test}, short=True)
    )


def _init_distributed(device: str) -> int:
    r"""Joins the process group that ``torchrun`` describes in the environment (gloo on
    CPUs, NCCL on GPUs); returns this process's rank (0 without torchrun)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_rank()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    use_cuda = device == "cuda" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank()


def run_train(args: argparse.Namespace) -> int:
    r"""Runs ``dreamgeo train`` with the parsed ``args``."""
    import torch.distributed as dist

    from dreamgeo import __version__
    from dreamgeo.config import given_hparam_flags, resolve_run
    from dreamgeo.datasets.source import (
        check_held_out,
        data_checksum,
        load_source,
        resolve_source,
    )
    from dreamgeo.train import TrainConfig, Trainer
    from dreamgeo.train.run_dir import check_run_dir, prepare_run_dir

    info, values = resolve_run(args.model, args.config, args.assignments, given_hparam_flags(args))
    if args.list_hparams:
        print(_list_hparams(info))
        return 0
    source = resolve_source(
        args.dataset, args.data_root, args.preset, args.data_seed, args.modalities
    )
    runtime = _runtime_options(vars(args), None)
    refused = [k for k, v in runtime.items() if v is not None and k not in info.runtime_options]
    if [k for k in refused if k != "graph_cache_dir"]:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in refused if k != "graph_cache_dir")
        raise CommandLineError(f"{flags}: not an option of {info.name}")
    _check_modalities(info.name, values, source.modalities())
    _, train_values = info.hparams.split(values)
    rank = _init_distributed(args.device)
    say = print if rank == 0 else (lambda *a, **k: None)
    ablation = values.get("ablation", "full")
    suffix = f"-{ablation}" if ablation != "full" else ""
    suffix += "-bma" if values.get("bma") else ""
    out_dir = Path(
        args.out_dir or f"runs/{source.name}-{info.name}{suffix}-seed{train_values['seed']}"
    )
    if rank == 0:  # a folder that would be refused is refused before any data is read
        check_run_dir(out_dir, resume=args.resume, overwrite=args.overwrite)
    cache_dir = default_cache_dir(args.data_root, args.cache_dir)
    # rank 0 generates / processes the data and builds the graph caches first; the
    # other ranks then read them instead of racing to write them
    if rank != 0:
        dist.barrier()
    torch.manual_seed(train_values["seed"])
    data = load_source(source, args.cache_dir)
    check_held_out(source, data)
    cold = None
    if args.cold_items is not None:
        from dreamgeo.train.cold_start import hold_out_items

        data, cold = hold_out_items(data, args.cold_items, seed=train_values["seed"])
        say(
            f"dreamgeo: {cold.items.numel()} items ({args.cold_items:g}) held out with their "
            f"{cold.edge_index.size(1)} interactions (cold-start items)"
        )
    say(
        f"dreamgeo: {info.label} on {source.describe()}: {data[USER].num_nodes} users, "
        f"{data[ITEM].num_nodes} items, {data[INTERACTS].edge_index.size(1)} training "
        f"interactions, modalities {modality_names(data)}"
    )
    record = {
        "model": info.name,
        "data": source.describe(),
        "data_checksum": data_checksum(data),
        "modalities": modality_names(data),
        "hparams": values,
        "options": {k: v for k, v in runtime.items() if k != "graph_cache_dir"},
        "version": __version__,
        "cold_items": args.cold_items,
    }
    resume = False
    if rank == 0:
        resume = prepare_run_dir(out_dir, record, resume=args.resume, overwrite=args.overwrite)
    tic = time.perf_counter()
    runtime["graph_cache_dir"] = cache_dir
    model = info.build(data, values, **runtime)
    say(
        f"dreamgeo: built {info.name} in {time.perf_counter() - tic:.1f} s "
        f"({sum(p.numel() for p in model.parameters())} parameters); run folder {out_dir}"
    )
    if rank == 0 and dist.is_initialized():
        dist.barrier()
    config = TrainConfig(
        **train_values,
        device=args.device,
        out_dir=str(out_dir),
        resume=resume or (args.resume and dist.is_initialized()),
        progress=not args.no_progress,
        max_time=args.max_time,
    )
    run_info = {
        "model": info.name,
        "hparams": values,
        "source": dataclasses.asdict(source),
        "options": record["options"],
        "cache_dir": args.cache_dir,
    }
    callbacks = []
    if hasattr(model, "dual_representations") and not args.no_diagnostics:
        from dreamgeo.diagnostics import DualRepresentationDiagnostics

        callbacks.append(DualRepresentationDiagnostics(data))
    trainer = Trainer(model, data, config, run_info=run_info, callbacks=callbacks)
    result = trainer.fit()
    trainer.close()
    data_info = source.describe()
    if dist.is_initialized():
        world_size = dist.get_world_size()
        dist.destroy_process_group()
        if rank != 0:
            return 0
        data_info += f", {world_size} processes"
    table = _results_table(result, info.label, data_info)
    cold_result = None
    if cold is not None:
        cold_result = _cold_metrics(model, data, cold)
        table += "\n\n" + _cold_table(cold_result, info.label)
    print(table)
    baseline = _best_baseline_table(source.name, info.name)
    if baseline:
        print(baseline)
    atomic_write_text(table + "\n" + (baseline or ""), out_dir / "result.md")
    atomic_write_text(
        json.dumps(
            {
                "best_epoch": result.best_epoch,
                "valid": result.valid,
                "test": result.test,
                "epochs_run": len(result.history),
                "epoch_time": result.epoch_time,
                "eval_time": result.eval_time,
                "wall_time": sum(row["train_time"] + row["eval_time"] for row in result.history),
                "stopped_early": result.stopped_early,
                "stopped_by_time": result.stopped_by_time,
                "data": data_info,
                "model": info.name,
                "ablation": ablation,
                "bma": bool(values.get("bma", False)),
                "hparams": values,
                "cold_items": cold_result,
            },
            indent=2,
        ),
        out_dir / "result.json",
    )
    written = [out_dir / "checkpoint.pt", out_dir / "metrics.csv", out_dir / "result.json"]
    try:
        from dreamgeo.diagnostics import plot_training_curve

        written.append(plot_training_curve(result.history, out_dir / "training_curve.png"))
    except ImportError as error:
        print(f"dreamgeo: no training curve ({error})")
    files = sorted(path.name for path in out_dir.iterdir() if not path.name.startswith("."))
    print(f"dreamgeo: run folder {out_dir}: " + ", ".join(files))
    return 0


def _cold_metrics(model, data, cold) -> dict[str, Any]:
    r"""Cold-start metrics of a trained ``model``: its own feature path where it has one
    (DREAM's ``cold_item_embeddings``), the content fold-in every model gets, and the
    feature-similarity baseline."""
    import torch

    from dreamgeo.nn.modal_line import modality_weights
    from dreamgeo.train.cold_start import (
        content_fold_in,
        evaluate_cold,
        feature_similarity_embeddings,
    )

    model = model.cpu().eval()
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
    warm = {m: data[ITEM][f"x_{m}"] for m in cold.features}
    weights = modality_weights(0.3, list(cold.features))  # the same for every model
    result = {
        "fraction_items": cold.items.numel(),
        "interactions": cold.edge_index.size(1),
        "content_fold_in": evaluate_cold(
            user_emb, content_fold_in(item_emb, warm, cold.features, weights), cold
        ),
        "feature_similarity": evaluate_cold(
            *feature_similarity_embeddings(
                data[INTERACTS].edge_index, model.num_users, warm, cold.features, weights
            ),
            cold,
        ),
    }
    if hasattr(model, "cold_item_embeddings"):
        result["own_path"] = evaluate_cold(
            user_emb, model.cold_item_embeddings(cold.features), cold
        )
    return result


def _cold_table(result: Mapping[str, Any], label: str) -> str:
    from dreamgeo.train.evaluate import format_metrics_table

    names = {
        "own_path": f"{label}: its modal path",
        "content_fold_in": f"{label}: content-neighbour fold-in",
        "feature_similarity": "feature similarity (no model)",
    }
    rows = {name: result[key] for key, name in names.items() if key in result}
    return (
        f"Cold-start items ({result['fraction_items']} held out, {result['interactions']} "
        "interactions), ranking the held-out items only:\n\n"
        + format_metrics_table(rows, short=True, row_label="method")
    )


def _check_modalities(name: str, values: Mapping[str, Any], modalities: list[str]) -> None:
    ablation = str(values.get("ablation", "full"))
    if ablation.startswith("no_") and ablation.endswith("_encoder"):
        needed = ablation[len("no_") : -len("_encoder")]
        if needed not in modalities:
            raise CommandLineError(
                f"ablation {ablation}: the data has no '{needed}' modality ({modalities})"
            )


def _best_baseline_table(dataset: str, model: str) -> str | None:
    r"""The committed results of the best tuned model other than ``model`` on
    ``dataset`` (``configs/<dataset>/table2.json``, written by ``dreamgeo experiment table2
    --tuned``), for printing beside a run's own table: the best baseline for DREAM, for a
    baseline possibly DREAM itself; :obj:`None` when there are none."""
    path = configs_root() / dataset / "table2.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())
    baselines = [row for row in rows if row["model"] != model]
    if not baselines:
        return None
    best = max(baselines, key=lambda row: row["valid"]["recall@20"])
    lines = [
        "",
        f"{'best tuned baseline' if model == 'dream' else 'best other tuned model'} on "
        f"{dataset}: {best['label']} (configs/{dataset}/"
        f"{best['model']}.yaml, from {path.name})",
        "",
        format_metrics_table({"valid": best["valid"], "test": best["test"]}, short=True),
    ]
    own = next((row for row in rows if row["model"] == model), None)
    if own is not None:
        lines += [
            "",
            f"{own['label']} tuned on {dataset}: valid R@20 {own['valid']['recall@20']:.4f}, "
            f"test R@20 {own['test']['recall@20']:.4f} (--config configs/{dataset}/"
            f"{own['config']})",
        ]
    return "\n".join(lines)
