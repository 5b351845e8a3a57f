"""dreamgeo serve: the FastAPI service of an export, in process with FastAPI's
TestClient: every endpoint, every error code, original ids; the command's wiring."""

import json
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from dreamgeo.commands.main import build_parser, main  # noqa: E402
from dreamgeo.serve import create_app, export_arrays, load_export, recommend_batches  # noqa: E402


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A small export with string ids: 6 users, 12 items, known seen items."""
    rng = np.random.default_rng(0)
    users = [f"user-{name}" for name in ("ann", "bob", "cy", "dee", "eve", "fay")]
    items = [f"SKU {i:02d}" for i in range(12)]
    seen = np.array([[0, 0, 1, 5, 5, 5], [3, 7, 0, 1, 2, 11]])
    exported = export_arrays(
        rng.normal(size=(6, 8)), rng.normal(size=(12, 8)), seen, np.array(users), np.array(items)
    )
    out = tmp_path_factory.mktemp("shop") / "export"
    exported.save(out)
    return load_export(out, in_memory=True), users, items, seen


def _items(answer):
    return [entry["item"] for entry in answer["items"]]


def test_recommend_speaks_original_ids_and_excludes_seen_items(shop):
    exported, users, items, seen = shop
    client = TestClient(create_app(exported))
    scores = exported.user_rows(np.arange(6)) @ exported.item_embeddings.T
    for u, user in enumerate(users):
        answer = client.get("/recommend", params={"user": user, "k": 4})
        assert answer.status_code == 200
        body = answer.json()
        assert body["user"] == user and body["k"] == 4
        masked = scores[u].copy()
        masked[seen[1, seen[0] == u]] = -np.inf
        best = np.argsort(-masked)[:4]
        assert _items(body) == [items[i] for i in best]
        np.testing.assert_allclose([e["score"] for e in body["items"]], masked[best], rtol=1e-5)
    # every unseen item when k asks for all of them: none of the seen ones
    body = client.get("/recommend", params={"user": "user-fay", "k": 12}).json()
    assert len(body["items"]) == 9 and not {"SKU 01", "SKU 02", "SKU 11"} & set(_items(body))
    # a batch answers as the single requests do, in the order asked
    batch = client.post("/recommend", json={"users": ["user-eve", "user-ann"], "k": 3})
    assert batch.status_code == 200 and batch.json()["k"] == 3
    asked = ["user-eve", "user-ann"]
    single = [client.get("/recommend", params={"user": u, "k": 3}).json() for u in asked]
    assert batch.json()["results"] == single
    # the default k is 20, capped at the catalogue
    assert len(client.get("/recommend", params={"user": "user-cy"}).json()["items"]) == 12


def test_similar_health_and_metadata(shop):
    exported, users, items, _ = shop
    client = TestClient(create_app(exported, method="matmul"))
    body = client.get("/similar", params={"item": "SKU 04", "k": 5}).json()
    rows = exported.item_embeddings
    scores = rows @ rows[4]
    scores[4] = -np.inf
    assert body["item"] == "SKU 04" and _items(body) == [items[i] for i in np.argsort(-scores)[:5]]
    assert client.get("/health").json() == {"status": "ok", "num_users": 6, "num_items": 12}
    metadata = client.get("/metadata").json()
    assert metadata == json.loads((exported.path / "manifest.json").read_text())
    assert metadata["index"]["kind"] == "flat"


def test_errors_name_the_id_and_bad_k_is_422(shop):
    exported, *_ = shop
    client = TestClient(create_app(exported, max_batch=3))
    answer = client.get("/recommend", params={"user": "mallory"})
    assert answer.status_code == 404 and "unknown user id 'mallory'" in answer.json()["detail"]
    answer = client.post("/recommend", json={"users": ["user-ann", "zed"], "k": 2})
    assert answer.status_code == 404 and "'zed'" in answer.json()["detail"]
    answer = client.get("/similar", params={"item": "SKU 99"})
    assert answer.status_code == 404 and "unknown item id 'SKU 99'" in answer.json()["detail"]
    for params in ({"k": 0}, {"k": 13}, {"k": "many"}, {"k": -1}):
        assert client.get("/recommend", params={"user": "user-ann", **params}).status_code == 422
    assert client.get("/recommend").status_code == 422  # no user
    assert client.get("/similar", params={"item": "SKU 00", "k": 12}).status_code == 422
    for body in (
        {"users": ["user-ann"] * 4, "k": 2},  # more than max_batch
        {"users": [], "k": 2},
        {"users": ["user-ann"], "k": 0},
        {"user": "user-ann"},
    ):
        assert client.post("/recommend", json=body).status_code == 422
    assert client.get("/nothing/here").status_code == 404


def test_service_of_a_trained_run_equals_batch_recommend(tiny_export):
    exported = load_export(tiny_export, in_memory=True)
    client = TestClient(create_app(exported))
    batch = next(recommend_batches(exported, 10, batch_size=40))
    ids = exported.user_map.to_original(batch.users).tolist()
    answer = client.post("/recommend", json={"users": ids, "k": 10}).json()["results"]
    for row, user, body in zip(batch.items, ids, answer):
        assert body["user"] == user
        assert _items(body) == exported.item_map.to_original(row).tolist()


def test_serve_command_binds_to_localhost_and_checks_its_input(
    tiny_run, tiny_export, tmp_path, monkeypatch, capsys
):
    args = build_parser().parse_args(["serve", "--export", str(tiny_export)])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    started = {}

    def fake_run(app, host, port, log_level):
        started.update(app=app, host=host, port=port)

    monkeypatch.setattr("uvicorn.run", fake_run)
    assert main(["serve", "--run-dir", str(tiny_run), "--port", "8123"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8123)
    client = TestClient(started["app"])
    assert client.get("/metadata").json()["model"] == "dream"
    assert main(["serve", "--export", str(tiny_export), "--run-dir", str(tiny_run)]) == 0
    # a file changed since the export, an export of other data: refused, naming it
    copy = tmp_path / "export"
    shutil.copytree(tiny_export, copy)
    (copy / "item_ids.npy").write_bytes((copy / "item_ids.npy").read_bytes()[:-4] + b"XXXX")
    with pytest.raises(SystemExit):
        main(["serve", "--export", str(copy)])
    assert "item_ids.npy: its SHA-256 does not match the manifest" in capsys.readouterr().err
    shutil.copy(tiny_export / "item_ids.npy", copy / "item_ids.npy")
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "data_checksum": "feed"}))
    with pytest.raises(SystemExit):
        main(["serve", "--export", str(copy), "--run-dir", str(tiny_run)])
    assert "data_checksum 'feed' in the export" in capsys.readouterr().err


def test_missing_fastapi_names_the_extra(tiny_export, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ImportError, match=r'pip install "dreamgeo\[serve\]"'):
        create_app(load_export(tiny_export))
    with pytest.raises(SystemExit):
        main(["serve", "--export", str(tiny_export)])
    assert 'pip install "dreamgeo[serve]"' in capsys.readouterr().err
