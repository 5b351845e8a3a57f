r"""DREAM's options, one at a time: each variant of the model (a few ``--set`` overrides
of the declared defaults) trained with ``dreamgeo train``, its best valid Recall@20 /
NDCG@20 and the test metrics at that epoch in one markdown table, plus the loss scales
(value and gradient norm of each weighted term against BPR's) of a few variants.

Resumable: every run has its own ``--out-dir`` under ``--runs-dir`` and is reused when
its ``result.json`` exists; a run killed after an epoch resumes from its checkpoint
(``dreamgeo train --resume``), one killed before its first checkpoint starts again. Runs start
one at a time while ``--time-budget`` seconds are left; the table shows what has landed.

Example::

    OMP_NUM_THREADS=1 python benchmarks/dream_options.py --time-budget 3600 \
        --out benchmarks/results/dream-options-scientific.md
    python benchmarks/dream_options.py --preset small --variants default,paper --seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dreamgeo.models.dream import PAPER_OPTIONS  # noqa: E402
from dreamgeo.train.trainer import CHECKPOINT_NAME  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from common import mean_std  # noqa: E402

#: name -> (overrides of the declared defaults, what it tests)
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "default": ({}, "the declared defaults"),
    "paper": (
        dict(PAPER_OPTIONS),
        "every option at the paper's literal reading (configs/paper/dream.yaml)",
    ),
    # --- S3 (Eq. 8)
    "s3_norm_mean": ({"s3_distance": "norm", "s3_reduction": "mean"}, "S3 = ||P-T||_F / B"),
    "s3_norm_sum": ({"s3_distance": "norm", "s3_reduction": "sum"}, "S3 = ||P-T||_F"),
    "s3_squared_sum": ({"s3_distance": "squared", "s3_reduction": "sum"}, "S3 = sum (P-T)^2"),
    "no_s3": ({"use_s3": False}, "w/o S3"),
    "s3_weight_0.5": ({"s3_weight": 0.5}, "gamma 0.5"),
    # --- BMA (Eq. 9-11)
    "no_alignment": ({"use_intra": False, "use_inter": False}, "w/o BMA"),
    "no_intra": ({"use_intra": False}, "w/o Intra"),
    "no_inter": ({"use_inter": False}, "w/o Inter"),
    "tau_0.1": ({"tau": 0.1}, "BMA temperature 0.1"),
    "tau_0.5": ({"tau": 0.5}, "BMA temperature 0.5"),
    "bma_both": ({"bma_direction": "both"}, "symmetric InfoNCE"),
    "bma_dot": ({"bma_similarity": "dot"}, "dot-product InfoNCE (Eq. 9-11 as printed)"),
    # --- encoder (Eq. 4-6)
    "gate_behavior": ({"gate_input": "behavior"}, "gate multiplies the propagated E_B"),
    "no_filter_gate": ({"use_filter_gate": False}, "w/o filter gate"),
    "graphs_item": ({"relation_graph_sides": "item"}, "item-item graphs only"),
    "graphs_user": ({"relation_graph_sides": "user"}, "user-user graphs only"),
    "no_relation_graphs": ({"use_relation_graphs": False}, "w/o relation graphs"),
    "feat_l2": ({"feature_norm": "l2"}, "L2-normalized feature rows"),
    "feat_standardize": ({"feature_norm": "standardize"}, "standardized feature columns"),
    "feat_whiten": ({"feature_norm": "whiten"}, "shrunk PCA whitening (beyond the paper)"),
    "no_text_encoder": ({"ablation": "no_text_encoder"}, "w/o text encoder (gate+graphs)"),
    "no_image_encoder": ({"ablation": "no_image_encoder"}, "w/o image encoder (gate+graphs)"),
    "no_text_modality": (
        {"ablation": "no_text_encoder", "ablation_scope": "modality"},
        "w/o text: the whole modality",
    ),
    "no_image_modality": (
        {"ablation": "no_image_encoder", "ablation_scope": "modality"},
        "w/o image: the whole modality",
    ),
    # --- fusion (Eq. 12)
    "fusion_concat": ({"fusion": "concat"}, "score = e_B.e_B + e_M.e_M"),
    "fusion_learnable": ({"fusion": "learnable"}, "E_B + w E_M, w learned"),
    # --- beyond the paper
    "modal_layers_2": ({"num_modal_layers": 2}, "2 layers over the relation graphs"),
    "modal_layers_3": ({"num_modal_layers": 3}, "3 layers over the relation graphs"),
    "user_modal_items": ({"user_modal": "items"}, "user modal = mean of its items' (MGCN)"),
    "modality_dropout_0.2": ({"modality_dropout": 0.2}, "modality dropout 0.2"),
    "num_layers_3": ({"num_layers": 3}, "3 behaviour layers"),
    "num_layers_1": ({"num_layers": 1}, "1 behaviour layer"),
    "knn_k_5": ({"knn_k": 5}, "5 neighbours per relation-graph row"),
    "knn_k_20": ({"knn_k": 20}, "20 neighbours per relation-graph row"),
    "reg_1e-3": ({"reg_weight": 1e-3}, "L2 weight 1e-3"),
    "reg_1e-5": ({"reg_weight": 1e-5}, "L2 weight 1e-5"),
    "align_0.003": ({"intra_weight": 0.003, "inter_weight": 0.003}, "alpha = beta = 0.003"),
    "align_0.1": ({"intra_weight": 0.1, "inter_weight": 0.1}, "alpha = beta = 0.1"),
    "s3_weight_0.05": ({"s3_weight": 0.05}, "gamma 0.05"),
    "s3_weight_0.2": ({"s3_weight": 0.2}, "gamma 0.2"),
    "tau_0.05": ({"tau": 0.05}, "BMA temperature 0.05"),
    "edge_dropout_0.2": ({"edge_dropout": 0.2}, "FREEDOM's degree-sensitive pruning, 20%"),
    "edge_dropout_0.5": ({"edge_dropout": 0.5}, "FREEDOM's degree-sensitive pruning, 50%"),
    "edge_dropout_0.8": ({"edge_dropout": 0.8}, "FREEDOM's degree-sensitive pruning, 80%"),
    "softmax_1": ({"rec_loss": "softmax", "rec_tau": 1.0}, "in-batch sampled softmax, tau 1"),
    "softmax_0.5": ({"rec_loss": "softmax", "rec_tau": 0.5}, "in-batch sampled softmax, tau 0.5"),
    "softmax_0.2": ({"rec_loss": "softmax", "rec_tau": 0.2}, "in-batch sampled softmax, tau 0.2"),
    "softmax_2": ({"rec_loss": "softmax", "rec_tau": 2.0}, "in-batch sampled softmax, tau 2"),
    "lr_2e-3": ({"lr": 2e-3}, "learning rate 2e-3"),
    "lr_5e-4": ({"lr": 5e-4}, "learning rate 5e-4"),
    "knn_k_3": ({"knn_k": 3}, "3 neighbours per relation-graph row"),
    "knn5_both": ({"knn_k": 5, "bma_direction": "both"}, "knn_k 5 and symmetric InfoNCE"),
    "tau_0.15": ({"tau": 0.15}, "BMA temperature 0.15"),
    "knn5_layers3": ({"knn_k": 5, "num_layers": 3}, "knn_k 5 and 3 behaviour layers"),
    "train_features": ({"train_features": True}, "fine-tuned encoder input features (as MGCN)"),
    "bma_decay_0.9": ({"bma_decay": 0.9}, "BMA weights x 0.9^(t-1) in epoch t"),
    "bma_decay_0.8": ({"bma_decay": 0.8}, "BMA weights x 0.8^(t-1) in epoch t"),
    "bma_decay_0.95": ({"bma_decay": 0.95}, "BMA weights x 0.95^(t-1) in epoch t"),
    "noalign_s3norm": (
        {"use_intra": False, "use_inter": False, "s3_distance": "norm"},
        "w/o BMA, S3 as the norm of Eq. 8",
    ),
    "dns_2": ({"negative_candidates": 2}, "dynamic negative sampling, hardest of 2"),
    "dns_4": ({"negative_candidates": 4}, "dynamic negative sampling, hardest of 4"),
    "dns_8": ({"negative_candidates": 8}, "dynamic negative sampling, hardest of 8"),
    "dns_16": ({"negative_candidates": 16}, "dynamic negative sampling, hardest of 16"),
    "noalign_s3norm_dns4": (
        {"use_intra": False, "use_inter": False, "s3_distance": "norm", "negative_candidates": 4},
        "noalign_s3norm with DNS, hardest of 4",
    ),
    "noalign_s3norm_gatebeh": (
        {"use_intra": False, "use_inter": False, "s3_distance": "norm", "gate_input": "behavior"},
        "noalign_s3norm with the gate on the propagated behaviour line",
    ),
    "lr_decay_0.5_20": (
        {"lr_decay": 0.5, "lr_decay_step": 20},
        "learning rate x 0.5^((t-1)/20) in epoch t (MMRec's scheduler)",
    ),
    "lr_decay_0.5_50": (
        {"lr_decay": 0.5, "lr_decay_step": 50},
        "learning rate x 0.5^((t-1)/50) in epoch t (MMRec's scheduler)",
    ),
    "item_bias": ({"item_bias": True}, "learned item bias b_i in every score (BPR-MF's)"),
    "noalign_s3norm_gatebeh_bias": (
        {
            "use_intra": False,
            "use_inter": False,
            "s3_distance": "norm",
            "gate_input": "behavior",
            "item_bias": True,
        },
        "noalign_s3norm_gatebeh with a learned item bias",
    ),
    "noalign_s3norm_img0.1": (
        {"use_intra": False, "use_inter": False, "s3_distance": "norm", "image_weight": 0.1},
        "noalign_s3norm with alpha_V 0.1",
    ),
}

#: Variants whose loss scales are measured (at initialization and at the best epoch).
SCALE_VARIANTS = ("default", "s3_norm_mean", "no_alignment", "paper")


def _run_dir(root: Path, variant: str, seed: int) -> Path:
    return root / f"{variant}-s{seed}"


def _value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def run_variant(
    variant: str,
    overrides: dict[str, Any],
    seed: int,
    root: Path,
    data_args: list[str],
    epochs: int | None,
    config: str | None = None,
) -> dict | None:
    out = _run_dir(root, variant, seed)
    result = out / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    resume = (out / CHECKPOINT_NAME).exists()
    if out.exists() and not resume:
        shutil.rmtree(out)  # killed before its first checkpoint: start it again
    cmd = [sys.executable, "-m", "dreamgeo.commands", "train", "--model", "dream", *data_args]
    if config is not None:
        cmd += ["--config", config]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={_value(value)}"]
    cmd += ["--seed", str(seed), "--out-dir", str(out), "--no-progress", "--no-diagnostics"]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if resume:  # a killed run continues from its last epoch (the trainer checks its settings)
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"[dream_options] {variant} seed {seed}: {' '.join(cmd[3:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not result.exists():
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        return None
    print(f"[dream_options]   done in {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(result.read_text())


def _metric(result: dict, split: str, name: str) -> float:
    return float(result[split][name])


def table(results: dict[str, dict[int, dict]]) -> str:
    base = [_metric(r, "valid", "recall@20") for r in results.get("default", {}).values() if r]
    base_mean = statistics.mean(base) if base else math.nan
    rows = [
        "| variant | overrides | seeds | valid R@20 | valid N@20 | Δ valid R@20 | "
        "test R@20 | test N@20 | best epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, per_seed in results.items():
        done = [r for r in per_seed.values() if r]
        if not done:
            continue
        vr = [_metric(r, "valid", "recall@20") for r in done]
        vn = [_metric(r, "valid", "ndcg@20") for r in done]
        tr = [_metric(r, "test", "recall@20") for r in done]
        tn = [_metric(r, "test", "ndcg@20") for r in done]
        delta = (statistics.mean(vr) / base_mean - 1) * 100 if base else math.nan
        overrides = ", ".join(f"{k}={_value(v)}" for k, v in VARIANTS[variant][0].items())
        rows.append(
            f"| {variant} | {overrides or '—'} | {len(done)} | {mean_std(vr)} | {mean_std(vn)} | "
            f"{delta:+.1f}% | {mean_std(tr)} | {mean_std(tn)} | "
            f"{', '.join(str(r['best_epoch']) for r in done)} |"
        )
    return "\n".join(rows)


def loss_scales(variant: str, root: Path, data_args: list[str], seed: int) -> list[str]:
    r"""Value and gradient norm (over all parameters) of each weighted term of the
    objective on one batch of 2048 triples, at initialization and at the best epoch;
    S3 is evaluated with its constant so the value is the definition's."""
    import torch

    from dreamgeo.commands import load_data
    from dreamgeo.datasets.schema import INTERACTS, ITEM
    from dreamgeo.models.registry import build_model
    from dreamgeo.nn.s3_loss import S3Loss

    out = _run_dir(root, variant, seed)
    if not (out / CHECKPOINT_NAME).exists():
        return []
    preset = data_args[data_args.index("--preset") + 1] if "--preset" in data_args else None
    data, _ = load_data(None, "data", preset)
    hparams = json.loads((out / "run.json").read_text())["hparams"]
    overrides = {
        k: v
        for k, v in hparams.items()
        if k not in ("lr", "batch_size", "epochs", "patience", "seed", "max_time")
    }
    overrides.update(VARIANTS[variant][0])
    torch.manual_seed(seed)
    model = build_model("dream", data, overrides)
    edges = data[INTERACTS].edge_index
    gen = torch.Generator().manual_seed(1)
    pick = torch.randint(edges.size(1), (2048,), generator=gen)
    users, pos = edges[0, pick], edges[1, pick]
    neg = torch.randint(data[ITEM].num_nodes, (2048,), generator=gen)
    lines = []
    for stage in ("init", "best"):
        if stage == "best":
            state = torch.load(out / CHECKPOINT_NAME, map_location="cpu", weights_only=False)
            model.load_state_dict(state["model"], strict=False)
        model.train()
        rep = model.representations()
        ub, um = rep.user_behavior[users], rep.user_modal[users]
        pb, pm = rep.item_behavior[pos], rep.item_modal[pos]
        uf, pf = model.fuse(ub, um), model.fuse(pb, pm)
        nf = model.fuse(rep.item_behavior[neg], rep.item_modal[neg])
        terms = {"bpr": model.bpr.ranking((uf * pf).sum(-1), (uf * nf).sum(-1))}
        if model.bma is not None:
            parts = model.bma.parts(ub, pb, um, pm)
            terms["alpha*intra"] = model.bma.intra_weight * parts.intra
            terms["beta*inter"] = model.bma.inter_weight * parts.inter
        if model.s3 is not None:
            s3 = S3Loss(True, model.s3.distance, model.s3.reduction)
            terms["gamma*s3"] = model.s3_weight * (
                s3.gathered(pm, model.s3_item_factor, pos)
                + s3.gathered(um, model.s3_user_factor, users)
            )
        params = [p for p in model.parameters() if p.requires_grad]
        norms = {}
        for name, value in terms.items():
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            norms[name] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
        bpr_norm = norms["bpr"] or math.nan
        for name, value in terms.items():
            value = float(value.detach())
            lines.append(
                f"| {variant} | {stage} | {name} | {value:.4g} | {norms[name]:.3g} | "
                f"{norms[name] / bpr_norm:.3g} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=None, help="planted preset instead of scientific")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument(
        "--finalists", default="", help="variants run with --finalist-seeds as well"
    )
    parser.add_argument("--finalist-seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget per run")
    parser.add_argument(
        "--config",
        default=None,
        help="a dreamgeo train --config file every variant starts from (e.g. the tuned "
        "configs/scientific/dream.yaml); the variant's overrides go on top",
    )
    parser.add_argument("--runs-dir", default=None, help="(default: runs/dream-options/<data>)")
    parser.add_argument("--data-root", default=None, help="dreamgeo train --data-root")
    parser.add_argument("--time-budget", type=float, default=math.inf, help="seconds")
    parser.add_argument("--scales", action="store_true", help="measure the loss scales")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="only tabulate the finished runs; start or resume none (safe while other "
        "processes are training runs under the same --runs-dir)",
    )
    args = parser.parse_args(argv)

    data_name = args.preset or "scientific"
    data_args = ["--preset", args.preset] if args.preset else []
    if args.data_root:
        data_args += ["--data-root", args.data_root]
    root = Path(args.runs_dir or REPO / "runs" / "dream-options" / data_name)
    root.mkdir(parents=True, exist_ok=True)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    finalists = [v for v in args.finalists.split(",") if v]
    final_seeds = [int(s) for s in args.finalist_seeds.split(",") if s]
    plan = [(v, s) for v in variants for s in seeds]
    plan += [(v, s) for v in finalists for s in final_seeds if (v, s) not in plan]

    start = time.perf_counter()
    results: dict[str, dict[int, dict]] = {}
    for variant, seed in plan:
        finished = (_run_dir(root, variant, seed) / "result.json").exists()
        if not finished and args.no_train:
            print(f"[dream_options] --no-train: {variant} seed {seed} is not finished; left out")
            continue
        if not finished and time.perf_counter() - start > args.time_budget:
            print(f"[dream_options] time budget spent; skipping {variant} seed {seed}")
            continue
        result = run_variant(
            variant, VARIANTS[variant][0], seed, root, data_args, args.epochs, args.config
        )
        results.setdefault(variant, {})[seed] = result

    epochs = f", at most {args.epochs} epochs" if args.epochs else ""
    if args.config:
        epochs += f", every variant on top of {args.config}"
    text = [
        f"DREAM options on {data_name} (valid metrics at the best valid-R@20 epoch, "
        f"test at that epoch; mean ± sample std over seeds{epochs}; Δ against "
        "'default')",
        "",
        table(results),
    ]
    if args.scales:
        text += [
            "",
            "Loss scales on one batch of 2048 triples: value of each weighted term and the "
            "norm of its gradient over all parameters, relative to BPR's.",
            "",
            "| variant | stage | term | value | grad norm | grad / BPR grad |",
            "|---|---|---|---|---|---|",
        ]
        for variant in SCALE_VARIANTS:
            text += loss_scales(variant, root, data_args, seeds[0])
    print("\n".join(text))
    if args.out:
        Path(args.out).write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
