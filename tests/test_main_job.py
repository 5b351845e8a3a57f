"""The main job (``python examples/train_amazon.py``) on the embedded real data, and run
folders that no later command can silently overwrite or mix."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "examples" / "train_amazon.py")


def _run(out_dir, *extra, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, SCRIPT, "--no-progress", "--out-dir", str(out_dir), *extra],
        capture_output=True,
        text=True,
        env=env,
        check=check,
        timeout=600,
    )


def test_main_job_two_epochs_on_the_embedded_data_then_guards_its_folder(tmp_path):
    out = tmp_path / "run"
    first = _run(out, "--epochs", "2")
    text = first.stdout
    assert "DREAM on the embedded 'scientific' dataset" in text
    assert "2928 users, 1585 items, 10861 training interactions" in text
    assert "epoch 1/2  loss " in text and "ETA <= " in text and "(epoch limit)" in text
    assert "| valid |" in text and "| test |" in text
    assert f"run folder {out}" in text
    for name in ("run.json", "checkpoint.pt", "metrics.csv", "result.json", "training_curve.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 2 and 0 < result["valid"]["recall@20"] < 1
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    # the same command again: refused, nothing touched
    again = _run(out, "--epochs", "2", check=False)
    assert again.returncode == 2
    assert "already holds a run" in again.stderr and "--overwrite" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp

    # --resume with another hyper-parameter: refused, naming it
    other = _run(out, "--epochs", "2", "--knn-k", "5", "--resume", check=False)
    assert other.returncode == 2
    assert "hparams.knn_k: stored 10, now 5" in other.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp

    # --resume with the same settings: nothing left to do, same result
    same = _run(out, "--epochs", "2", "--resume")
    assert "resumed from" in same.stdout
    assert json.loads((out / "result.json").read_text())["valid"] == result["valid"]

    # --overwrite replaces the run
    _run(out, "--epochs", "1", "--overwrite")
    assert json.loads((out / "result.json").read_text())["epochs_run"] == 1
