r"""``dreamgeo experiment NAME``: reruns one of the paper's experiments and writes its
table as markdown and CSV."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from dreamgeo.commands.common import configs_root, load_run
from dreamgeo.commands.experiment_runner import ExperimentRunner
from dreamgeo.experiments.report import (
    MODEL_LABELS,
    Table,
    ablation_table,
    bma_table,
    grid_table,
    overall_table,
    seed_table,
)
from dreamgeo.experiments.spec import (
    EXPERIMENTS,
    TABLE2_MODELS,
    TABLE3_ABLATIONS,
    TABLE4_MODELS,
    RunSpec,
    ablation_runs,
    bma_plugin_runs,
    grid_runs,
    overall_comparison_runs,
    seed_runs,
)

__all__ = ["add_experiment_parser", "run_experiment", "draw_figures"]

# flags passed through to every run when given
_PASSED_ON = ("epochs", "patience", "lr", "batch_size", "max_time", "device", "data_seed")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers like 0,1,2, got '{text}'"
        ) from None


def add_experiment_parser(commands) -> argparse.ArgumentParser:
    r"""Adds the ``experiment`` sub-command to ``dreamgeo``'s sub-parsers."""
    from dreamgeo.argtypes import positive_float as _positive_float
    from dreamgeo.argtypes import positive_int as _positive_int
    from dreamgeo.datasets.planted import PLANTED_PRESETS
    from dreamgeo.models.registry import MODELS

    parser = commands.add_parser(
        "experiment",
        help="rerun one of the paper's experiments and write its table",
        description="Trains every run of an experiment (each in its own process, on the "
        "same data, splits, negatives and evaluator), reusing finished runs and resuming "
        "killed ones, then writes OUT_ROOT/<experiment>.md and .csv.",
    )
    parser.add_argument(
        "experiment",
        choices=[*EXPERIMENTS, "all"],
        help="; ".join(f"{name}: {text}" for name, text in EXPERIMENTS.items()),
    )
    parser.add_argument(
        "--dataset", default=None, help="dataset (default: the embedded 'scientific')"
    )
    parser.add_argument("--data-root", default="data", help="directory of datasets (default: data)")
    parser.add_argument(
        "--modalities",
        default=None,
        metavar="NAME,...",
        help="the item modalities every run uses, e.g. image,audio (files NAME_feat.npy; "
        "default: every *_feat.npy of the dataset folder)",
    )
    parser.add_argument("--preset", choices=sorted(PLANTED_PRESETS), default=None)
    parser.add_argument("--data-seed", type=int, default=None)
    parser.add_argument(
        "--out-root", default=None, help="folder of the runs (default: runs/experiments/<data>)"
    )
    parser.add_argument(
        "--models",
        type=_names,
        default=None,
        help=f"models for table2/table4/seeds (defaults: {','.join(TABLE2_MODELS)} / "
        f"{','.join(TABLE4_MODELS)} / lightgcn,dream)",
    )
    parser.add_argument(
        "--ablations",
        type=_names,
        default=list(TABLE3_ABLATIONS),
        help="rows of table3 (default: all nine)",
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="training seeds (default: 0; for 'seeds': 0,1,2)",
    )
    run = parser.add_argument_group("passed on to every run (default: the paper's protocol)")
    run.add_argument("--epochs", type=_positive_int, default=None)
    run.add_argument("--patience", type=_positive_int, default=None)
    run.add_argument("--lr", type=_positive_float, default=None)
    run.add_argument("--batch-size", type=_positive_int, default=None)
    run.add_argument("--max-time", type=_positive_float, default=None, help="seconds per run")
    run.add_argument("--device", choices=("cpu", "cuda"), default=None)
    run.add_argument(
        "--set",
        dest="assignments",
        action="append",
        metavar="KEY=VALUE",
        default=None,
        help="a hyper-parameter for every run (repeatable); every run's model must take "
        "it, else nothing runs",
    )
    parser.add_argument(
        "--tuned",
        action="store_true",
        help="train each model from its tuned configuration CONFIGS_DIR/<dataset>/<model>."
        "yaml (table4's BMA rows: <model>-bma.yaml), written by dreamgeo tune --export; a "
        "missing file is an error",
    )
    parser.add_argument(
        "--configs-dir",
        default=None,
        help="folder of tuned configurations (default: the repository's configs/)",
    )
    parser.add_argument(
        "--force", action="store_true", help="retrain runs stored with other arguments"
    )
    parser.add_argument("--progress", action="store_true", help="show each run's progress")
    parser.add_argument(
        "--figure-roots",
        type=_names,
        default=[],
        help="for 'figures': further run folders searched after --out-root (e.g. the "
        "--out-root of a table3 run made with other flags)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the table from the runs that have finished so far",
    )
    parser.set_defaults(func=run_experiment, models_known=sorted(MODELS))
    return parser


def _tuned(spec: RunSpec, folder: Path) -> RunSpec:
    r"""``spec`` trained from its tuned configuration: ``<model>.yaml``, or for a run
    with the BMA plug-in ``<model>-bma.yaml`` (the model's tuned configuration with
    BMA's weights tuned on top, 0 included)."""
    path = folder / f"{spec.model}{'-bma' if spec.bma else ''}.yaml"
    if not path.is_file():
        hint = f"--config {folder / spec.model}.yaml --set bma=true " if spec.bma else ""
        raise SystemExit(
            f"dreamgeo experiment: --tuned: {path} does not exist; tune the model first "
            f"(dreamgeo tune --model {spec.model} {hint}... --export {path})"
        )
    return dataclasses.replace(spec, config=str(path))


def _write_tuned_results(specs: list[RunSpec], results: dict[str, dict], path: Path) -> Path:
    from dreamgeo.models import MODELS

    rows = [
        {
            "model": spec.model,
            "label": MODELS[spec.model].label,
            "config": Path(spec.config).name if spec.config else None,
            "valid": results[spec.name]["valid"],
            "test": results[spec.name]["test"],
            "best_epoch": results[spec.name]["best_epoch"],
        }
        for spec in specs
        if spec.name in results
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return path


def _check_models(names: list[str], known: list[str], flag: str = "--models") -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"dreamgeo experiment: {flag}: unknown {unknown}; choose from {known}")


def run_experiment(args: argparse.Namespace) -> int:
    r"""Runs ``args.experiment`` (or all of them) and writes its tables."""
    from dreamgeo.datasets.source import resolve_source
    from dreamgeo.models import ABLATIONS, MODELS

    bma_models = [name for name, info in MODELS.items() if info.bma_plugin]

    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    if "figures" in names and names[-1] != "figures":  # figures need the other runs
        names = [name for name in names if name != "figures"] + ["figures"]
    if args.models is not None:
        _check_models(args.models, args.models_known)
    if "table4" in names and args.models is not None:
        _check_models(args.models, bma_models, "--models (table4 needs BMA)")
    _check_models(args.ablations, list(ABLATIONS), "--ablations")

    source = resolve_source(
        args.dataset, args.data_root, args.preset, args.data_seed or 0, args.modalities
    )
    data_name = source.name
    out_root = Path(args.out_root or f"runs/experiments/{data_name}")
    common = ["--data-root", args.data_root]
    if args.dataset is not None:
        common += ["--dataset", args.dataset]
    if source.selected_modalities is not None:
        common += ["--modalities", ",".join(source.selected_modalities)]
    if args.preset is not None:
        common += ["--preset", args.preset]
    for key in _PASSED_ON:
        value = getattr(args, key)
        if value is not None:
            common += [f"--{key.replace('_', '-')}", str(value)]
    for item in args.assignments or ():
        common += ["--set", item]
    configs = Path(args.configs_dir) if args.configs_dir else configs_root()
    runner = ExperimentRunner(out_root, common, force=args.force, progress=args.progress)
    seeds = args.seeds or [0]

    for name in names:
        tic = time.perf_counter()
        if name == "figures":
            draw_figures(out_root, seeds[0], [Path(root) for root in args.figure_roots])
            continue
        if name == "table2":
            specs = overall_comparison_runs(args.models or TABLE2_MODELS, seeds)
            build = overall_table
        elif name == "table3":
            specs, build = ablation_runs(args.ablations, seeds), ablation_table
        elif name == "table4":
            specs, build = bma_plugin_runs(args.models or TABLE4_MODELS, seeds), bma_table
        elif name == "grid":
            specs, build = grid_runs(seed=seeds[0]), grid_table
        else:
            specs = seed_runs(args.models or ("lightgcn", "dream"), args.seeds or [0, 1, 2])
            build = seed_table
        if args.tuned:
            specs = [_tuned(spec, configs / data_name) for spec in specs]
        for spec in specs:  # every run's settings are checked before any trains
            runner.expected_args(spec)
        if args.report_only:
            results = {
                spec.name: result
                for spec in specs
                if (result := runner.stored_result(spec)) is not None
            }
            missing = [spec.name for spec in specs if spec.name not in results]
            print(
                f"dreamgeo experiment {name}: {len(results)} of {len(specs)} runs finished"
                + (f"; not yet: {', '.join(missing)}" if missing else "")
            )
        else:
            print(f"dreamgeo experiment {name}: {len(specs)} runs in {out_root}")
            results = runner.run_all(specs)
        table: Table = build(specs, results)
        minutes = (time.perf_counter() - tic) / 60
        finished = f"{len(results)} of {len(specs)} runs finished"
        heading = (
            f"{EXPERIMENTS[name]} on {data_name}; test metrics at the best valid Recall@20 "
            f"epoch; run flags: {' '.join(common) or '(defaults)'}; {finished}; "
            f"{minutes:.1f} min here"
        )
        markdown = f"{heading}\n\n{table.markdown()}\n"
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / f"{name}.md").write_text(markdown)
        (out_root / f"{name}.csv").write_text(table.csv())
        print(markdown)
        print(f"dreamgeo: wrote {out_root / name}.md and .csv")
        if name == "table2" and args.tuned:
            path = _write_tuned_results(specs, results, configs / data_name / "table2.json")
            print(f"dreamgeo: wrote {path} (read by dreamgeo train to show the best baseline)")
        if runner.failures:
            print("dreamgeo: failed runs:\n  " + "\n  ".join(runner.failures), file=sys.stderr)
            return 1
    return 0


def draw_figures(
    out_root: Path, seed: int = 0, extra_roots: list[Path] | None = None
) -> list[Path]:
    r"""Draws the paper's diagnostic figures from the runs in ``out_root`` (those of
    ``table2``-``table4``; runs that are missing are left out of a figure):

    * ``fig1b_forgetting.png`` (and ``fig1b_forgetting_centered.png``): Modal Information
      Forgetting per epoch of DREAM, DREAM w/o S3 and the dual-line baselines;
    * ``fig2a_behavior_modal_cos.png``: behaviour–modal cosine per epoch of the Table 4
      models without and with BMA, and of DREAM;
    * ``fig7_tsne_dream.png``: t-SNE of DREAM's behaviour and modal representations of
      1,000 users and items at its best epoch.

    A run is looked up in ``out_root`` first, then in each of :obj:`extra_roots`.
    """
    from dreamgeo.diagnostics import plot_behavior_modal_cosine, plot_dual_tsne, plot_forgetting

    roots = [out_root, *(extra_roots or [])]

    def present(candidates: dict[str, str]) -> dict[str, Path]:
        found = {}
        for label, run in candidates.items():
            for root in roots:
                path = root / run / "metrics.jsonl"
                if path.exists() and "behavior_modal_cos_user" in path.read_text():
                    found[label] = root / run
                    break
        return found

    forgetting_runs = present(
        {
            "DREAM": f"dream-seed{seed}",
            "DREAM w/o S3": f"dream-no_s3-seed{seed}",
            **{
                MODEL_LABELS[m]: f"{m}-seed{seed}"
                for m in ("vbpr", "bm3", "freedom", "mgcn", "lgmrec", "slmrec")
            },
        }
    )
    alignment_runs = present(
        {
            **{
                f"{MODEL_LABELS[m]}{suffix.upper()}": f"{m}{suffix.replace('+', '-')}-seed{seed}"
                for m in TABLE4_MODELS
                for suffix in ("", "+bma")
            },
            "DREAM": f"dream-seed{seed}",
        }
    )
    written = []
    if forgetting_runs:
        written.append(plot_forgetting(forgetting_runs, out_root / "fig1b_forgetting.png"))
        written.append(
            plot_forgetting(
                forgetting_runs, out_root / "fig1b_forgetting_centered.png", centered=True
            )
        )
    if alignment_runs:
        path = out_root / "fig2a_behavior_modal_cos.png"
        written.append(plot_behavior_modal_cosine(alignment_runs, path))
    dream_dir = out_root / f"dream-seed{seed}"
    if (dream_dir / "checkpoint.pt").exists():
        import torch

        model, _ = load_run(dream_dir)
        model.eval()
        with torch.no_grad():
            representation = model.dual_representations()
        path = out_root / "fig7_tsne_dream.png"
        written.append(plot_dual_tsne(representation, path, seed=seed, title="DREAM"))
    if not written:
        raise SystemExit(
            f"dreamgeo experiment figures: no run in {out_root} logged diagnostics; run "
            "table2, table3 and table4 first"
        )
    for path in written:
        print(f"dreamgeo: wrote {path}")
    return written
