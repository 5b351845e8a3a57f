import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dreamgeo.datasets import INTERACTS, ITEM, USER, MMRecDataset, write_planted
from dreamgeo.datasets.proxies import (
    PROXIES,
    DerivedProxy,
    noise_features,
    weak_features,
    write_derived,
    write_proxy,
)
from dreamgeo.datasets.source import data_checksum, resolve_source

SCIENTIFIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "scientific"
DERIVED = [name for name, spec in PROXIES.items() if isinstance(spec, DerivedProxy)]
PLANTED = [name for name in PROXIES if name not in DERIVED]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    r"""A small scientific stand-in: planted ``tiny`` (image 64-d, text 32-d, 200 items)."""
    root = tmp_path_factory.mktemp("source")
    return write_planted(root, "scientific", preset="tiny")


def file_digests(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def knn(x: np.ndarray, k: int = 10) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    r"""Mean share of an item's k nearest neighbours under ``a`` that are also among
    its k nearest under ``b``; chance level is :math:`k / (N - 1)`."""
    na, nb = knn(a, k), knn(b, k)
    return float(np.mean([len(set(ra) & set(rb)) / k for ra, rb in zip(na, nb)]))


def estimated_snr(x: np.ndarray, weak: np.ndarray) -> float:
    r"""The SNR of ``weak`` recovered from ``x`` and the file alone: regress ``weak`` on
    ``[x, 1]``; the residual holds :math:`(N - r)/N` of the noise variance (rank
    :math:`r`), the rest of the variance is signal."""
    design = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(design, weak.astype(np.float64), rcond=None)
    residual = weak - design @ coef
    rank = np.linalg.matrix_rank(design)
    noise_var = (residual**2).sum(axis=0) / (len(x) - rank)
    total_var = weak.astype(np.float64).var(axis=0, ddof=1)
    return float((total_var - noise_var).sum() / noise_var.sum())


@pytest.mark.parametrize("snr", [0.5, 2.0])
def test_weak_features_realize_the_stated_snr(snr):
    x = np.random.default_rng(1).standard_normal((3000, 64)) @ np.diag(np.linspace(0.1, 3, 64))
    weak, signal = weak_features(x, snr=snr, dim=128, seed=4)
    assert weak.shape == (3000, 128) and weak.dtype == np.float32
    noise = weak.astype(np.float64) - signal
    realized = signal.var(axis=0).sum() / noise.var(axis=0).sum()
    assert realized == pytest.approx(snr, rel=0.03)
    assert estimated_snr(x, weak) == pytest.approx(snr, rel=0.1)
    again, _ = weak_features(x, snr=snr, dim=128, seed=4)
    assert np.array_equal(weak, again)
    assert not np.array_equal(weak, weak_features(x, snr=snr, dim=128, seed=5)[0])


def test_derived_proxies_are_deterministic_and_shaped(source, tmp_path):
    inter = (source / "scientific.inter").read_bytes()
    for name in DERIVED:
        spec = PROXIES[name]
        one = write_proxy(tmp_path / "a", name, seed=3, source=source)
        two = write_proxy(tmp_path / "b", name, seed=3, source=source)
        assert file_digests(one) == file_digests(two), name
        assert (one / f"{name}.inter").read_bytes() == inter
        wanted = {*spec.keep, *spec.weak, *spec.noise}
        assert {p.name for p in one.glob("*_feat.npy")} == {f"{m}_feat.npy" for m in wanted}
        data = MMRecDataset(tmp_path / "a", name, log=False)[0]
        for m in spec.keep:  # kept modalities are the source's, unchanged
            kept = np.load(source / f"{m}_feat.npy")
            assert np.array_equal(data[ITEM][f"x_{m}"].numpy(), kept)
        for m in spec.weak:
            assert data[ITEM][f"x_{m}"].shape == (200, 128)
        for m in spec.noise:
            assert data[ITEM][f"x_{m}"].shape == np.load(source / f"{m}_feat.npy").shape
        other = write_proxy(tmp_path / "c", name, seed=4, source=source)
        if spec.weak or spec.noise:
            assert file_digests(other) != file_digests(one), name


def test_weak_modality_file_has_the_stated_snr(source, tmp_path):
    folder = write_proxy(tmp_path, "scientific_weak_text", source=source)
    weak = np.load(folder / "text_feat.npy")
    x = np.load(source / "text_feat.npy")
    sidecar = json.loads((folder / "proxy.json").read_text())
    assert sidecar["realized_snr"]["text"] == pytest.approx(0.5, rel=0.05)
    # independent of the builder: recovered from the features and the file alone
    assert estimated_snr(x, weak) == pytest.approx(0.5, rel=0.15)


def test_noise_modality_is_unrelated_to_the_original(source, tmp_path):
    folder = write_proxy(tmp_path, "scientific_noise_image", source=source)
    x = np.load(source / "image_feat.npy")
    noise = np.load(folder / "image_feat.npy")
    assert noise.shape == x.shape
    assert noise.std(axis=0).mean() == pytest.approx(x.std(axis=0).mean(), rel=0.05)
    chance = 10 / (len(x) - 1)
    assert knn_overlap(noise, x) < 2.5 * chance
    # the weak view keeps structure: far above chance
    weak, _ = weak_features(x, snr=0.5, dim=128, seed=0)
    assert knn_overlap(weak, x) > 4 * chance
    sims = [(v / np.linalg.norm(v, axis=1, keepdims=True)) for v in (x, noise)]
    upper = np.triu_indices(len(x), 1)
    corr = np.corrcoef((sims[0] @ sims[0].T)[upper], (sims[1] @ sims[1].T)[upper])[0, 1]
    assert abs(corr) < 0.05
    assert np.array_equal(noise, noise_features(x, seed=1000))  # image is the 2nd modality


def test_derived_needs_the_modalities_and_keeps_foreign_folders(source, tmp_path):
    with pytest.raises(FileNotFoundError, match="audio"):
        write_derived(tmp_path, "x", DerivedProxy(keep=("audio",)), source)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a proxy folder"):
        write_derived(tmp_path, "mine", PROXIES["scientific_text_only"], source)
    with pytest.raises(ValueError, match="unknown proxy"):
        write_proxy(tmp_path, "nope")
    with pytest.raises(ValueError, match="source="):
        write_proxy(tmp_path, "scientific_weak_text")


def test_an_up_to_date_proxy_is_not_rewritten(source, tmp_path):
    folder = write_proxy(tmp_path, "scientific_weak_text", source=source)
    stamp = (folder / "text_feat.npy").stat().st_mtime_ns
    write_proxy(tmp_path, "scientific_weak_text", source=source)
    assert (folder / "text_feat.npy").stat().st_mtime_ns == stamp
    write_proxy(tmp_path, "scientific_weak_text", seed=1, source=source)
    assert (folder / "text_feat.npy").stat().st_mtime_ns != stamp


def load(root: Path, name: str):
    data = MMRecDataset(root, name, log=False)[0]
    store = data[INTERACTS]
    cold = set(store.val_edge_index[1].tolist() + store.test_edge_index[1].tolist())
    cold -= set(store.edge_index[1].tolist())
    return data, len(cold)


@pytest.mark.parametrize("name", PLANTED)
def test_planted_proxies_are_deterministic_at_small_scale(name, tmp_path):
    one = write_proxy(tmp_path / "a", name, seed=2, scale=0.1)
    two = write_proxy(tmp_path / "b", name, seed=2, scale=0.1)
    assert file_digests(one) == file_digests(two)
    data_one, _ = load(tmp_path / "a", name)
    data_two, _ = load(tmp_path / "b", name)
    assert data_checksum(data_one) == data_checksum(data_two)
    other = write_proxy(tmp_path / "c", name, seed=3, scale=0.1)
    assert file_digests(other)[f"{name}.inter"] != file_digests(one)[f"{name}.inter"]


def test_planted_9k_names_and_cold_items_at_small_scale(tmp_path):
    write_proxy(tmp_path, "planted_9k", scale=0.1)
    data, num_cold = load(tmp_path, "planted_9k")
    assert {m: data[ITEM][f"x_{m}"].size(1) for m in ("acoustic", "visual")} == {
        "acoustic": 128,
        "visual": 128,
    }
    assert not any(hasattr(data[ITEM], f"x_{m}") for m in ("image", "text"))
    assert num_cold == round(463 * 0.1)
    source = resolve_source("planted_9k", str(tmp_path))
    assert source.kind == "mmrec" and source.modalities() == ["acoustic", "visual"]


def test_planted_three_has_three_modalities(tmp_path):
    write_proxy(tmp_path, "planted_three", scale=0.1)
    data, _ = load(tmp_path, "planted_three")
    dims = {m: data[ITEM][f"x_{m}"].size(1) for m in ("audio", "image", "text")}
    assert dims == {"audio": 64, "image": 256, "text": 128}


@pytest.mark.parametrize(
    "name, users, items, interactions, train_per_user, cold",
    [
        ("planted_9k", 9_300, 6_700, None, 6.4, 463),
        ("planted_ml100k", 943, 1_682, 100_000, None, 0),
    ],
)
def test_planted_proxies_full_shape(
    name, users, items, interactions, train_per_user, cold, tmp_path
):
    # generated and loaded in a few seconds each
    write_proxy(tmp_path, name)
    data, num_cold = load(tmp_path, name)
    assert data[USER].num_nodes == users and data[ITEM].num_nodes == items
    store = data[INTERACTS]
    total = sum(store[k].size(1) for k in ("edge_index", "val_edge_index", "test_edge_index"))
    if interactions is not None:
        assert total == pytest.approx(interactions, rel=0.03)
    if train_per_user is not None:
        assert store.edge_index.size(1) / users == pytest.approx(train_per_user, abs=0.1)
    assert num_cold == cold


@pytest.mark.skipif(not SCIENTIFIC.is_dir(), reason="needs ../shared/data/scientific")
def test_scientific_weak_text_on_the_real_data(tmp_path):
    folder = write_proxy(tmp_path, "scientific_weak_text", source=SCIENTIFIC)
    data = MMRecDataset(tmp_path, "scientific_weak_text", log=False)[0]
    assert (data[USER].num_nodes, data[ITEM].num_nodes) == (2_928, 1_585)
    assert data[ITEM].x_text.shape == (1_585, 128) and data[ITEM].x_image.shape == (1_585, 512)
    x = np.load(SCIENTIFIC / "text_feat.npy")
    assert estimated_snr(x, np.load(folder / "text_feat.npy")) == pytest.approx(0.5, rel=0.15)
