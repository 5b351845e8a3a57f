import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData


def make_random_data(num_users=30, num_items=20, dims=None, per_user=4, seed=0):
    """A small random HeteroData in dreamgeo's schema: every user has `per_user`
    distinct items, the first `per_user - 2` for training, one valid and one test."""
    dims = dims or {"image": 12, "text": 6}
    rng = np.random.default_rng(seed)
    items = np.stack([rng.choice(num_items, per_user, replace=False) for _ in range(num_users)])
    users = np.repeat(np.arange(num_users), per_user).reshape(num_users, per_user)
    data = HeteroData()
    data["user"].num_nodes = num_users
    data["item"].num_nodes = num_items
    store = data["user", "interacts", "item"]
    pair = lambda cols: torch.as_tensor(  # noqa: E731
        np.stack([users[:, cols].ravel(), items[:, cols].ravel()]), dtype=torch.long
    )
    store.edge_index = pair(slice(0, per_user - 2))
    store.val_edge_index = pair(slice(per_user - 2, per_user - 1))
    store.test_edge_index = pair(slice(per_user - 1, per_user))
    for name, dim in dims.items():
        x = rng.normal(size=(num_items, dim)).astype(np.float32)
        if name == "image":
            x = np.abs(x) * 10
        data["item"][f"x_{name}"] = torch.from_numpy(x)
    return data


@pytest.fixture
def random_data():
    return make_random_data()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A DREAM run of 2 epochs on the planted tiny preset (one per test module)."""
    from dreamgeo.commands.main import main

    root = tmp_path_factory.mktemp("tiny-run")
    run_dir = root / "run"
    argv = ["train", "--preset", "tiny", "--epochs", "2", "--out-dir", str(run_dir)]
    assert main([*argv, "--data-root", str(root / "data"), "--no-progress"]) == 0
    return run_dir


@pytest.fixture(scope="module")
def tiny_export(tiny_run):
    """The ``dreamgeo export`` folder of :func:`tiny_run`."""
    from dreamgeo.commands.main import main

    out = tiny_run.parent / "export"
    assert main(["export", "--run-dir", str(tiny_run), "--out", str(out)]) == 0
    return out
