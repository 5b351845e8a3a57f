"""The experiment runners: run specs, reuse and resume of runs, and the tables."""

import json
import math
from pathlib import Path

import pytest

from dreamgeo.commands import build_parser
from dreamgeo.commands.experiment_runner import ExperimentRunner
from dreamgeo.config import given_hparam_flags, resolve_run
from dreamgeo.experiments import (
    GRID,
    TABLE2_MODELS,
    RunSpec,
    ablation_runs,
    bma_plugin_runs,
    grid_runs,
    overall_comparison_runs,
    seed_runs,
)
from dreamgeo.experiments.report import (
    ablation_table,
    bma_table,
    grid_table,
    overall_table,
    seed_table,
)


def _result(r20, valid_r20=None, best_epoch=5, **extra):
    test = {"recall@10": r20 / 2, "recall@20": r20, "ndcg@10": r20 / 4, "ndcg@20": r20 / 3}
    valid = dict(test, **{"recall@20": r20 if valid_r20 is None else valid_r20})
    return {
        "test": test,
        "valid": valid,
        "best_epoch": best_epoch,
        "epochs_run": best_epoch + 20,
        "epoch_time": 1.5,
        "wall_time": 40.0,
        "stopped_early": True,
        **extra,
    }


def test_specs_cover_the_papers_tables_and_parse_as_train_arguments():
    assert len(overall_comparison_runs()) == len(TABLE2_MODELS) >= 10
    assert TABLE2_MODELS[:2] == ("bpr", "lightgcn") and TABLE2_MODELS[-1] == "dream"
    assert {s.ablation for s in ablation_runs()} == {
        "no_filter_gate",
        "no_relation_graphs",
        "no_text_encoder",
        "no_image_encoder",
        "no_encoders",
        "no_s3",
        "no_inter",
        "no_intra",
        "no_alignment",
        "full",
    }
    table4 = bma_plugin_runs()
    assert [(s.model, s.bma) for s in table4[:2]] == [("vbpr", False), ("vbpr", True)]
    grid = grid_runs()
    # DREAM's declared grid: the paper's 2 x 2 x 2 x 3 points x tau {0.1, 0.2}
    assert len(grid) == 2 * 2 * 2 * 3 * 2 == math.prod(len(v) for v in GRID.values())
    assert len({s.name for s in grid}) == len(grid)
    assert [s.seed for s in seed_runs(("dream",), (0, 1, 2))] == [0, 1, 2]

    def resolved(spec):
        args = build_parser().parse_args(["train", *spec.argv()])
        return resolve_run(args.model, flags=given_hparam_flags(args))[1]

    spec = RunSpec("dream", 3, options=(("s3_weight", 0.5), ("image_weight", 0.1)))
    values = resolved(spec)
    assert (values["seed"], values["s3_weight"], values["image_weight"]) == (3, 0.5, 0.1)
    assert spec.name == "dream-s3_weight=0.5-image_weight=0.1-seed3"
    assert resolved(RunSpec("mgcn", bma=True))["bma"] is True
    assert resolved(RunSpec("dream", ablation="no_s3"))["ablation"] == "no_s3"


def test_grid_choice_uses_validation_never_test():
    specs = grid_runs({"s3_weight": (0.1, 0.5), "intra_weight": (0.01,)})
    results = {
        specs[0].name: _result(0.30, valid_r20=0.10),  # best on test, worse on valid
        specs[1].name: _result(0.20, valid_r20=0.12),
    }
    rows = grid_table(specs, results).rows
    assert [row[-1] for row in rows] == ["", "best (valid R@20)"]


def test_overall_ablation_bma_and_seed_tables_compute_what_they_print():
    specs = overall_comparison_runs(("lightgcn", "vbpr", "dream"))
    results = {
        "lightgcn-seed0": _result(0.10),
        "vbpr-seed0": _result(0.12),
        "dream-seed0": _result(0.15),
    }
    table = overall_table(specs, results)
    assert [row[0] for row in table.rows] == ["LightGCN", "VBPR", "DREAM"]
    assert table.rows[2][2] == 0.15
    assert "R@20 +25.00 %" in table.notes[0]  # 0.15 / 0.12 - 1

    specs = ablation_runs(("no_s3", "full"))
    results = {"dream-no_s3-seed0": _result(0.18), "dream-seed0": _result(0.20)}
    assert ablation_table(specs, results).rows[0][5] == "-10.0 %"

    specs = bma_plugin_runs(("bm3",))
    results = {"bm3-seed0": _result(0.16), "bm3-bma-seed0": _result(0.20)}
    rows = bma_table(specs, results).rows
    assert [row[0] for row in rows] == ["BM3", "BM3 + BMA"] and rows[1][5] == "+25.0 %"

    specs = seed_runs(("dream",), (0, 1, 2))
    values = [0.10, 0.20, 0.60]
    results = {s.name: _result(v) for s, v in zip(specs, values)}
    row = seed_table(specs, results).rows[0]
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    assert row[1] == 3 and row[3] == f"{mean:.4f} ± {std:.4f}"
    csv_text = seed_table(specs, results).csv()
    assert csv_text.splitlines()[0] == "model,seeds,R@10,R@20,N@10,N@20"


def test_runner_trains_reuses_and_refuses_stale_results(tmp_path, capsys):
    common = ["--preset", "tiny", "--data-root", str(tmp_path / "data"), "--epochs", "2"]
    common += ["--batch-size", "512"]
    runner = ExperimentRunner(tmp_path / "runs", common)
    spec = RunSpec("lightgcn", seed=1)
    first = runner.run(spec)
    stored = json.loads((tmp_path / "runs" / spec.name / "result.json").read_text())
    assert first == stored and stored["epochs_run"] == 2 and stored["hparams"]["seed"] == 1
    mtime = (tmp_path / "runs" / spec.name / "result.json").stat().st_mtime
    assert runner.run(spec) == first
    assert "reusing" in capsys.readouterr().out
    assert (tmp_path / "runs" / spec.name / "result.json").stat().st_mtime == mtime

    changed = ExperimentRunner(tmp_path / "runs", [*common, "--epochs", "3"])
    with pytest.raises(ValueError, match="other arguments \\(hparams.epochs: stored 2, now 3"):
        changed.run(spec)


def test_experiment_command_writes_markdown_and_csv(tmp_path):
    from dreamgeo.commands import main

    out = tmp_path / "runs"
    code = main(
        [
            "experiment",
            "seeds",
            "--models",
            "bpr",
            "--seeds",
            "0,1",
            "--preset",
            "tiny",
            "--data-root",
            str(tmp_path / "data"),
            "--epochs",
            "2",
            "--out-root",
            str(out),
        ]
    )
    assert code == 0
    markdown = (out / "seeds.md").read_text()
    assert "| BPR | 2 |" in markdown
    assert (out / "seeds.csv").read_text().startswith("model,seeds,")
    with pytest.raises(SystemExit):
        main(["experiment", "table2", "--models", "nosuchmodel", "--out-root", str(out)])


def test_figures_are_drawn_from_the_experiment_runs(tmp_path):
    pytest.importorskip("matplotlib")
    from dreamgeo.commands.experiment import draw_figures

    common = ["--preset", "tiny", "--data-root", str(tmp_path / "data"), "--epochs", "2"]
    runner = ExperimentRunner(tmp_path / "runs", common)
    runner.run_all([RunSpec("dream"), RunSpec("vbpr"), RunSpec("vbpr", bma=True)])
    logged = json.loads((tmp_path / "runs" / "dream-seed0" / "metrics.jsonl").open().readline())
    assert 0 <= logged["forgetting_item_text"] <= 2
    assert -1 <= logged["behavior_modal_cos_item"] <= 1
    written = draw_figures(tmp_path / "runs")
    names = sorted(path.name for path in written)
    assert names == [
        "fig1b_forgetting.png",
        "fig1b_forgetting_centered.png",
        "fig2a_behavior_modal_cos.png",
        "fig7_tsne_dream.png",
    ]
    assert all(path.stat().st_size > 10_000 for path in written)


def test_report_only_tables_finished_runs_without_training(tmp_path, capsys):
    from dreamgeo.commands import main

    common = ["--preset", "tiny", "--data-root", str(tmp_path / "data"), "--epochs", "1"]
    ExperimentRunner(tmp_path / "runs", common).run(RunSpec("bpr"))
    capsys.readouterr()
    code = main(
        ["experiment", "table2", "--report-only", "--models", "bpr,lightgcn", *common]
        + ["--out-root", str(tmp_path / "runs")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1 of 2 runs finished; not yet: lightgcn-seed0" in out
    assert not (tmp_path / "runs" / "lightgcn-seed0").exists()
    assert "| BPR |" in (tmp_path / "runs" / "table2.md").read_text()


def test_tuned_table2_trains_from_the_committed_configs(tmp_path, capsys):
    from dreamgeo.commands import main
    from dreamgeo.config import write_config

    configs = tmp_path / "configs" / "planted_tiny"
    write_config(configs / "bpr.yaml", "bpr", {"reg_weight": 0.1, "epochs": 2, "seed": 3})
    common = ["--preset", "tiny", "--data-root", str(tmp_path / "data")]
    common += ["--configs-dir", str(tmp_path / "configs"), "--out-root", str(tmp_path / "runs")]
    code = main(["experiment", "table2", "--tuned", "--models", "bpr", *common])
    assert code == 0
    result = json.loads((tmp_path / "runs" / "bpr-tuned-seed0" / "result.json").read_text())
    # the file's values reach the run, but the experiment's --seeds (default 0) decide the
    # seed; the table and the json are written
    assert result["hparams"]["reg_weight"] == 0.1 and result["epochs_run"] == 2
    assert result["hparams"]["seed"] == 0
    rows = json.loads((configs / "table2.json").read_text())
    assert rows[0]["model"] == "bpr" and rows[0]["valid"] == result["valid"]
    # a model without a tuned file: nothing trains, the message names the file
    with pytest.raises(SystemExit, match="lightgcn.yaml does not exist"):
        main(["experiment", "table2", "--tuned", "--models", "lightgcn", *common])


def test_train_prints_the_best_tuned_baseline_and_its_own_tuned_result():
    from dreamgeo.commands.train import _best_baseline_table

    root = Path(__file__).resolve().parent.parent / "configs" / "scientific"
    rows = {row["model"]: row for row in json.loads((root / "table2.json").read_text())}
    text = _best_baseline_table("scientific", "dream")
    best = max((r for m, r in rows.items() if m != "dream"), key=lambda r: r["valid"]["recall@20"])
    assert f"best tuned baseline on scientific: {best['label']}" in text
    # for a baseline the best other model may be DREAM, which is no baseline
    other = max((r for m, r in rows.items() if m != "mgcn"), key=lambda r: r["valid"]["recall@20"])
    assert f"best other tuned model on scientific: {other['label']}" in _best_baseline_table(
        "scientific", "mgcn"
    )
    assert f"| valid | {best['valid']['recall@10']:.4f} | {best['valid']['recall@20']:.4f}" in text
    own = rows["dream"]["valid"]["recall@20"]
    assert f"DREAM tuned on scientific: valid R@20 {own:.4f}" in text
    assert "--config configs/scientific/dream.yaml" in text
    assert _best_baseline_table("no-such-dataset", "dream") is None
