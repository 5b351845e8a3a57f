import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_all import TABLE_TITLES  # noqa: E402


@pytest.mark.slow
def test_quick_run_prints_and_writes_every_table(tmp_path):
    output = tmp_path / "quick.md"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run_all.py"),
            "--quick",
            "--data-root",
            str(tmp_path / "data"),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = output.read_text()
    for title in TABLE_TITLES.values():
        assert f"## {title}" in written
        assert f"## {title}" in done.stdout
    assert "machine:" in written and "versions:" in written
    assert "failed" not in written, written
    # table A has a row per default model with a measured epoch
    for model in ("bpr", "lightgcn", "vbpr", "bm3", "freedom", "mgcn", "dream"):
        assert f"| {model} | " in written
    assert "MMRec" in written


def test_markdown_table_and_met_verdicts():
    from common import markdown_table
    from run_all import _met

    table = markdown_table(["a", "b"], [[1, 2], ["x", "y"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| x | y |"]
    assert _met(12.9, 13.0) == "met"
    assert _met(13.1, 13.0) == "missed"
    assert _met(0.96, 0.95, larger_is_better=True) == "met"
    assert _met(None, 1.0) == "not measured"


def test_worker_result_is_read_from_a_fresh_process(tmp_path):
    from common import run_worker

    script = tmp_path / "worker.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "from common import emit_result, peak_rss_mb\n"
        "import numpy as np\n"
        "block = np.ones((64, 1 << 20), dtype=np.uint8)  # 64 MiB touched\n"
        "print('noise before the result')\n"
        "emit_result({'value': int(block.sum() // (1 << 20)), 'peak': peak_rss_mb()})\n"
    )
    result = run_worker(script, [])
    assert result["value"] == 64
    assert result["peak"] >= 64
    failing = tmp_path / "failing.py"
    failing.write_text("raise SystemExit('broken on purpose')\n")
    assert "broken on purpose" in run_worker(failing, [])["error"]


def test_tuned_table2_is_rebuilt_from_the_committed_evidence(capsys):
    import json

    import collect_table2

    assert collect_table2.main(["scientific"]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((ROOT / "configs" / "scientific" / "table2.json").read_text())
    assert rows, "configs/scientific/table2.json lists the tuned models"
    for row in rows:
        # every committed tuned row is in the table with its valid and test R@20
        line = next(x for x in printed.splitlines() if x.startswith(f"| {row['label']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{row['valid']['recall@20']:.4f}"
        assert cells[3] == f"{row['test']['recall@20']:.4f}"
        assert (ROOT / "configs" / "scientific" / row["config"]).is_file()
    assert "pending" not in printed
    assert collect_table2.main(["scientific", "--readme"]) == 0
    assert "target 1.03x" in capsys.readouterr().out


def test_collect_table4_reads_the_committed_bma_studies(capsys):
    import json

    import collect_table4

    assert collect_table4.main(["scientific"]) == 0
    printed = capsys.readouterr().out
    tuning = ROOT / "benchmarks" / "results" / "tuning"
    for name, label in (("vbpr", "VBPR"), ("bm3", "BM3"), ("freedom", "FREEDOM"), ("mgcn", "MGCN")):
        line = next(x for x in printed.splitlines() if x.startswith(f"| {label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        plain = json.loads((tuning / f"scientific-{name}-best.json").read_text())
        assert cells[1] == f"{plain['valid']['recall@20']:.4f}"
        best = tuning / f"scientific-{name}-bma-best.json"
        if best.is_file():  # the BMA row and its change against the plain tuned model
            tuned = json.loads(best.read_text())["valid"]["recall@20"]
            assert cells[6] == f"{tuned:.4f}"
            assert cells[8] == f"{100 * (tuned / plain['valid']['recall@20'] - 1):+.1f} %"
        else:
            assert cells[6] == "pending"


def test_collect_table4_marks_an_unfinished_study(tmp_path, monkeypatch, capsys):
    import collect_table4

    header = "number,state,bma_intra_weight,bma_inter_weight,valid_recall@20,epochs\n"
    (tmp_path / "toy-mgcn-bma-trials.csv").write_text(
        header
        + "0,COMPLETE,0.01,0.03,0.19,30\n1,COMPLETE,0.03,0.0,0.20,21\n2,RUNNING,0.0,0.0,,\n"
        # a second worker on the same storage ran point 0 again: still 2 points
        + "3,COMPLETE,0.01,0.03,0.19,30\n"
    )
    grid = [(a, b) for a in (0, 0.01, 0.03) for b in (0, 0.01, 0.03)]
    vbpr = [f"{n},COMPLETE,{a},{b},{0.1 + n / 100},30\n" for n, (a, b) in enumerate(grid)]
    vbpr[0] = "0,PRUNED,0,0,0.1,10\n"
    (tmp_path / "toy-vbpr-bma-trials.csv").write_text(header + "".join(vbpr))
    monkeypatch.setattr(collect_table4, "TUNING", tmp_path)
    assert collect_table4.main(["toy"]) == 0
    rows = {
        cells[0]: cells
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ") and not line.startswith("| model")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    # 2 of 9 grid points ended: the best so far is not called the tuned weights
    assert rows["MGCN"][5] == "unfinished (best of 2: (0.03, 0))"
    assert rows["MGCN"][10] == "2 full of 9"
    assert rows["MGCN"][3] == "pending"  # (0, 0) is still running
    # every point ended (one pruned): the best complete point is the tuned one
    assert rows["VBPR"][5] == "(0.03, 0.03)"
    assert rows["VBPR"][10] == "8 full of 9"
    assert rows["VBPR"][3] == "pruned at epoch 10 (0.1000)"


def test_loss_curves_weights_each_logged_term(tmp_path):
    import json

    import loss_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(
        json.dumps({"hparams": {"reg_weight": 0.5, "intra_weight": 0.1, "inter_weight": 0.0}})
    )
    (run / "metrics.csv").write_text(
        "epoch,loss,bpr,reg,intra,inter,s3,valid_recall@20\n"
        "1,2.0,0.7,0.2,3.0,4.0,-0.1,0.05\n"
        "2,1.0,0.5,0.4,2.0,3.0,-0.2,0.10\n"
    )
    terms = loss_curves.weighted_terms(run)
    # a zero weight (inter) drops its term; the others are weight x logged value
    assert set(terms) == {"BPR", "λ·reg", "α·intra"}
    assert terms["BPR"] == [0.7, 0.5]
    assert terms["λ·reg"] == pytest.approx([0.1, 0.2])
    assert terms["α·intra"] == pytest.approx([0.3, 0.2])
    hparams = {"reg_weight": 0.5, "intra_weight": 0.1, "inter_weight": 0.0, "bma_decay": 0.5}
    (run / "run.json").write_text(json.dumps({"hparams": hparams}))
    terms = loss_curves.weighted_terms(run)  # BMA's weight in epoch t: 0.1 x 0.5^(t-1)
    assert terms["α·intra"] == pytest.approx([0.3, 0.1])
    assert terms["λ·reg"] == pytest.approx([0.1, 0.2])
    out = tmp_path / "curves.png"
    assert loss_curves.main([str(run), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    with pytest.raises(SystemExit, match="metrics.csv"):
        loss_curves.main([str(tmp_path / "missing"), "--out", str(out)])


def test_collect_table3_means_and_changes_over_shared_seeds():
    import collect_table3

    def run(valid, test, epoch):
        return {
            "valid": {"recall@20": valid, "ndcg@20": valid / 2},
            "test": {"recall@20": test, "ndcg@20": test / 2},
            "best_epoch": epoch,
        }

    stored = {
        "full": {"0": run(0.20, 0.10, 5), "1": run(0.22, 0.12, 6)},
        "no_s3": {"0": run(0.18, 0.11, 7)},  # seed 0 only: compared with full's seed 0
    }
    rows = {row[0]: row for row in collect_table3.rows(stored)}
    assert rows["DREAM"][1] == "0, 1"
    assert rows["DREAM"][2] == "0.2100 ± 0.0141"
    assert rows["w/o S3"][2] == "0.1800"
    assert rows["w/o S3"][6] == "-10.0 %"  # 0.18 against full's 0.20 at seed 0
    assert rows["w/o S3"][7] == "+10.0 %"  # test 0.11 against 0.10
    assert rows["w/o S3"][8] == "7"


def test_collect_structure_reads_the_committed_stage_two_studies(capsys):
    import csv
    import json

    import collect_structure

    assert collect_structure.main(["scientific"]) == 0
    printed = capsys.readouterr().out
    tuning = ROOT / "benchmarks" / "results" / "tuning"
    for name, label in (("mgcn", "MGCN"), ("dream", "DREAM")):
        line = next(x for x in printed.splitlines() if x.startswith(f"| {label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        stage1 = json.loads((tuning / f"scientific-{name}-best.json").read_text())
        assert cells[1] == f"{stage1['valid']['recall@20']:.4f}"
        rows = list(csv.DictReader((tuning / f"scientific-{name}-structure-trials.csv").open()))
        for column, (layers, knn) in zip(cells[2:6], collect_structure.POINTS):
            (row,) = [r for r in rows if (int(r["num_layers"]), int(r["knn_k"])) == (layers, knn)]
            assert column == f"{float(row['valid_recall@20']):.4f}"
        best = json.loads((tuning / f"scientific-{name}-structure-best.json").read_text())
        assert cells[6] == f"{best['valid']['recall@20']:.4f}"
        # the retrained best is the grid's best point
        assert cells[6] == max(cells[2:6])
    assert "DREAM / best baseline after stage 2" in printed


def test_dream_options_resumes_a_killed_run_and_no_train_starts_none(tmp_path, capsys):
    import dream_options

    root = tmp_path / "runs"
    args = ["--preset", "tiny", "--epochs", "2", "--variants", "default", "--runs-dir", str(root)]
    args += ["--data-root", str(tmp_path / "data")]
    assert dream_options.main([*args, "--no-train"]) == 0
    assert "default seed 0 is not finished; left out" in capsys.readouterr().out
    assert not (root / "default-s0").exists()
    assert dream_options.main(args) == 0
    result = root / "default-s0" / "result.json"
    first = json.loads(result.read_text())
    result.unlink()  # killed after its last checkpoint, before the result was written
    assert dream_options.main(args) == 0
    out = capsys.readouterr().out
    assert "--resume" in out.split("default seed 0:")[-1]
    again = json.loads(result.read_text())
    assert again["valid"] == first["valid"] and again["best_epoch"] == first["best_epoch"]


def test_popularity_probe_weight_zero_is_the_run_itself(tmp_path, capsys):
    import dream_options
    import popularity_probe

    root = tmp_path / "runs"
    args = ["--preset", "tiny", "--epochs", "2", "--variants", "default", "--runs-dir", str(root)]
    assert dream_options.main([*args, "--data-root", str(tmp_path / "data")]) == 0
    run = root / "default-s0"
    result = json.loads((run / "result.json").read_text())
    rows = popularity_probe.probe(str(run), [0.0, 1e6])
    assert rows[0][2] == f"{result['valid']['recall@20']:.4f}"
    assert rows[0][3] == f"{result['test']['recall@20']:.4f}"
    # a huge weight ranks by training popularity alone, which is not the model's ranking
    assert rows[1][2:] != rows[0][2:]


def test_ensemble_probe_end_weights_are_the_runs_themselves(tmp_path):
    import dream_options
    import ensemble_probe

    root = tmp_path / "runs"
    args = ["--preset", "tiny", "--epochs", "2", "--variants", "default,no_s3"]
    assert dream_options.main([*args, "--runs-dir", str(root), "--data-root", str(tmp_path)]) == 0
    results = {
        name: json.loads((root / f"{name}-s0" / "result.json").read_text())
        for name in ("default", "no_s3")
    }

    def expected(name):
        return [f"{results[name][split]['recall@20']:.4f}" for split in ("valid", "test")]

    assert expected("default") != expected("no_s3")  # else w = 1 and w = 0 look alike
    rows = ensemble_probe.probe(str(root / "default-s0"), str(root / "no_s3-s0"), [1.0, 0.0])
    assert rows[0][1:] == expected("default")
    assert rows[1][1:] == expected("no_s3")
    # mixing a run with itself only rescales its scores: the ranking is the run's own
    rows = ensemble_probe.probe(str(root / "no_s3-s0"), str(root / "no_s3-s0"), [0.5])
    assert rows[0][1:] == expected("no_s3")
