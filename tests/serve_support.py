"""Shared by the export, batch-recommend and service tests: the evaluator's top-k of a
run and a ranking comparison that allows ties to come in either order."""

from __future__ import annotations

import numpy as np
import torch


def evaluator_top_items(model, data, k: int) -> np.ndarray:
    """Every user's top-k by the trainer's evaluator (training items masked)."""
    from dreamgeo.train import FullRankEvaluator

    store = data["user", "interacts", "item"]
    user_emb, item_emb = model.eval().embeddings()
    evaluator = FullRankEvaluator(
        store.edge_index,
        {"valid": store.val_edge_index, "test": store.test_edge_index},
        user_emb.size(0),
        item_emb.size(0),
        ks=(k,),
    )
    users = torch.arange(user_emb.size(0))
    return evaluator.top_items(lambda u: user_emb[u] @ item_emb.t(), users, k).numpy()


def assert_same_ranking(found, expected, users, items, atol=1e-5) -> None:
    """``found`` and ``expected`` item lists ``[U, k]`` rank the same, up to the order
    of items whose scores (rows of ``users`` against ``items``) tie within ``atol``."""
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape
    scores = np.asarray(users, dtype=np.float64) @ np.asarray(items, dtype=np.float64).T
    rows = np.arange(found.shape[0])[:, None]
    np.testing.assert_allclose(scores[rows, found], scores[rows, expected], atol=atol, rtol=0)
    differ = (found != expected).mean()
    assert differ < 0.05, f"{differ:.1%} of the positions differ"
