r"""Diagnostics of dual representations, as in the paper's Fig. 1b, 2a/6b and 7: train
several models with :class:`~dreamgeo.diagnostics.DualRepresentationDiagnostics` logged
every epoch, then draw

* ``fig1b_forgetting.png``: Modal Information Forgetting per epoch and model,
* ``fig2a_behavior_modal_cos.png``: behaviour–modal cosine per epoch and model (a
  ``<model>+bma`` run dashed next to its ``<model>``),
* ``fig7_tsne_<run>.png``: t-SNE of both representations of 1,000 users and items,

into ``--out-dir``, each run's logs and checkpoint in ``--out-dir/<run>``. A run whose
``metrics.jsonl`` and checkpoint already exist is not trained again (``--force`` redoes
it), so the figures can be redrawn for free.

    python examples/diagnostics.py --preset tiny --epochs 20          # seconds
    python examples/diagnostics.py --preset baby --models dream,dream:no_s3,vbpr,vbpr+bma \
        --epochs 60 --out-dir runs/diagnostics-baby

Runs are ``model[:ablation][+bma]``: ``dream``, ``dream:no_s3``, ``vbpr``, ``vbpr+bma``,
``freedom+bma``... Options this script does not know are passed to ``dreamgeo train``
(e.g. ``--lr 1e-3 --batch-size 2048 --knn-k 10 --device cuda``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from dreamgeo.commands import build_parser, load_data, model_from_arguments
from dreamgeo.diagnostics import (
    DualRepresentationDiagnostics,
    plot_behavior_modal_cosine,
    plot_dual_tsne,
    plot_forgetting,
)
from dreamgeo.models.registry import BMA_PLUGIN_MODELS, MODELS
from dreamgeo.train import TrainConfig, Trainer
from dreamgeo.train.trainer import CHECKPOINT_NAME

__all__ = ["parse_run", "main"]


def parse_run(spec: str) -> tuple[str, str, bool]:
    r"""``"dream:no_s3"`` → ``("dream", "no_s3", False)``, ``"vbpr+bma"`` →
    ``("vbpr", "full", True)``."""
    rest, plus, plugin = spec.strip().partition("+")
    if plus and plugin != "bma":
        raise ValueError(f"run '{spec}': the only '+' plug-in is '+bma'")
    model, _, ablation = rest.partition(":")
    return model, ablation or "full", bool(plus)


def _train_arguments(
    args: argparse.Namespace, model: str, ablation: str, bma: bool, extra: list[str]
) -> dict[str, Any]:
    argv = ["train", "--model", model, "--ablation", ablation, *extra]
    argv += ["--dataset", args.dataset, "--data-root", args.data_root]
    argv += ["--data-seed", str(args.data_seed), "--epochs", str(args.epochs)]
    argv += ["--seed", str(args.seed)]
    if args.preset:
        argv += ["--preset", args.preset]
    if args.max_time:
        argv += ["--max-time", str(args.max_time)]
    if bma:
        argv.append("--bma")
    return vars(build_parser().parse_args(argv))


def _run(
    spec: str, run_dir: Path, data, train_args: dict[str, Any], diagnostics, force: bool
) -> torch.nn.Module:
    cache_dir = str(Path(train_args["data_root"]) / "cache")
    checkpoint = run_dir / CHECKPOINT_NAME
    done = (run_dir / "metrics.jsonl").exists() and checkpoint.exists()
    torch.manual_seed(train_args["seed"])
    model = model_from_arguments(train_args["model"], data, train_args, cache_dir=cache_dir)
    if done and not force:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["best"]["state"] or state["model"])
        print(f"[{spec}] {run_dir} has metrics.jsonl and a checkpoint: not retrained (--force)")
        return model
    for name in ("metrics.jsonl", "metrics.csv", CHECKPOINT_NAME):
        (run_dir / name).unlink(missing_ok=True)
    config = TrainConfig(
        epochs=train_args["epochs"],
        batch_size=train_args["batch_size"],
        lr=train_args["lr"],
        patience=train_args["patience"],
        seed=train_args["seed"],
        device=train_args["device"],
        out_dir=str(run_dir),
        progress=not train_args["no_progress"],
        max_time=train_args["max_time"],
    )
    print(f"[{spec}] training up to {config.epochs} epochs into {run_dir}")
    tic = time.perf_counter()
    run_info = {"args": {k: v for k, v in train_args.items() if k != "func"}}
    result = Trainer(model, data, config, run_info=run_info, callbacks=[diagnostics]).fit()
    last = result.history[-1]
    print(
        f"[{spec}] {len(result.history)} epochs in {time.perf_counter() - tic:.1f} s; best "
        f"epoch {result.best_epoch}, test recall@20 {result.test.get('recall@20', 0):.4f}; "
        f"last epoch: behaviour-modal cos user {last['behavior_modal_cos_user']:.3f}, "
        f"item {last['behavior_modal_cos_item']:.3f}"
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="other options are passed to 'dreamgeo train'",
    )
    parser.add_argument("--models", default="dream,dream:no_s3,vbpr,vbpr+bma")
    parser.add_argument("--dataset", default="baby")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--preset", default=None, help="planted preset (tiny, small, baby...)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--max-time", type=float, default=None, help="seconds per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="runs/diagnostics")
    parser.add_argument("--sample-size", type=int, default=1000, help="forgetting sample")
    parser.add_argument("--tsne-points", type=int, default=1000, help="users and items each")
    parser.add_argument("--tsne-lines", type=int, default=50)
    parser.add_argument(
        "--tsne-runs", default="all", help="runs to draw Fig. 7 for (comma list, or none)"
    )
    parser.add_argument(
        "--centered",
        action="store_true",
        help="forgetting on centred similarities (1 - Pearson), blind to a shared offset",
    )
    parser.add_argument("--force", action="store_true", help="retrain existing runs")
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    specs = [spec.strip() for spec in args.models.split(",") if spec.strip()]
    parsed = {spec: parse_run(spec) for spec in specs}
    for spec, (model, _, _) in parsed.items():
        if not callable(getattr(MODELS.get(model), "dual_representations", None)):
            parser.error(
                f"run '{spec}': {model} has no behaviour/modal representations to diagnose; "
                f"use one of {', '.join(('dream', *BMA_PLUGIN_MODELS))}"
            )
    # every run's arguments are checked before anything is trained
    train_args = {spec: _train_arguments(args, *parsed[spec], extra) for spec in specs}
    out_dir = Path(args.out_dir)
    first = train_args[specs[0]]
    data, data_info = load_data(
        first["dataset"], first["data_root"], first["preset"], first["data_seed"]
    )
    print(f"diagnostics: {data_info}; runs {specs}; output in {out_dir}")
    tic = time.perf_counter()
    diagnostics = DualRepresentationDiagnostics(
        data, args.sample_size, seed=args.seed, centered=args.centered
    )
    print(f"diagnostics: forgetting samples ready in {time.perf_counter() - tic:.1f} s")

    tsne_runs = specs if args.tsne_runs == "all" else args.tsne_runs.split(",")
    tsne_runs = [] if args.tsne_runs == "none" else tsne_runs
    run_dirs = {}
    for spec in specs:
        run_dirs[spec] = out_dir / spec.replace(":", "-").replace("+", "-")
        model = _run(spec, run_dirs[spec], data, train_args[spec], diagnostics, args.force)
        if spec in tsne_runs:
            model.eval()
            with torch.no_grad():
                rep = model.dual_representations()
            path = plot_dual_tsne(
                rep,
                out_dir / f"fig7_tsne_{run_dirs[spec].name}.png",
                num_points=args.tsne_points,
                num_lines=args.tsne_lines,
                seed=args.seed,
                title=spec,
            )
            print(f"[{spec}] wrote {path}")
    for path in (
        plot_forgetting(run_dirs, out_dir / "fig1b_forgetting.png"),
        plot_behavior_modal_cosine(run_dirs, out_dir / "fig2a_behavior_modal_cos.png"),
    ):
        print(f"diagnostics: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
