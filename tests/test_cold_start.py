"""Cold-start items: the hold-out split, DREAM's feature path for new items, the
content fold-in and feature-similarity baselines, and their metrics."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_random_data
from torch_geometric.data import HeteroData

from dreamgeo import DREAM
from dreamgeo.train import BPRSampler
from dreamgeo.train.cold_start import (
    content_fold_in,
    evaluate_cold,
    feature_similarity_embeddings,
    hold_out_items,
)


def test_hold_out_items_removes_every_interaction_of_the_held_out_items():
    data = make_random_data(num_users=30, num_items=20)
    warm, cold = hold_out_items(data, 0.2, seed=3)
    assert cold.items.numel() == 4 and warm["item"].num_nodes == 16
    assert torch.equal(
        torch.sort(torch.cat([cold.items, cold.warm_items])).values, torch.arange(20)
    )
    store, new = data["user", "interacts", "item"], warm["user", "interacts", "item"]
    total = 0
    for key in ("edge_index", "val_edge_index", "test_edge_index"):
        user, item = store[key]
        kept = ~torch.isin(item, cold.items)
        # the kept interactions, renumbered, in order
        assert torch.equal(new[key][0], user[kept])
        assert torch.equal(cold.warm_items[new[key][1]], item[kept])
        total += int(kept.sum())
    everything = sum(store[k].size(1) for k in ("edge_index", "val_edge_index", "test_edge_index"))
    assert total + cold.edge_index.size(1) == everything
    assert torch.isin(cold.items[cold.edge_index[1]], cold.items).all()
    torch.testing.assert_close(cold.features["image"], data["item"].x_image[cold.items])
    again = hold_out_items(data, 0.2, seed=3)[1]
    assert torch.equal(again.items, cold.items)
    with pytest.raises(ValueError, match="fraction must be in"):
        hold_out_items(data, 1.0)


def test_feature_similarity_is_the_mean_cosine_to_the_users_items():
    data = make_random_data(num_users=6, num_items=10)
    train = data["user", "interacts", "item"].edge_index
    warm = {m: data["item"][f"x_{m}"] for m in ("image", "text")}
    new = {"image": torch.randn(3, 12), "text": torch.randn(3, 6)}
    weights = {"image": 0.3, "text": 0.7}
    users, items = feature_similarity_embeddings(train, 6, warm, new, weights)
    scores = users @ items.t()
    for u in range(6):
        seen = train[1, train[0] == u]
        for c in range(3):
            expected = sum(
                w * F.cosine_similarity(warm[m][seen], new[m][c : c + 1]).mean()
                for m, w in weights.items()
            )
            assert scores[u, c].item() == pytest.approx(float(expected), rel=1e-5, abs=1e-6)


def test_evaluate_cold_against_a_hand_count():
    # 2 users, 3 cold items; user 0 likes item 2, user 1 likes items 0 and 1
    cold = hold_out_items(make_random_data(), 0.15)[1]
    cold.edge_index = torch.tensor([[0, 1, 1], [2, 0, 1]])
    user_emb = torch.tensor([[1.0], [-1.0]])
    item_emb = torch.tensor([[3.0], [2.0], [1.0]])  # user 0: 0, 1, 2; user 1: 2, 1, 0
    result = evaluate_cold(torch.cat([user_emb, torch.zeros(28, 1)]), item_emb, cold, ks=(1, 2))
    # recall@1: user 0 misses (0 / 1), user 1 misses (item 2 first): 0
    assert result["recall@1"] == pytest.approx(0.0)
    # recall@2: user 0 still misses, user 1 finds item 1 (1 of 2): mean 0.25
    assert result["recall@2"] == pytest.approx(0.25)
    ndcg_user1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert result["ndcg@2"] == pytest.approx(ndcg_user1 / 2)


def _two_taste_data(seed=0):
    """Items in two content clusters; users 0-19 buy only cluster A, 20-39 only B."""
    g = torch.Generator().manual_seed(seed)
    centre = {"image": torch.randn(2, 16, generator=g), "text": torch.randn(2, 8, generator=g)}
    cluster = torch.arange(30) % 2
    data = HeteroData()
    data["user"].num_nodes, data["item"].num_nodes = 40, 30
    for m, c in centre.items():
        data["item"][f"x_{m}"] = c[cluster] + 0.3 * torch.randn(30, c.size(1), generator=g)
    users = torch.arange(40).repeat_interleave(6)
    taste = (users >= 20).long()
    items = torch.stack([(torch.randperm(15, generator=g)[:6] * 2 + t) for t in taste[::6]]).view(
        -1
    )
    data["user", "interacts", "item"].edge_index = torch.stack([users, items])
    return data, centre


def test_a_cold_item_reaches_the_fans_of_its_content_neighbours_first():
    data, centre = _two_taste_data()
    torch.manual_seed(0)
    model = DREAM(data, knn_k=5, embedding_dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    sampler = BPRSampler(
        data["user", "interacts", "item"].edge_index, 40, 30, batch_size=64, seed=0
    )
    for _ in range(30):
        for users, pos, neg in sampler.epoch():
            loss, _ = model.loss(users, pos, neg)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    g = torch.Generator().manual_seed(9)
    new = {m: c[:1] + 0.3 * torch.randn(1, c.size(1), generator=g) for m, c in centre.items()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = model.cold_item_embeddings(new)
    torch.testing.assert_close(model.cold_item_embeddings(new), first)  # deterministic
    for key, value in model.state_dict().items():  # and the model is unchanged
        torch.testing.assert_close(value, state[key])
    with torch.no_grad():
        user_emb, item_emb = model()
    scores = (user_emb @ first.t()).view(-1)
    ranked = scores.argsort(descending=True)
    # a cluster-A item: the 20 users who buy cluster A come first
    assert set(ranked[:20].tolist()) == set(range(20))
    # the generic fold-in agrees
    warm = {m: data["item"][f"x_{m}"] for m in centre}
    fold = content_fold_in(item_emb, warm, new, model.modal_weights, k=5)
    assert set((user_emb @ fold.t()).view(-1).argsort(descending=True)[:20].tolist()) == set(
        range(20)
    )


def test_cold_item_embeddings_refuse_bad_features():
    model = DREAM(make_random_data(), knn_k=3, embedding_dim=8)
    with pytest.raises(ValueError, match=r"features of \['text'\] are missing"):
        model.cold_item_embeddings({"image": torch.randn(2, 12)})
    with pytest.raises(ValueError, match=r"features\['text'\] must be \[K, 6\]"):
        model.cold_item_embeddings({"image": torch.randn(2, 12), "text": torch.randn(2, 5)})
    bad = torch.randn(2, 6)
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite values .* row 1"):
        model.cold_item_embeddings({"image": torch.randn(2, 12), "text": bad})


def test_train_cold_items_flag_reports_every_path(tmp_path, capsys):
    import json

    from dreamgeo.commands.main import main

    out = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--data-root", str(tmp_path / "data"), "--epochs", "1"]
    assert main([*argv, "--cold-items", "0.2", "--out-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| method | R@10 | R@20 | N@10 | N@20 |" in printed
    assert "| DREAM: its modal path |" in printed
    result = json.loads((out / "result.json").read_text())["cold_items"]
    run = json.loads((out / "run.json").read_text())
    assert run["cold_items"] == 0.2
    for key in ("own_path", "content_fold_in", "feature_similarity"):
        assert 0.0 <= result[key]["recall@20"] <= 1.0
    assert result["fraction_items"] > 0 and result["interactions"] > 0


def test_export_add_items_makes_new_items_recommendable(tiny_run, tmp_path):
    import numpy as np

    from dreamgeo.commands.common import load_run
    from dreamgeo.commands.main import main
    from dreamgeo.serve import load_export

    model, data = load_run(tiny_run)
    # two new items whose features copy trained items 3 and 5
    x = {m: data["item"][f"x_{m}"][[3, 5]].numpy() for m in ("image", "text")}
    path = tmp_path / "new.npz"
    np.savez(path, ids=np.array(["NEW-A", "NEW-B"]), **x)
    out = tmp_path / "export"
    assert (
        main(["export", "--run-dir", str(tiny_run), "--out", str(out), "--add-items", str(path)])
        == 0
    )
    exported = load_export(out)
    assert exported.manifest["added_items"] == {"count": 2, "method": "modal path"}
    num_items = data["item"].num_nodes
    assert exported.manifest["num_items"] == num_items + 2
    assert list(exported.item_map.original[-2:]) == ["NEW-A", "NEW-B"]
    expected = model.cold_item_embeddings({m: torch.from_numpy(v) for m, v in x.items()})
    rows = np.load(out / "item_embeddings.npy")
    np.testing.assert_allclose(rows[num_items:], expected.numpy(), rtol=1e-5, atol=1e-6)
    # recommendable at once: a user whose best trained item is 3 scores NEW-A like it
    users = np.load(out / "user_embeddings.npy")
    scores = users @ rows.T
    assert np.corrcoef(scores[:, 3], scores[:, num_items])[0, 1] > 0.5

    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.array(["N1"]), image=x["image"][:1], text=x["text"][:1, :3])
    with pytest.raises(SystemExit):
        main(
            [
                "export",
                "--run-dir",
                str(tiny_run),
                "--out",
                str(tmp_path / "e2"),
                "--add-items",
                str(bad),
            ]
        )
    assert not (tmp_path / "e2").exists()
