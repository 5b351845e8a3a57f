import math

import numpy as np
import pytest
import torch
from torch_geometric.metrics import (
    LinkPredMAP,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from dreamgeo.train.evaluate import METRIC_NAMES, FullRankEvaluator, format_metrics_table

KS = (1, 3, 5, 10, 20)


def reference_metrics(scores, train, heldout, ks):
    r"""Per-user loop over the definitions of MMRec's ``metrics.py``: the user's
    training items are excluded from the ranking; only users with a held-out
    item count."""
    num_users = scores.shape[0]
    totals = {f"{m}@{k}": 0.0 for m in METRIC_NAMES for k in ks}
    counted = 0
    for user in range(num_users):
        targets = heldout.get(user, set())
        if not targets:
            continue
        counted += 1
        seen = train.get(user, set())
        candidates = [item for item in np.argsort(-scores[user], kind="stable") if item not in seen]
        relevant = [1.0 if item in targets else 0.0 for item in candidates[: max(ks)]]
        relevant += [0.0] * (max(ks) - len(relevant))  # short lists never hit
        for k in ks:
            top = relevant[:k]
            hits = sum(top)
            dcg = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(top))
            idcg = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(targets), k)))
            average_precision = sum(
                sum(top[: rank + 1]) / (rank + 1) * rel for rank, rel in enumerate(top)
            ) / min(len(targets), k)
            totals[f"recall@{k}"] += hits / len(targets)
            totals[f"ndcg@{k}"] += dcg / idcg
            totals[f"precision@{k}"] += hits / k
            totals[f"map@{k}"] += average_precision
    return {name: value / max(counted, 1) for name, value in totals.items()}


def as_sets(edge_index):
    sets = {}
    for user, item in edge_index.t().tolist():
        sets.setdefault(user, set()).add(item)
    return sets


def random_problem(seed, num_users=70, num_items=40, leak=False, short_lists=False):
    r"""Random scores and random disjoint train/valid/test splits with users
    without held-out items, users with fewer and with more held-out items than
    the cut-offs."""
    generator = torch.Generator().manual_seed(seed)
    density = torch.rand(num_users, 1, generator=generator) * 0.5
    adjacency = torch.rand(num_users, num_items, generator=generator) < density
    adjacency[4] = torch.rand(num_items, generator=generator) < 0.8  # many held-out items
    if short_lists:
        adjacency[0, :-3] = True  # 3 unmasked items < max K
        adjacency[1, :] = True
        adjacency[1, :5] = False
    user, item = adjacency.nonzero().t()
    split = torch.randint(0, 10, (user.numel(),), generator=generator)
    split[user == 2] = 0  # user 2 has nothing held out
    split[(user == 3) & (split == 9)] = 8  # user 3: valid only
    split[user == 4] = torch.where(split[user == 4] <= 1, 0, 9)  # user 4: many test items
    train = torch.stack([user[split <= 7], item[split <= 7]])
    valid = torch.stack([user[split == 8], item[split == 8]])
    test = torch.stack([user[split == 9], item[split == 9]])
    if leak:  # held-out pairs that are also training pairs, and duplicates
        valid = torch.cat([valid, train[:, :7], valid[:, :3]], 1)
    scores = torch.randn(num_users, num_items, generator=generator, dtype=torch.float64)
    return scores, train, {"valid": valid, "test": test}


def check_against_reference(result, scores, train, splits, ks):
    train_sets = as_sets(train)
    for name, edge_index in splits.items():
        expected = reference_metrics(scores.numpy(), train_sets, as_sets(edge_index), ks)
        assert set(result[name]) == set(expected)
        for metric, value in expected.items():
            assert result[name][metric] == pytest.approx(value, abs=1e-6), (name, metric)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("leak, short_lists", [(False, False), (True, True)])
def test_matches_brute_force_reference(seed, leak, short_lists):
    scores, train, splits = random_problem(seed, leak=leak, short_lists=short_lists)
    num_users, num_items = scores.shape
    counts = {name: torch.bincount(e[0], minlength=num_users) for name, e in splits.items()}
    assert (counts["valid"] == 0).any() and (counts["test"] == 0).any()
    assert (counts["test"] > max(KS)).any()
    assert ((counts["valid"] > 0) & (counts["valid"] < 3)).any()

    evaluator = FullRankEvaluator(train, splits, num_users, num_items, ks=KS, batch_size=16)
    result = evaluator.evaluate_scores(lambda users: scores[users].clone())
    check_against_reference(result, scores, train, splits, KS)


def test_matches_pyg_link_pred_metrics():
    r"""PyG's Recall, NDCG (unweighted: IDCG over min(|T_u|, K) ideal hits, the
    same as MMRec), Precision and MAP (divided by min(|T_u|, K)) all agree with
    MMRec's definitions, on the same top-K lists."""
    scores, train, splits = random_problem(5, num_users=90)
    num_users, num_items = scores.shape
    evaluator = FullRankEvaluator(train, splits, num_users, num_items, ks=KS)
    result = evaluator.evaluate_scores(lambda users: scores[users].clone())

    masked = scores.clone()
    masked[train[0], train[1]] = float("-inf")
    top = masked.topk(max(KS), dim=1).indices
    for name, edge_index in splits.items():
        for k in KS:
            for metric_class, metric in [
                (LinkPredRecall, "recall"),
                (LinkPredNDCG, "ndcg"),
                (LinkPredPrecision, "precision"),
                (LinkPredMAP, "map"),
            ]:
                pyg_metric = metric_class(k)
                pyg_metric.update(top, edge_index)
                expected = float(pyg_metric.compute())
                assert result[name][f"{metric}@{k}"] == pytest.approx(expected, abs=1e-6)


def test_batch_size_invariance():
    scores, train, splits = random_problem(3)
    num_users, num_items = scores.shape
    results = [
        FullRankEvaluator(train, splits, num_users, num_items, ks=KS, batch_size=b).evaluate_scores(
            lambda users: scores[users].clone()
        )
        for b in (1, 7, 1000)
    ]
    for other in results[1:]:
        for name in splits:
            for metric, value in results[0][name].items():
                assert other[name][metric] == pytest.approx(value, abs=1e-12)


def test_training_items_never_in_top_k():
    scores, train, splits = random_problem(4)
    num_users, num_items = scores.shape
    boosted = scores.clone()
    boosted[train[0], train[1]] += 100.0  # unmasked, training items would win
    evaluator = FullRankEvaluator(train, splits, num_users, num_items, ks=(5, 10))
    users = torch.arange(num_users)
    top = evaluator.top_items(lambda u: boosted[u], users)
    assert top.shape == (num_users, 10)
    train_sets = as_sets(train)
    for user in range(num_users):
        assert not set(top[user].tolist()) & train_sets.get(user, set())
    # The same ranking as sorting the unmasked rest by hand.
    masked = scores.clone()
    masked[train[0], train[1]] = float("-inf")
    assert torch.equal(top, masked.topk(10, dim=1).indices)
    # The caller's tensor was not modified (the view was copied before masking).
    assert torch.isfinite(boosted).all()


def test_held_out_items_ranked_first_give_perfect_recall():
    scores, train, splits = random_problem(6)
    num_users, num_items = scores.shape
    oracle = torch.zeros(num_users, num_items, dtype=torch.float64)
    oracle[train[0], train[1]] = 10.0  # must be masked to reach recall 1
    oracle[splits["test"][0], splits["test"][1]] = 1.0
    evaluator = FullRankEvaluator(train, {"test": splits["test"]}, num_users, num_items, ks=(20,))
    result = evaluator.evaluate_scores(lambda users: oracle[users].clone())["test"]
    assert result["ndcg@20"] == pytest.approx(1.0)
    counts = torch.bincount(splits["test"][0], minlength=num_users)
    counts = counts[counts > 0].double()
    assert result["recall@20"] == pytest.approx(float((counts.clamp(max=20) / counts).mean()))


def test_evaluate_scores_equals_evaluate_for_dot_products():
    _, train, splits = random_problem(7)
    num_users, num_items = 70, 40
    generator = torch.Generator().manual_seed(0)
    user_emb = torch.randn(num_users, 8, generator=generator)
    item_emb = torch.randn(num_items, 8, generator=generator)
    evaluator = FullRankEvaluator(train, splits, num_users, num_items, ks=KS, batch_size=9)
    before = user_emb.clone(), item_emb.clone()
    # batches of 9 users share one score buffer (the last one a 7-row slice of it)
    direct = evaluator.evaluate(user_emb, item_emb)
    assert torch.equal(user_emb, before[0]) and torch.equal(item_emb, before[1])
    through_fn = evaluator.evaluate_scores(lambda users: user_emb[users] @ item_emb.t())
    assert direct == through_fn
    check_against_reference(direct, (user_emb @ item_emb.t()).double(), train, splits, KS)


def test_accumulate_over_halves_sums_to_full():
    scores, train, splits = random_problem(8)
    num_users, num_items = scores.shape
    evaluator = FullRankEvaluator(train, splits, num_users, num_items, ks=KS, batch_size=5)

    def score_fn(users):
        return scores[users].clone()

    users = evaluator.eval_users
    sums, counts = evaluator.accumulate(score_fn)
    first_sums, first_counts = evaluator.accumulate(score_fn, users[::2])
    second_sums, second_counts = evaluator.accumulate(score_fn, users[1::2])
    assert torch.allclose(first_sums + second_sums, sums, atol=1e-12)
    assert torch.equal(first_counts + second_counts, counts)
    assert sums.shape == (2, len(METRIC_NAMES) * len(KS))
    assert evaluator.metric_names[0] == "recall@1"

    expected_counts = [
        int((torch.bincount(e[0], minlength=num_users) > 0).sum()) for e in splits.values()
    ]
    assert counts.tolist() == expected_counts
    full = evaluator.evaluate_scores(score_fn)
    for s, name in enumerate(evaluator.split_names):
        for m, metric in enumerate(evaluator.metric_names):
            assert full[name][metric] == pytest.approx(float(sums[s, m] / counts[s]))


def test_users_without_held_out_items_add_nothing():
    scores, train, splits = random_problem(9)
    num_users, num_items = scores.shape
    evaluator = FullRankEvaluator(train, splits, num_users, num_items, ks=KS)
    idle = torch.tensor(sorted(set(range(num_users)) - set(evaluator.eval_users.tolist())))
    assert idle.numel() > 0
    sums, counts = evaluator.accumulate(lambda users: scores[users].clone(), idle)
    assert not sums.any() and not counts.any()
    empty_sums, _ = evaluator.accumulate(lambda users: scores[users], idle[:0])
    assert empty_sums.shape == sums.shape and not empty_sums.any()


def _distributed_worker(rank, world_size, init_file, problem, queue):
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    scores, train, splits = problem
    evaluator = FullRankEvaluator(train, splits, *scores.shape, ks=KS, batch_size=4)
    seen = []

    def score_fn(users):
        seen.append(users.clone())
        return scores[users].clone()

    result = evaluator.evaluate_scores(score_fn, distributed=True)
    queue.put((rank, result, torch.cat(seen).tolist()))
    torch.distributed.destroy_process_group()


def test_distributed_evaluation_matches_single_process(tmp_path):
    import torch.multiprocessing as mp

    problem = random_problem(10)
    scores, train, splits = problem
    expected = FullRankEvaluator(train, splits, *scores.shape, ks=KS).evaluate_scores(
        lambda users: scores[users].clone()
    )
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(
        _distributed_worker,
        args=(2, str(tmp_path / "init"), problem, queue),
        nprocs=2,
        start_method="spawn",
    )
    outputs = sorted(queue.get() for _ in range(2))
    assert not set(outputs[0][2]) & set(outputs[1][2])  # each user scored once
    for _, result, _ in outputs:
        for name in splits:
            for metric, value in expected[name].items():
                assert result[name][metric] == pytest.approx(value, abs=1e-12)


def test_format_metrics_table():
    results = {
        "valid": {"recall@10": 0.1, "recall@20": 0.2, "ndcg@10": 0.05, "ndcg@20": 0.0612345},
        "test": {"recall@10": 0.3, "recall@20": 0.4, "ndcg@10": 0.06, "ndcg@20": 0.07},
    }
    table = format_metrics_table(results)
    lines = table.splitlines()
    assert lines[0] == "| split | recall@10 | recall@20 | ndcg@10 | ndcg@20 |"
    assert lines[2] == "| valid | 0.1000 | 0.2000 | 0.0500 | 0.0612 |"
    assert lines[3].startswith("| test | 0.3000")
    with pytest.raises(KeyError, match="map@10"):
        format_metrics_table(results, metrics=("map",))
    short = format_metrics_table(results, short=True).splitlines()
    assert short[0] == "| split | R@10 | R@20 | N@10 | N@20 |"
    assert short[1:] == lines[1:]


def test_invalid_arguments_are_reported():
    train = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="exceeds the number of items"):
        FullRankEvaluator(train, {"test": train}, 2, 5, ks=(10,))
    with pytest.raises(ValueError, match="outside"):
        FullRankEvaluator(torch.tensor([[0], [7]]), {"test": train}, 2, 5, ks=(1,))
    evaluator = FullRankEvaluator(train, {"test": torch.tensor([[0], [3]])}, 2, 5, ks=(1,))
    with pytest.raises(ValueError, match="expected \\[1, 5\\]"):
        evaluator.evaluate_scores(lambda users: torch.zeros(len(users), 4))
    with pytest.raises(ValueError, match="embeddings cover"):
        evaluator.evaluate(torch.zeros(3, 2), torch.zeros(5, 2))
