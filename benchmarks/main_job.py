r"""Wall time of the two example jobs a new user runs first, each in a fresh process on
the embedded real data with its defaults:

* ``python examples/train_amazon.py`` (the main job: DREAM, the paper's protocol,
  early stopping), target: within 5 minutes on 2 CPU cores;
* ``python examples/bma_plugin.py`` (PyG's LightGCN + a modal encoder, without and with
  BMALoss), target: within 3 minutes.

    python benchmarks/main_job.py > benchmarks/results/main-job.md

Prints a markdown table with the machine, its load at the start and the versions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_header  # noqa: E402


def _timed(command: list[str]) -> tuple[float, str]:
    tic = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return time.perf_counter() - tic, done.stdout


def main() -> int:
    facts = machine_header()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "main-job"
        seconds, text = _timed(
            [sys.executable, "examples/train_amazon.py", "--no-progress", "--out-dir", str(out)]
        )
        epochs = sum(line.startswith("epoch ") for line in text.splitlines())
        rows.append(("python examples/train_amazon.py", seconds, f"{epochs} epochs", 300))
        seconds, text = _timed([sys.executable, "examples/bma_plugin.py"])
        epochs = sum(line.startswith("epoch ") for line in text.splitlines())
        rows.append(("python examples/bma_plugin.py", seconds, f"{epochs} epochs (2 runs)", 180))
    print("# The example jobs on the embedded real data\n")
    print(f"{facts}\n\nload average {load:.2f} at the start\n")
    print("| command | wall time | work | target | met? |")
    print("|---|---|---|---|---|")
    for command, seconds, work, target in rows:
        met = "yes" if seconds <= target else "no"
        print(f"| `{command}` | {seconds / 60:.1f} min | {work} | {target // 60} min | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
