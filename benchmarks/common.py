r"""Shared helpers of the benchmark scripts: timing with medians, peak memory, the
header that names the machine and the versions, markdown tables, and fresh worker
processes that report one JSON object each."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "machine_header",
    "machine_facts",
    "median_time",
    "peak_rss_mb",
    "markdown_table",
    "mean_std",
    "synchronize",
    "optional_packages",
    "emit_result",
    "run_worker",
    "RESULT_PREFIX",
]

#: Marks the line of a worker's stdout that holds its JSON result.
RESULT_PREFIX = "BENCHMARK_RESULT "

_OPTIONAL = ("torch_scatter", "torch_sparse", "pyg_lib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _total_ram_gb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal"))
        return kib / (1 << 20)
    except (OSError, StopIteration, ValueError):
        return None


def optional_packages() -> dict[str, str | None]:
    r"""Version of each optional PyG accelerator (``torch_scatter``, ``torch_sparse``,
    ``pyg_lib``), or :obj:`None` when it is not installed. Nothing is imported."""
    found: dict[str, str | None] = {}
    for name in _OPTIONAL:
        if importlib.util.find_spec(name) is None:
            found[name] = None
            continue
        try:
            found[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            found[name] = "installed"
    return found


def machine_facts(device: str = "cpu") -> dict[str, Any]:
    r"""The machine and the versions as a dict (see :func:`machine_header`)."""
    import faiss
    import torch_geometric

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _total_ram_gb(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "faiss": faiss.__version__,
        "faiss_gpu": hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0,
        "numpy": np.__version__,
        "optional": optional_packages(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def machine_header(device: str = "cpu") -> str:
    r"""Two or three lines naming the machine (CPU model, cores, RAM, GPU, torch threads,
    load average at the start) and the versions (python, torch, torch_geometric, faiss,
    numpy, and whether the optional PyG accelerators are installed)."""
    facts = machine_facts(device)
    ram = f"{facts['ram_gb']:.0f} GB RAM" if facts["ram_gb"] else "RAM unknown"
    optional = ", ".join(
        f"{name} {version or 'not installed'}" for name, version in facts["optional"].items()
    )
    load = facts["load_average"]
    load_text = f", load average {load[0]:.2f} at start" if load else ""
    return (
        f"machine: {facts['cpu']}, {facts['cores']} cores, {ram}, GPU {facts['gpu'] or 'none'}, "
        f"torch threads {facts['torch_threads']}{load_text}; device {device}\n"
        f"versions: python {facts['python']}, torch {facts['torch']}, torch_geometric "
        f"{facts['torch_geometric']}, faiss {facts['faiss']}"
        f"{' (GPU)' if facts['faiss_gpu'] else ' (CPU)'}, numpy {facts['numpy']}; {optional}"
    )


def synchronize() -> None:
    r"""Waits for queued CUDA work, so that wall-clock timings include it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    r"""Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize()
        tic = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def peak_rss_mb() -> float:
    r"""Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mean_std(values: list[float]) -> str:
    r"""``"mean ± sample std"`` to 4 decimals; one value alone, ``"—"`` for none."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def emit_result(result: dict[str, Any]) -> None:
    r"""Prints a worker's result as the one line :func:`run_worker` reads."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(
    script: str | os.PathLike, args: list[str], timeout: float | None = None
) -> dict[str, Any]:
    r"""Runs ``python script args...`` in a fresh interpreter (so that its peak RSS is
    its own) and returns the JSON object it printed with :func:`emit_result`; on a
    failure, ``{"error": <the last lines of its stderr>}``."""
    command = [sys.executable, str(script), *args]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    root = str(Path(__file__).resolve().parent.parent)
    environment["PYTHONPATH"] = root + os.pathsep + environment.get("PYTHONPATH", "")
    tic = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=environment
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            result.setdefault("process_seconds", time.perf_counter() - tic)
            return result
    tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    return {"error": f"exit {done.returncode}: {tail[-400:]}"}


def build_benchmark_model(name: str, data, **options: Any):
    r"""Model ``name`` on ``data`` at its declared defaults, with those of the runtime
    ``options`` (``knn_mode``, ``knn_backend``, ``feature_dtype``, ...) that it takes;
    the others do not apply to it (e.g. DREAM's feature dtype for a baseline)."""
    from dreamgeo.models import get_model

    info = get_model(name)
    runtime = {key: value for key, value in options.items() if key in info.runtime_options}
    return info.build(data, info.hparams.defaults(), **runtime)


def split_evaluator(data, ks: tuple[int, ...] = (20,)):
    r"""The trainer's full-ranking evaluator on ``data``'s valid and test splits
    (training interactions masked), for scripts that score rankings without training."""
    from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
    from dreamgeo.train.evaluate import FullRankEvaluator

    store = data[INTERACTS]
    return FullRankEvaluator(
        store.edge_index,
        {"valid": store.val_edge_index, "test": store.test_edge_index},
        data[USER].num_nodes,
        data[ITEM].num_nodes,
        ks=ks,
    )


#: A tuning run folder's files and the names they are committed under
#: (``benchmarks/results/tuning/<prefix>-<name>``).
STUDY_FILES = (
    ("trials.csv", "trials.csv"),
    ("trials.md", "trials.md"),
    ("best_result.json", "best.json"),
    ("best_result.md", "best.md"),
)


def copy_study(study: Path, folder: Path, prefix: str) -> None:
    r"""Copies a tuning run folder's tables and retrained best (those that exist) into
    ``folder`` as ``<prefix>-<name>``."""
    for source, target in STUDY_FILES:
        if (study / source).is_file():
            shutil.copyfile(study / source, folder / f"{prefix}-{target}")
