import dataclasses
import json
import os
import time

import numpy as np
import pytest
import torch

from dreamgeo.datasets import (
    INTERACTS,
    ITEM,
    PLANTED_PRESETS,
    USER,
    MMRecDataset,
    PlantedConfig,
    generate_planted,
    write_planted,
)
from dreamgeo.datasets.planted import INTER_COLUMNS, _sample_rows


@pytest.fixture(scope="module")
def small():
    return generate_planted("small", seed=0)


@pytest.fixture(scope="module")
def tiny():
    return generate_planted("tiny", seed=0)


def check_structure(data, config: PlantedConfig):
    table = data.interactions
    assert table.dtype == np.int64 and table.shape[1] == len(INTER_COLUMNS)
    users, items, labels = table[:, 0], table[:, 1], table[:, 4]
    num_users, num_items = data.num_users, data.num_items
    assert users.min() == 0 and users.max() == num_users - 1
    assert items.min() == 0 and items.max() == num_items - 1
    # the min_degree-core holds over all splits together
    assert np.bincount(users, minlength=num_users).min() >= config.min_degree
    assert np.bincount(items, minlength=num_items).min() >= config.min_degree
    # no interaction twice
    assert len(np.unique(users * num_items + items)) == len(table)
    # every user has at least one train, one valid and one test interaction
    per_split = np.zeros((num_users, 3), dtype=np.int64)
    np.add.at(per_split, (users, labels), 1)
    assert per_split.min() >= 1
    # features: finite float32 with the configured sizes
    assert set(data.features) == set(config.modality_dims)
    for modality, x in data.features.items():
        assert x.dtype == np.float32
        assert x.shape == (num_items, config.modality_dims[modality])
        assert np.isfinite(x).all()
    if "image" in data.features:
        assert data.features["image"].min() >= 0.0
    if "text" in data.features:
        norms = np.linalg.norm(data.features["text"], axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_presets_structure_and_size(preset, tiny, small):
    data = {"tiny": tiny, "small": small}[preset]
    config = PLANTED_PRESETS[preset]
    check_structure(data, config)
    assert 0.9 * config.num_users <= data.num_users <= config.num_users
    assert 0.9 * config.num_items <= data.num_items <= config.num_items
    assert abs(len(data.interactions) / config.num_interactions - 1) < 0.1
    assert data.item_topics.shape == (data.num_items, config.num_topics)
    assert data.user_preferences.shape == (data.num_users, config.num_topics)


def test_split_is_temporal_and_8_1_1(small):
    table = small.interactions
    users, timestamps, labels = table[:, 0], table[:, 3], table[:, 4]
    for user in range(0, small.num_users, 37):
        rows = users == user
        n = rows.sum()
        expected = max(1, int(np.floor(0.1 * n + 0.5)))
        assert (labels[rows] == 2).sum() == expected
        assert (labels[rows] == 1).sum() == expected
        times = [timestamps[rows & (labels == s)] for s in range(3)]
        assert times[0].max() <= times[1].min() and times[1].max() <= times[2].min()
    share = np.bincount(labels) / len(labels)
    assert 0.65 < share[0] < 0.85 and 0.07 < share[2] < 0.18


def test_heavy_tails(small):
    users, items = small.interactions[:, 0], small.interactions[:, 1]
    user_degree = np.bincount(users)
    assert user_degree.max() > 5 * np.median(user_degree)
    item_degree = np.sort(np.bincount(items))[::-1]
    # popular items exist, and a sizeable share of interactions is long-tail
    head = item_degree[: len(item_degree) // 5].sum() / len(items)
    assert 0.3 < head < 0.8
    assert item_degree[0] > 10 * np.median(item_degree)


def test_deterministic_and_seed_dependent(tmp_path, tiny):
    again = generate_planted("tiny", seed=0)
    assert np.array_equal(again.interactions, tiny.interactions)
    for modality in tiny.features:
        assert np.array_equal(again.features[modality], tiny.features[modality])

    first = write_planted(tmp_path / "a", "tiny", preset="tiny", seed=0)
    second = write_planted(tmp_path / "b", "tiny", preset="tiny", seed=0)
    other = write_planted(tmp_path / "c", "tiny", preset="tiny", seed=1)
    for file_name in ["tiny.inter", "image_feat.npy", "text_feat.npy"]:
        content = (first / file_name).read_bytes()
        assert content == (second / file_name).read_bytes()
        assert content != (other / file_name).read_bytes()
    # what is written is what generate_planted returns
    assert np.array_equal(np.load(first / "text_feat.npy"), tiny.features["text"])
    assert np.array_equal(np.load(first / "image_feat.npy"), tiny.features["image"])
    table = np.loadtxt(first / "tiny.inter", dtype=np.int64, skiprows=1)
    assert np.array_equal(table, tiny.interactions)
    header = (first / "tiny.inter").read_text().split("\n", 1)[0]
    assert header == "userID\titemID\trating\ttimestamp\tx_label"


def test_written_dataset_loads_with_mmrec(tmp_path, tiny):
    start = time.perf_counter()
    directory = write_planted(tmp_path, "tiny", preset="tiny")
    data = MMRecDataset(tmp_path, "tiny", log=False)[0]
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"tiny generation + load took {elapsed:.2f} s"
    assert directory == tmp_path / "tiny"

    table = tiny.interactions
    assert data[USER].num_nodes == tiny.num_users
    assert data[ITEM].num_nodes == tiny.num_items
    assert torch.equal(data[USER].original_id, torch.arange(tiny.num_users))
    for split, key in enumerate(["edge_index", "val_edge_index", "test_edge_index"]):
        expected = {tuple(r) for r in table[table[:, 4] == split][:, :2].tolist()}
        got = set(map(tuple, data[INTERACTS][key].t().tolist()))
        assert got == expected
    assert torch.equal(data[ITEM].x_text, torch.from_numpy(tiny.features["text"]))

    sidecar = json.loads((directory / "planted.json").read_text())
    assert sidecar["preset"] == "tiny" and sidecar["seed"] == 0
    assert sidecar["statistics"]["num_interactions"] == len(table)


def test_write_skips_up_to_date_and_protects_other_data(tmp_path):
    directory = write_planted(tmp_path, "d", preset="tiny", seed=0)
    inter = directory / "d.inter"
    seed0 = inter.read_bytes()

    def mark_old() -> None:  # a rewrite then shows as a newer modification time
        os.utime(inter, ns=(0, 0))

    def rewritten() -> bool:
        return inter.stat().st_mtime_ns != 0

    mark_old()
    write_planted(tmp_path, "d", preset="tiny", seed=0)
    assert not rewritten()

    # another planted dataset in the folder is replaced
    write_planted(tmp_path, "d", preset="tiny", seed=1)
    assert rewritten()
    assert json.loads((directory / "planted.json").read_text())["seed"] == 1
    seed1 = inter.read_bytes()
    assert seed1 != seed0

    # overwrite=True regenerates even an up-to-date dataset
    mark_old()
    write_planted(tmp_path, "d", preset="tiny", seed=1, overwrite=True)
    assert rewritten() and inter.read_bytes() == seed1

    # a sidecar of an older generator version is not trusted
    sidecar = json.loads((directory / "planted.json").read_text())
    sidecar["generator_version"] = -1
    (directory / "planted.json").write_text(json.dumps(sidecar))
    mark_old()
    write_planted(tmp_path, "d", preset="tiny", seed=1)
    assert rewritten()
    assert json.loads((directory / "planted.json").read_text())["generator_version"] >= 1

    # real data without a sidecar is never clobbered
    real = tmp_path / "real"
    real.mkdir()
    (real / "real.inter").write_text("userID\titemID\tx_label\n")
    with pytest.raises(FileExistsError, match=r"real\.inter without a planted\.json"):
        write_planted(tmp_path, "real", preset="tiny")
    assert (real / "real.inter").read_text() == "userID\titemID\tx_label\n"
    write_planted(tmp_path, "real", preset="tiny", overwrite=True)
    assert (real / "planted.json").is_file()


def test_text_only_config(tmp_path):
    assert PLANTED_PRESETS["xlarge_text"].modality_dims == {"text": 384}
    config = dataclasses.replace(PLANTED_PRESETS["tiny"], image_dim=0)
    directory = write_planted(tmp_path, "t", preset=config)
    assert not (directory / "image_feat.npy").exists()
    data = MMRecDataset(tmp_path, "t", modalities={"text": "text_feat.npy"}, log=False)
    assert set(data[0][ITEM].keys()) == {"num_nodes", "x_text"}
    # without modalities, the loader takes them from planted.json
    data = MMRecDataset(tmp_path, "t", log=False)
    assert data.modalities == {"text": "text_feat.npy"}
    with pytest.raises(FileNotFoundError, match="image_feat.npy"):
        MMRecDataset(tmp_path, "t", modalities={"image": "image_feat.npy"})


def test_bad_preset_and_config():
    with pytest.raises(ValueError, match="unknown planted preset 'nope'"):
        generate_planted("nope")
    with pytest.raises(ValueError, match="min_degree"):
        PlantedConfig(10, 100, 20, num_topics=2, image_dim=4, text_dim=4)


def test_sample_rows_follows_the_weights():
    rng = np.random.default_rng(0)
    weights = np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 2.0], [5.0, 4.0, 1.0]])
    rows = np.repeat(np.arange(3), 40_000)
    rng.shuffle(rows)
    picks = _sample_rows(weights, rows, np.random.default_rng(1))
    for row in range(3):
        frequency = np.bincount(picks[rows == row], minlength=3) / 40_000
        expected = weights[row] / weights[row].sum()
        np.testing.assert_allclose(frequency, expected, atol=0.01)
        assert (frequency[expected == 0] == 0).all()


def cosine_pairs(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (x[a] * x[b]).sum(axis=1)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    ranks = np.concatenate([positive, negative]).argsort().argsort()
    n = len(positive)
    return (ranks[:n].sum() - n * (n - 1) / 2) / (n * len(negative))


def test_planted_signal_text_above_image_above_chance(small):
    """Items two users' histories share are closer in feature space than
    random item pairs, clearly for text, less so for image."""
    rng = np.random.default_rng(0)
    table = small.interactions
    train = table[table[:, 4] == 0]
    users, items = train[:, 0], train[:, 1]  # sorted by user
    count = np.bincount(users, minlength=small.num_users)
    start = np.cumsum(count) - count
    chosen = rng.integers(0, small.num_users, 30_000)
    a = items[start[chosen] + rng.integers(0, count[chosen])]
    b = items[start[chosen] + rng.integers(0, count[chosen])]
    a, b = a[a != b], b[a != b]
    ra, rb = rng.integers(0, small.num_items, (2, len(a)))
    text, image = small.features["text"], small.features["image"]
    co_text, random_text = cosine_pairs(text, a, b), cosine_pairs(text, ra, rb)
    assert co_text.mean() > random_text.mean() + 0.03
    auc_text = auc(co_text, random_text)
    auc_image = auc(cosine_pairs(image, a, b), cosine_pairs(image, ra, rb))
    assert auc_image > 0.51
    assert auc_text > auc_image + 0.02


def test_text_features_find_held_out_long_tail_items(small):
    """A content-only recommender (user profile = mean text vector of the
    training items) must find held-out long-tail items far more often than
    chance; popularity cannot find them at all."""
    table = small.interactions
    num_users, num_items = small.num_users, small.num_items
    train, test = table[table[:, 4] == 0], table[table[:, 4] == 2]
    seen = torch.zeros(num_users, num_items)
    seen[train[:, 0], train[:, 1]] = 1.0
    text = torch.from_numpy(small.features["text"])
    text = text - text.mean(dim=0)
    text = text / text.norm(dim=1, keepdim=True)
    profile = seen @ text / seen.sum(dim=1, keepdim=True)
    scores = (profile @ text.t()).masked_fill(seen > 0, -float("inf"))
    top = scores.topk(20, dim=1).indices
    hit = torch.zeros(num_users, num_items, dtype=torch.bool)
    hit[torch.arange(num_users)[:, None], top] = True

    degree = np.bincount(table[:, 1], minlength=num_items)
    tail = np.argsort(-degree, kind="stable")[num_items // 5 :]
    is_tail = np.zeros(num_items, dtype=bool)
    is_tail[tail] = True
    tail_test = test[is_tail[test[:, 1]]]
    assert len(tail_test) > 0.3 * len(test)  # long-tail items matter
    hit_rate = hit[tail_test[:, 0], tail_test[:, 1]].float().mean().item()
    chance = 20 / (num_items - seen.sum(dim=1).mean().item())
    assert hit_rate > 3 * chance, (hit_rate, chance)
