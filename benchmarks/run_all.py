r"""Every speed-and-scale table of dreamgeo in one command.

    python benchmarks/run_all.py --preset baby            # tables A-F, CPU
    python benchmarks/run_all.py --preset baby --device cuda
    python benchmarks/run_all.py --preset large --tables D,E
    python benchmarks/run_all.py --quick                  # smoke test: tiny, < 2 min

Prints the markdown (machine, versions, then the tables) and writes it to ``--output``
(default ``benchmarks/results/<preset>-<device>.md``). Each model, each graph build and
each curve point runs in a fresh Python process, so that its peak RSS is its own. See
``benchmarks/README.md`` for what every table measures.

Tables: A per-model epoch, evaluation, build and memory; B the projection floor of a
DREAM epoch; C where the time of a DREAM and a LightGCN epoch goes; D relation graphs,
evaluation and a DREAM epoch at scale; E graph-build time and memory from 10k to 1M
rows; F accelerators (CUDA, faiss-gpu, torch-scatter / torch-sparse).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import machine_facts, machine_header, markdown_table, run_worker  # noqa: E402

__all__ = ["main", "DEFAULT_MODELS", "MMREC_EPOCH_SECONDS", "TABLE_TITLES"]

#: Table A's default models (``--models all`` adds the rest of the registry).
DEFAULT_MODELS = ("bpr", "lightgcn", "vbpr", "bm3", "freedom", "mgcn", "dream")

#: MMRec's epoch times on Amazon Baby from the "Speed and scale" issue, measured on the
#: same class of 2-core machine.
MMREC_EPOCH_SECONDS = {
    "bpr": 0.6,
    "lightgcn": 4.0,
    "vbpr": 5.1,
    "bm3": 19.6,
    "freedom": 20.0,
    "mgcn": 26.5,
}
MMREC_EVAL_SECONDS = 3.0
MMREC_PEAK = "1.4–1.7 GB"

#: The issue's targets.
TARGET_DREAM_EPOCH = 13.0
TARGET_LIGHTGCN_EPOCH = 2.0
TARGET_EVAL = 1.0
TARGET_DREAM_PEAK_GB = 2.0
TARGET_FLOOR_MULTIPLE = 2.0
TARGET_GRAPHS_SECONDS = 600.0
TARGET_GRAPHS_PEAK_GB = 8.0
TARGET_RECALL = 0.95
TARGET_SCALE_EVAL = 60.0

TABLE_TITLES = {
    "A": "A. Per-model training epoch, evaluation, build and peak memory",
    "B": "B. Floor of a DREAM epoch: the d_m→d projections",
    "C": "C. Where the time of one epoch goes",
    "D": "D. Scale: relation graphs, evaluation and a DREAM epoch",
    "E": "E. Scaling curve of the relation-graph build",
    "F": "F. Accelerators: CUDA, faiss-gpu, torch-scatter / torch-sparse",
}

CURVE_POINTS = ((10_000, 384), (50_000, 384), (200_000, 384), (1_000_000, 384))
CURVE_POINTS_IMAGE = ((10_000, 4096), (50_000, 4096), (200_000, 4096))
QUICK_CURVE_POINTS = ((2_000, 64), (10_000, 64))


def _gb(mb: float | None) -> str:
    return "—" if mb is None else f"{mb / 1024:.2f}"


def _s(seconds: float | None, digits: int = 2) -> str:
    return "—" if seconds is None else f"{seconds:.{digits}f}"


def _met(value: float | None, limit: float, larger_is_better: bool = False) -> str:
    if value is None:
        return "not measured"
    ok = value >= limit if larger_is_better else value <= limit
    return "met" if ok else "missed"


def _error_row(name: str, result: dict[str, Any], width: int) -> list[str]:
    return [name, f"failed: {result['error']}"] + [""] * (width - 2)


# --------------------------------------------------------------------------- A, F
def _data_args(args: argparse.Namespace) -> list[str]:
    r"""The flags every baby-preset worker takes: data, device and repeats."""
    return [
        "--preset",
        args.preset,
        "--data-root",
        args.data_root,
        "--device",
        args.device,
        "--repeats",
        str(args.repeats),
    ]


def _model_args(
    args: argparse.Namespace, model: str, hide: bool = False, feature_dtype: str = "float32"
) -> list[str]:
    worker = ["--model", model, *_data_args(args), "--feature-dtype", feature_dtype]
    return worker + (["--no-accelerators"] if hide else [])


def dream_label(feature_dtype: str) -> str:
    r"""Table rows of DREAM: ``dream`` for ``float32`` features, else
    ``dream (<dtype> features)``."""
    return "dream" if feature_dtype == "float32" else f"dream ({feature_dtype} features)"


def _model_runs(args: argparse.Namespace, models: list[str]) -> list[tuple[str, str, str]]:
    r"""``(row label, model, feature dtype)`` of table A: DREAM once per
    ``--dream-feature-dtypes``."""
    runs = []
    for model in models:
        dtypes = args.dream_feature_dtypes if model == "dream" else ["float32"]
        runs += [(dream_label(d) if model == "dream" else model, model, d) for d in dtypes]
    return runs


def table_models(args: argparse.Namespace, models: list[str]) -> tuple[str, dict[str, Any]]:
    results = {}
    for label, model, dtype in _model_runs(args, models):
        print(f"[A] {label} ...", file=sys.stderr, flush=True)
        results[label] = run_worker(
            HERE / "model_epochs.py", _model_args(args, model, feature_dtype=dtype)
        )
    header = [
        "model",
        "build incl. graphs (s)",
        "of which relation graphs (s)",
        f"epoch (s), median of {args.repeats}",
        "steps",
        "evaluation valid+test (s)",
        "peak RSS (GB)",
        "MMRec epoch (s)",
        "targets",
        "met?",
    ]
    rows = []
    for model, result in results.items():
        if "error" in result:
            rows.append(_error_row(model, result, len(header)))
            continue
        targets, verdicts = [], []
        epoch, evaluation = result["epoch_median"], result["eval_median"]
        peak = result["peak_rss_mb"] / 1024
        if model.startswith("dream"):
            targets += [f"epoch ≤ {TARGET_DREAM_EPOCH:g} s", f"peak ≤ {TARGET_DREAM_PEAK_GB:g} GB"]
            verdicts += [
                f"epoch {_met(epoch, TARGET_DREAM_EPOCH)}",
                f"peak {_met(peak, TARGET_DREAM_PEAK_GB)}",
            ]
        if model == "lightgcn":
            targets.append(f"epoch ≤ {TARGET_LIGHTGCN_EPOCH:g} s")
            verdicts.append(f"epoch {_met(epoch, TARGET_LIGHTGCN_EPOCH)}")
        targets.append(f"eval ≤ {TARGET_EVAL:g} s")
        verdicts.append(f"eval {_met(evaluation, TARGET_EVAL)}")
        rows.append(
            [
                model,
                _s(result["build_seconds"]),
                _s(result["graph_seconds"]),
                f"{epoch:.2f} ({', '.join(f'{t:.2f}' for t in result['epoch_seconds'])})",
                result["steps_per_epoch"],
                _s(evaluation),
                f"{peak:.2f}",
                _s(MMREC_EPOCH_SECONDS.get(model), 1) if model in MMREC_EPOCH_SECONDS else "—",
                ", ".join(targets),
                ", ".join(verdicts),
            ]
        )
    notes = (
        f"Training only (no evaluation) per epoch at batch 2048, after one warm-up epoch; "
        f"evaluation = full ranking of every user on valid + test (K ∈ 5, 10, 20, 50), "
        f"median of {max(1, args.repeats)} after one warm-up; build = model construction "
        f"incl. relation graphs (DREAM: exact top-k with the torch backend, as the CLI does) "
        f"and other precomputation; peak RSS of the model's own process (data loading "
        f"included). MMRec column: MMRec, issue's measurement, same machine class "
        f"(Amazon Baby; its evaluation ~{MMREC_EVAL_SECONDS:g} s, peak memory {MMREC_PEAK})."
    )
    if args.preset != "baby":
        notes += (
            f" The MMRec times and the targets are for Baby-sized data; on the "
            f"'{args.preset}' preset they are not comparable."
        )
    return notes + "\n\n" + markdown_table(header, rows), results


def table_accelerators(args: argparse.Namespace) -> str:
    facts = machine_facts(args.device)
    rows = [
        ["device used", args.device],
        ["CUDA available", "yes: " + facts["gpu"] if facts["gpu"] else "no"],
        ["faiss GPU support", "yes" if facts["faiss_gpu"] else "no (faiss-cpu)"],
    ]
    rows += [[name, version or "not installed"] for name, version in facts["optional"].items()]
    text = markdown_table(["what", "status"], rows)
    installed = [name for name, version in facts["optional"].items() if version]
    if not installed:
        return text + (
            "\n\nNo PyG accelerator is installed, so there is nothing to compare "
            "(dreamgeo's propagation uses torch CSR products and never imports them; "
            "the PyG wheels for this torch are not on PyPI)."
        )
    header = [
        "model",
        "epoch with accelerators (s)",
        "epoch hidden (s)",
        "eval with",
        "eval hidden",
    ]
    body = []
    for model in ("lightgcn", "dream"):
        print(f"[F] {model} with / without accelerators ...", file=sys.stderr, flush=True)
        with_ = run_worker(HERE / "model_epochs.py", _model_args(args, model))
        without = run_worker(HERE / "model_epochs.py", _model_args(args, model, hide=True))
        if "error" in with_ or "error" in without:
            body.append([model, with_.get("error", ""), without.get("error", ""), "", ""])
            continue
        body.append(
            [
                model,
                _s(with_["epoch_median"]),
                _s(without["epoch_median"]),
                _s(with_["eval_median"]),
                _s(without["eval_median"]),
            ]
        )
    return text + "\n\n" + markdown_table(header, body)


# --------------------------------------------------------------------------- B
def table_floor(args: argparse.Namespace, dreams: dict[str, dict[str, Any]]) -> str:
    r"""Table B; ``dreams`` maps each of ``--dream-feature-dtypes`` to its table-A run."""
    header = [
        "what",
        "seconds per epoch",
        "DREAM epoch ÷ this",
        f"goal ≤ {TARGET_FLOOR_MULTIPLE:g}×",
    ]
    rows, floor = [], {}
    for dtype in args.dream_feature_dtypes:
        print(f"[B] projection floor, {dtype} features ...", file=sys.stderr, flush=True)
        floor = run_worker(
            HERE / "projection_floor.py", [*_data_args(args), "--feature-dtype", dtype]
        )
        if "error" in floor:
            rows.append([f"floor ({dtype}) failed: {floor['error']}", "", "", ""])
            continue
        dream = dreams.get(dtype)
        epoch = None if not dream or "error" in dream else dream["epoch_median"]
        rows.append([f"{dream_label(dtype)} epoch (table A)", _s(epoch), "", ""])
        for key, label in (
            ("all_items_seconds", f"all {floor['num_items']} items per step (what DREAM needs)"),
            ("batch_items_seconds", f"batch items only ({floor['rows_per_batch']} rows per step)"),
            (
                "dense_objective_seconds",
                "all items + every dense product of BMA's 4 InfoNCE and the 2 S3 terms",
            ),
        ):
            multiple = None if epoch is None else epoch / floor[key]
            rows.append(
                [
                    f"floor, {dtype} features, {label}",
                    _s(floor[key]),
                    "—" if multiple is None else f"{multiple:.2f}×",
                    "—" if multiple is None else _met(multiple, TARGET_FLOOR_MULTIPLE),
                ]
            )
    if "error" in floor or not floor:
        return markdown_table(header, rows)
    dims = ", ".join(f"{m} {d}→64" for m, d in floor["dims"].items())
    notes = (
        f"{floor['steps']} steps (an epoch at batch 2048); per step, every modality's "
        f"projection ({dims}) forward and backward (weight and bias gradients), median of "
        f"{max(1, args.repeats)}, with the features stored in each of DREAM's "
        f"feature dtypes and projected as DREAM projects them; each DREAM epoch is divided "
        f"by the floor of its own dtype. DREAM's modal line propagates every item's "
        f"projection over the item–item graph and averages it to every user, so each step "
        f"needs all items: the all-items floor is the one DREAM is held to. The last row "
        f"of each dtype adds, as bare matrix products at the same shapes, the logits and "
        f"backward products of the four 2048 × 2048 InfoNCE terms and the S3 products "
        f"against the [B, Σd_m] target factors: the matrix-product floor of DREAM's "
        f"whole objective."
    )
    return notes + "\n\n" + markdown_table(header, rows)


# --------------------------------------------------------------------------- C
def table_profile(args: argparse.Namespace, models: list[str]) -> str:
    from step_profile import PARTS

    results = {}
    for label, model, dtype in _model_runs(args, models):
        print(f"[C] profile {label} ...", file=sys.stderr, flush=True)
        results[label] = run_worker(
            HERE / "step_profile.py",
            ["--model", model, "--preset", args.preset, "--data-root", args.data_root]
            + ["--device", args.device, "--feature-dtype", dtype],
        )
    header = ["model", "epoch (s)", *PARTS, "untimed"]
    rows = []
    for label, result in results.items():
        if "error" in result:
            rows.append(_error_row(label, result, len(header)))
            continue
        total = result["epoch_seconds"]
        values = [result["parts"].get(part, 0.0) for part in PARTS]
        values.append(result["untimed_seconds"])
        rows.append([label, _s(total)] + [f"{_s(v)} ({100 * v / total:.0f} %)" for v in values])
    notes = (
        "One epoch of each model of table A after 3 warm-up steps: exclusive wall time of "
        "each part in seconds (share of the epoch). See benchmarks/README.md for what each "
        "part covers; every backward, the projections' included, is in *backward*; loss "
        "terms a model computes inline (not through BPRLoss, BMALoss or S3Loss) count as "
        "*loss glue*. Timers add a little overhead, so epochs are slightly slower than in "
        "table A."
    )
    return notes + "\n\n" + markdown_table(header, rows)


# --------------------------------------------------------------------------- D, E
def _knn_backend(args: argparse.Namespace) -> tuple[str, str]:
    if args.knn_backend != "auto":
        return ("exact" if args.knn_backend == "torch" else "ivf"), args.knn_backend
    if args.device.startswith("cuda") and machine_facts(args.device)["faiss_gpu"]:
        return "ivf", "faiss"
    return "ivf", "torch_ivf"


def table_scale(args: argparse.Namespace) -> str:
    mode, backend = _knn_backend(args)
    search = ["--mode", mode, "--backend", backend, "--device", args.device]
    if args.nlist:
        search += ["--nlist", str(args.nlist)]
    if args.nprobe:
        search += ["--nprobe", str(args.nprobe)]
    data = ["--preset", args.scale_preset, "--data-root", args.data_root]
    with tempfile.TemporaryDirectory(prefix="dreamgeo-bench-graphs-") as cache:
        print(f"[D] relation graphs of {args.scale_preset} ...", file=sys.stderr, flush=True)
        graphs = run_worker(HERE / "scale.py", ["graphs", *data, "--cache-dir", cache, *search])
        print(f"[D] DREAM epoch and evaluation on {args.scale_preset} ...", file=sys.stderr)
        dream = run_worker(
            HERE / "scale.py",
            ["dream", *data, "--cache-dir", cache, *search]
            + ["--feature-dtype", args.dream_feature_dtypes[0]],
        )
    parts = []
    if "error" in graphs:
        parts.append(f"graph build failed: {graphs['error']}")
    else:
        rows = []
        for graph in graphs["graphs"]:
            recall = graph.get("recall")
            rows.append(
                [
                    f"{graph['node_type']}–{graph['node_type']}, {graph['modality']}",
                    f"{graph['rows']} × {graph['dim']}",
                    _s(graph["seconds"], 1),
                    "—" if recall is None else f"{recall:.4f}",
                    "—" if recall is None else _met(recall, TARGET_RECALL, larger_is_better=True),
                ]
            )
        total, peak = graphs["total_seconds"], graphs["peak_rss_mb"] / 1024
        rows.append(
            [
                "all four graphs",
                "",
                f"{total:.1f} (target ≤ {TARGET_GRAPHS_SECONDS:g}: "
                f"{_met(total, TARGET_GRAPHS_SECONDS)})",
                f"peak RSS {peak:.2f} GB (target ≤ {TARGET_GRAPHS_PEAK_GB:g}: "
                f"{_met(peak, TARGET_GRAPHS_PEAK_GB)})",
                "",
            ]
        )
        config = graphs["search"]
        parts.append(
            f"Data: {graphs['data']} (loaded in {graphs['load_seconds']:.1f} s, RSS "
            f"{graphs['rss_after_load_mb'] / 1024:.2f} GB after loading). Search: k = "
            f"{config['k']}, mode {config['mode']}, backend {config['backend']}, nlist "
            f"{config['nlist'] or 'default'}, nprobe {config['nprobe'] or 'default'}; times "
            f"include the user mean features. Recall@{config['k']} against exact search on "
            f"{args.recall_sample} random rows (knn_recall), target ≥ {TARGET_RECALL}.\n\n"
            + markdown_table(
                ["graph", "rows × dim", "build (s)", f"recall@{config['k']}", "≥ 0.95?"], rows
            )
        )
    if "error" in dream:
        parts.append(f"DREAM at scale failed: {dream['error']}")
    else:
        rows = [
            [
                "graphs loaded from the cache of the build above",
                _s(dream["graph_load_seconds"], 1),
                "",
            ],
            ["DREAM construction (S3 factors, operators)", _s(dream["build_seconds"], 1), ""],
            [
                f"one DREAM training epoch ({dream['steps']} steps, "
                f"{dream.get('feature_dtype', 'float32')} features)",
                _s(dream["epoch_seconds"], 1),
                "",
            ],
            [
                f"evaluation of all {dream['users']} users × {dream['items']} items, valid + test",
                _s(dream["eval_seconds"], 1),
                f"≤ {TARGET_SCALE_EVAL:g} s: {_met(dream['eval_seconds'], TARGET_SCALE_EVAL)}",
            ],
            ["peak RSS of this process (GB)", _gb(dream["peak_rss_mb"]), ""],
        ]
        parts.append(markdown_table(["DREAM at scale", "seconds", "target"], rows))
    return "\n\n".join(parts)


def table_curve(args: argparse.Namespace) -> str:
    mode, backend = _knn_backend(args)
    points = list(QUICK_CURVE_POINTS if args.quick else CURVE_POINTS)
    if not args.quick and not args.skip_curve_image:
        points += list(CURVE_POINTS_IMAGE)
    rows = []
    for rows_count, dim in points:
        print(f"[E] {rows_count} × {dim} ...", file=sys.stderr, flush=True)
        result = run_worker(
            HERE / "scale.py",
            ["curve", "--rows", str(rows_count), "--dim", str(dim), "--mode", mode]
            + ["--backend", backend, "--device", args.device],
        )
        if "error" in result:
            rows.append([f"{rows_count} × {dim}", f"failed: {result['error']}", "", "", "", ""])
            continue
        extra = result["extra_mb"]
        rows.append(
            [
                f"{rows_count} × {dim}",
                _s(result["seconds"], 1),
                f"{result['features_mb']:.0f}",
                f"{extra:.0f}",
                f"{extra * 2**20 / rows_count:.0f}",
                "—" if result["recall"] is None else f"{result['recall']:.4f}",
            ]
        )
    notes = (
        f"Synthetic clustered features (1,000 Gaussian topics), k = 10, mode {mode}, backend "
        f"{backend}, default nlist / nprobe; each point in a fresh process. Memory above the "
        f"features = peak RSS minus RSS once the features exist; it grows linearly in the "
        f"rows (the search keeps a sorted copy of the rows, n × nprobe probe ids and "
        f"n × k results: O(n·(d + nprobe + k)), never n²)."
    )
    header = [
        "rows × dim",
        "build (s)",
        "features (MB)",
        "memory above features (MB)",
        "bytes per row",
        "recall@10 (2,000 rows)",
    ]
    return notes + "\n\n" + markdown_table(header, rows)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="baby", help="planted preset of tables A-C")
    parser.add_argument(
        "--scale-preset", default=None, help="planted preset of table D (default: --preset)"
    )
    parser.add_argument(
        "--data-root",
        default=os.environ.get("DREAMGEO_DATA_ROOT", "data"),
        help="where planted data is read or generated (default: $DREAMGEO_DATA_ROOT or data)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs / evaluations")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated models of table A, or 'all' for the whole registry",
    )
    parser.add_argument(
        "--tables", default="ABCDEF", help="which tables to run, e.g. 'AB' or 'D,E'"
    )
    parser.add_argument(
        "--dream-feature-dtypes",
        default="float32,bfloat16",
        help="DREAM's feature_dtype settings timed in tables A-C (comma-separated); the "
        "first is the reference of table D",
    )
    for letter, name in (
        ("A", "models"),
        ("B", "floor"),
        ("C", "profile"),
        ("D", "scale"),
        ("E", "curve"),
        ("F", "accelerators"),
    ):
        parser.add_argument(f"--skip-{name}", action="store_true", help=f"skip table {letter}")
    parser.add_argument(
        "--skip-curve-image",
        action="store_true",
        help="table E without the 4096-d points (10k-200k rows)",
    )
    parser.add_argument(
        "--knn-backend",
        choices=("auto", "torch_ivf", "faiss", "torch"),
        default="auto",
        help="engine of tables D and E: auto = faiss IVF on a GPU with faiss-gpu, else "
        "torch_ivf; torch = exact search",
    )
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists of tables D, E")
    parser.add_argument("--nprobe", type=int, default=None, help="IVF probes of tables D, E")
    parser.add_argument("--recall-sample", type=int, default=2000)
    parser.add_argument("--output", default=None, help="markdown file to write")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: tiny preset, 1 repeat, small curve points (under 2 minutes)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.repeats = "tiny", 1
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.scale_preset = args.scale_preset or args.preset
    args.dream_feature_dtypes = args.dream_feature_dtypes.split(",")
    for dtype in args.dream_feature_dtypes:
        if dtype not in ("float32", "bfloat16"):
            parser.error(f"--dream-feature-dtypes: unknown dtype {dtype!r}")
    args.tables = {letter for letter in args.tables.upper() if letter in TABLE_TITLES}
    for letter, name in zip(
        "ABCDEF", ("models", "floor", "profile", "scale", "curve", "accelerators")
    ):
        if getattr(args, f"skip_{name}"):
            args.tables.discard(letter)
    if args.output is None:
        suffix = "-quick" if args.quick else ""
        args.output = str(HERE / "results" / f"{args.preset}{suffix}-{args.device}.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dreamgeo.models.registry import MODELS

    models = list(MODELS) if args.models == "all" else args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"run_all.py: unknown models {unknown}; choose from {sorted(MODELS)}")
    started = time.perf_counter()
    sections = [
        f"# dreamgeo speed and scale, planted '{args.preset}'"
        + (" (quick smoke test)" if args.quick else ""),
        machine_header(args.device),
    ]

    def add(letter: str, body: str) -> None:
        sections.append(f"## {TABLE_TITLES[letter]}\n\n{body}")
        print(sections[-1] + "\n", flush=True)

    print("\n\n".join(sections) + "\n", flush=True)
    model_results: dict[str, Any] = {}
    if "A" in args.tables:
        body, model_results = table_models(args, models)
        add("A", body)
    if "B" in args.tables:
        dreams = {}
        for dtype in args.dream_feature_dtypes:
            dreams[dtype] = model_results.get(dream_label(dtype))
            if dreams[dtype] is None:
                print(f"[B] timing a {dream_label(dtype)} epoch ...", file=sys.stderr, flush=True)
                dreams[dtype] = run_worker(
                    HERE / "model_epochs.py", _model_args(args, "dream", feature_dtype=dtype)
                )
        add("B", table_floor(args, dreams))
    if "C" in args.tables:
        add("C", table_profile(args, models))
    if "D" in args.tables:
        add("D", table_scale(args))
    if "E" in args.tables:
        add("E", table_curve(args))
    if "F" in args.tables:
        add("F", table_accelerators(args))
    sections.append(f"Total wall time of the benchmark: {time.perf_counter() - started:.0f} s.")
    print(sections[-1])
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n\n".join(sections) + "\n")
    print(f"\nwritten to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
