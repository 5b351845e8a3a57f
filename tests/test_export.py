"""dreamgeo export: representations, ids, seen items and the FAISS index of a trained
run, read back with every file checked; approximate indexes' recall; refusals."""

import json
import shutil

import faiss
import numpy as np
import pytest
import torch
from conftest import make_random_data
from serve_support import assert_same_ranking, evaluator_top_items

from dreamgeo.commands import load_run
from dreamgeo.commands.main import main
from dreamgeo.datasets.source import data_checksum
from dreamgeo.models import Recommender, build_model
from dreamgeo.serve import (
    EXPORTABLE_MODELS,
    ExportError,
    export_arrays,
    export_model,
    load_export,
    recall_queries,
    recommend_batches,
)
from dreamgeo.serve.exported import file_sha256


def _top_k(exported, k, **options):
    return np.concatenate([b.items for b in recommend_batches(exported, k, **options)])


def test_exported_top_k_equals_the_evaluators(tiny_run, tiny_export):
    model, data = load_run(tiny_run)
    expected = evaluator_top_items(model, data, 20)
    exported = load_export(tiny_export)
    # the exact product is the evaluator's computation: the same items in the same order
    np.testing.assert_array_equal(_top_k(exported, 20, batch_size=64), expected)
    user_rows, item_rows = (x.numpy() for x in model.embeddings())
    np.testing.assert_array_equal(exported.user_rows(slice(0, exported.num_users)), user_rows)
    np.testing.assert_array_equal(exported.item_embeddings, item_rows)
    # the flat FAISS index and item chunks: the same ranking up to ties
    by_index = _top_k(exported, 20, batch_size=50, method="index")
    assert_same_ranking(by_index, expected, user_rows, item_rows)
    chunked = _top_k(exported, 20, batch_size=300, item_batch_size=7)
    assert_same_ranking(chunked, expected, user_rows, item_rows)


def test_manifest_names_model_data_hparams_and_files(tiny_run, tiny_export):
    manifest = json.loads((tiny_export / "manifest.json").read_text())
    record = json.loads((tiny_run / "run.json").read_text())
    _, data = load_run(tiny_run)
    assert manifest["model"] == "dream" == record["model"]
    assert manifest["data_checksum"] == data_checksum(data) == record["data_checksum"]
    assert manifest["hparams"] == record["hparams"]
    assert manifest["dreamgeo_version"] and manifest["best_epoch"] in (1, 2)
    assert (manifest["num_users"], manifest["num_items"], manifest["dim"]) == (300, 200, 64)
    assert manifest["seen_interactions"] == data["user", "interacts", "item"].edge_index.size(1)
    assert manifest["index"]["kind"] == "flat" and manifest["index"]["recall"]["value"] == 1.0
    for name, entry in manifest["files"].items():
        assert file_sha256(tiny_export / name) == entry["sha256"]
    # the seen items are the training items; ids are the dataset's (no mapping files)
    exported = load_export(tiny_export)
    edge_index = data["user", "interacts", "item"].edge_index
    assert set(exported.seen_of(4).tolist()) == set(edge_index[1, edge_index[0] == 4].tolist())
    np.testing.assert_array_equal(
        exported.user_map.original, data["user"].original_id.numpy().astype(str)
    )


def _catalogue(num_users=600, num_items=3000, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    items = centres[rng.integers(40, size=num_items)] + 0.3 * rng.normal(size=(num_items, dim))
    users = centres[rng.integers(40, size=num_users)] + 0.5 * rng.normal(size=(num_users, dim))
    return users.astype(np.float32), items.astype(np.float32)


@pytest.mark.parametrize(
    "kind, options", [("ivf", {"nlist": 50, "nprobe": 3}), ("hnsw", {"hnsw_m": 8, "ef_search": 16})]
)
def test_approximate_index_recall_is_measured_and_reproducible(tmp_path, kind, options):
    users, items = _catalogue()
    exported = export_arrays(users, items, index=kind, index_options=options, recall_sample=400)
    exported.save(tmp_path / kind)
    loaded = load_export(tmp_path / kind)
    recall = loaded.manifest["index"]["recall"]
    assert loaded.manifest["index"]["kind"] == kind and recall["queries"] == 400
    # recomputed independently: the documented query rule, brute force in float64,
    # and the index read back from the file
    queries = np.sort(np.random.default_rng(0).choice(600, 400, replace=False))
    np.testing.assert_array_equal(queries, recall_queries(600, 400, 0))
    exact = np.argsort(-(users[queries].astype(np.float64) @ items.T.astype(np.float64)), 1)
    index = faiss.read_index(str(tmp_path / kind / "items.faiss"))
    if kind == "hnsw":  # the documented search: the beam is raised to k
        index.hnsw.efSearch = max(index.hnsw.efSearch, 20)
    found = index.search(users[queries], 20)[1]
    hits = np.mean([len(set(f) & set(e[:20])) / 20 for f, e in zip(found, exact)])
    assert recall["value"] == pytest.approx(hits, abs=1e-9)
    assert 0.3 < recall["value"] < 1.0  # approximate, and measurably so
    # top-k through the index: every user gets k items; overlap with exact follows recall
    approx = _top_k(loaded, 20, method="index", batch_size=128)
    exact_top = _top_k(loaded, 20, batch_size=128)
    assert (approx >= 0).all()
    overlap = np.mean([len(set(a) & set(e)) / 20 for a, e in zip(approx, exact_top)])
    assert overlap >= recall["value"] - 0.05


def test_export_refuses_to_overwrite_and_leaves_nothing_half_written(
    tiny_run, tiny_export, tmp_path, capsys, monkeypatch
):
    with pytest.raises(SystemExit) as stop:
        main(["export", "--run-dir", str(tiny_run), "--out", str(tiny_export)])
    assert stop.value.code == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    users, items = _catalogue(50, 100, 8)
    exported = export_arrays(users, items)
    target = tmp_path / "out"
    exported.save(target)
    before = file_sha256(target / "user_embeddings.npy")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("dreamgeo.serve.exported.write_index", fail)
    with pytest.raises(OSError, match="disk full"):
        export_arrays(users * 2, items).save(target, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        exported.save(tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folders
    assert file_sha256(target / "user_embeddings.npy") == before
    monkeypatch.undo()
    export_arrays(users * 2, items).save(target, overwrite=True)
    assert file_sha256(target / "user_embeddings.npy") != before


def test_changed_or_corrupt_files_are_refused_naming_them(tiny_export, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_export, copy)
    data = bytearray((copy / "user_embeddings.npy").read_bytes())
    data[-5] ^= 0xFF
    (copy / "user_embeddings.npy").write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"user_embeddings\.npy: its SHA-256 does not match"):
        load_export(copy)
    shutil.copy(tiny_export / "user_embeddings.npy", copy / "user_embeddings.npy")
    (copy / "items.faiss").write_bytes(b"this is not a FAISS index" * 10)
    with pytest.raises(ExportError, match=r"items\.faiss"):
        load_export(copy)
    with pytest.raises(ExportError, match=r"items\.faiss: not a readable FAISS index"):
        load_export(copy, verify=False)
    shutil.copy(tiny_export / "items.faiss", copy / "items.faiss")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["num_users"] = 299
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"user_embeddings\.npy: shape \(300, 64\)"):
        load_export(copy, verify=False)
    np.save(copy / "user_ids.npy", np.array([{"a": 1}] * 300, dtype=object), allow_pickle=True)
    with pytest.raises(ExportError, match=r"user_ids\.npy: holds Python objects"):
        load_export(copy, verify=False)
    (copy / "manifest.json").unlink()
    with pytest.raises(ExportError, match="no manifest.json"):
        load_export(copy)


def test_every_registered_model_is_exportable_and_others_are_refused(random_data):
    from dreamgeo.models import MODELS

    assert set(MODELS) == EXPORTABLE_MODELS

    def __init__(self):
        Recommender.__init__(self, 30, 20)
        self.user = torch.nn.Parameter(torch.randn(30, 4))
        self.item = torch.nn.Parameter(torch.randn(20, 4))

    # a model of the user's own (its training methods do not matter here)
    methods = {name: lambda self, *args: None for name in Recommender.__abstractmethods__}
    methods.update(__init__=__init__, forward=lambda self: (self.user, self.item))
    Cosine = type("Cosine", (Recommender,), methods)

    with pytest.raises(ExportError, match="model 'Cosine': its scores are not known"):
        export_model(Cosine(), random_data)
    exported = export_model(Cosine(), random_data, inner_product=True)
    assert exported.manifest["model"] == "Cosine"


def test_dream_concat_and_item_bias_columns_are_exported(random_data):
    data = make_random_data(num_users=40, num_items=30, per_user=6)
    model = build_model("dream", data, {"fusion": "concat", "item_bias": True, "knn_k": 3})
    with torch.no_grad():
        model.item_bias.weight.normal_()
    exported = export_model(model, data)
    assert exported.dim == 2 * 64 + 1
    expected = model.recommend(k=10).numpy()
    user_rows, item_rows = (x.numpy() for x in model.embeddings())
    assert_same_ranking(_top_k(exported, 10), expected, user_rows, item_rows)
    assert_same_ranking(_top_k(exported, 10, method="index"), expected, user_rows, item_rows)
