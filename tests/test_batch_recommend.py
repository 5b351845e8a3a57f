"""dreamgeo recommend: every user (or a file of users) in chunks, from a run or an
export, in every output format, with original ids; bad input refused."""

import csv
import json
import shutil

import numpy as np
import pytest
from serve_support import evaluator_top_items

from dreamgeo.commands import load_run
from dreamgeo.commands.main import main
from dreamgeo.datasets import prepare_dataset


def _read_tsv(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "userID\titemIDs"
    return {u: items.split(",") for u, items in (line.split("\t") for line in lines[1:])}


def _recommend(*argv):
    assert main(["recommend", *map(str, argv)]) == 0


def _refused(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["recommend", *map(str, argv)])
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_every_user_equals_the_evaluator_in_chunks_of_1_and_many(tiny_run, tiny_export, tmp_path):
    model, data = load_run(tiny_run)
    expected = evaluator_top_items(model, data, 20)
    original = data["user"].original_id.tolist()
    expected = {str(original[u]): [str(i) for i in row] for u, row in enumerate(expected)}
    _recommend("--run-dir", tiny_run, "--output", tmp_path / "run.tsv")
    assert _read_tsv(tmp_path / "run.tsv") == expected
    for batch_size in (1, 1000):
        output = tmp_path / f"export-{batch_size}.tsv"
        _recommend("--export", tiny_export, "--output", output, "--batch-size", batch_size)
        assert output.read_bytes() == (tmp_path / "run.tsv").read_bytes()
    # the flat FAISS index: the same items (ties aside, none on this run)
    _recommend(
        "--export",
        tiny_export,
        "--run-dir",
        tiny_run,
        "--search",
        "index",
        "--output",
        tmp_path / "index.tsv",
        "--batch-size",
        7,
    )
    by_index = _read_tsv(tmp_path / "index.tsv")
    assert np.mean([by_index[u] == expected[u] for u in expected]) > 0.95


def test_formats_hold_the_same_recommendations(tiny_export, tmp_path):
    _recommend("--export", tiny_export, "--output", tmp_path / "r.tsv", "--top-k", 5)
    expected = _read_tsv(tmp_path / "r.tsv")
    _recommend("--export", tiny_export, "--output", tmp_path / "r.csv", "--top-k", 5)
    with open(tmp_path / "r.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["user_id", "rank", "item_id", "score"]
    from_csv = {}
    for row in rows:
        from_csv.setdefault(row["user_id"], []).append(row["item_id"])
        assert int(row["rank"]) == len(from_csv[row["user_id"]])
    assert from_csv == expected
    _recommend(
        "--export", tiny_export, "--output", tmp_path / "r.json", "--format", "jsonl", "--top-k", 5
    )
    lines = [json.loads(line) for line in (tmp_path / "r.json").read_text().splitlines()]
    assert {line["user_id"]: line["items"] for line in lines} == expected
    assert all(s == sorted(s, reverse=True) and len(s) == 5 for s in (x["scores"] for x in lines))
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    _recommend("--export", tiny_export, "--output", tmp_path / "r.parquet", "--top-k", 5)
    table = pq.read_table(tmp_path / "r.parquet").to_pydict()
    assert table["user_id"] == [row["user_id"] for row in rows]
    assert table["item_id"] == [row["item_id"] for row in rows]
    np.testing.assert_allclose(table["score"], [float(row["score"]) for row in rows], rtol=1e-6)


def test_users_file_keeps_its_order_and_unknown_users_are_refused(tiny_export, tmp_path, capsys):
    everyone = tmp_path / "all.tsv"
    _recommend("--export", tiny_export, "--output", everyone)
    expected = _read_tsv(everyone)
    users = list(expected)[::-1][:5]
    (tmp_path / "users.txt").write_text("user_id\n" + "\n".join(users) + "\n\n")
    _recommend(
        "--export",
        tiny_export,
        "--users",
        tmp_path / "users.txt",
        "--output",
        tmp_path / "some.tsv",
        "--batch-size",
        2,
    )
    assert list(_read_tsv(tmp_path / "some.tsv").items()) == [(u, expected[u]) for u in users]
    (tmp_path / "bad.txt").write_text(f"{users[0]}\nnobody\n{users[1]}\n")
    output = tmp_path / "bad.tsv"
    error = _refused(
        capsys, "--export", tiny_export, "--users", tmp_path / "bad.txt", "--output", output
    )
    assert "unknown user id 'nobody' (line 2)" in error
    assert not output.exists() and not list(tmp_path.glob(".bad.tsv*"))


def test_export_of_another_run_or_data_is_refused(tiny_run, tiny_export, tmp_path, capsys):
    copy = tmp_path / "export"
    shutil.copytree(tiny_export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["data_checksum"] = "0123456789abcdef"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    output = tmp_path / "x.tsv"
    error = _refused(capsys, "--export", copy, "--run-dir", tiny_run, "--output", output)
    assert "does not match the run" in error and "0123456789abcdef" in error
    with pytest.raises(SystemExit):
        main(["recommend", "--output", str(tmp_path / "x.tsv")])
    assert "give --run-dir RUN or --export DIR" in capsys.readouterr().err


def test_original_string_ids_come_out(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["customer,product"]
    for u in range(40):
        for i in rng.choice(60, 12, replace=False):
            rows.append(f"cust-{u:03d},SKU/{i:02d}")
    (tmp_path / "raw.csv").write_text("\n".join(rows) + "\n")
    ids = np.array([f"SKU/{i:02d}" for i in range(60)])
    np.savez(tmp_path / "text.npz", ids=ids, features=rng.normal(size=(60, 8)))
    prepare_dataset(
        tmp_path / "raw.csv",
        "shop",
        tmp_path / "data",
        user_col="customer",
        item_col="product",
        kcore=2,
        features={"text": tmp_path / "text.npz"},
    )
    run = tmp_path / "run"
    data_root = str(tmp_path / "data")
    argv = f"train --dataset shop --model bpr --epochs 1 --no-progress --out-dir {run}".split()
    assert main([*argv, "--data-root", data_root]) == 0
    _recommend("--run-dir", run, "--output", tmp_path / "recs.tsv", "--top-k", 5)
    recs = _read_tsv(tmp_path / "recs.tsv")
    assert sorted(recs) == [f"cust-{u:03d}" for u in range(40)]
    # no training item is recommended: the .inter's training rows, by original id
    folder = tmp_path / "data" / "shop"
    users = dict(
        line.split("\t")[::-1]
        for line in (folder / "u_id_mapping.csv").read_text().splitlines()[1:]
    )
    items = dict(
        line.split("\t")[::-1]
        for line in (folder / "i_id_mapping.csv").read_text().splitlines()[1:]
    )
    inter = [line.split("\t") for line in (folder / "shop.inter").read_text().splitlines()]
    header = inter[0]
    train = {
        (users[r[header.index("userID")]], items[r[header.index("itemID")]])
        for r in inter[1:]
        if r[header.index("x_label")] == "0"
    }
    for user, recommended in recs.items():
        assert len(recommended) == 5 and all(i.startswith("SKU/") for i in recommended)
        assert not {(user, i) for i in recommended} & train
    _recommend("--run-dir", run, "--output", tmp_path / "recs.jsonl", "--top-k", 5)
    first = json.loads((tmp_path / "recs.jsonl").read_text().splitlines()[0])
    assert first["user_id"] == "cust-000" and first["items"] == recs["cust-000"]
