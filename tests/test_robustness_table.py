import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "robustness_table.py"


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("robustness_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(path: Path, valid: float, test: float, best: int):
    path.mkdir(parents=True)
    payload = {
        "valid": {"recall@20": valid},
        "test": {"recall@20": test},
        "best_epoch": best,
        "epochs_run": 60,
    }
    (path / "result.json").write_text(json.dumps(payload))


def test_variant_options_become_set_flags(table):
    assert table.variant_args("mgcn") == ["--model", "mgcn"]
    assert table.variant_args("dream+tau=0.1+bma_decay=0.9") == [
        "--model",
        "dream",
        "--set",
        "tau=0.1",
        "--set",
        "bma_decay=0.9",
    ]
    with pytest.raises(KeyError):
        table.variant_args("nosuchmodel+tau=0.1")


def test_collect_and_table(table, tmp_path):
    runs = tmp_path / "runs"
    _result(runs / "scientific" / "dream-s0", 0.25, 0.20, 40)
    _result(runs / "scientific" / "dream-s1", 0.27, 0.22, 50)
    _result(runs / "scientific" / "mgcn-s0", 0.26, 0.21, 30)
    # another variant's runs are not mixed in: "dream-no_s3-s0" is not a seed of "dream"
    _result(runs / "scientific" / "dream-no_s3-s0", 0.10, 0.10, 10)
    collected = table.collect(runs, ["scientific"], ["dream", "mgcn"])
    assert [r["seed"] for r in collected["scientific"]["dream"]] == [0, 1]
    markdown = table.table_markdown(collected, ["dream", "mgcn"], 60)
    row = next(line for line in markdown.splitlines() if line.startswith("| scientific"))
    # mean and sample std of 0.25 and 0.27, and DREAM / MGCN = 0.26 / 0.26
    assert "0.2600 ± 0.0141 / 0.2100 ± 0.0141 (n=2; best ep 40,50)" in row
    assert row.endswith("| 1.000 |")


def test_unknown_variant_is_refused(table):
    with pytest.raises(SystemExit):
        table.main(["--variants", "nosuchmodel", "--collect"])


def test_a_subset_prints_but_leaves_the_committed_table(table, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    _result(runs / "scientific" / "dream+tau=0.1-s0", 0.25, 0.20, 40)
    flags = ["--runs", str(runs), "--results", str(results), "--seeds", "0"]
    flags += ["--datasets", "scientific", "--variants", "dream+tau=0.1"]
    # the run is finished, so nothing trains; a subset writes no table
    assert table.main(flags) == 0
    assert not (results / "table.md").exists()
    assert table.main([*flags, "--collect"]) == 0
    assert "0.2500" in (results / "table.md").read_text()


def test_targets_against_hand_computation(table, tmp_path):
    runs = tmp_path / "runs"
    _result(runs / "d" / "dream-s0", 0.20, 0.10, 12)  # 12 of 60: in the first fifth
    _result(runs / "d" / "dream-s1", 0.24, 0.14, 40)
    _result(runs / "d" / "mgcn-s0", 0.20, 0.15, 30)
    _result(runs / "d" / "dream-no_s3-s0", 0.21, 0.10, 30)
    collected = table.collect(runs, ["d"], ["dream", "mgcn", "dream-no_s3"])
    row = table.targets_markdown(collected).splitlines()[2]
    # DREAM valid mean 0.22 / 0.20, test 0.12 / 0.15, 0.22 - 0.21, std of (0.20, 0.24)
    assert row == "| `d` | 2 | 1.100 | 0.800 | +0.0100 | 0.0283 | 12, 40 | yes |"


def test_a_run_cut_short_is_named(table, tmp_path):
    runs = tmp_path / "runs"
    _result(runs / "scientific" / "dream-s0", 0.25, 0.20, 40)
    path = runs / "scientific" / "dream-s1"
    _result(path, 0.20, 0.10, 30)
    payload = json.loads((path / "result.json").read_text())
    (path / "result.json").write_text(json.dumps({**payload, "epochs_run": 34}))
    markdown = table.table_markdown(table.collect(runs, ["scientific"], ["dream"]), ["dream"], 60)
    assert "best ep 40,30; cut: s1 at 34)" in markdown
