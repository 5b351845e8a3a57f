"""Crash safety and determinism of the training command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "examples" / "train_amazon.py")
# Long enough that the run cannot finish between two polls of its log on a fast machine
# (a tiny epoch takes well under a second).
EPOCHS = 40


def _command(tmp_path, out_dir, *extra):
    return [
        sys.executable,
        SCRIPT,
        "--preset",
        "tiny",
        "--data-root",
        str(tmp_path / "data"),
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "256",
        "--lr",
        "0.005",
        "--knn-k",
        "5",
        "--seed",
        "7",
        "--no-progress",
        "--out-dir",
        str(out_dir),
        *extra,
    ]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    subprocess.run(
        _command(tmp_path, tmp_path / "straight"), check=True, env=_env(), capture_output=True
    )
    straight = json.loads((tmp_path / "straight" / "result.json").read_text())

    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(
        _command(tmp_path, killed_dir),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = killed_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed_dir / "result.json").exists()
    done = len(log.read_text().splitlines())
    assert 2 <= done < straight["epochs_run"]

    subprocess.run(
        _command(tmp_path, killed_dir, "--resume"), check=True, env=_env(), capture_output=True
    )
    resumed = json.loads((killed_dir / "result.json").read_text())
    assert resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["valid"] == straight["valid"]
    assert resumed["test"] == straight["test"]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    straight_rows = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    assert [row["epoch"] for row in rows] == list(range(1, len(straight_rows) + 1))


def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
    import torch

    from dreamgeo import DREAM
    from dreamgeo.datasets import MMRecDataset, write_planted
    from dreamgeo.train import TrainConfig, Trainer

    write_planted(tmp_path, "tiny", preset="tiny")
    data = MMRecDataset(tmp_path, "tiny")[0]

    def run(seed):
        torch.manual_seed(seed)
        model = DREAM(data, knn_k=5)
        config = TrainConfig(epochs=3, batch_size=256, lr=5e-3, seed=seed, progress=False)
        result = Trainer(model, data, config).fit()
        return [
            (row["loss"], row["valid_recall@20"], row["test_ndcg@20"]) for row in result.history
        ]

    assert run(1) == run(1)
    assert run(1) != run(2)
