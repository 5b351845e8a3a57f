"""Shared by the export, batch-recommend and service tests: a tiny trained run and a
ranking comparison that allows ties to come in either order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dreamgeo.commands.main import main


def train_tiny_run(root: Path, *extra: str) -> Path:
    """A DREAM run of 2 epochs on the planted tiny preset under ``root``."""
    run_dir = root / "run"
    argv = ["train", "--preset", "tiny", "--epochs", "2", "--out-dir", str(run_dir)]
    argv += ["--data-root", str(root / "data"), "--no-progress", *extra]
    assert main(argv) == 0
    return run_dir


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
