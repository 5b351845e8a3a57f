import json

import pytest
import torch

from dreamgeo import DREAM
from dreamgeo.datasets import MMRecDataset, write_planted
from dreamgeo.models import LightGCN
from dreamgeo.train import TrainConfig, Trainer
from dreamgeo.train.trainer import CHECKPOINT_NAME


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_planted(root, "tiny", preset="tiny", seed=0)
    return MMRecDataset(root, "tiny")[0]


def _untrained_recall(model, data):
    trainer = Trainer(model, data, TrainConfig(epochs=1, progress=False))
    return trainer.evaluate()["valid"]["recall@20"]


@pytest.mark.parametrize("name", ["lightgcn", "dream"])
def test_training_improves_valid_recall_well_above_untrained(tiny, name):
    torch.manual_seed(0)
    if name == "dream":
        model = DREAM(tiny, knn_k=5)
        config = TrainConfig(epochs=15, batch_size=256, lr=5e-3, patience=15, progress=False)
    else:
        model = LightGCN.from_data(tiny)
        config = TrainConfig(epochs=15, batch_size=256, lr=5e-3, patience=15, progress=False)
    before = _untrained_recall(model, tiny)
    result = Trainer(model, tiny, config).fit()
    assert result.valid["recall@20"] > 1.5 * before + 0.02, (before, result.valid)
    assert result.test["recall@20"] > before


def test_best_epoch_is_restored_and_logs_written(tiny, tmp_path):
    torch.manual_seed(0)
    model = LightGCN.from_data(tiny)
    config = TrainConfig(epochs=6, batch_size=256, lr=5e-3, out_dir=str(tmp_path), progress=False)
    trainer = Trainer(model, tiny, config)
    result = trainer.fit()
    best_row = result.history[result.best_epoch - 1]
    assert best_row["valid_recall@20"] == max(r["valid_recall@20"] for r in result.history)
    now = trainer.evaluate()
    assert now["valid"]["recall@20"] == pytest.approx(result.valid["recall@20"])
    assert now["test"]["ndcg@20"] == pytest.approx(result.test["ndcg@20"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 7))
    assert {"loss", "bpr", "reg", "valid_recall@20", "test_ndcg@10"} <= set(json.loads(lines[0]))
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 7
    assert (tmp_path / CHECKPOINT_NAME).exists()


def test_early_stopping_counts_patience(tiny):
    torch.manual_seed(0)
    model = LightGCN.from_data(tiny)
    # a learning rate this small never improves Recall@20 after the first epochs
    config = TrainConfig(epochs=200, batch_size=4096, lr=1e-7, patience=3, progress=False)
    result = Trainer(model, tiny, config).fit()
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 3


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny, tmp_path):
    def run(out_dir, epochs, resume=False, init_seed=0):
        torch.manual_seed(init_seed)
        model = DREAM(tiny, knn_k=5)
        config = TrainConfig(
            epochs=epochs,
            batch_size=256,
            lr=5e-3,
            out_dir=str(out_dir),
            resume=resume,
            progress=False,
            seed=3,
        )
        return Trainer(model, tiny, config).fit()

    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 4, resume=True, init_seed=123)  # init is overwritten
    keys = ["loss", "valid_recall@20", "test_ndcg@20"]
    assert [[r[k] for k in keys] for r in resumed.history] == [
        [r[k] for k in keys] for r in straight.history
    ]
    assert resumed.best_epoch == straight.best_epoch


def test_lr_decay_sets_each_epochs_rate_and_resumes_the_schedule(tiny, tmp_path):
    seen = []

    class Recorder(LightGCN):
        def start_epoch(self, epoch):
            seen.append((epoch, trainer.optimizer.param_groups[0]["lr"]))

    def config(epochs, **kwargs):
        return TrainConfig(
            epochs=epochs, batch_size=4096, lr=0.01, lr_decay=0.5, lr_decay_step=2,
            progress=False, **kwargs,
        )  # fmt: skip

    torch.manual_seed(0)
    trainer = Trainer(Recorder.from_data(tiny), tiny, config(4))
    trainer.fit()
    # lr x 0.5^((t - 1) / 2): 0.01, 0.01 / sqrt(2), 0.005, 0.005 / sqrt(2)
    expected = [0.01, 0.01 * 0.5**0.5, 0.005, 0.005 * 0.5**0.5]
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4]
    assert [lr for _, lr in seen] == pytest.approx(expected, rel=1e-12)
    # a run resumed after epoch 2 continues the schedule (the checkpointed optimizer
    # state carries epoch 2's rate, which epoch 3 replaces)
    out = tmp_path / "run"
    trainer = Trainer(Recorder.from_data(tiny), tiny, config(2, out_dir=str(out)))
    trainer.fit()
    seen.clear()
    trainer = Trainer(Recorder.from_data(tiny), tiny, config(4, out_dir=str(out), resume=True))
    trainer.fit()
    assert seen == [(3, pytest.approx(expected[2])), (4, pytest.approx(expected[3]))]
    # the default keeps the rate constant, bit for bit
    assert Trainer(LightGCN.from_data(tiny), tiny, TrainConfig()).learning_rate(500) == 1e-3
    with pytest.raises(ValueError, match="lr_decay must be in"):
        TrainConfig(lr_decay=1.5)
    with pytest.raises(ValueError, match="lr_decay_step"):
        TrainConfig(lr_decay_step=0)


def test_bad_checkpoint_errors(tiny, tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    model = LightGCN.from_data(tiny)
    config = TrainConfig(epochs=1, out_dir=str(tmp_path), resume=True, progress=False)
    with pytest.raises(RuntimeError, match="cannot read the checkpoint"):
        Trainer(model, tiny, config).fit()

    other = tmp_path / "other"
    Trainer(
        LightGCN.from_data(tiny), tiny, TrainConfig(epochs=1, out_dir=str(other), progress=False)
    ).fit()
    config = TrainConfig(epochs=2, out_dir=str(other), resume=True, progress=False)
    with pytest.raises(RuntimeError, match="does not match this run"):
        Trainer(DREAM(tiny, knn_k=5), tiny, config).fit()


def test_config_validation_and_device_fallback(tiny, capsys):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="stopping_metric"):
        TrainConfig(stopping_metric="auc")
    if not torch.cuda.is_available():
        trainer = Trainer(LightGCN.from_data(tiny), tiny, TrainConfig(device="cuda"))
        assert trainer.device.type == "cpu"
        assert "falling back to CPU" in capsys.readouterr().out


def test_time_budget_stops_after_the_epoch_that_reaches_it(tiny, monkeypatch):
    clock = iter(range(0, 10_000, 5))  # every perf_counter call advances 5 s
    monkeypatch.setattr("dreamgeo.train.trainer.time.perf_counter", lambda: next(clock))
    torch.manual_seed(0)
    config = TrainConfig(epochs=50, batch_size=512, max_time=25, progress=False)
    result = Trainer(LightGCN.from_data(tiny), tiny, config).fit()
    # each epoch: 5 s of training + 5 s of evaluation -> the budget is reached in epoch 3
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.stopped_by_time and not result.stopped_early
    with pytest.raises(ValueError, match="max_time"):
        TrainConfig(max_time=0)


def test_callbacks_add_columns_in_eval_mode_without_gradients(tiny, tmp_path):
    seen = []

    def probe(trainer, epoch):
        seen.append((epoch, trainer.model.training, torch.is_grad_enabled()))
        return {"probe": float(epoch) * 2}

    config = TrainConfig(epochs=2, batch_size=512, progress=False, out_dir=str(tmp_path))
    result = Trainer(LightGCN.from_data(tiny), tiny, config, callbacks=[probe]).fit()
    assert seen == [(1, False, False), (2, False, False)]
    assert [row["probe"] for row in result.history] == [2.0, 4.0]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["probe"] for row in logged] == [2.0, 4.0]
