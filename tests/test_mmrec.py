import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamgeo.datasets import INTERACTS, ITEM, USER, MMRecDataset

HEADER = "userID\titemID\trating\ttimestamp\tx_label"
MODALITIES = {"image": "image_feat.npy", "text": "text_feat.npy"}


def write_dataset(
    root: Path,
    name: str = "toy",
    inter: str | None = None,
    features: dict[str, np.ndarray] | None = None,
) -> Path:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    if inter is None:
        inter = "\n".join([HEADER, "0\t0\t5\t10\t0", "0\t1\t5\t11\t1", "0\t2\t5\t12\t2"])
    (directory / f"{name}.inter").write_text(inter)
    if features is None:
        features = {
            "image_feat.npy": np.arange(12, dtype=np.float32).reshape(3, 4) + 1,
            "text_feat.npy": np.ones((3, 2), dtype=np.float32),
        }
    for file_name, array in features.items():
        np.save(directory / file_name, array)
    return directory


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def expected_splits(rows: list[tuple[int, int, int]]):
    """Reference semantics written plainly: keep the earliest split per
    (user, item), drop users without training rows, number users by id."""
    best: dict[tuple[int, int], int] = {}
    for user, item, label in rows:
        best[(user, item)] = min(label, best.get((user, item), 3))
    with_train = sorted({u for (u, _), label in best.items() if label == 0})
    index = {u: k for k, u in enumerate(with_train)}
    splits = [set(), set(), set()]
    for (user, item), label in best.items():
        if user in index:
            splits[label].add((index[user], item))
    num_dropped = len({u for u, _ in best}) - len(with_train)
    return splits, with_train, num_dropped


def test_round_trip_with_reordered_columns(tmp_path, caplog):
    lines = [
        "x_label\tnote\titemID\ttimestamp\tuserID",
        "0\ta\t2\t1\t1000",
        "1\tb\t3\t2\t1000",
        "2\tc\t4\t3\t1000",
        "",  # blank lines are skipped
        "2\td\t1\t4\t5",
        "0\te\t1\t5\t5",  # duplicate of the test row above: the train one stays
        "0\tf\t0\t6\t5\r",  # CRLF line ending
        "1\tg\t3\t7\t77",  # user 77 never trains: dropped
        "2\th\t4\t8\t77",
        "2\ti\t0\t9\t42",
        "0\tj\t3\t10\t42",
        "2\tk\t0\t11\t42",  # exact duplicate
    ]
    image = np.random.default_rng(0).random((6, 5))  # float64 on disk
    text = np.random.default_rng(1).random((6, 3)).astype(np.float32)
    write_dataset(
        tmp_path,
        inter="\n".join(lines) + "\n",
        features={"image_feat.npy": image, "text_feat.npy": text},
    )
    with caplog.at_level(logging.INFO, logger="dreamgeo.datasets.mmrec"):
        with pytest.warns(UserWarning, match=r"toy\.inter: dropped 2 duplicate"):
            dataset = MMRecDataset(tmp_path, "toy", log=False)
    assert "dropped 1 users without training interactions (2 valid/test rows)" in (caplog.text)
    data = dataset[0]

    rows = [(1000, 2, 0), (1000, 3, 1), (1000, 4, 2), (5, 1, 2), (5, 1, 0)]
    rows += [(5, 0, 0), (77, 3, 1), (77, 4, 2), (42, 0, 2), (42, 3, 0), (42, 0, 2)]
    splits, kept, _ = expected_splits(rows)
    assert kept == [5, 42, 1000]
    store = data[INTERACTS]
    for key, expected in zip(["edge_index", "val_edge_index", "test_edge_index"], splits):
        assert store[key].dtype == torch.long
        assert edge_set(store[key]) == expected
        assert store[key].size(1) == len(expected)
    assert data[USER].num_nodes == 3 and data[ITEM].num_nodes == 6
    assert data[USER].original_id.tolist() == [5, 42, 1000]
    assert data[USER].original_id.dtype == torch.long
    assert data[ITEM].x_image.dtype == torch.float32
    assert torch.equal(data[ITEM].x_image, torch.from_numpy(image.astype(np.float32)))
    assert torch.equal(data[ITEM].x_text, torch.from_numpy(text))
    assert dataset.raw_dir == str(tmp_path / "toy")
    assert dataset.processed_dir == str(tmp_path / "toy" / "processed")


def test_random_round_trip_matches_reference(tmp_path):
    rng = np.random.default_rng(7)
    num_rows, num_items = 3000, 50
    users = rng.integers(0, 400, num_rows) * 13  # sparse, non-contiguous ids
    items = rng.integers(0, num_items, num_rows)
    labels = rng.choice(3, num_rows, p=[0.6, 0.2, 0.2])
    body = "\n".join(f"{u}\t{i}\t{x}" for u, i, x in zip(users, items, labels))
    write_dataset(
        tmp_path,
        inter="userID\titemID\tx_label\n" + body,
        features={"f.npy": rng.random((num_items, 4)).astype(np.float32)},
    )
    with pytest.warns(UserWarning, match="duplicate"):
        data = MMRecDataset(tmp_path, "toy", modalities={"f": "f.npy"}, log=False)[0]
    splits, kept, num_dropped = expected_splits(list(zip(users, items, labels)))
    assert num_dropped > 0
    assert data[USER].original_id.tolist() == kept
    store = data[INTERACTS]
    for key, expected in zip(["edge_index", "val_edge_index", "test_edge_index"], splits):
        assert edge_set(store[key]) == expected
    assert set(data[ITEM].keys()) == {"num_nodes", "x_f"}


def test_processed_cache_is_reused_and_never_stale(tmp_path):
    directory = write_dataset(tmp_path)
    first = MMRecDataset(tmp_path, "toy", log=False)
    cache = list((directory / "processed").glob("data_*.pt"))
    assert len(cache) == 1
    mtime = cache[0].stat().st_mtime_ns
    MMRecDataset(tmp_path, "toy", log=False)  # reuses the cache
    assert cache[0].stat().st_mtime_ns == mtime
    assert edge_set(first[0][INTERACTS].edge_index) == {(0, 0)}

    # A different file: the new content must be read.
    inter = directory / "toy.inter"
    inter.write_text(f"{HEADER}\n0\t2\t5\t10\t0\n0\t1\t5\t11\t2\n")
    data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert edge_set(data[INTERACTS].edge_index) == {(0, 2)}
    assert edge_set(data[INTERACTS].test_edge_index) == {(0, 1)}
    assert data[INTERACTS].val_edge_index.size(1) == 0
    assert len(list((directory / "processed").glob("data_*.pt"))) == 1

    # Same size, new content, modification time moved on: still re-read.
    stat = inter.stat()
    inter.write_text(f"{HEADER}\n0\t1\t5\t10\t0\n0\t2\t5\t11\t2\n")
    os.utime(inter, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert inter.stat().st_size == stat.st_size
    data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert edge_set(data[INTERACTS].edge_index) == {(0, 1)}

    # Same size, same inode, modification time put back: the content differs.
    stat = inter.stat()
    inter.write_text(f"{HEADER}\n0\t0\t5\t10\t0\n0\t2\t5\t11\t2\n")
    os.utime(inter, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (inter.stat().st_size, inter.stat().st_ino) == (stat.st_size, stat.st_ino)
    data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert edge_set(data[INTERACTS].edge_index) == {(0, 0)}

    # A changed feature file is picked up as well.
    np.save(directory / "text_feat.npy", np.full((3, 2), 7.0, dtype=np.float32))
    data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert torch.all(data[ITEM].x_text == 7.0)


def test_modality_mapping_is_part_of_the_cache_key(tmp_path):
    directory = write_dataset(tmp_path)
    np.save(directory / "other.npy", np.zeros((3, 6), dtype=np.float32))
    both = MMRecDataset(tmp_path, "toy", log=False)[0]
    only = MMRecDataset(tmp_path, "toy", modalities={"text": "other.npy"}, log=False)[0]
    assert set(both[ITEM].keys()) == {"num_nodes", "x_image", "x_text"}
    assert set(only[ITEM].keys()) == {"num_nodes", "x_text"}
    assert only[ITEM].x_text.shape == (3, 6)


def test_transform_and_all_zero_rows_warning(tmp_path, caplog):
    features = {
        "image_feat.npy": np.array([[0, 0], [1, 2], [0, 0]], dtype=np.float32),
        "text_feat.npy": np.ones((3, 2), dtype=np.float32),
    }
    write_dataset(tmp_path, features=features)

    def mark(data):
        data["item"].marked = torch.ones(1)
        return data

    with caplog.at_level(logging.WARNING, logger="dreamgeo.datasets.mmrec"):
        dataset = MMRecDataset(tmp_path, "toy", transform=mark, log=False)
    assert "2 of 3 items have all-zero features" in caplog.text
    assert "image_feat.npy" in caplog.text
    assert dataset[0]["item"].marked.item() == 1.0


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere.*does not exist.*dreamgeo prepare"):
        MMRecDataset(tmp_path, "nothere")
    assert not (tmp_path / "nothere").exists()  # and nothing was created


@pytest.mark.parametrize("missing", ["toy.inter", "text_feat.npy"])
def test_missing_file(tmp_path, missing):
    directory = write_dataset(tmp_path)
    (directory / missing).unlink()
    with pytest.raises(FileNotFoundError) as raised:
        MMRecDataset(tmp_path, "toy", modalities=MODALITIES)
    message = str(raised.value)
    assert f"missing {missing}" in message and "dreamgeo prepare" in message
    assert "write_planted" not in message and "synthetic" not in message
    if missing == "text_feat.npy":
        assert "feature files found: image (image_feat.npy)" in message
        # without a choice the folder's one modality is read; asked for by name: an error
        assert list(MMRecDataset(tmp_path, "toy", log=False).modalities) == ["image"]
        with pytest.raises(FileNotFoundError, match=r"no modality 'text' \(no text_feat\.npy\)"):
            MMRecDataset(tmp_path, "toy", modalities=["image", "text"])


def test_missing_column(tmp_path):
    write_dataset(tmp_path, inter="userID\titemID\trating\n1\t2\t3\n")
    with pytest.raises(ValueError, match=r"toy\.inter: line 1 \(header\).*x_label"):
        MMRecDataset(tmp_path, "toy")


@pytest.mark.parametrize(
    "inter, match",
    [
        ("", r"toy\.inter: the file is empty"),
        ("\n \n", r"toy\.inter: the file is empty"),
        (HEADER + "\n", r"toy\.inter: the file has a header line but no interaction"),
        (HEADER + "\n\n\n", r"toy\.inter: the file has a header line but no inter"),
    ],
)
def test_empty_or_header_only(tmp_path, inter, match):
    write_dataset(tmp_path, inter=inter)
    with pytest.raises(ValueError, match=match):
        MMRecDataset(tmp_path, "toy")


@pytest.mark.parametrize(
    "bad_line, match",
    [
        ("0\tx3\t5\t10\t0", r"toy\.inter: line 3: itemID 'x3' is not an integer"),
        ("0\t1.0\t5\t10\t0", r"toy\.inter: line 3: itemID '1\.0' is not an integer"),
        ("abc\t1\t5\t10\t0", r"toy\.inter: line 3: userID 'abc' is not an integer"),
        ("\t1\t5\t10\t0", r"toy\.inter: line 3: userID '' is empty"),
        ("-4\t1\t5\t10\t0", r"toy\.inter: line 3: userID '-4' is negative"),
        ("0\t-1\t5\t10\t0", r"toy\.inter: line 3: itemID '-1' is negative"),
        ("0\t1\t5\t10\t-1", r"toy\.inter: line 3: x_label '-1' is negative"),
        ("0\t1\t5\t10\t3", r"toy\.inter: line 3: x_label 3 is not 0 \(train\)"),
        ("0\t1\t5\t10\tvalid", r"toy\.inter: line 3: x_label 'valid' is not an int"),
        ("0\t1\t5\t10", r"toy\.inter: line 3: 4 tab-separated fields, but the head"),
        ("1" * 19 + "\t1\t5\t10\t0", r"toy\.inter: line 3: userID '1+' has more than"),
        ("0\t3\t5\t10\t0", r"toy\.inter: line 3: itemID 3 is out of range.*3 rows"),
    ],
)
def test_bad_values_name_file_line_and_value(tmp_path, bad_line, match):
    # Line 2 is fine; the fault is on line 3 and later lines are fine again.
    lines = [HEADER, "0\t0\t5\t10\t0", bad_line, "1\t1\t5\t10\t0", "1\t2\t5\t1\t2"]
    write_dataset(tmp_path, inter="\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match):
        MMRecDataset(tmp_path, "toy")


def test_first_faulty_line_is_reported(tmp_path):
    lines = [HEADER, "0\t0\t5\t10\t0", "", "0\t1\t5\t10\t7", "1\t1\t5\t10\t9"]
    write_dataset(tmp_path, inter="\n".join(lines))
    with pytest.raises(ValueError, match=r"line 4: x_label 7"):
        MMRecDataset(tmp_path, "toy")
    lines = [HEADER, "0\t0\t5\t10\t0", "0\tz\t5\t10\t0", "-1\t1\t5\t10\t0"]
    write_dataset(tmp_path, inter="\n".join(lines))
    with pytest.raises(ValueError, match=r"line 3: itemID 'z'"):
        MMRecDataset(tmp_path, "toy")


def test_no_training_rows(tmp_path):
    write_dataset(tmp_path, inter=f"{HEADER}\n0\t0\t5\t10\t1\n0\t1\t5\t10\t2\n")
    with pytest.raises(ValueError, match=r"toy\.inter: no training rows"):
        MMRecDataset(tmp_path, "toy")


@pytest.mark.parametrize(
    "text, match",
    [
        (np.ones(3, dtype=np.float32), r"text_feat\.npy.*'text'.*must be 2-D.*\(3,\)"),
        (np.ones((3, 2, 1)), r"text_feat\.npy.*must be 2-D"),
        (np.ones((3, 2), dtype=np.int64), r"text_feat\.npy.*dtype int64 is not a float"),
        (np.ones((3, 2), dtype=bool), r"text_feat\.npy.*dtype bool is not a float"),
        (
            np.array([[0, 1], [1, np.nan], [np.inf, 0]]),
            r"text_feat\.npy \(modality 'text'\): row 1 \(item 1\) holds NaN",
        ),
        (
            np.array([[0, 1], [1, 1], [1e300, 0]]),  # overflows float32
            r"text_feat\.npy \(modality 'text'\): row 2 \(item 2\) holds NaN or inf",
        ),
        (np.ones((4, 2), dtype=np.float32), r"disagree.*image_feat\.npy has 3.*text_f"),
    ],
)
def test_bad_feature_files(tmp_path, text, match):
    features = {
        "image_feat.npy": np.ones((3, 4), dtype=np.float32),
        "text_feat.npy": text,
    }
    write_dataset(tmp_path, features=features)
    with pytest.raises(ValueError, match=match):
        MMRecDataset(tmp_path, "toy")


def test_unreadable_feature_file(tmp_path):
    directory = write_dataset(tmp_path)
    (directory / "image_feat.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match=r"image_feat\.npy \(modality 'image'\): not a"):
        MMRecDataset(tmp_path, "toy")


def test_invalid_modality_name(tmp_path):
    write_dataset(tmp_path)
    with pytest.raises(ValueError, match="identifier"):
        MMRecDataset(tmp_path, "toy", modalities={"my text": "text_feat.npy"})


def test_parser_is_fast_and_exact_on_a_large_file(tmp_path):
    rng = np.random.default_rng(3)
    num_rows, num_items = 160_000, 7_050
    table = np.stack(
        [
            rng.integers(0, 19_445, num_rows),
            rng.integers(0, num_items, num_rows),
            rng.integers(1, 6, num_rows),
            rng.integers(10**9, 2 * 10**9, num_rows),
            rng.choice(3, num_rows, p=[0.8, 0.1, 0.1]),
        ],
        axis=1,
    )
    directory = tmp_path / "big"
    directory.mkdir()
    np.savetxt(directory / "big.inter", table, fmt="%d", delimiter="\t", header=HEADER, comments="")
    np.save(directory / "f.npy", np.ones((num_items, 2), dtype=np.float32))

    from time import perf_counter

    from dreamgeo.datasets.mmrec import _read_inter

    start = perf_counter()
    columns, line_numbers = _read_inter(directory / "big.inter")
    elapsed = perf_counter() - start
    assert np.array_equal(columns["userID"], table[:, 0])
    assert np.array_equal(columns["itemID"], table[:, 1])
    assert np.array_equal(columns["x_label"], table[:, 4])
    assert np.array_equal(line_numbers, np.arange(2, num_rows + 2))
    assert elapsed < 1.0, f"parsing 160k lines took {elapsed:.2f} s"
