"""dreamgeo tune (dreamgeo.train.tune): a study killed by SIGKILL mid-trial resumes
without losing or repeating a finished trial; best.yaml retrains to its trial's valid
Recall@20 through `dreamgeo train --config`; the grid sampler tries the grid points and
ends the study; pruning prunes; bad inputs run nothing."""

import csv
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from dreamgeo.commands import main
from dreamgeo.hparams import HParams
from dreamgeo.models import get_model
from dreamgeo.train import TuneError, Tuner

fcntl = pytest.importorskip("fcntl")

ROOT = Path(__file__).resolve().parent.parent
STUDY = "planted_tiny-lightgcn"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tune")
    return {"data": str(base / "data"), "cache": str(base / "cache"), "base": base}


def _data_flags(dirs):
    return ["--preset", "tiny", "--data-root", dirs["data"], "--cache-dir", dirs["cache"]]


def _trials(out_dir, name=STUDY):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out_dir}/study.db").trials


def _states(db):
    r"""{number: (state, epochs reported)} of every trial, read with sqlite3 while
    another process writes."""
    if not db.exists():
        return {}
    query = (
        "SELECT t.number, t.state, COUNT(v.step) FROM trials t LEFT JOIN "
        "trial_intermediate_values v ON v.trial_id = t.trial_id GROUP BY t.trial_id"
    )
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return {n: (state, steps) for n, state, steps in connection.execute(query)}
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def test_sigkill_mid_trial_resumes_without_losing_or_repeating(dirs, capsys):
    out = dirs["base"] / "killed"
    command = [sys.executable, "-m", "dreamgeo.commands", "tune", *_data_flags(dirs)]
    command += ["--model", "lightgcn", "--sampler", "grid", "--trials", "3", "--no-prune"]
    command += ["--epochs", "10", "--patience", "10", "--out-dir", str(out)]
    # one thread everywhere: the trials (killed process), the resumed study (this process)
    # and the train --config check below sum floats in the same order
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log = open(dirs["base"] / "killed.log", "w")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 240
    try:
        # wait until trial 0 is finished and a later one has reported its first of 10
        # epochs, then kill -9: the kill lands mid-trial
        while time.monotonic() < deadline and process.poll() is None:
            states = _states(out / "study.db")
            if states.get(0, ("",))[0] == "COMPLETE" and any(
                state == "RUNNING" and steps >= 1 for state, steps in states.values()
            ):
                break
            time.sleep(0.02)
        assert process.poll() is None, "the study ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    before = _states(out / "study.db")
    assert [s for s, _ in before.values()].count("RUNNING") == 1, before  # killed mid-trial
    finished_before = [n for n, (s, _) in before.items() if s == "COMPLETE"]

    # the same command again (in this process: the dead one's lock went with it)
    assert main(command[3:]) == 0
    printed = capsys.readouterr().out
    assert "left running by a dead process" in printed
    assert f"{len(finished_before)} of 3 trials finished already" in printed

    trials = _trials(out)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3  # exactly N finished
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == 3  # distinct grid points: nothing repeated
    for number in finished_before:  # finished trials are kept as they were
        assert trials[number].state == optuna.trial.TrialState.COMPLETE
    killed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(killed) == 1
    retry = [t for t in trials if t.system_attrs.get("retry_history") == [killed[0].number]]
    assert len(retry) == 1 and retry[0].params == killed[0].params  # grid point not lost
    assert {t.user_attrs["seed"] for t in complete} == {0}

    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    result = json.loads((out / "best_result.json").read_text())
    best = max(complete, key=lambda t: t.value)
    assert result["trial"] == best.number and result["reproduced"]
    assert result["retrain_valid_recall@20"] == best.value
    assert set(result["test"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}

    # best.yaml through `dreamgeo train --config` gives the trial's valid Recall@20
    text = (out / "best.yaml").read_text()
    assert f"# trial {best.number}: valid R@20" in text and "seed: 0" in text
    train_out = dirs["base"] / "retrained"
    code = main(
        ["train", "--config", str(out / "best.yaml"), *_data_flags(dirs)]
        + ["--out-dir", str(train_out), "--no-progress", "--no-diagnostics"]
    )
    assert code == 0
    capsys.readouterr()
    assert json.loads((train_out / "result.json").read_text())["valid"]["recall@20"] == best.value


def test_grid_sampler_tries_the_grid_and_ends(dirs, capsys):
    out = dirs["base"] / "grid"
    args = ["tune", *_data_flags(dirs), "--model", "lightgcn", "--sampler", "grid"]
    args += ["--set", "num_layers=1", "--trials", "10", "--epochs", "2", "--out-dir", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "--trials 10 > the grid's 5 points" in printed
    assert "the grid is exhausted: all 5 points tried" in printed
    assert printed.count("trial 5/5: complete") == 1
    trials = _trials(out)
    grid = get_model("lightgcn").hparams["reg_weight"].grid
    assert sorted(t.params["reg_weight"] for t in trials) == sorted(grid)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs["hparams"]["num_layers"] == 1 for t in trials)  # fixed, not searched
    assert "num_layers" not in trials[0].params

    # run again: nothing left to do, nothing repeated
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "5 of 5 trials finished already; running 0 more" in printed
    assert len(_trials(out)) == 5

    # other settings on the same study are refused, naming the difference
    with pytest.raises(SystemExit) as error:
        main([*args[:-4], "--epochs", "3", "--out-dir", str(out)])
    assert error.value.code == 2
    assert "epochs 2 then, 3 now" in capsys.readouterr().err


def test_search_replaces_the_declared_space_on_top_of_fixed_values(dirs, capsys):
    out = dirs["base"] / "search"
    # num_layers is fixed by --set and searched by --search: the search wins; reg_weight,
    # declared as searched, is fixed by --set and stays fixed
    args = ["tune", *_data_flags(dirs), "--model", "lightgcn", "--set", "reg_weight=0.01"]
    args += ["--set", "n_layers=2", "--search", "n_layers=1,3", "--search", "lr=0.001, 0.01"]
    args += ["--trials", "10", "--epochs", "1", "--no-retrain", "--out-dir", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "grid sampler over num_layers [1, 3] x lr [0.001, 0.01] (4 points)" in printed
    trials = _trials(out)
    assert sorted((t.params["num_layers"], t.params["lr"]) for t in trials) == [
        (1, 0.001),
        (1, 0.01),
        (3, 0.001),
        (3, 0.01),
    ]
    assert {t.user_attrs["hparams"]["reg_weight"] for t in trials} == {0.01}
    assert {t.user_attrs["hparams"]["num_layers"] for t in trials} == {1, 3}
    assert "searched: num_layers [1, 3] x lr [0.001, 0.01]" in (out / "best.yaml").read_text()

    # the same study with another searched space is refused, naming it
    with pytest.raises(SystemExit) as error:
        main([*args[:13], "--search", "n_layers=1,2", *args[15:]])
    assert error.value.code == 2
    assert "num_layers grid [1, 3] then, grid [1, 2] now" in capsys.readouterr().err


@pytest.mark.parametrize(
    "search, message",
    [
        ("bogus=1,2", "--search bogus: lightgcn has no hyper-parameter 'bogus'"),
        ("num_layers=1,-1", "--search num_layers: num_layers must be >= 1, got -1"),
        ("num_layers", "--search num_layers: expected KEY=V1,V2,..."),
        ("num_layers=", "--search num_layers=: expected KEY=V1,V2,..."),
        ("num_layers=1,1", "--search num_layers: a value is repeated"),
        ("lr=fast", "--search lr: lr must be a number, got 'fast'"),
    ],
)
def test_bad_search_runs_nothing(dirs, capsys, search, message):
    out = dirs["base"] / "bad-search"
    with pytest.raises(SystemExit) as error:
        main(["tune", *_data_flags(dirs), "--model", "lightgcn", "--search", search,
              "--out-dir", str(out)])  # fmt: skip
    assert error.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_search_of_a_value_that_does_not_matter_is_refused(dirs):
    info = get_model("mgcn")
    with pytest.raises(TuneError, match="'bma_intra_weight' matters only with bma=true"):
        Tuner(info, None, dirs["base"] / "none", search={"bma_intra_weight": [0.0, 0.01]})


def test_tpe_tries_the_declared_defaults_first(dirs, capsys):
    out = dirs["base"] / "tpe-defaults"
    args = ["tune", *_data_flags(dirs), "--model", "lightgcn", "--sampler", "tpe"]
    args += ["--trials", "2", "--epochs", "1", "--no-retrain", "--out-dir", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    declared = get_model("lightgcn").hparams
    first, second = sorted(_trials(out), key=lambda t: t.number)
    searched = {p.name for p in declared.searched("tpe")}
    assert set(first.params) == searched
    assert first.params == {name: declared[name].default for name in searched}
    assert first.user_attrs["defaults"] and "defaults" not in second.user_attrs
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert "declared defaults" in rows[0]["note"] and "declared" not in rows[1]["note"]


def test_auto_searches_a_grid_larger_than_the_budget_without_repeats(dirs, capsys):
    out = dirs["base"] / "random"
    args = ["tune", *_data_flags(dirs), "--model", "lightgcn", "--trials", "6"]
    args += ["--epochs", "1", "--no-retrain", "--out-dir", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "random sampler over" in printed and "none twice" in printed
    trials = sorted(_trials(out), key=lambda t: t.number)
    declared = get_model("lightgcn").hparams
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert len(points) == 6 and len(set(points)) == 6  # 20 grid points, none twice
    assert trials[0].params == {name: declared[name].default for name in trials[0].params}
    assert trials[0].user_attrs["defaults"]


def test_jobs_run_trials_in_parallel_threads(dirs, capsys):
    out = dirs["base"] / "jobs"
    args = ["tune", *_data_flags(dirs), "--model", "lightgcn", "--sampler", "grid"]
    args += ["--set", "num_layers=2", "--trials", "4", "--epochs", "2", "--jobs", "2"]
    args += ["--no-retrain", "--out-dir", str(out)]
    assert main(args) == 0
    assert "2 job(s) x" in capsys.readouterr().out
    trials = _trials(out)
    assert len(trials) == 4
    assert len({t.params["reg_weight"] for t in trials}) == 4


def test_median_pruner_prunes_a_trial_that_cannot_learn(dirs):
    # lr is searched over {0.05, 1e-9}; the first trial learns, the second cannot move
    # its initial embeddings (same seed), so it is below the median from epoch 1 on
    info = get_model("lightgcn")
    lr = dataclasses.replace(info.hparams["lr"], grid=(0.05, 1e-9))
    info = dataclasses.replace(info, hparams=info.hparams + HParams([lr]))
    from dreamgeo.datasets.source import load_source, resolve_source

    data = load_source(resolve_source(None, dirs["data"], "tiny"), dirs["cache"])
    out = dirs["base"] / "pruned"
    out.mkdir()
    study = optuna.create_study(
        storage=f"sqlite:///{out}/study.db", study_name="pruning", direction="maximize"
    )
    study.enqueue_trial({"lr": 0.05})
    study.enqueue_trial({"lr": 1e-9})
    lines = []
    result = Tuner(
        info,
        data,
        out,
        fixed={"num_layers": 2, "reg_weight": 1e-4, "epochs": 3},
        study_name="pruning",
        sampler="tpe",
        trials=2,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        retrain=False,
        log=lines.append,
    ).run()
    trials = _trials(out, "pruning")
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert trials[1].last_step == 1 and trials[0].last_step == 3
    assert result.finished == 2 and result.best_trial == 0  # pruned trials count as finished
    assert "pruned at epoch 1" in (out / "trials.md").read_text()
    assert any(line.startswith("trial 2/2: pruned") for line in lines)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "nosuchmodel"], "invalid choice: 'nosuchmodel'"),
        (["--model", "lightgcn", "--set", "knn_k=5"], "lightgcn does not use 'knn_k'"),
        (["--model", "lightgcn", "--set", "bogus=1"], "unknown hyper-parameter 'bogus'"),
        (["--model", "lightgcn", "--trials", "0"], "--trials: must be > 0, got 0"),
        (["--model", "lightgcn", "--set", "reg_weight=-1"], "reg_weight must be >= 0"),
    ],
)
def test_bad_inputs_run_nothing(dirs, capsys, extra, message):
    out = dirs["base"] / "bad"
    with pytest.raises(SystemExit) as error:
        main(["tune", *_data_flags(dirs), *extra, "--out-dir", str(out)])
    assert error.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_nothing_left_to_search_is_an_error(dirs):
    info = get_model("lightgcn")
    with pytest.raises(TuneError, match="every searched hyper-parameter of lightgcn"):
        Tuner(info, None, dirs["base"] / "none", fixed={"n_layers": 2, "reg_weight": 0.01})


def test_a_live_process_holding_the_folder_is_named(dirs, capsys):
    out = dirs["base"] / "locked"
    out.mkdir()
    with open(out / "tune.lock", "w") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("PID 4242 on elsewhere\n")
        handle.flush()
        with pytest.raises(SystemExit):
            main(["tune", *_data_flags(dirs), "--model", "lightgcn", "--out-dir", str(out)])
    assert "being tuned by PID 4242 on elsewhere" in capsys.readouterr().err
    assert not (out / "study.db").exists()
