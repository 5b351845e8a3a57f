r"""The ``dreamgeo`` command: ``train``, ``recommend`` and ``generate``.

``python examples/train_amazon.py ...`` is ``dreamgeo train ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, modality_names

__all__ = ["main", "build_parser", "load_data", "build_model", "MODEL_NAMES"]

log = logging.getLogger("dreamgeo")

MODEL_NAMES = (
    "dream",
    "lightgcn",
    "bpr",
    "vbpr",
    "bm3",
    "freedom",
    "mgcn",
    "lgmrec",
    "dualgnn",
    "slmrec",
)


# The dataset name that falls back to the planted preset of the same name when absent.
_FALLBACK_DATASET = "baby"


class CommandLineError(ValueError):
    r"""A command-line argument that cannot be used; printed without a traceback."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _modal_weights(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = (token.strip() for token in part.partition("="))
        if not sep or not name:
            raise argparse.ArgumentTypeError(
                f"expected NAME=WEIGHT[,NAME=WEIGHT...] like image=0.3,text=0.7, got '{text}'"
            )
        if name in weights:
            raise argparse.ArgumentTypeError(f"modality '{name}' is given twice in '{text}'")
        try:
            weights[name] = _non_negative_float(value)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{part.strip()}: {error}") from None
    if abs(sum(weights.values()) - 1.0) > 1e-6:
        raise argparse.ArgumentTypeError(
            f"modal weights must sum to 1 (Eq. 7 of the paper), got {text} "
            f"(sum {sum(weights.values()):.6g})"
        )
    return weights


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from dreamgeo.datasets import PLANTED_PRESETS

    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        default="baby",
        help="MMRec dataset name: reads DATA_ROOT/NAME/NAME.inter and the feature .npy "
        "files (a name without files is an error listing those found, except baby)",
    )
    group.add_argument("--data-root", default="data", help="directory of datasets")
    group.add_argument(
        "--preset",
        choices=sorted(PLANTED_PRESETS),
        default=None,
        help="train on the planted synthetic preset instead of real files "
        "(used automatically, as 'baby', when --dataset baby has no files)",
    )
    group.add_argument(
        "--data-seed", type=_non_negative_int, default=0, help="seed of the planted generator"
    )


def build_parser() -> argparse.ArgumentParser:
    r"""The argument parser of the ``dreamgeo`` command."""
    from dreamgeo.nn.dream import ABLATIONS

    parser = argparse.ArgumentParser(
        prog="dreamgeo", description="DREAM and multimodal recommendation on PyG"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a model with the paper's protocol and print its metrics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_data_arguments(train)
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODEL_NAMES, default="dream")
    model.add_argument(
        "--ablation",
        choices=sorted(ABLATIONS),
        default="full",
        help="a row of the paper's Table 3 (DREAM only)",
    )
    model.add_argument("--embedding-dim", type=_positive_int, default=64)
    model.add_argument(
        "--num-layers", type=_non_negative_int, default=2, help="behaviour-line layers L"
    )
    model.add_argument(
        "--knn-k", type=_positive_int, default=10, help="neighbours per row in the relation graphs"
    )
    model.add_argument("--knn-mode", choices=("exact", "ivf"), default="exact")
    model.add_argument(
        "--knn-backend",
        choices=("torch", "faiss"),
        default="torch",
        help="top-k search engine: torch (blocked products; with --knn-mode ivf, the "
        "torch IVF of dreamgeo.graph.knn) or faiss",
    )
    model.add_argument(
        "--bma",
        action="store_true",
        help="add BMALoss (--tau, --intra-weight, --inter-weight) to a baseline that "
        "supports it (vbpr, bm3, freedom, mgcn, lgmrec, slmrec)",
    )
    model.add_argument(
        "--modal-weights",
        type=_modal_weights,
        default=None,
        help="alpha_m per modality, e.g. image=0.3,text=0.7 (default: "
        "image 0.3, text 0.7; uniform for other modality sets)",
    )
    model.add_argument(
        "--intra-weight",
        type=_non_negative_float,
        default=0.01,
        help="alpha, Intra-Alignment weight",
    )
    model.add_argument(
        "--inter-weight",
        type=_non_negative_float,
        default=0.01,
        help="beta, Inter-Alignment weight",
    )
    model.add_argument(
        "--s3-weight", type=_non_negative_float, default=0.1, help="gamma, S3 weight"
    )
    model.add_argument(
        "--reg-weight",
        type=_non_negative_float,
        default=1e-4,
        help="lambda, L2 weight on the batch's ID embeddings",
    )
    model.add_argument("--tau", type=_positive_float, default=0.2, help="InfoNCE temperature")
    model.add_argument(
        "--feature-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="DREAM: dtype of the stored item features and S3 targets; bfloat16 halves "
        "their memory and speeds up the projections on GPUs and AMX / AVX-512 BF16 CPUs",
    )
    run = train.add_argument_group("training")
    run.add_argument("--epochs", type=_positive_int, default=1000)
    run.add_argument("--batch-size", type=_positive_int, default=2048)
    run.add_argument("--lr", type=_positive_float, default=1e-3)
    run.add_argument(
        "--patience",
        type=_positive_int,
        default=20,
        help="epochs without a better valid Recall@20 before stopping",
    )
    run.add_argument(
        "--max-time",
        type=_positive_float,
        default=None,
        help="wall-clock budget in seconds (training + evaluation): stop after the epoch "
        "that reaches it and keep the best epoch so far (default: no budget)",
    )
    run.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of the initialization, the negatives and the batch order",
    )
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument(
        "--out-dir",
        default=None,
        help="logs and checkpoint (default: runs/<data>-<model>[-<ablation>]-seed<seed>)",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out-dir"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="do not log the per-epoch Modal Information Forgetting and behaviour-modal "
        "cosine of models with dual representations (dreamgeo.diagnostics; ~1%% of an epoch)",
    )

    recommend = commands.add_parser(
        "recommend", help="write each user's top-K unseen items from a trained run"
    )
    recommend.add_argument("--run-dir", required=True, help="the --out-dir of a train run")
    recommend.add_argument("--top-k", type=_positive_int, default=20)
    recommend.add_argument(
        "--output",
        required=True,
        help="TSV file: userID <tab> item IDs, best first, comma-separated",
    )
    recommend.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    recommend.add_argument("--batch-size", type=_positive_int, default=4096)

    generate = commands.add_parser(
        "generate", help="write a planted synthetic dataset in the MMRec format"
    )
    generate.add_argument("--preset", default="baby")
    generate.add_argument("--data-root", default="data")
    generate.add_argument("--name", default=None, help="dataset name (default: planted_<preset>)")
    generate.add_argument("--data-seed", type=_non_negative_int, default=0)

    from dreamgeo.experiments.command import add_experiment_parser

    add_experiment_parser(commands)
    return parser


def load_data(
    dataset: str, data_root: str, preset: str | None, data_seed: int = 0
) -> tuple[HeteroData, str]:
    r"""The dataset to train on and a description of where it came from: the MMRec files
    of ``dataset`` under ``data_root``, or, with a ``preset`` or when those files are
    absent, the planted preset written to ``data_root/planted_<preset>``."""
    from dreamgeo.datasets import MMRecDataset, write_planted

    inter = Path(data_root) / dataset / f"{dataset}.inter"
    preset_given = preset
    if preset is None and inter.exists():
        return MMRecDataset(data_root, dataset)[0], f"MMRec files in {inter.parent}"
    preset = preset or "baby"
    name = f"planted_{preset}"
    if not inter.exists() and dataset != name and preset_given is None:
        print(
            f"dreamgeo: no MMRec data at {inter}; using the planted synthetic '{preset}' "
            f"preset (seed {data_seed}) in {Path(data_root) / name}, generated if absent."
        )
    write_planted(data_root, name, preset=preset, seed=data_seed)
    return MMRecDataset(data_root, name)[0], f"planted '{preset}' preset (seed {data_seed})"


def _check_model_arguments(name: str, args: dict[str, Any], modalities: list[str]) -> None:
    r"""Raises :class:`CommandLineError` when the model flags in ``args`` do not fit the
    model ``name`` or a dataset with the item ``modalities``."""
    from dreamgeo.models.registry import BMA_PLUGIN_MODELS

    ablation = args.get("ablation", "full")
    if name != "dream":
        if ablation != "full":
            raise CommandLineError("--ablation applies to --model dream only")
        if args.get("feature_dtype", "float32") != "float32":
            raise CommandLineError("--feature-dtype applies to --model dream only")
        if args.get("bma") and name not in BMA_PLUGIN_MODELS:
            raise CommandLineError(
                f"--bma: {name} has no behaviour/modal split; use one of "
                f"{', '.join(BMA_PLUGIN_MODELS)}"
            )
        return
    if args.get("bma"):
        raise CommandLineError("--bma: DREAM has BMA built in (see --ablation)")
    if args.get("modal_weights") is not None and set(args["modal_weights"]) != set(modalities):
        raise CommandLineError(
            f"--modal-weights names {sorted(args['modal_weights'])}, but the data has "
            f"the modalities {modalities}"
        )
    if ablation in ("no_text_encoder", "no_image_encoder"):
        needed = ablation.split("_")[1]
        if needed not in modalities:
            raise CommandLineError(
                f"--ablation {ablation}: the data has no '{needed}' modality ({modalities})"
            )


def _data_modalities(dataset: str, data_root: str, preset: str | None) -> list[str]:
    r"""The item modalities :func:`load_data` will give for these flags, found without
    reading any data file. Raises :class:`CommandLineError` for a dataset that is
    neither on disk nor the default ``baby`` (which falls back to planted data)."""
    from dreamgeo.datasets import PLANTED_PRESETS, MMRecDataset

    if preset is not None:
        return list(PLANTED_PRESETS[preset].modality_dims)
    root = Path(data_root)
    inter = root / dataset / f"{dataset}.inter"
    if inter.is_file():
        return list(MMRecDataset.default_modalities(root, dataset))
    if inter.parent.is_dir():
        raise CommandLineError(
            f"--dataset {dataset}: the folder {inter.parent} exists but has no {inter.name}; "
            f"add it (MMRec format), or pass --preset NAME to train on planted data"
        )
    if dataset != _FALLBACK_DATASET:
        found = sorted(p.parent.name for p in root.glob("*/*.inter") if p.stem == p.parent.name)
        raise CommandLineError(
            f"--dataset {dataset}: no MMRec files at {inter}; datasets in {root}: "
            f"{', '.join(found) or 'none'} (pass --preset NAME to train on planted synthetic "
            f"data; only the default --dataset {_FALLBACK_DATASET} falls back to it)"
        )
    return list(PLANTED_PRESETS[_FALLBACK_DATASET].modality_dims)


def _check_train_arguments(args: argparse.Namespace) -> None:
    r"""The checks of ``dreamgeo train`` flags that involve several flags or the data
    folder, run before any data is generated or loaded (argparse checks single values)."""
    modalities = _data_modalities(args.dataset, args.data_root, args.preset)
    _check_model_arguments(args.model, vars(args), modalities)


def build_model(name: str, data: HeteroData, args: dict[str, Any], cache_dir: str | None):
    r"""The model ``name`` built on ``data`` from the ``train`` arguments ``args``.

    DREAM takes every model flag; the baselines take ``--embedding-dim`` (and LightGCN
    ``--num-layers`` and ``--reg-weight``) and otherwise keep their own papers' defaults;
    ``--bma`` adds :class:`~dreamgeo.nn.BMALoss` to those that support it."""
    from dreamgeo.models.registry import build_model as build_registered
    from dreamgeo.nn import BMALoss
    from dreamgeo.nn.dream import ABLATIONS, DREAM

    _check_model_arguments(name, args, modality_names(data))
    ablation = args.get("ablation", "full")
    if name != "dream":
        kwargs: dict[str, Any] = {"embedding_dim": args["embedding_dim"]}
        if name == "lightgcn":
            kwargs.update(num_layers=args["num_layers"], reg_weight=args["reg_weight"])
        if args.get("bma"):
            kwargs["bma"] = BMALoss(args["tau"], args["intra_weight"], args["inter_weight"])
        return build_registered(name, data, **kwargs)
    kwargs = dict(
        embedding_dim=args["embedding_dim"],
        num_layers=args["num_layers"],
        knn_k=args["knn_k"],
        knn_mode=args["knn_mode"],
        knn_backend=args.get("knn_backend", "torch"),
        modal_weights=args["modal_weights"],
        tau=args["tau"],
        intra_weight=args["intra_weight"],
        inter_weight=args["inter_weight"],
        s3_weight=args["s3_weight"],
        reg_weight=args["reg_weight"],
        graph_cache_dir=cache_dir,
        feature_dtype=args.get("feature_dtype", "float32"),
    )
    return DREAM(data, **{**kwargs, **ABLATIONS[ablation]})


def _results_table(result, model_name: str, data_info: str) -> str:
    rows = [
        f"{model_name} on {data_info}: best epoch {result.best_epoch} "
        f"({len(result.history)} epochs run, {result.epoch_time:.2f} s/epoch training, "
        f"{result.eval_time:.2f} s/evaluation)",
        "",
        "| split | R@10 | R@20 | N@10 | N@20 |",
        "|---|---|---|---|---|",
    ]
    for split in ("valid", "test"):
        metrics = getattr(result, split)
        rows.append(
            f"| {split} | "
            + " | ".join(
                f"{metrics[key]:.4f}" for key in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
            )
            + " |"
        )
    return "\n".join(rows)


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


def _train(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from dreamgeo.train import TrainConfig, Trainer

    _check_train_arguments(args)
    rank = _init_distributed(args.device)
    say = print if rank == 0 else (lambda *a, **k: None)
    real_files = Path(args.data_root) / args.dataset / f"{args.dataset}.inter"
    planted = args.preset is not None or not real_files.exists()
    data_name = f"planted_{args.preset or 'baby'}" if planted else args.dataset
    suffix = f"-{args.ablation}" if args.ablation != "full" else ""
    suffix += "-bma" if args.bma else ""
    out_dir = Path(args.out_dir or f"runs/{data_name}-{args.model}{suffix}-seed{args.seed}")
    cache_dir = str(Path(args.data_root) / "cache")
    # rank 0 generates / processes the data and builds the graph caches first; the
    # other ranks then read them instead of racing to write them
    if rank != 0:
        dist.barrier()
    torch.manual_seed(args.seed)
    data, data_info = load_data(args.dataset, args.data_root, args.preset, args.data_seed)
    say(
        f"dreamgeo: {data[USER].num_nodes} users, {data[ITEM].num_nodes} items, "
        f"{data[INTERACTS].edge_index.size(1)} training interactions, modalities "
        f"{modality_names(data)}; run directory {out_dir}"
    )
    tic = time.perf_counter()
    model = build_model(args.model, data, vars(args), cache_dir=cache_dir)
    say(
        f"dreamgeo: built {args.model} in {time.perf_counter() - tic:.1f} s "
        f"({sum(p.numel() for p in model.parameters())} parameters)"
    )
    if rank == 0 and dist.is_initialized():
        dist.barrier()
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        out_dir=str(out_dir),
        resume=args.resume,
        progress=not args.no_progress,
        max_time=args.max_time,
    )
    run_info = {"args": {k: v for k, v in vars(args).items() if k != "func"}, "data": data_info}
    callbacks = []
    if hasattr(model, "dual_representations") and not args.no_diagnostics:
        from dreamgeo.diagnostics import DualRepresentationDiagnostics

        callbacks.append(DualRepresentationDiagnostics(data))
    trainer = Trainer(model, data, config, run_info=run_info, callbacks=callbacks)
    result = trainer.fit()
    trainer.close()
    if dist.is_initialized():
        world_size = dist.get_world_size()
        dist.destroy_process_group()
        if rank != 0:
            return 0
        data_info += f", {world_size} processes"
    table = _results_table(result, args.model, data_info)
    print(table)
    (out_dir / "result.md").write_text(table + "\n")
    (out_dir / "result.json").write_text(
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
                "model": args.model,
                "ablation": args.ablation,
                "bma": args.bma,
                "args": run_info["args"],
            },
            indent=2,
        )
    )
    return 0


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, HeteroData]:
    r"""The model of a ``dreamgeo train`` run directory with its best epoch's weights,
    rebuilt on its data from the arguments stored in the checkpoint."""
    from dreamgeo.train.trainer import CHECKPOINT_NAME

    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        raise CommandLineError(f"{path} does not exist: give the --out-dir of a train run")
    state = torch.load(path, map_location="cpu", weights_only=False)
    train_args = state["run_info"]["args"]
    data, _ = load_data(
        train_args["dataset"],
        train_args["data_root"],
        train_args["preset"],
        train_args["data_seed"],
    )
    model = build_model(
        train_args["model"],
        data,
        train_args,
        cache_dir=str(Path(train_args["data_root"]) / "cache"),
    )
    model.load_state_dict(state["best"]["state"] or state["model"])
    return model, data


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
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"train": _train, "recommend": _recommend, "generate": _generate}
    handler = handlers.get(args.command, getattr(args, "func", None))
    try:
        return handler(args)
    except (CommandLineError, FileNotFoundError, ValueError) as error:
        parser.exit(2, f"dreamgeo {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
