r"""Broken MMRec data fed to :class:`~dreamgeo.datasets.MMRecDataset` and
:func:`~dreamgeo.datasets.mmrec.read_mmrec`. Every case must end in a
:class:`ValueError` or :class:`FileNotFoundError` (exactly these types, never an
``IndexError`` or ``RuntimeError`` from inside numpy or torch) whose message names the
file and the fault, or in a documented, logged repair; never in a silent wrong result.

Cases tried, ``NAME.inter`` (hand-written, :func:`test_bad_inter_file`):

* empty file; whitespace only; header only; header and blank lines only;
* truncated: inside the header; mid-line (fields missing); mid-field (line ends in a tab);
* wrong separators: comma-, semicolon- or space-separated header (error with a hint); one
  data line with spaces or commas instead of tabs (hint); a trailing tab;
* missing column in the header; repeated column in the header; a row with a missing or
  an extra field;
* non-numeric ids (``x3``, ``1.0``, ``1e3``, ``+1``, `` 1``, a non-ASCII digit), an empty
  id, ``x_label`` ``valid``; a second header line in the data;
* negative ids (user, item) and a negative ``x_label``; an id of 19 digits;
* ``x_label`` 3 and 99; item id equal to and far past the number of feature rows;
* no training row at all;
* text ids (``U00373``, ``B000ABC123``): the error points to ``dreamgeo prepare``
  (:func:`test_text_ids_point_to_prepare`);
* no valid or no test rows (all ``x_label`` 0; no 2; valid rows only of users without
  training rows): ``dreamgeo train`` stops before training, naming the file and its rows
  per ``x_label`` (:func:`test_a_split_without_valid_or_test_rows_is_an_error_before_training`);
* not text: UTF-16 (NUL bytes), random binary bytes; a carriage return inside a line and
  old-Mac ``\r``-only line endings;
* supported, not faults: UTF-8 byte order mark, ``\r\n`` line endings, blank lines, a
  last line without newline, extra columns in any order (:func:`test_supported_variants`).

Cases tried, feature ``.npy`` files (hand-written, :func:`test_bad_feature_file`):

* file missing (:class:`FileNotFoundError`); empty (0 bytes); truncated in bytes: inside
  the magic, inside the header, inside the data; extra bytes after the data;
* not an ``.npy``: text, an ``.npz`` archive; a pickled object array;
* 0-D, 1-D and 3-D arrays; integer, boolean and complex dtypes; 0 rows; 0 columns;
* NaN, +inf, and float64 values that overflow float32;
* modalities with different row counts.

Repairs (documented in :class:`~dreamgeo.datasets.MMRecDataset`, asserted with their log):

* users with no training interaction (only in valid/test): dropped with their rows,
  counted in an info log (:func:`test_users_only_in_valid_or_test_are_dropped_and_logged`);
* items only in valid/test: kept as cold-start items, counted in an info log;
* duplicate ``(user, item)`` rows: one kept (train before valid before test, then the
  first in the file), warned with the rows dropped per ``x_label``;
* feature rows past the largest item id: kept as items without interactions (MMRec's
  rule: row j is item j), warned with their count;
* all-zero feature rows: kept, counted in a warning; cosine is undefined for them, so
  :func:`~dreamgeo.graph.knn_graph_cosine` gives such an item (and a user whose training
  items are all zero) one self edge and never makes it another row's neighbour; the
  normalized edge weights stay finite (:func:`test_all_zero_feature_rows`).

Property-based (hypothesis), each against a plain-Python reference reader written here:

* random valid files (random column order, extra junk columns, blank lines, ``\n`` or
  ``\r\n``, byte order mark, leading zeros, final newline or not, duplicates) round-trip
  exactly (through :func:`read_mmrec`, and through :class:`MMRecDataset`);
* one random corruption of a valid file: a required field replaced by a non-integer,
  negative, empty or over-long token; a field dropped or added on a line; a line's tabs
  replaced by commas or spaces; ``x_label`` out of range; item id past the feature rows;
  a lone carriage return: the error names ``toy.inter``, the corrupted line and the fault;
* the file truncated at a random byte: the reader agrees with the reference (same error
  line, or the same result for a cut that leaves well-formed lines; a cut inside the
  last number, e.g. ``12`` -> ``1``, is undetectable by any reader and gives the
  reference's result for the shorter text);
* a ``.npy`` cut at every possible length, or with extra bytes, is a named error;
* NaN or infinity at a random position: the error names the first bad row.

Not detectable, so not claimed: a bit flip inside a ``.npy``'s data or dtype byte order
(the format has no checksum) and a truncation that ends exactly at a line boundary.
"""

import io
import json
import logging
import re
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamgeo.datasets import INTERACTS, ITEM, USER, MMRecDataset
from dreamgeo.datasets.mmrec import read_mmrec
from dreamgeo.graph import build_relation_graphs, user_mean_features

HEADER = "userID\titemID\trating\ttimestamp\tx_label"
MODALITIES = {"image": "image_feat.npy", "text": "text_feat.npy"}
REQUIRED = ("userID", "itemID", "x_label")
SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def write_files(directory: Path, inter, features=None, name: str = "toy") -> Path:
    r"""``inter`` as text or bytes; ``features`` file name -> array or raw bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = inter.encode() if isinstance(inter, str) else inter
    (directory / f"{name}.inter").write_bytes(raw)
    if features is None:
        features = {
            "image_feat.npy": np.arange(12, dtype=np.float32).reshape(3, 4) + 1,
            "text_feat.npy": np.ones((3, 2), dtype=np.float32),
        }
    for file_name, content in features.items():
        if isinstance(content, bytes):
            (directory / file_name).write_bytes(content)
        else:
            np.save(directory / file_name, content)
    return directory


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def assert_clear_error(error: BaseException, expected_type: type, *fragments: str) -> None:
    assert type(error) is expected_type, f"{type(error).__name__}: {error}"
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def load_expecting(root: Path, expected_type: type, *fragments: str) -> None:
    r"""Loads ``root/toy`` through :class:`MMRecDataset` and checks the error; a failed
    load leaves no processed cache behind."""
    with pytest.raises(Exception) as raised:
        MMRecDataset(root, "toy", log=False)
    assert_clear_error(raised.value, expected_type, *fragments)
    assert not list((root / "toy").glob("processed/data_*.pt"))


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


# ---------------------------------------------------------------------------------------
# The reference reader: the format's rules written plainly, in the reader's check order.
# ---------------------------------------------------------------------------------------


class ReferenceError_(Exception):
    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


def reference_read(raw: bytes, num_items: int):
    r"""Returns ``(splits, kept_user_ids, num_duplicates)`` or raises
    :class:`ReferenceError_` with the faulty line (``None`` for whole-file faults)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise ReferenceError_(None)
    lines = raw.split(b"\n")
    if b"\x00" in raw:
        raise ReferenceError_(next(i for i, line in enumerate(lines) if b"\x00" in line) + 1)
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    for number, line in enumerate(lines, start=1):
        if b"\r" in line:
            raise ReferenceError_(number)
    text = [line.decode("utf-8", "replace") for line in lines]
    names = [name.strip() for name in text[0].split("\t")]
    if any(c not in names for c in REQUIRED) or len(set(n for n in names if n)) < len(
        [n for n in names if n]
    ):
        raise ReferenceError_(1)
    rows = [(number, line) for number, line in enumerate(text[1:], start=2) if line != ""]
    if not rows:
        raise ReferenceError_(None)
    for number, line in rows:
        if len(line.split("\t")) != len(names):
            raise ReferenceError_(number)
    table = []
    for number, line in rows:
        fields = line.split("\t")
        tokens = [fields[names.index(c)] for c in REQUIRED]
        if not all(re.fullmatch(r"[0-9]{1,18}", token) for token in tokens):
            raise ReferenceError_(number)
        table.append((number, *map(int, tokens)))
    for number, _, _, label in table:
        if label > 2:
            raise ReferenceError_(number)
    for number, _, item, _ in table:
        if item >= num_items:
            raise ReferenceError_(number)
    if not any(label == 0 for *_, label in table):
        raise ReferenceError_(None)
    best: dict[tuple[int, int], int] = {}
    for _, user, item, label in table:
        best[(user, item)] = min(label, best.get((user, item), 3))
    kept = sorted({user for (user, _), label in best.items() if label == 0})
    index = {user: k for k, user in enumerate(kept)}
    splits = [set(), set(), set()]
    for (user, item), label in best.items():
        if user in index:
            splits[label].add((index[user], item))
    return splits, kept, len(table) - len(best)


def read_as_loader(directory: Path):
    r"""The reader's result as ``(splits, kept_user_ids, num_duplicates)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_mmrec(directory, "toy", {"f": "f.npy"})
    duplicates = [str(w.message) for w in caught if "duplicate" in str(w.message)]
    num_duplicates = (
        int(re.search(r"dropped (\d+) duplicate", duplicates[0]).group(1)) if (duplicates) else 0
    )
    store = data[INTERACTS]
    splits = [edge_set(store[k]) for k in ("edge_index", "val_edge_index", "test_edge_index")]
    return splits, data[USER].original_id.tolist(), num_duplicates, data


# ---------------------------------------------------------------------------------------
# Hand-written cases
# ---------------------------------------------------------------------------------------

GOOD = ["0\t0\t5\t10\t0", "0\t1\t5\t11\t1", "1\t2\t5\t12\t0"]


def lines(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


@pytest.mark.parametrize(
    "inter, fragments",
    [
        ("", ["toy.inter: the file is empty"]),
        (" \n\t\n", ["toy.inter: the file is empty"]),
        (HEADER + "\n", ["toy.inter: the file has a header line but no interaction rows"]),
        (HEADER + "\n\n\n", ["toy.inter: the file has a header line but no interaction rows"]),
        ("userID\titemID\trat", ["toy.inter: line 1 (header): missing column(s) x_label"]),
        (lines(*GOOD) + "1\t2", ["toy.inter: line 5: 2 tab-separated fields, but the header"]),
        (lines(*GOOD) + "1\t2\t5\t12\t", ["toy.inter: line 5: x_label '' is empty"]),
        (
            "userID,itemID,x_label\n0,0,0\n",
            [
                "toy.inter: line 1 (header): missing column(s) userID, itemID, x_label",
                "the line contains commas: fields must be separated by tabs",
            ],
        ),
        (
            "userID;itemID;x_label\n0;0;0\n",
            ["toy.inter: line 1 (header)", "semicolons: fields must be separated by tabs"],
        ),
        (
            "userID itemID x_label\n0 0 0\n",
            ["toy.inter: line 1 (header)", "spaces: fields must be separated by tabs"],
        ),
        (
            lines(GOOD[0], "0 1 5 11 1"),
            [
                "toy.inter: line 3: 1 tab-separated fields, but the header has 5",
                "the line contains spaces: fields must be separated by tabs",
            ],
        ),
        (
            lines(GOOD[0], "0\t1\t5,11\t1"),
            ["toy.inter: line 3: 4 tab-separated fields", "commas: fields must be separated"],
        ),
        (lines(GOOD[0] + "\t"), ["toy.inter: line 2: 6 tab-separated fields, but the header"]),
        (
            "userID\titemID\trating\n1\t2\t3\n",
            ["toy.inter: line 1 (header): missing column(s) x_label"],
        ),
        (
            "userID\titemID\titemID\tx_label\n0\t0\t0\t0\n",
            ["toy.inter: line 1 (header): repeated column(s) ['itemID']"],
        ),
        (lines(GOOD[0], "0\t1\t5\t0"), ["toy.inter: line 3: 4 tab-separated fields, but the"]),
        (lines(GOOD[0], "0\t1\t5\t0\t1\t1"), ["toy.inter: line 3: 6 tab-separated fields"]),
        (lines(GOOD[0], "0\tx3\t5\t10\t0"), ["toy.inter: line 3: itemID 'x3' is not an integer"]),
        (lines(GOOD[0], "0\t1.0\t5\t10\t0"), ["toy.inter: line 3: itemID '1.0' is not an integer"]),
        (lines(GOOD[0], "0\t1e3\t5\t10\t0"), ["toy.inter: line 3: itemID '1e3' is not an integer"]),
        (lines(GOOD[0], "+1\t1\t5\t10\t0"), ["toy.inter: line 3: userID '+1' is not an integer"]),
        (lines(GOOD[0], " 1\t1\t5\t10\t0"), ["toy.inter: line 3: userID ' 1' is not an integer"]),
        (lines(GOOD[0], "\u0663\t1\t5\t10\t0"), ["toy.inter: line 3: userID '\u0663' is not an"]),
        (lines(GOOD[0], "\t1\t5\t10\t0"), ["toy.inter: line 3: userID '' is empty"]),
        (lines(GOOD[0], "0\t1\t5\t10\tvalid"), ["toy.inter: line 3: x_label 'valid' is not an"]),
        (lines(HEADER, *GOOD), ["toy.inter: line 2: itemID 'itemID' is not an integer"]),
        (lines(GOOD[0], "-4\t1\t5\t10\t0"), ["toy.inter: line 3: userID '-4' is negative"]),
        (lines(GOOD[0], "0\t-1\t5\t10\t0"), ["toy.inter: line 3: itemID '-1' is negative"]),
        (lines(GOOD[0], "0\t1\t5\t10\t-1"), ["toy.inter: line 3: x_label '-1' is negative"]),
        (
            lines(GOOD[0], "1" * 19 + "\t1\t5\t10\t0"),
            ["toy.inter: line 3: userID '" + "1" * 19 + "' has more than 18 digits"],
        ),
        (
            lines(GOOD[0], "0\t1\t5\t10\t3"),
            ["toy.inter: line 3: x_label 3 is not 0 (train), 1 (valid) or 2 (test)"],
        ),
        (lines(GOOD[0], "0\t1\t5\t10\t99"), ["toy.inter: line 3: x_label 99 is not 0"]),
        (
            lines(GOOD[0], "0\t3\t5\t10\t0"),
            [
                "toy.inter: line 3: itemID 3 is out of range: the feature files "
                "(image_feat.npy, text_feat.npy) have 3 rows, so item ids must lie in 0..2"
            ],
        ),
        (lines(GOOD[0], "0\t123456789012\t5\t10\t1"), ["line 3: itemID 123456789012 is out"]),
        (lines("0\t0\t5\t10\t1", "0\t1\t5\t10\t2"), ["toy.inter: no training rows (x_label 0)"]),
        (lines(*GOOD).encode("utf-16"), ["toy.inter: line 1: NUL byte: not a text file"]),
        (
            np.random.default_rng(0).bytes(400),
            ["toy.inter: line ", "NUL byte: not a text file (UTF-16 or binary?)"],
        ),
        (
            lines(GOOD[0], "0\t1\r\t5\t11\t1"),
            ["toy.inter: line 3: carriage return (\\r) inside a line"],
        ),
        (lines(*GOOD).replace("\n", "\r"), ["toy.inter: line 1: carriage return (\\r) inside"]),
    ],
)
def test_bad_inter_file(tmp_path, inter, fragments):
    write_files(tmp_path / "toy", inter)
    load_expecting(tmp_path, ValueError, *fragments)


def test_supported_variants(tmp_path):
    rows = ["x_label\tjunk\titemID\tuserID", "0\ta,b c\t2\t007", "", "1\t\t1\t7", "2\t;\t0\t3"]
    text = "\ufeff" + "\r\n".join(rows)  # byte order mark, CRLF, no final newline
    write_files(tmp_path / "toy", text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        data = MMRecDataset(tmp_path, "toy", log=False)[0]
    store = data[INTERACTS]
    assert data[USER].original_id.tolist() == [7]
    assert edge_set(store.edge_index) == {(0, 2)}
    assert edge_set(store.val_edge_index) == {(0, 1)}
    assert store.test_edge_index.size(1) == 0  # user 3 never trains: dropped


NPY = npy_bytes(np.arange(6, dtype=np.float32).reshape(3, 2))


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("text_feat.npy", NPY)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "text, fragments",
    [
        (b"", ["text_feat.npy (modality 'text'): the file is empty (0 bytes)"]),
        (NPY[:4], ["text_feat.npy (modality 'text'): truncated: only 4 bytes"]),
        (NPY[:40], ["text_feat.npy (modality 'text'): truncated inside the .npy header"]),
        (
            NPY[:-10],
            [
                "text_feat.npy (modality 'text'): truncated: the header declares shape (3, 2) "
                "float32 (24 bytes of data) but only 14 bytes follow it"
            ],
        ),
        (
            NPY + b"\x00" * 8,
            ["text_feat.npy (modality 'text'): 8 bytes follow the array data of shape (3, 2)"],
        ),
        (b"0.1 0.2\n0.3 0.4\n0.5 0.6\n", ["text_feat.npy (modality 'text'): not a .npy file"]),
        (npz_bytes(), ["text_feat.npy (modality 'text'): not a .npy file", "b'PK"]),
        (
            npy_bytes(np.array([[1, None]] * 3, dtype=object)),
            ["text_feat.npy (modality 'text'): holds Python objects (dtype object)"],
        ),
        (np.float32(1.0), ["text_feat.npy (modality 'text'): features must be 2-D", "shape ()"]),
        (np.ones(3, dtype=np.float32), ["text_feat.npy", "must be 2-D", "shape (3,)"]),
        (np.ones((3, 2, 1)), ["text_feat.npy", "must be 2-D", "shape (3, 2, 1)"]),
        (np.ones((3, 2), dtype=np.int64), ["text_feat.npy", "dtype int64 is not a float dtype"]),
        (np.ones((3, 2), dtype=bool), ["text_feat.npy", "dtype bool is not a float dtype"]),
        (np.ones((3, 2), dtype=np.complex64), ["text_feat.npy", "dtype complex64 is not a"]),
        (np.ones((3, 0), dtype=np.float32), ["text_feat.npy", "0 feature columns"]),
        (
            np.array([[0, 1], [1, np.nan], [np.inf, 0]]),
            ["text_feat.npy (modality 'text'): row 1 (item 1) holds NaN or infinite values"],
        ),
        (np.array([[0, 1], [1, 1], [-np.inf, 0]]), ["text_feat.npy", "row 2 (item 2) holds NaN"]),
        (np.array([[0, 1], [1, 1], [1e300, 0]]), ["text_feat.npy", "row 2 (item 2) holds NaN"]),
        (
            np.ones((4, 2), dtype=np.float32),
            [
                "modality files disagree on the number of items (rows): image_feat.npy has 3, "
                "text_feat.npy has 4"
            ],
        ),
    ],
)
def test_bad_feature_file(tmp_path, text, fragments):
    image = np.ones((3, 4), dtype=np.float32)
    write_files(tmp_path / "toy", lines(*GOOD), {"image_feat.npy": image, "text_feat.npy": text})
    load_expecting(tmp_path, ValueError, *fragments)


def test_feature_file_without_rows(tmp_path):
    empty = {"image_feat.npy": np.ones((0, 4), np.float32), "text_feat.npy": np.ones((0, 2))}
    write_files(tmp_path / "toy", lines(*GOOD), empty)
    load_expecting(tmp_path, ValueError, "image_feat.npy (modality 'image'): no rows (shape (0,")


def test_missing_feature_file(tmp_path):
    directory = write_files(tmp_path / "toy", lines(*GOOD))
    (directory / "text_feat.npy").unlink()
    with pytest.raises(FileNotFoundError) as raised:
        MMRecDataset(tmp_path, "toy", modalities=MODALITIES, log=False)
    assert_clear_error(
        raised.value,
        FileNotFoundError,
        "'toy'",
        "is missing text_feat.npy",
        "feature files found: image (image_feat.npy)",
        "a modality is a file <name>_feat.npy",
    )
    with pytest.raises(FileNotFoundError) as raised:
        MMRecDataset(tmp_path, "toy", modalities=["image", "text"], log=False)
    assert_clear_error(raised.value, FileNotFoundError, "no modality 'text' (no text_feat.npy)")
    with pytest.raises(FileNotFoundError, match=r"text_feat\.npy does not exist"):
        read_mmrec(directory, "toy", MODALITIES)
    (directory / "image_feat.npy").unlink()
    load_expecting(tmp_path, FileNotFoundError, "no feature files", "the folder holds: toy.inter")


def test_users_only_in_valid_or_test_are_dropped_and_logged(tmp_path, caplog):
    inter = lines(
        "10\t0\t5\t1\t0",
        "10\t1\t5\t2\t1",
        "20\t1\t5\t3\t1",  # user 20: valid and test only -> dropped with its 2 rows
        "20\t2\t5\t4\t2",
        "30\t0\t5\t5\t0",
        "30\t2\t5\t6\t2",  # items 1 and 2: only in valid/test rows -> kept, cold-start
    )
    write_files(tmp_path / "toy", inter)
    with caplog.at_level(logging.INFO, logger="dreamgeo.datasets.mmrec"):
        data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert "toy.inter: dropped 1 users without training interactions (2 valid/test rows)" in (
        caplog.text
    )
    assert "toy.inter: 2 items occur in valid/test rows but in no training row" in caplog.text
    assert data[USER].original_id.tolist() == [10, 30]
    assert data[ITEM].num_nodes == 3
    store = data[INTERACTS]
    assert edge_set(store.edge_index) == {(0, 0), (1, 0)}
    assert edge_set(store.val_edge_index) == {(0, 1)}
    assert edge_set(store.test_edge_index) == {(1, 2)}


def test_duplicates_are_dropped_with_a_warning(tmp_path):
    inter = lines("0\t0\t5\t1\t2", "0\t0\t5\t2\t0", "0\t0\t5\t3\t0", "0\t1\t5\t4\t1")
    write_files(tmp_path / "toy", inter)
    with pytest.warns(UserWarning, match=r"toy\.inter: dropped 2 duplicate \(userID, itemID\)"):
        data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert edge_set(data[INTERACTS].edge_index) == {(0, 0)}
    assert data[INTERACTS].test_edge_index.size(1) == 0


def load_warning(root: Path, fragment: str):
    r"""Loads ``root/toy``; returns the data and the warning that holds ``fragment``."""
    with pytest.warns(UserWarning) as caught:
        data = MMRecDataset(root, "toy", log=False)[0]
    return data, next(str(w.message) for w in caught if fragment in str(w.message))


def test_duplicates_are_counted_per_x_label(tmp_path):
    # (0, 1): valid, test, valid -> the valid row kept, one valid and one test dropped;
    # (0, 0): train twice -> the first kept (equal splits: file order)
    inter = lines(
        "0\t1\t5\t1\t1",
        "0\t0\t5\t2\t0",
        "0\t1\t5\t3\t2",
        "0\t0\t5\t4\t0",
        "0\t1\t5\t5\t1",
        "0\t2\t5\t6\t2",
    )
    write_files(tmp_path / "toy", inter)
    data, message = load_warning(tmp_path, "duplicate")
    assert "dropped 3 duplicate (userID, itemID) rows" in message
    assert "train before valid before test, then the first in the file" in message
    assert "dropped per x_label: 0 (train) 1, 1 (valid) 1, 2 (test) 1" in message
    store = data[INTERACTS]
    splits = [edge_set(store[k]) for k in ("edge_index", "val_edge_index", "test_edge_index")]
    assert splits == [{(0, 0)}, {(0, 1)}, {(0, 2)}]


# ---------------------------------------------------------------------------------------
# Own data (issue 31): text ids, a split without valid or test rows, feature rows past
# the items, an empty k-core
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column, row", [("userID", "U00373\t1\t5\t10\t0"), ("itemID", "0\tB000ABC123\t5\t10\t0")]
)
def test_text_ids_point_to_prepare(tmp_path, column, row):
    write_files(tmp_path / "toy", lines(GOOD[0], row))
    token = row.split("\t")[0 if column == "userID" else 1]
    load_expecting(
        tmp_path,
        ValueError,
        f"toy.inter: line 3: {column} {token!r} is not an integer",
        f"{column} must be an integer 0..N-1",
        "`dreamgeo prepare --interactions FILE --user-col C --item-col C",
        "u_id_mapping.csv / i_id_mapping.csv",
    )


def test_a_text_x_label_gets_no_prepare_hint(tmp_path):
    write_files(tmp_path / "toy", lines(GOOD[0], "0\t1\t5\t10\tvalid"))
    with pytest.raises(ValueError) as raised:
        MMRecDataset(tmp_path, "toy", log=False)
    assert "dreamgeo prepare" not in str(raised.value)


def _train_argv(root: Path, *flags: str) -> list[str]:
    return [
        "train",
        "--dataset",
        "toy",
        "--data-root",
        str(root),
        "--model",
        "lightgcn",
        "--epochs",
        "1",
        "--no-progress",
        "--out-dir",
        str(root / "run"),
        *flags,
    ]


HELD_OUT_CASES = {
    "all train": (
        ["0\t0\t5\t1\t0", "0\t1\t5\t2\t0", "1\t2\t5\t3\t0"],
        "no valid rows (x_label 1) and no test rows (x_label 2)",
        "rows per x_label in the file: 0 (train) 3, 1 (valid) 0, 2 (test) 0",
    ),
    "no test": (
        ["0\t0\t5\t1\t0", "0\t1\t5\t2\t1", "1\t2\t5\t3\t0"],
        "toy.inter: no test rows (x_label 2);",
        "rows per x_label in the file: 0 (train) 2, 1 (valid) 1, 2 (test) 0",
    ),
    "valid of users without training rows": (
        ["0\t0\t5\t1\t0", "0\t1\t5\t2\t2", "1\t2\t5\t3\t1"],
        "toy.inter: no valid rows (x_label 1);",
        "used (after dropping duplicates and users without training rows): 0 (train) 1, "
        "1 (valid) 0, 2 (test) 1",
    ),
}


@pytest.mark.parametrize("case", list(HELD_OUT_CASES))
def test_a_split_without_valid_or_test_rows_is_an_error_before_training(tmp_path, capsys, case):
    from dreamgeo.commands.main import main
    from dreamgeo.datasets.mmrec import require_held_out

    rows, *fragments = HELD_OUT_CASES[case]
    write_files(tmp_path / "toy", lines(*rows))
    with pytest.raises(SystemExit) as raised:
        main(_train_argv(tmp_path))
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamgeo train: error: {tmp_path / 'toy' / 'toy.inter'}: ")
    for fragment in [*fragments, "dreamgeo prepare --split mmrec|loo|temporal"]:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "run").exists()  # nothing trained, no run folder
    data = MMRecDataset(tmp_path, "toy", log=False)[0]  # loading alone is fine
    with pytest.raises(ValueError, match="the data: no "):
        require_held_out(data)


def test_feature_rows_past_the_items_are_kept_with_a_warning(tmp_path):
    features = {
        "image_feat.npy": np.ones((7, 4), dtype=np.float32),
        "text_feat.npy": np.ones((7, 2), dtype=np.float32),
    }
    write_files(tmp_path / "toy", lines(*GOOD), features)  # items 0..2 occur
    data, message = load_warning(tmp_path, "past it")
    assert "toy.inter: the feature files (image_feat.npy, text_feat.npy) have 7 rows" in message
    assert "the largest itemID is 2: the 4 row(s) past it are kept as items" in message
    assert "(4 item(s) in all have none; MMRec's rule: row j is item j)" in message
    assert data[ITEM].num_nodes == 7
    write_files(tmp_path / "ok", lines(*GOOD), name="ok")  # largest id + 1 rows: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MMRecDataset(tmp_path, "ok", log=False)


def test_an_empty_k_core_names_k(tmp_path, capsys):
    from dreamgeo.commands.main import main

    raw = tmp_path / "raw.csv"
    raw.write_text("user,item\nU1,B1\nU1,B2\nU2,B1\n")
    argv = ["prepare", "--interactions", str(raw), "--user-col", "user", "--item-col", "item"]
    with pytest.raises(SystemExit) as raised:
        main([*argv, "--name", "toy", "--out", str(tmp_path / "data"), "--kcore", "3"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "the 3-core is empty" in err and "pass a smaller kcore (--kcore)" in err
    assert not (tmp_path / "data" / "toy").exists()


def brute_force_cosine_top_k(x: np.ndarray, k: int) -> dict[int, set[int]]:
    r"""Per row, its top-``k`` cosine neighbours among the non-zero rows (itself
    included); all-zero rows: only themselves."""
    norms = np.linalg.norm(x, axis=1)
    nonzero = np.flatnonzero(norms > 0)
    unit = x[nonzero] / norms[nonzero, None]
    similarity = unit @ unit.T
    out = {int(i): {int(i)} for i in np.flatnonzero(norms == 0)}
    k_eff = min(k, len(nonzero))
    for position, row in enumerate(nonzero):
        best = np.argsort(-similarity[position], kind="stable")[:k_eff]
        out[int(row)] = {int(nonzero[j]) for j in best}
    return out


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_all_zero_feature_rows(tmp_path, caplog, backend):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(8, 5)).astype(np.float32)
    image[[2, 5]] = 0.0  # cosine with these rows is undefined
    text = rng.normal(size=(8, 3)).astype(np.float32)
    inter = lines(
        "0\t2\t5\t1\t0",  # user 0 trains on zero-image items only -> zero mean feature
        "0\t5\t5\t2\t0",
        "0\t1\t5\t3\t2",
        "1\t0\t5\t4\t0",
        "1\t3\t5\t5\t0",
        "2\t4\t5\t6\t0",
        "2\t6\t5\t7\t0",
        "2\t7\t5\t8\t1",
    )
    write_files(tmp_path / "toy", inter, {"image_feat.npy": image, "text_feat.npy": text})
    with caplog.at_level(logging.WARNING, logger="dreamgeo.datasets.mmrec"):
        data = MMRecDataset(tmp_path, "toy", log=False)[0]
    assert "image_feat.npy (modality 'image'): 2 of 8 items have all-zero features" in caplog.text
    assert torch.equal(data[ITEM].x_image, torch.from_numpy(image))

    k = 3
    build_relation_graphs(data, k=k, backend=backend, device="cpu")
    user_image = user_mean_features(data, "image").numpy()
    assert not user_image[0].any()
    for node, x in (("item", image), ("user", user_image)):
        store = data[node, "sim_image", node]
        weight = store.edge_weight
        assert torch.isfinite(weight).all() and (weight > 0).all()
        edges: dict[int, set[int]] = {}
        for i, j in store.edge_index.t().tolist():
            edges.setdefault(i, set()).add(j)
        assert edges == brute_force_cosine_top_k(x, k)
        zero_rows = np.flatnonzero(~x.any(axis=1))
        for row in zero_rows:  # one self edge of weight 1 / sqrt(1 * 1)
            mask = store.edge_index[0] == int(row)
            assert store.edge_index[1, mask].tolist() == [int(row)]
            assert weight[mask].tolist() == [1.0]
        # no non-zero row links to a zero row
        others = ~torch.isin(store.edge_index[0], torch.from_numpy(zero_rows))
        assert not torch.isin(store.edge_index[1, others], torch.from_numpy(zero_rows)).any()


# ---------------------------------------------------------------------------------------
# Property-based cases
# ---------------------------------------------------------------------------------------

JUNK_ALPHABET = st.characters(exclude_characters="\t\n\r\x00", exclude_categories=("Cs",))
BAD_TOKENS = st.one_of(
    st.sampled_from(["", "-1", "-0", "1.5", " 1", "1 ", "1e3", "+2", "0x1", "1" * 19, "NaN"]),
    st.text(JUNK_ALPHABET, min_size=1, max_size=6),
).filter(lambda token: not re.fullmatch(r"[0-9]{1,18}", token))


@st.composite
def valid_files(draw):
    r"""A valid ``toy.inter`` as a list of data lines (without line endings) plus how
    it is laid out, and the number of items."""
    num_items = draw(st.integers(1, 8))
    extra = draw(st.lists(st.sampled_from(["rating", "timestamp", "note"]), unique=True))
    names = draw(st.permutations([*REQUIRED, *extra]))
    num_rows = draw(st.integers(1, 20))
    rows = []
    for r in range(num_rows):
        user = draw(st.one_of(st.integers(0, 5), st.integers(0, 10**17)))
        user_token = "0" * draw(st.integers(0, 2)) + str(user)  # leading zeros are fine
        values = {
            "userID": user_token if len(user_token) <= 18 else str(user),
            "itemID": str(draw(st.integers(0, num_items - 1))),
            "x_label": "0" if r == 0 else str(draw(st.integers(0, 2))),
        }
        junk = st.text(JUNK_ALPHABET, max_size=4)
        rows.append([values[n] if n in values else draw(junk) for n in names])
    order = draw(st.permutations(range(num_rows)))
    rows = [rows[i] for i in order]
    blank_after = draw(st.sets(st.integers(0, num_rows)))
    layout = {
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "final_newline": draw(st.booleans()),
        "bom": draw(st.booleans()),
        "blank_after": blank_after,
    }
    return names, rows, layout, num_items


def render(names, rows, layout) -> tuple[bytes, list[int]]:
    r"""The file's bytes and the 1-based line number of every data row."""
    text_lines = ["\t".join(names)]
    row_lines = []
    for position, row in enumerate(rows):
        text_lines.append("\t".join(row) if isinstance(row, list) else row)
        row_lines.append(len(text_lines))
        if position in layout["blank_after"]:
            text_lines.append("")
    text = layout["newline"].join(text_lines)
    text += layout["newline"] if layout["final_newline"] else ""
    return (("\ufeff" if layout["bom"] else "") + text).encode(), row_lines


def features_for(num_items: int) -> np.ndarray:
    return np.random.default_rng(num_items).normal(size=(num_items, 3)).astype(np.float32)


def check_against_reference(directory: Path, raw: bytes, num_items: int) -> str | None:
    r"""Writes ``raw`` and checks that the reader agrees with :func:`reference_read`;
    returns the reader's error message, if any."""
    write_files(directory, raw, {"f.npy": features_for(num_items)})
    try:
        expected = reference_read(raw, num_items)
    except ReferenceError_ as fault:
        with pytest.raises(Exception) as raised:
            read_as_loader(directory)
        assert_clear_error(raised.value, ValueError, "toy.inter")
        if fault.line is not None:
            assert re.search(rf"toy\.inter: line {fault.line}( \(header\))?: ", str(raised.value))
        return str(raised.value)
    splits, kept, num_duplicates, data = read_as_loader(directory)
    assert (splits, kept, num_duplicates) == expected
    assert data[ITEM].num_nodes == num_items
    assert torch.equal(data[ITEM].x_f, torch.from_numpy(features_for(num_items)))
    return None


@settings(max_examples=80, **SETTINGS)
@given(valid_files())
def test_valid_files_round_trip(files):
    names, rows, layout, num_items = files
    raw, _ = render(names, rows, layout)
    with tempfile.TemporaryDirectory() as directory:
        assert check_against_reference(Path(directory), raw, num_items) is None


@settings(max_examples=15, **SETTINGS)
@given(valid_files())
def test_valid_files_round_trip_through_the_dataset(files):
    names, rows, layout, num_items = files
    raw, _ = render(names, rows, layout)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_files(root / "toy", raw, {"f.npy": features_for(num_items)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = MMRecDataset(root, "toy", modalities={"f": "f.npy"}, log=False)[0]
        splits, kept, _ = reference_read(raw, num_items)
        store = data[INTERACTS]
        keys = ("edge_index", "val_edge_index", "test_edge_index")
        assert [edge_set(store[k]) for k in keys] == splits
        assert data[USER].original_id.tolist() == kept


CORRUPTIONS = (
    "bad_token",
    "drop_field",
    "extra_field",
    "commas",
    "spaces",
    "label_out_of_range",
    "item_past_rows",
    "lone_carriage_return",
)


@settings(max_examples=200, **SETTINGS)
@given(valid_files(), st.sampled_from(CORRUPTIONS), st.data())
def test_single_corruption_names_file_line_and_fault(files, corruption, data):
    names, rows, layout, num_items = files
    target = data.draw(st.integers(0, len(rows) - 1), label="row")
    row = list(rows[target])
    column = data.draw(st.sampled_from(REQUIRED), label="column")
    j = names.index(column)
    if corruption == "bad_token":
        token = data.draw(BAD_TOKENS, label="token")
        row[j] = token
        if token == "":
            fault = "is empty"
        elif token.startswith("-") and token[1:].isascii() and token[1:].isdigit():
            fault = "is negative"
        elif token.isascii() and token.isdigit():
            fault = "has more than 18 digits"
        else:
            fault = "is not an integer"
        fragments = [f"{column} {token!r} {fault}"]
    elif corruption == "drop_field":
        del row[data.draw(st.integers(0, len(row) - 1), label="dropped")]
        fragments = [f"{len(row)} tab-separated fields, but the header has {len(names)}"]
    elif corruption == "extra_field":
        row.insert(data.draw(st.integers(0, len(row)), label="at"), "7")
        fragments = [f"{len(row)} tab-separated fields, but the header has {len(names)}"]
    elif corruption in ("commas", "spaces"):
        row = ("," if corruption == "commas" else " ").join(row)
        fragments = ["tab-separated fields", "fields must be separated by tabs"]
    elif corruption == "label_out_of_range":
        value = data.draw(st.integers(3, 10**18 - 1), label="label")
        row[names.index("x_label")] = str(value)
        fragments = [f"x_label {value} is not 0 (train), 1 (valid) or 2 (test)"]
    elif corruption == "item_past_rows":
        value = data.draw(st.integers(num_items, 10**18 - 1), label="item")
        row[names.index("itemID")] = str(value)
        fragments = [f"itemID {value} is out of range", f"have {num_items} rows"]
    else:
        text = "\t".join(row)
        at = data.draw(st.integers(0, len(text) - 1), label="at") if text else 0
        row = text[:at] + "\r" + text[at:] if text else "\r0"
        fragments = ["carriage return (\\r) inside a line"]
    rows = [*rows[:target], row, *rows[target + 1 :]]
    raw, row_lines = render(names, rows, layout)
    with tempfile.TemporaryDirectory() as directory:
        message = check_against_reference(Path(directory), raw, num_items)
    assert message is not None, "a corrupted file was read without an error"
    assert f"toy.inter: line {row_lines[target]}: " in message
    for fragment in fragments:
        assert fragment in message


@settings(max_examples=150, **SETTINGS)
@given(valid_files(), st.data())
def test_truncated_inter_file_agrees_with_the_reference(files, data):
    names, rows, layout, num_items = files
    raw, _ = render(names, rows, {**layout, "bom": False})
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with tempfile.TemporaryDirectory() as directory:
        check_against_reference(Path(directory), raw[:cut], num_items)


@settings(max_examples=60, **SETTINGS)
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.sampled_from([np.float16, np.float32, np.float64]),
    st.data(),
)
def test_truncated_or_padded_npy_is_a_named_error(rows, dim, dtype, data):
    full = npy_bytes(np.ones((rows, dim), dtype=dtype))
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    padding = data.draw(st.binary(min_size=1, max_size=16), label="padding")
    inter = lines("0\t0\t5\t1\t0")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_files(root, inter, {"image_feat.npy": full[:cut], "text_feat.npy": full}, "toy")
        with pytest.raises(Exception) as raised:
            read_mmrec(root, "toy", MODALITIES)
        assert_clear_error(raised.value, ValueError, "image_feat.npy (modality 'image'): ")
        message = str(raised.value)
        assert ("truncated" in message) or (cut == 0 and "the file is empty" in message)

        write_files(root, inter, {"image_feat.npy": full + padding})
        with pytest.raises(Exception) as raised:
            read_mmrec(root, "toy", MODALITIES)
        assert_clear_error(raised.value, ValueError, f"{len(padding)} bytes follow the array data")


@settings(max_examples=40, **SETTINGS)
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from([np.nan, np.inf, -np.inf])),
        min_size=1,
        max_size=4,
    ),
)
def test_non_finite_features_name_the_first_bad_row(rows, dim, bad):
    x = np.random.default_rng(rows).normal(size=(rows, dim))
    positions = [position % x.size for position, _ in bad]
    x.flat[positions] = [value for _, value in bad]
    first_row = min(positions) // dim
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_files(root, lines("0\t0\t5\t1\t0"), {"image_feat.npy": x, "text_feat.npy": x})
        with pytest.raises(Exception) as raised:
            read_mmrec(root, "toy", MODALITIES)
    assert_clear_error(
        raised.value,
        ValueError,
        f"image_feat.npy (modality 'image'): row {first_row} (item {first_row}) holds NaN",
    )


def test_planted_sidecar_modalities_are_found_without_loading(tmp_path):
    directory = write_files(tmp_path / "toy", lines(*GOOD), {"a.npy": np.ones((3, 2))})
    (directory / "planted.json").write_text(json.dumps({"modalities": {"audio": "a.npy"}}))
    assert MMRecDataset.default_modalities(tmp_path, "toy") == {"audio": "a.npy"}
    assert MMRecDataset.default_modalities(tmp_path, "absent") == {}
