"""dreamgeo prepare: raw interactions in every input format to an MMRec folder, k-core,
duplicates, id mappings, the three split rules, feature files, the errors, and one
end-to-end run through `dreamgeo train`."""

import csv
import gzip
import json
import os

import numpy as np
import pytest

from dreamgeo.datasets import MMRecDataset, prepare_dataset
from dreamgeo.datasets.amazon import read_amazon_image_features, read_amazon_meta
from dreamgeo.datasets.feature_files import read_item_features
from dreamgeo.datasets.interaction_filters import deduplicate, k_core
from dreamgeo.datasets.raw_interactions import detect_format, read_interactions
from dreamgeo.datasets.splits import (
    split_labels,
    split_leave_one_out,
    split_mmrec,
    split_temporal,
)

try:
    import pyarrow  # noqa: F401

    HAS_PYARROW = True
except ImportError:
    HAS_PYARROW = False


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def write_lines(path, lines, compress=False):
    text = "".join(line + "\n" for line in lines)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def read_inter(folder, name):
    lines = (folder / f"{name}.inter").read_text().splitlines()
    header = lines[0].split("\t")
    return header, [tuple(line.split("\t")) for line in lines[1:]]


def read_mapping(path):
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), dict(line.split("\t") for line in lines[1:])


# The small example used by several tests: user "bob" first, item "x" first.
SMALL_ROWS = [
    ("bob", "x", 5, 10),
    ("alice", "y", 4, 11),
    ("bob", "y", 3, 12),
    ("alice", "z", 2, 13),
    ("bob", "z", 1, 14),
    ("alice", "x", 5, 15),
]


def small_prepare(tmp_path, path, **kwargs):
    options = dict(kcore=0, split="loo", name="toy", root=tmp_path / "data")
    options.update(kwargs)
    return prepare_dataset(path, **options)


# --- input formats -------------------------------------------------------------------------


def test_csv_mappings_and_inter_file(tmp_path):
    path = write_csv(tmp_path / "inter.csv", ["u", "i", "r", "t"], SMALL_ROWS)
    summary = small_prepare(
        tmp_path, path, user_col="u", item_col="i", rating_col="r", time_col="t"
    )
    folder = tmp_path / "data" / "toy"
    # MMRec's mapping files: tab-separated, headers user_id/userID and asin/itemID,
    # ids in order of first appearance
    assert read_mapping(folder / "u_id_mapping.csv") == (
        ["user_id", "userID"],
        {"bob": "0", "alice": "1"},
    )
    assert read_mapping(folder / "i_id_mapping.csv") == (
        ["asin", "itemID"],
        {"x": "0", "y": "1", "z": "2"},
    )
    header, rows = read_inter(folder, "toy")
    assert header == ["userID", "itemID", "rating", "timestamp", "x_label"]
    # loo: each user's latest to test, the one before to valid; rows grouped by user
    assert rows == [
        ("0", "0", "5.0", "10", "0"),
        ("0", "1", "3.0", "12", "1"),
        ("0", "2", "1.0", "14", "2"),
        ("1", "1", "4.0", "11", "0"),
        ("1", "2", "2.0", "13", "1"),
        ("1", "0", "5.0", "15", "2"),
    ]
    assert summary.rows_read == 6 and summary.split_sizes == {"train": 2, "valid": 2, "test": 2}
    record = json.loads((folder / "prepare.json").read_text())
    assert record["settings"]["split"] == "loo" and record["settings"]["user_col"] == "u"
    assert record["summary"]["num_interactions"] == 6
    # nothing is left beside the folder
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["toy"]


def test_tsv_gzipped(tmp_path):
    path = tmp_path / "inter.tsv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["user", "item", "time"])
        writer.writerows([(u, i, t) for u, i, _, t in SMALL_ROWS])
    raw = read_interactions(path, "user", "item", "time")
    assert raw.format == "tsv"
    assert raw.user_ids.tolist() == ["bob", "alice"]
    assert raw.users.tolist() == [0, 1, 0, 1, 0, 1]
    assert raw.timestamps.tolist() == [10, 11, 12, 13, 14, 15]
    assert raw.ratings is None


def test_jsonl_numbers_and_iso_times(tmp_path):
    lines = [
        json.dumps({"user": 7, "item": "a", "when": "2020-01-01T00:00:00"}),
        "",
        json.dumps({"user": 8, "item": "b", "when": "2020-01-02T00:00:00Z"}),
    ]
    path = write_lines(tmp_path / "inter.jsonl", lines)
    raw = read_interactions(path, "user", "item", "when")
    assert raw.format == "jsonl"
    assert raw.user_ids.tolist() == ["7", "8"]
    assert raw.timestamps.tolist() == [1577836800, 1577923200]
    assert raw.lines.tolist() == [1, 3]


@pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow not installed (pip install '.[prepare]')")
def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    users, items, ratings, times = zip(*SMALL_ROWS)
    table = pa.table({"u": users, "i": items, "r": ratings, "t": times})
    pq.write_table(table, tmp_path / "inter.parquet")
    small_prepare(tmp_path, tmp_path / "inter.parquet", user_col="u", item_col="i", time_col="t")
    _, rows = read_inter(tmp_path / "data" / "toy", "toy")
    assert rows[0] == ("0", "0", "10", "0")
    # features in Parquet: id column, then one list column
    pq.write_table(
        pa.table({"asin": ["x", "y", "z"], "v": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}),
        tmp_path / "f.parquet",
    )
    table = read_item_features(tmp_path / "f.parquet")
    assert table.ids.tolist() == ["x", "y", "z"] and table.features.shape == (3, 2)
    # or one column per dimension; pandas' saved index column is not a dimension
    pq.write_table(
        pa.table({"id": [7, 8], "a": [1.0, 2.0], "b": [3, 4], "__index_level_0__": [5, 6]}),
        tmp_path / "g.parquet",
    )
    table = read_item_features(tmp_path / "g.parquet")
    assert table.ids.tolist() == ["7", "8"] and table.features.tolist() == [[1, 3], [2, 4]]
    # a native timestamp column becomes POSIX seconds; a missing column lists the others
    moments = pa.array([0, 86400], type=pa.int64()).cast(pa.timestamp("s"))
    pq.write_table(pa.table({"u": ["a", "b"], "i": ["x", "x"], "t": moments}), tmp_path / "h.pq")
    assert read_interactions(tmp_path / "h.pq", "u", "i", "t").timestamps.tolist() == [0, 86400]
    with pytest.raises(ValueError, match=r"h.pq: no item column 'item'; the columns are"):
        read_interactions(tmp_path / "h.pq", "u", "item")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    (tmp_path / "inter.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"dreamgeo\[prepare\]"):
        read_interactions(tmp_path / "inter.parquet", "u", "i")


def amazon_2014_reviews(tmp_path, category="Baby"):
    # Python literals (single quotes), as in the 2014 files
    lines = [
        repr(
            {
                "reviewerID": u,
                "asin": i,
                "overall": float(r),
                "unixReviewTime": t,
                "reviewText": "it's fine",
                "helpful": [0, 0],
            }
        )
        for u, i, r, t in SMALL_ROWS
    ]
    return write_lines(tmp_path / f"reviews_{category}_5.json.gz", lines, compress=True)


def test_amazon_2014_reviews_meta_and_image_features(tmp_path):
    reviews = amazon_2014_reviews(tmp_path)
    assert detect_format(reviews) == "amazon2014"
    meta = write_lines(
        tmp_path / "meta_Baby.json.gz",
        [
            repr(
                {
                    "asin": "y",
                    "title": "Bottle",
                    "brand": "B",
                    "categories": [["Baby", "Feeding"]],
                    "imUrl": "http://img/y.jpg",
                    "salesRank": {"Baby": 3},
                }
            ),
            repr({"asin": "x", "title": "Toy", "description": "A toy", "categories": [["Baby"]]}),
            repr({"asin": "gone", "title": "Not in the interactions"}),
        ],
        compress=True,
    )
    # the binary image features: 10-byte ASIN + 4096 float32, one record per item
    dtype = np.dtype([("asin", "S10"), ("features", "<f4", (4096,))])
    records = np.zeros(4, dtype=dtype)
    records["asin"] = [b"z", b"x", b"other", b"y"]
    for row in range(4):
        records["features"][row] = row + 1
    records.tofile(tmp_path / "image_features_Baby.b")
    asins, x = read_amazon_image_features(tmp_path / "image_features_Baby.b")
    assert asins.tolist() == ["z", "x", "other", "y"] and x.shape == (4, 4096)

    summary = small_prepare(
        tmp_path, reviews, meta=meta, features={"image": tmp_path / "image_features_Baby.b"}
    )
    folder = tmp_path / "data" / "toy"
    header, rows = read_inter(folder, "toy")
    assert header == ["userID", "itemID", "rating", "timestamp", "x_label"]
    assert rows[0] == ("0", "0", "5.0", "10", "0")
    image = np.load(folder / "image_feat.npy")
    # item ids x, y, z are 0, 1, 2: their records are rows 2, 4, 1 of the file
    assert image.dtype == np.float32 and image.shape == (3, 4096)
    assert image[:, 0].tolist() == [2.0, 4.0, 1.0]
    items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    assert [item["asin"] for item in items] == ["x", "y", "z"]
    assert items[0]["title"] == "Toy" and items[0]["description"] == "A toy"
    assert items[1]["categories"] == ["Baby", "Feeding"]
    assert items[1]["image_url"] == "http://img/y.jpg" and items[1]["brand"] == "B"
    assert "title" not in items[2]  # z has no metadata
    assert summary.meta_items == 2


def test_amazon_2014_ratings_csv(tmp_path):
    path = write_csv(tmp_path / "ratings_Baby.csv", None, SMALL_ROWS)
    raw = read_interactions(path)
    assert raw.format == "amazon2014"
    assert raw.user_ids.tolist() == ["bob", "alice"]
    assert raw.ratings.tolist() == [5, 4, 3, 2, 1, 5]
    assert raw.timestamps.tolist() == [10, 11, 12, 13, 14, 15]


def test_amazon_2018_and_2023_detected_by_keys(tmp_path):
    lines_2018 = [
        json.dumps(
            {"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": t, "verified": True}
        )
        for u, i, r, t in SMALL_ROWS
    ]
    path = write_lines(tmp_path / "Baby_5.json.gz", lines_2018, compress=True)
    raw = read_interactions(path)
    assert raw.format == "amazon2018" and raw.item_ids.tolist() == ["x", "y", "z"]
    lines_2023 = [
        json.dumps(
            {"user_id": u, "asin": f"{i}-v", "parent_asin": i, "rating": r, "timestamp": t * 1000}
        )
        for u, i, r, t in SMALL_ROWS
    ]
    path = write_lines(tmp_path / "Baby.jsonl", lines_2023)
    raw = read_interactions(path)
    assert raw.format == "amazon2023"
    assert raw.item_ids.tolist() == ["x", "y", "z"]  # parent_asin, not the variant asin
    assert raw.timestamps.tolist() == [10000, 11000, 12000, 13000, 14000, 15000]
    meta = write_lines(
        tmp_path / "meta_Baby.jsonl",
        [
            json.dumps(
                {
                    "parent_asin": "x",
                    "title": "T",
                    "store": "S",
                    "images": [{"thumb": "t.jpg", "large": "l.jpg", "hi_res": None}],
                    "description": ["a", "b"],
                }
            )
        ],
    )
    assert read_amazon_meta(meta) == {
        "x": {
            "title": "T",
            "brand": "S",
            "categories": [],
            "description": "a b",
            "features": [],
            "image_url": "l.jpg",
        }
    }


# --- duplicates, k-core, splits ------------------------------------------------------------


def test_duplicates_keep_the_earliest_else_the_first(tmp_path):
    users = np.array([0, 0, 1, 0, 1])
    items = np.array([0, 1, 0, 0, 0])
    times = np.array([5, 1, 3, 2, 3])
    assert deduplicate(users, items, times).tolist() == [1, 2, 3]  # (0,0) at t=2, (1,0) first
    assert deduplicate(users, items).tolist() == [0, 1, 2]
    rows = [
        ("a", "x", 9),
        ("a", "y", 2),
        ("a", "x", 1),
        ("b", "x", 4),
        ("b", "y", 5),
        ("b", "z", 6),
        ("a", "z", 7),
    ]
    path = write_csv(tmp_path / "d.csv", ["u", "i", "t"], rows)
    summary = small_prepare(tmp_path, path, user_col="u", item_col="i", time_col="t")
    assert summary.duplicates_dropped == 1
    _, written = read_inter(tmp_path / "data" / "toy", "toy")
    # ("a", "x", 9) is dropped, so "y" is the first item among the kept rows: x is item 1
    assert ("0", "1", "1", "0") in written and len(written) == 6


def test_k_core_needs_a_second_round():
    # k = 2: round 1 removes u3 (one row) and i4 (one row); then u4 and i3 are left with
    # one row each, removed in round 2; round 3 finds nothing
    pairs = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (4, 3), (4, 4)]
    users, items = (np.array(c) for c in zip(*pairs))
    result = k_core(users, items, 2)
    assert result.keep.tolist() == [True] * 4 + [False] * 3
    assert (result.rounds, result.rows_removed) == (2, 3)
    assert (result.users_removed, result.items_removed) == (2, 2)
    assert k_core(users, items, 1).keep.all() and k_core(users, items, 0).rounds == 0


def test_k_core_in_prepare_and_empty_core_error(tmp_path):
    pairs = [
        ("1", "1"),
        ("1", "2"),
        ("2", "1"),
        ("2", "2"),
        ("3", "3"),
        ("4", "3"),
        ("4", "4"),
        ("1", "5"),
        ("2", "5"),
        ("5", "1"),
        ("5", "2"),
        ("5", "5"),
    ]
    path = write_csv(tmp_path / "k.csv", ["u", "i"], pairs)
    summary = small_prepare(tmp_path, path, user_col="u", item_col="i", kcore=2, split="mmrec")
    assert (summary.kcore_rounds, summary.kcore_rows_removed) == (2, 3)
    assert (summary.num_users, summary.num_items, summary.num_interactions) == (3, 3, 9)
    with pytest.raises(ValueError, match="the 4-core is empty"):
        small_prepare(
            tmp_path, path, user_col="u", item_col="i", kcore=4, split="mmrec", name="other"
        )
    assert not (tmp_path / "data" / "other").exists()


def test_split_mmrec_rule_and_seed():
    # one user each with 2, 5, 10, 15, 19 and 20 rows
    counts = [2, 5, 10, 15, 19, 20]
    users = np.repeat(np.arange(len(counts)), counts)
    labels = split_mmrec(users, seed=3)
    sizes = [np.bincount(labels[users == u], minlength=3).tolist() for u in range(len(counts))]
    # < 3 rows: all train; < 10: n-2/1/1; else h = int(0.2 n), h // 2 valid, the rest test
    assert sizes == [[2, 0, 0], [3, 1, 1], [8, 1, 1], [12, 1, 2], [16, 1, 2], [16, 2, 2]]
    assert (split_mmrec(users, seed=3) == labels).all()
    assert (split_mmrec(users, seed=4) != labels).any()
    # exact rows: the last two rows of the user in the seeded shuffle are valid and test
    one_user = np.zeros(4, dtype=np.int64)
    order = np.random.default_rng(0).permutation(4)
    expected = np.zeros(4, dtype=np.int64)
    expected[order[2]], expected[order[3]] = 1, 2
    assert split_mmrec(one_user, seed=0).tolist() == expected.tolist()


def test_split_loo_ties_and_small_users():
    users = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    times = np.array([4, 1, 4, 2, 1, 2, 9, 8, 7])
    # user 0: times 1, 2, 4, 4 -> the later row of the two at 4 is test; user 1 has 2 rows
    assert split_leave_one_out(users, times).tolist() == [1, 0, 2, 0, 0, 0, 2, 1, 0]


def test_split_temporal_quantile_cut():
    times = np.array([10, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    # quantiles of 1..10 at 0.8 and 0.9: 8.2 and 9.1 -> 1..8 train, 9 valid, 10 test
    assert split_temporal(times).tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="no valid interactions"):
        split_labels("temporal", np.zeros(10, dtype=np.int64), np.ones(10))
    with pytest.raises(ValueError, match="needs a time column"):
        split_labels("loo", np.zeros(3, dtype=np.int64))


def test_temporal_prepare_writes_the_cut(tmp_path):
    rows = [(f"u{i % 3}", f"i{i}", i) for i in range(1, 11)]
    path = write_csv(tmp_path / "t.csv", ["u", "i", "t"], rows)
    summary = small_prepare(
        tmp_path, path, user_col="u", item_col="i", time_col="t", split="temporal"
    )
    assert summary.split_sizes == {"train": 8, "valid": 1, "test": 1}
    _, written = read_inter(tmp_path / "data" / "toy", "toy")
    assert {(r[2], r[3]) for r in written if r[3] != "0"} == {("9", "1"), ("10", "2")}
    # the test row's user has no training row: the loader would drop it, so it is an error
    rows[-1] = ("newcomer", "i10", 10)
    write_csv(path, ["u", "i", "t"], rows)
    with pytest.raises(ValueError, match="all 1 test interactions belong to users without"):
        small_prepare(
            tmp_path, path, user_col="u", item_col="i", time_col="t", split="temporal", name="n"
        )


# --- feature files and missing features ----------------------------------------------------


def feature_inputs(tmp_path):
    np.savez(
        tmp_path / "img.npz",
        ids=np.array(["z", "x", "w"]),
        features=np.array([[3.0, 3.0], [1.0, 1.0], [4.0, 4.0]], dtype=np.float32),
    )
    write_csv(
        tmp_path / "txt.csv",
        ["asin", "d0", "d1", "d2"],
        [("y", 2, 2, 2), ("x", 1, 1, 1), ("w", 4, 4, 4), ("z", 3, 3, 3)],
    )
    return {"image": tmp_path / "img.npz", "text": tmp_path / "txt.csv"}


def test_missing_features_drop_and_zero(tmp_path):
    rows = [r[:2] + r[3:] for r in SMALL_ROWS] + [("bob", "w", 16), ("alice", "w", 17)]
    path = write_csv(tmp_path / "inter.csv", ["u", "i", "t"], rows)
    args = dict(user_col="u", item_col="i", time_col="t", features=feature_inputs(tmp_path))
    summary = small_prepare(tmp_path, path, missing_features="drop", **args)
    assert summary.missing_features == {"image": 1, "text": 0}  # y has no image row
    assert (summary.items_dropped_for_features, summary.rows_dropped_for_features) == (1, 2)
    folder = tmp_path / "data" / "toy"
    assert read_mapping(folder / "i_id_mapping.csv")[1] == {"x": "0", "z": "1", "w": "2"}
    assert np.load(folder / "image_feat.npy").tolist() == [[1, 1], [3, 3], [4, 4]]
    assert np.load(folder / "text_feat.npy").tolist() == [[1, 1, 1], [3, 3, 3], [4, 4, 4]]
    assert not (folder / "missing_features.tsv").exists()

    summary = small_prepare(tmp_path, path, missing_features="zero", overwrite=True, **args)
    assert summary.zero_filled == {"image": 1, "text": 0}
    assert np.load(folder / "image_feat.npy").tolist() == [[1, 1], [0, 0], [3, 3], [4, 4]]
    assert (folder / "missing_features.tsv").read_text() == "modality\tasin\titemID\nimage\ty\t1\n"


def test_feature_file_errors(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unknown feature file type '.npy'.*numpy.savez"):
        read_item_features(tmp_path / "plain.npy")
    np.savez(tmp_path / "bad.npz", ids=np.array(["a"]), x=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="no array 'features'"):
        read_item_features(tmp_path / "bad.npz")
    write_csv(tmp_path / "f.csv", ["id", "a", "b"], [("x", 1, 2), ("y", 1, "oops")])
    with pytest.raises(ValueError, match=r"f.csv: line 3: column 'b': 'oops' is not a number"):
        read_item_features(tmp_path / "f.csv")
    (tmp_path / "image_features_X.b").write_bytes(b"\0" * (10 + 4096 * 4 + 7))
    with pytest.raises(ValueError, match="record 1 .* is cut off"):
        read_item_features(tmp_path / "image_features_X.b")
    table = read_item_features(write_csv(tmp_path / "n.csv", ["id", "a"], [("x", "nan")]))
    with pytest.raises(ValueError, match=r"row 1 \(item 'x'\) holds NaN"):
        table.gather(table.row_of(["x"]), ["x"])


# --- errors and overwriting ----------------------------------------------------------------


def test_input_errors_name_file_line_and_column(tmp_path):
    path = write_csv(tmp_path / "inter.csv", ["user", "item", "t"], [("a", "x", 1)])
    with pytest.raises(
        ValueError,
        match=r"no user column 'userid'; the columns are "
        r"\['user', 'item', 't'\]",
    ):
        read_interactions(path, "userid", "item")
    write_csv(path, ["user", "item", "t"], [("a", "x", 1), ("b", "y", "soon")])
    with pytest.raises(ValueError, match=r"inter.csv: line 3: time 'soon' \(column 't'\)"):
        read_interactions(path, "user", "item", "t")
    write_csv(path, ["user", "item", "t"], [("a", "x", 1), ("b", "y")])
    with pytest.raises(ValueError, match="line 3: 2 fields, but the header has 3"):
        read_interactions(path, "user", "item")
    write_csv(path, ["user", "item"], [("a", "x"), ("", "y")])
    with pytest.raises(ValueError, match="line 3: empty user id"):
        read_interactions(path, "user", "item")
    jsonl = write_lines(tmp_path / "i.jsonl", [json.dumps({"u": "a", "i": "x"}), "{oops"])
    with pytest.raises(ValueError, match="i.jsonl: line 2: not a JSON object"):
        read_interactions(jsonl, "u", "i")
    jsonl = write_lines(tmp_path / "i.jsonl", [json.dumps({"u": "a"})])
    with pytest.raises(ValueError, match=r"line 1: no item key 'i'; the keys are \['u'\]"):
        read_interactions(jsonl, "u", "i")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_interactions(write_lines(tmp_path / "i.dat", ["a"]), "u", "i")
    with pytest.raises(ValueError, match="the user and item column must be given"):
        read_interactions(path)
    # eval is never used: a Python expression is not a literal
    literal = write_lines(tmp_path / "reviews_X.json", ["__import__('os').getcwd()"])
    with pytest.raises(ValueError, match="line 1: not a JSON object or Python dict literal"):
        read_interactions(literal)


def test_prepare_refuses_and_overwrites_an_existing_folder(tmp_path):
    path = write_csv(tmp_path / "inter.csv", ["u", "i", "t"], [r[:2] + r[3:] for r in SMALL_ROWS])
    args = dict(user_col="u", item_col="i", time_col="t")
    small_prepare(tmp_path, path, **args)
    with pytest.raises(FileExistsError, match="--overwrite"):
        small_prepare(tmp_path, path, **args)
    (tmp_path / "data" / "toy" / "stale.txt").write_text("old")
    small_prepare(tmp_path, path, overwrite=True, **args)
    assert not (tmp_path / "data" / "toy" / "stale.txt").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["toy"]
    with pytest.raises(ValueError, match="needs a time column|give the time column"):
        small_prepare(tmp_path, path, user_col="u", item_col="i", name="t2")
    # a split without valid rows fails before anything is written
    two = write_csv(tmp_path / "two.csv", ["u", "i"], [("a", "x"), ("a", "y"), ("b", "x")])
    with pytest.raises(ValueError, match="leaves no valid interactions"):
        small_prepare(tmp_path, two, user_col="u", item_col="i", split="mmrec", name="t3")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["toy"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from dreamgeo.commands.main import main

    path = write_csv(tmp_path / "inter.csv", ["user", "item"], [("a", "x")])
    argv = [
        "prepare",
        "--interactions",
        str(path),
        "--user-col",
        "uid",
        "--item-col",
        "item",
        "--name",
        "n",
        "--out",
        str(tmp_path / "data"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "no user column 'uid'; the columns are ['user', 'item']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv[:-4], "--feature", "image", "--name", "n", "--out", "d"])
    assert "expected MODALITY=FILE" in capsys.readouterr().err


# --- end to end ----------------------------------------------------------------------------


def planted_like_csv(tmp_path, num_users=90, num_items=70, per_user=9, seed=0):
    r"""Users who prefer one of 5 topics; string ids; plus image and text features that
    are noisy views of the item topics (the image ones in an .npz, the text ones in a CSV)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 5, num_items)
    rows = []
    for user in range(num_users):
        liked = np.flatnonzero(topic == user % 5)
        others = np.setdiff1d(np.arange(num_items), liked)
        picks = np.r_[
            rng.choice(liked, min(6, len(liked)), replace=False),
            rng.choice(others, per_user - min(6, len(liked)), replace=False),
        ]
        rows += [
            (f"user-{user}", f"item-{i}", int(rng.integers(1, 6)), int(1e9) + 100 * user + k)
            for k, i in enumerate(picks)
        ]
    rows.append(rows[0])  # one duplicate
    path = write_csv(tmp_path / "raw.csv", ["user", "item", "stars", "ts"], rows)
    ids = np.array([f"item-{i}" for i in range(num_items)])
    onehot = np.eye(5)[topic]
    np.savez(
        tmp_path / "image.npz",
        ids=ids,
        features=(onehot @ rng.normal(size=(5, 16)) + rng.normal(size=(num_items, 16))).astype(
            np.float32
        ),
    )
    text = onehot @ rng.normal(size=(5, 8)) + 0.3 * rng.normal(size=(num_items, 8))
    write_csv(
        tmp_path / "text.csv",
        ["asin", *[f"t{j}" for j in range(8)]],
        [(ids[i], *text[i].round(5)) for i in range(num_items)],
    )
    return path


def test_end_to_end_prepare_then_train(tmp_path, capsys):
    from dreamgeo.commands.main import main

    raw = planted_like_csv(tmp_path)
    root = tmp_path / "data"
    code = main(
        [
            "prepare",
            "--interactions",
            str(raw),
            "--user-col",
            "user",
            "--item-col",
            "item",
            "--rating-col",
            "stars",
            "--time-col",
            "ts",
            "--name",
            "shop",
            "--out",
            str(root),
            "--feature",
            f"image={tmp_path / 'image.npz'}",
            "--feature",
            f"text={tmp_path / 'text.csv'}",
            "--seed",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "duplicates dropped: 1" in printed and "split mmrec: train" in printed
    assert "dreamgeo train --dataset shop" in printed

    dataset = MMRecDataset(root, "shop", log=False)
    data = dataset[0]
    summary = json.loads((root / "shop" / "prepare.json").read_text())["summary"]
    assert dataset.num_users == summary["num_users"] == 90
    assert dataset.num_items == summary["num_items"]
    assert data["item"].x_image.shape[1] == 16 and data["item"].x_text.shape[1] == 8
    store = data["user", "interacts", "item"]
    assert store.edge_index.size(1) == summary["split_sizes"]["train"]
    assert store.test_edge_index.size(1) == summary["split_sizes"]["test"] == 90

    for model in ("lightgcn", "dream"):
        out = tmp_path / f"run-{model}"
        assert (
            main(
                [
                    "train",
                    "--dataset",
                    "shop",
                    "--data-root",
                    str(root),
                    "--epochs",
                    "2",
                    "--model",
                    model,
                    "--out-dir",
                    str(out),
                ]
            )
            == 0
        )
        assert any(out.iterdir())
    assert os.listdir(root)  # the dataset folder and the relation-graph cache
