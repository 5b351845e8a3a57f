"""The embedded real default dataset (dreamgeo.datasets.load) and the cache
folder rule for read-only data roots (dreamgeo.datasets.cache)."""

import dataclasses
import gzip
import hashlib
import io
import logging
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import platformdirs
import pytest
import torch

from dreamgeo.datasets import (
    EMBEDDED_DATASETS,
    INTERACTS,
    ITEM,
    USER,
    MMRecDataset,
    embedded_checksum,
    load,
    resolve_cache_dir,
    user_cache_root,
    write_planted,
)
from dreamgeo.datasets import cache as cache_module
from dreamgeo.datasets import embedded as embedded_module

SHARED = Path(__file__).resolve().parents[2] / "shared/data/scientific"
# The combined SHA-256 of the shipped files; changes only when the data does.
SCIENTIFIC_CHECKSUM = "6345d9c3a283b65e7d026d149e3681c122a85a1bfa0cbb9eb24f3ed65b1832a1"
HEADER = "userID\titemID\trating\ttimestamp\tx_label"


@pytest.fixture(autouse=True)
def private_user_cache(tmp_path, monkeypatch):
    """Never touch the real per-user cache."""
    monkeypatch.setenv("DREAMGEO_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


@pytest.fixture(scope="module")
def scientific(tmp_path_factory):
    return load(cache_dir=tmp_path_factory.mktemp("embedded-cache"))


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-source")
    write_planted(root, "tiny", preset="tiny")
    return root / "tiny"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_default_dataset_has_the_documented_shapes(scientific):
    info = EMBEDDED_DATASETS["scientific"]
    assert scientific[USER].num_nodes == info.num_users == 2_928
    assert scientific[ITEM].num_nodes == info.num_items == 1_585
    store = scientific[INTERACTS]
    counts = tuple(
        store[key].shape[1] for key in ("edge_index", "val_edge_index", "test_edge_index")
    )
    assert counts == info.num_interactions == (10_861, 2_902, 2_902)
    assert set(scientific[ITEM].keys()) == {"num_nodes", "x_image", "x_text"}
    for key in ("x_image", "x_text"):
        x = scientific[ITEM][key]
        assert x.dtype == torch.float32 and tuple(x.shape) == (1_585, 512)
        assert torch.isfinite(x).all()
    assert scientific[USER].original_id.shape == (2_928,)
    for key in ("edge_index", "val_edge_index", "test_edge_index"):
        edges = store[key]
        assert edges.dtype == torch.long
        assert int(edges[0].max()) < 2_928 and int(edges[1].max()) < 1_585


def test_checksum_matches_the_recorded_one():
    assert embedded_checksum("scientific") == SCIENTIFIC_CHECKSUM
    assert embedded_checksum() == SCIENTIFIC_CHECKSUM


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (e.g. in CI)")
def test_embedded_equals_the_original_folder_up_to_float16(scientific, tmp_path):
    before = snapshot(SHARED)
    reference = MMRecDataset(SHARED.parent, "scientific", cache_dir=tmp_path, log=False)[0]
    assert snapshot(SHARED) == before  # nothing written into the shared folder
    assert reference.node_types == scientific.node_types
    assert reference.edge_types == scientific.edge_types
    for node_type in reference.node_types:
        assert set(reference[node_type].keys()) == set(scientific[node_type].keys())
    assert set(reference[INTERACTS].keys()) == set(scientific[INTERACTS].keys())
    assert torch.equal(reference[USER].original_id, scientific[USER].original_id)
    for key in ("edge_index", "val_edge_index", "test_edge_index"):
        assert torch.equal(reference[INTERACTS][key], scientific[INTERACTS][key])
    for key in ("x_image", "x_text"):
        expected = reference[ITEM][key].half().float()  # the documented rounding
        assert torch.equal(scientific[ITEM][key], expected)
        assert torch.allclose(scientific[ITEM][key], reference[ITEM][key], rtol=1e-3, atol=0)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (e.g. in CI)")
def test_data_root_with_the_folder_reads_it(tmp_path):
    data = load("scientific", data_root=SHARED.parent, cache_dir=tmp_path)
    direct = MMRecDataset(SHARED.parent, "scientific", cache_dir=tmp_path, log=False)[0]
    assert torch.equal(data[ITEM].x_image, direct[ITEM].x_image)


def test_data_root_without_the_folder_falls_back_to_the_embedded_copy(tmp_path, scientific):
    data = load("scientific", data_root=tmp_path / "nothing-here", cache_dir=tmp_path / "c")
    assert torch.equal(data[ITEM].x_text, scientific[ITEM].x_text)
    assert not (tmp_path / "nothing-here").exists()


def test_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no embedded dataset 'baby'.*scientific"):
        load("baby")
    with pytest.raises(FileNotFoundError, match="does not exist and 'baby' is not embedded"):
        load("baby", data_root=tmp_path)
    with pytest.raises(ValueError, match="no embedded dataset"):
        embedded_checksum("baby")


def test_default_unpacks_into_the_user_cache(private_user_cache):
    load()
    unpacked = list(private_user_cache.glob("embedded/scientific-*/scientific"))
    assert len(unpacked) == 1
    assert {p.name for p in unpacked[0].iterdir()} >= {
        "scientific.inter",
        "image_feat.npy",
        "text_feat.npy",
        "processed",
    }


def test_a_changed_unpacked_copy_is_unpacked_again(tmp_path, caplog, scientific):
    load(cache_dir=tmp_path)
    (inter,) = tmp_path.glob("embedded/scientific-*/scientific/scientific.inter")
    inter.write_text(HEADER + "\n0\t0\t5\t1\t0\n")
    with caplog.at_level(logging.WARNING, logger="dreamgeo.datasets.embedded"):
        data = load(cache_dir=tmp_path)
    assert "changed; unpacking again" in caplog.text
    assert torch.equal(data[INTERACTS].edge_index, scientific[INTERACTS].edge_index)


# --- bad embedded data ----------------------------------------------------------------


def test_a_wrong_recorded_checksum_names_the_file(monkeypatch, tmp_path):
    info = EMBEDDED_DATASETS["scientific"]
    files = {**info.files, "features.npz": "0" * 64}
    monkeypatch.setitem(EMBEDDED_DATASETS, "scientific", dataclasses.replace(info, files=files))
    with pytest.raises(ValueError, match=r"'scientific': features\.npz .* fails its checksum"):
        load(cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"features\.npz .* fails its checksum"):
        embedded_checksum("scientific")
    assert not list(tmp_path.rglob("*.npy"))  # nothing unpacked


def package_copy(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the package data that the loader reads instead."""
    source = Path(embedded_module.__file__).parent / "data"
    copy = tmp_path / "package-data"
    shutil.copytree(source, copy)
    monkeypatch.setattr(embedded_module, "_data_dir", lambda name: copy / name)
    return copy


def test_a_corrupted_shipped_file_names_the_file(monkeypatch, tmp_path):
    copy = package_copy(tmp_path, monkeypatch)
    inter = copy / "scientific" / "scientific.inter.gz"
    raw = bytearray(inter.read_bytes())
    raw[100] ^= 0xFF
    inter.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"scientific\.inter\.gz .* fails its checksum"):
        load(cache_dir=tmp_path / "c")


def test_a_missing_shipped_file_is_named(monkeypatch, tmp_path):
    copy = package_copy(tmp_path, monkeypatch)
    (copy / "scientific" / "features.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"features\.npz is missing .*package data"):
        load(cache_dir=tmp_path / "c")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def register_embedded(monkeypatch, tmp_path, name, inter: str, features: dict) -> None:
    """Ships `name` like the real one (gzip + npz, digests recorded) from tmp_path."""
    folder = tmp_path / "package-data" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.inter.gz").write_bytes(gzip.compress(inter.encode()))
    with zipfile.ZipFile(folder / "features.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        for member, array in features.items():
            archive.writestr(member, npy(array))
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    info = dataclasses.replace(
        EMBEDDED_DATASETS["scientific"],
        name=name,
        files=digests,
        modalities={"image": "image_feat.npy", "text": "text_feat.npy"},
    )
    monkeypatch.setitem(EMBEDDED_DATASETS, name, info)
    monkeypatch.setattr(embedded_module, "_data_dir", lambda n: tmp_path / "package-data" / n)


GOOD_INTER = "\n".join([HEADER, "0\t0\t5\t10\t0", "0\t1\t5\t11\t1", "0\t2\t5\t12\t2"])
GOOD_IMAGE = np.arange(12, dtype=np.float16).reshape(3, 4) + 1
GOOD_TEXT = np.ones((3, 2), dtype=np.float16)
NAN_TEXT = GOOD_TEXT.copy()
NAN_TEXT[1, 0] = np.nan


@pytest.mark.parametrize(
    "inter, image, text, fragments",
    [
        (GOOD_INTER, GOOD_IMAGE, GOOD_TEXT[:2], ["disagree on the number of items"]),
        (GOOD_INTER, GOOD_IMAGE, NAN_TEXT, ["text_feat.npy", "row 1 (item 1)", "NaN"]),
        (
            GOOD_INTER.replace("12\t2", "12\t7"),
            GOOD_IMAGE,
            GOOD_TEXT,
            ["bad.inter", "line 4", "x_label 7 is not 0"],
        ),
        (GOOD_INTER + "\n0\t9\t5\t13\t0", GOOD_IMAGE, GOOD_TEXT, ["itemID 9 is out of range"]),
    ],
    ids=["row-count-mismatch", "nan-feature", "bad-x-label", "item-out-of-range"],
)
def test_embedded_data_goes_through_the_mmrec_validation(
    monkeypatch, tmp_path, inter, image, text, fragments
):
    features = {"image_feat.npy": image, "text_feat.npy": text}
    register_embedded(monkeypatch, tmp_path, "bad", inter, features)
    with pytest.raises(ValueError) as error:
        load("bad", cache_dir=tmp_path / "c")
    for fragment in fragments:
        assert fragment in str(error.value)
    assert not list((tmp_path / "c").rglob("data_*.pt"))


def test_a_valid_registered_embedded_dataset_loads(monkeypatch, tmp_path):
    features = {"image_feat.npy": GOOD_IMAGE, "text_feat.npy": GOOD_TEXT}
    register_embedded(monkeypatch, tmp_path, "good", GOOD_INTER, features)
    data = load("good", cache_dir=tmp_path / "c")
    assert torch.equal(data[ITEM].x_image, torch.from_numpy(GOOD_IMAGE.astype(np.float32)))
    assert data[INTERACTS].test_edge_index.tolist() == [[0], [2]]


# --- read-only data roots and the cache rule -------------------------------------------


def read_only_copy(source: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(source, root / source.name)
    return root


def make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def assert_cached_in_user_cache(dataset: MMRecDataset, root: Path, user_cache: Path) -> None:
    dataset_dir = root / "tiny"
    expected = user_cache / cache_module.dataset_cache_key(dataset_dir) / "processed"
    assert Path(dataset.processed_dir) == expected
    assert len(list(expected.glob("data_*.pt"))) == 1
    assert not (dataset_dir / "processed").exists()


def test_read_only_data_root_caches_in_the_user_cache(tiny_source, tmp_path, private_user_cache):
    root = read_only_copy(tiny_source, tmp_path)
    before = snapshot(root)
    make_read_only(root)
    try:
        # root passes os.access; is_writable still honours the missing write bits
        dataset = MMRecDataset(root, "tiny", log=False)
        assert dataset[0][USER].num_nodes > 0
        assert_cached_in_user_cache(dataset, root, private_user_cache)
        assert snapshot(root) == before
        again = MMRecDataset(root, "tiny", log=False)  # served from the user cache
        assert torch.equal(again[0][ITEM].x_image, dataset[0][ITEM].x_image)
    finally:
        make_writable(root)


def test_unwritable_per_os_access_caches_in_the_user_cache(
    tiny_source, tmp_path, private_user_cache, monkeypatch, caplog
):
    root = read_only_copy(tiny_source, tmp_path)
    before = snapshot(root)
    monkeypatch.setattr(cache_module.os, "access", lambda path, mode: False)
    with caplog.at_level(logging.INFO, logger="dreamgeo.datasets.cache"):
        dataset = MMRecDataset(root, "tiny", log=False)
    assert_cached_in_user_cache(dataset, root, private_user_cache)
    assert snapshot(root) == before
    lines = [r for r in caplog.records if r.name == "dreamgeo.datasets.cache"]
    assert len(lines) == 1
    assert "not writable" in lines[0].getMessage()
    assert "$DREAMGEO_CACHE_DIR" in lines[0].getMessage()


def test_writable_data_root_keeps_the_cache_beside_the_data(tiny_source, tmp_path):
    root = read_only_copy(tiny_source, tmp_path)
    dataset = MMRecDataset(root, "tiny", log=False)
    assert Path(dataset.processed_dir) == root / "tiny" / "processed"


def test_an_explicit_cache_dir_always_wins(tiny_source, tmp_path):
    root = read_only_copy(tiny_source, tmp_path)
    before = snapshot(root)
    dataset = MMRecDataset(root, "tiny", log=False, cache_dir=tmp_path / "mine")
    key = cache_module.dataset_cache_key(root / "tiny")
    assert Path(dataset.processed_dir) == tmp_path / "mine" / key / "processed"
    assert list((tmp_path / "mine" / key / "processed").glob("data_*.pt"))
    assert snapshot(root) == before


def test_resolve_cache_dir_rule(tmp_path, monkeypatch):
    a, b = tmp_path / "a" / "toy", tmp_path / "b" / "toy"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert resolve_cache_dir(a) == a
    assert resolve_cache_dir(a, tmp_path / "c").parent == tmp_path / "c"
    # same name, different folders: different sub-folders
    assert resolve_cache_dir(a, tmp_path / "c") != resolve_cache_dir(b, tmp_path / "c")
    assert cache_module.dataset_cache_key(a).startswith("toy-")
    monkeypatch.setattr(cache_module.os, "access", lambda path, mode: False)
    assert resolve_cache_dir(a).parent == tmp_path / "user-cache"
    monkeypatch.delenv("DREAMGEO_CACHE_DIR")
    assert user_cache_root() == Path(platformdirs.user_cache_dir("dreamgeo"))
    assert resolve_cache_dir(a).parent == user_cache_root()
    assert not cache_module.is_writable(tmp_path / "missing")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="needs non-root")
def test_is_writable_follows_os_access_for_other_users(tmp_path):
    assert cache_module.is_writable(tmp_path)
    tmp_path.chmod(0o555)
    try:
        assert not cache_module.is_writable(tmp_path)
    finally:
        tmp_path.chmod(0o755)


def test_an_unwritable_unpack_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot unpack it into .*DREAMGEO_CACHE_DIR"):
        load(cache_dir=blocker)
