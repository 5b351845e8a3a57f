r"""One trainer for every dreamgeo recommender: BPR batches, Adam, full-ranking
evaluation each epoch, early stopping, logs and resumable checkpoints."""

from __future__ import annotations

import copy
import csv
import gc
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from dreamgeo.datasets.schema import INTERACTS, ITEM, USER
from dreamgeo.models.base import Recommender
from dreamgeo.train.checkpoint import atomic_save, atomic_write_text
from dreamgeo.train.evaluate import FullRankEvaluator
from dreamgeo.train.sampler import BPRSampler

__all__ = ["TrainConfig", "TrainResult", "Trainer", "resolve_device"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def resolve_device(device: str | torch.device) -> torch.device:
    r"""``device`` if it is usable, else the CPU with a warning that says why."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("CUDA was requested but is not available here; training on the CPU.")
        print("dreamgeo: CUDA was requested but is not available; falling back to CPU.")
        return torch.device("cpu")
    return device


@dataclass
class TrainConfig:
    r"""Training protocol (the paper's defaults).

    Args:
        epochs (int, optional): Maximum epochs. (default: :obj:`1000`)
        batch_size (int, optional): BPR triples per step. (default: :obj:`2048`)
        lr (float, optional): Adam learning rate. (default: :obj:`1e-3`)
        lr_decay (float, optional): Learning-rate schedule, MMRec's
            ``learning_rate_scheduler`` ``[lr_decay, lr_decay_step]``: epoch
            :math:`t` (from 1) trains at :math:`\mathrm{lr} \cdot
            \mathrm{lr\_decay}^{(t - 1) / \mathrm{lr\_decay\_step}}`; :math:`1` keeps
            the rate constant (MMRec's default, and the paper's). (default: :obj:`1.0`)
        lr_decay_step (int, optional): Epochs over which the rate falls by one factor
            :obj:`lr_decay`. (default: :obj:`50`)
        patience (int, optional): Epochs without a better validation metric before
            stopping: training ends after exactly :obj:`patience` such epochs in a row
            (MMRec's ``stopping_step`` counts one more: its ``early_stopping`` stops when
            ``cur_step > stopping_step``, i.e. after 21 evaluations without improvement
            for the default 20, evaluating every epoch). (default: :obj:`20`)
        stopping_metric (str, optional): Validation metric that selects the best epoch.
            (default: :obj:`"recall@20"`)
        ks (tuple[int, ...], optional): Cut-offs evaluated. (default: :obj:`(5, 10, 20, 50)`)
        seed (int, optional): Seed of the sampler (negatives, order). (default: :obj:`0`)
        device (str, optional): ``"cpu"`` or ``"cuda"``. (default: :obj:`"cpu"`)
        out_dir (str, optional): Directory for ``metrics.jsonl``, ``metrics.csv`` and the
            checkpoint; :obj:`None` keeps nothing on disk. (default: :obj:`None`)
        resume (bool, optional): Continue from ``out_dir``'s checkpoint if there is one.
            (default: :obj:`False`)
        progress (bool, optional): Progress bars. (default: :obj:`True`)
        eval_batch_size (int, optional): Users per evaluation batch. (default: :obj:`4096`)
        max_time (float, optional): Wall-clock budget in seconds: training stops after the
            first epoch at which the run's summed training and evaluation time (resumed
            epochs included) reaches it; the best epoch so far is kept. :obj:`None` means
            no budget. (default: :obj:`None`)
        log_epochs (bool, optional): Print one line per epoch (epoch, loss, valid
            metric, best so far, seconds, time left until early stopping at the latest
            and until the epoch limit); printed also when output goes to a file.
            (default: :obj:`True`)
    """

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    lr_decay: float = 1.0
    lr_decay_step: int = 50
    patience: int = 20
    stopping_metric: str = "recall@20"
    ks: tuple[int, ...] = (5, 10, 20, 50)
    seed: int = 0
    device: str = "cpu"
    out_dir: str | None = None
    resume: bool = False
    progress: bool = True
    eval_batch_size: int = 4096
    max_time: float | None = None
    log_epochs: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience", "eval_batch_size", "lr_decay_step"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig: {name} must be > 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"TrainConfig: lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"TrainConfig: max_time must be > 0 seconds, got {self.max_time}")
        metric, _, k = self.stopping_metric.partition("@")
        if metric not in ("recall", "ndcg", "precision", "map") or not k.isdigit():
            raise ValueError(
                f"TrainConfig: stopping_metric must look like 'recall@20', got "
                f"'{self.stopping_metric}'"
            )
        if int(k) not in self.ks:
            self.ks = tuple(sorted({*self.ks, int(k)}))


@dataclass
class TrainResult:
    r"""What :meth:`Trainer.fit` returns: the best epoch (by the validation stopping
    metric), validation and test metrics at it, the per-epoch history, mean training
    time per epoch in seconds, whether early stopping ended the run and whether the
    time budget (:obj:`TrainConfig.max_time`) did."""

    best_epoch: int
    valid: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_time: float = 0.0
    eval_time: float = 0.0
    stopped_early: bool = False
    stopped_by_time: bool = False


class _LossModule(torch.nn.Module):
    r"""Routes :meth:`Recommender.loss` through ``forward`` so that
    :class:`~torch.nn.parallel.DistributedDataParallel` can hook it."""

    def __init__(self, model: Recommender):
        super().__init__()
        self.model = model

    def forward(self, users, pos_items, neg_items):
        return self.model.loss(users, pos_items, neg_items)


def _adam(parameters: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    r"""Adam, fused into one kernel per step where this torch supports it for the
    parameters' device (CPU since torch 2.4): the same update as the default
    implementation, several times faster for large tables (e.g. 31M trainable feature
    entries in BM3: 0.16 s instead of 1.04 s per step on one core)."""
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(parameters, lr=lr)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _distributed() -> tuple[bool, int, int]:
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


class Trainer:
    r"""Trains a :class:`~dreamgeo.models.Recommender` with the paper's protocol: an
    epoch visits every training interaction once with a uniform negative (BPR), Adam
    steps on :meth:`Recommender.loss`, then every user is ranked against every item on
    validation and test (training items masked). The epoch with the best validation
    :obj:`stopping_metric` is kept; training stops after :obj:`patience` epochs without
    improvement and the best weights are restored.

    With an :obj:`out_dir`, every epoch appends its metrics and loss parts to
    ``metrics.jsonl`` / ``metrics.csv`` and atomically rewrites ``checkpoint.pt`` (model,
    optimizer, sampler and RNG state, best weights, early-stopping counter), so a run
    killed at any point resumes with :obj:`resume=True` to the same result as an
    uninterrupted one on the CPU.

    **Several processes.** When :mod:`torch.distributed` is initialized (e.g. under
    ``torchrun``), the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (graph, features and tables
    replicated; gradients all-reduced), each rank takes a disjoint shard of every
    global batch of :obj:`batch_size` triples (``batch_size // world_size`` each, so
    the global batch and the optimizer steps match one process), evaluation splits the
    users over the ranks and all-reduces the metric sums, and only rank 0 writes logs
    and checkpoints (with every rank's sampler and RNG state, so resuming is exact).
    Call :meth:`close` before :func:`torch.distributed.destroy_process_group`.
    In-batch negatives of the alignment losses are per rank, hence results agree with
    one process up to that and the negatives drawn, not bit for bit.

    Args:
        model (Recommender): The model (moved to :obj:`config.device`).
        data (HeteroData): Interactions and splits (``DESIGN.md`` section 2).
        config (TrainConfig, optional): The protocol. (default: :obj:`TrainConfig()`)
        run_info (dict, optional): Extra JSON-able facts stored in the checkpoint (e.g.
            the command-line arguments that rebuild the model). (default: :obj:`None`)
        callbacks (list, optional): Functions ``callback(trainer, epoch) -> dict`` called
            after each epoch's evaluation (model in eval mode, no gradients); the numbers
            they return are added to the epoch's row of the history and the logs (e.g.
            :class:`dreamgeo.diagnostics` measurements). (default: :obj:`None`)
        epoch_hooks (list, optional): Functions ``hook(epoch, row, best)`` called at the
            end of each epoch, after its row and checkpoint are written, with the row of
            the history and the best epoch so far (``best["epoch"]``,
            ``best["score"]``). A hook may raise to end training (e.g. a tuner pruning a
            hopeless trial with :class:`optuna.TrialPruned`); the exception propagates
            out of :meth:`fit`. (default: :obj:`None`)
    """

    def __init__(
        self,
        model: Recommender,
        data: HeteroData,
        config: TrainConfig | None = None,
        run_info: dict[str, Any] | None = None,
        callbacks: list[Callable[[Trainer, int], dict[str, float]]] | None = None,
        epoch_hooks: list[Callable[[int, dict[str, Any], dict[str, Any]], None]] | None = None,
    ):
        self.config = config or TrainConfig()
        self.callbacks = list(callbacks or [])
        self.epoch_hooks = list(epoch_hooks or [])
        self.distributed, self.rank, self.world_size = _distributed()
        self.device = resolve_device(self.config.device)
        if self.device.type == "cuda" and self.distributed and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.model = model.to(self.device)
        self.run_info = run_info or {}
        store = data[INTERACTS]
        num_users, num_items = data[USER].num_nodes, data[ITEM].num_nodes
        train_edges = store.edge_index.to(self.device)
        self.sampler = BPRSampler(
            train_edges,
            num_users,
            num_items,
            batch_size=max(1, self.config.batch_size // self.world_size),
            seed=self.config.seed,
            rank=self.rank,
            world_size=self.world_size,
        )
        self.evaluator = FullRankEvaluator(
            train_edges,
            {
                "valid": store.val_edge_index.to(self.device),
                "test": store.test_edge_index.to(self.device),
            },
            num_users,
            num_items,
            ks=self.config.ks,
            batch_size=self.config.eval_batch_size,
        )
        self.optimizer = _adam(list(self.model.parameters()), self.config.lr)
        self.loss_module: torch.nn.Module = _LossModule(self.model)
        if self.distributed:
            # graphs and features are rebuilt identically on every rank; sparse buffers
            # cannot be broadcast, so DDP syncs parameters only
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                self.loss_module, [name for name, _ in self.loss_module.named_buffers()]
            )
            with warnings.catch_warnings():  # broadcast_buffers=False is what we mean
                warnings.simplefilter("ignore", FutureWarning)
                self.loss_module = DistributedDataParallel(
                    self.loss_module,
                    broadcast_buffers=False,
                    device_ids=[self.device.index] if self.device.type == "cuda" else None,
                )
        self.is_main = self.rank == 0
        self.out_dir = Path(self.config.out_dir) if self.config.out_dir else None

    def close(self) -> None:
        r"""Releases the :class:`~torch.nn.parallel.DistributedDataParallel` wrapper and
        waits for every rank. Call it before
        :func:`torch.distributed.destroy_process_group`: a wrapper collected after its
        process group is gone was seen to hang the process at exit (about one run in
        three on 2 CPU cores). Do not train with this trainer after :meth:`close`.
        """
        if isinstance(self.loss_module, DistributedDataParallel):
            self.loss_module = self.loss_module.module
            gc.collect()  # the wrapper's reducer may sit in a reference cycle
            dist.barrier()

    # ------------------------------------------------------------------ state
    def _rank_states(self) -> list[dict[str, Any]]:
        local = {"sampler": self.sampler.state_dict(), "torch_rng": torch.get_rng_state()}
        if not self.distributed:
            return [local]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, local)
        return gathered

    def _state(
        self, epoch: int, best: dict[str, Any], history: list, ranks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ranks": ranks,
            "world_size": self.world_size,
            "best": best,
            "history": history,
            "config": asdict(self.config),
            "model_class": type(self.model).__name__,
            "num_users": self.model.num_users,
            "num_items": self.model.num_items,
            "run_info": self.run_info,
        }

    def _load(self, path: Path) -> tuple[int, dict[str, Any], list]:
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as error:
            raise RuntimeError(
                f"{path}: cannot read the checkpoint ({error}); delete it or start without --resume"
            ) from error
        expected = (
            type(self.model).__name__,
            self.model.num_users,
            self.model.num_items,
        )
        found = (
            state.get("model_class"),
            state.get("num_users"),
            state.get("num_items"),
        )
        if found != expected:
            raise RuntimeError(
                f"{path}: checkpoint of {found[0]} for {found[1]} users × {found[2]} "
                f"items does not match this run ({expected[0]}, {expected[1]} × "
                f"{expected[2]})"
            )
        if state.get("world_size", 1) != self.world_size:
            raise RuntimeError(
                f"{path}: written by {state.get('world_size', 1)} processes, resumed with "
                f"{self.world_size}; resume with the same number of processes"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        own = state["ranks"][self.rank]
        self.sampler.load_state_dict(own["sampler"])
        torch.set_rng_state(own["torch_rng"])
        return state["epoch"], state["best"], state["history"]

    def _write_logs(self, history: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(row) + "\n" for row in history)
        atomic_write_text(lines, self.out_dir / "metrics.jsonl")
        columns: list[str] = []
        for row in history:
            columns.extend(key for key in row if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(buffer.getvalue(), self.out_dir / "metrics.csv")

    # ------------------------------------------------------------------ steps
    def train_step(
        self, users: Tensor, pos_items: Tensor, neg_items: Tensor, epoch: int = 0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        r"""One optimizer step on a batch of BPR triples. The loss goes through the
        (possibly :class:`~torch.nn.parallel.DistributedDataParallel`-wrapped) loss
        module, so gradients are all-reduced over ranks before the step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, parts = self.loss_module(users, pos_items, neg_items)
        if not torch.isfinite(loss):
            values = {name: float(value) for name, value in parts.items()}
            raise FloatingPointError(
                f"epoch {epoch}: the loss became {loss.item()} (parts {values}); "
                "lower the learning rate or the loss weights"
            )
        loss.backward()
        self.optimizer.step()
        return loss, parts

    def learning_rate(self, epoch: int) -> float:
        r"""The learning rate of training epoch :obj:`epoch` (from 1) under
        :obj:`TrainConfig.lr_decay` (a function of the epoch alone, so a resumed run
        continues the schedule)."""
        config = self.config
        return config.lr * config.lr_decay ** ((epoch - 1) / config.lr_decay_step)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        r"""One pass over the training interactions; the mean of each loss part."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(epoch)
        self.model.train()
        self.model.start_epoch(epoch)
        sums: dict[str, float] = {}
        steps = 0
        batches = tqdm(
            self.sampler.epoch(),
            total=len(self.sampler),
            leave=False,
            desc=f"epoch {epoch}",
            disable=not self.config.progress or None,
        )
        for users, pos, neg in batches:
            loss, parts = self.train_step(users, pos, neg, epoch)
            steps += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value)
        means = {name: value / max(steps, 1) for name, value in sums.items()}
        if self.distributed:
            names = sorted(means)
            values = torch.tensor([means[name] for name in names], dtype=torch.float64)
            dist.all_reduce(values)
            means = dict(zip(names, (values / self.world_size).tolist()))
        return means

    def _out_of_time(self, history: list[dict[str, Any]]) -> bool:
        if self.config.max_time is None or not history:
            return False
        spent = sum(row["train_time"] + row["eval_time"] for row in history)
        if self.distributed:  # every rank must take the same decision
            spent_tensor = torch.tensor([spent], dtype=torch.float64, device=self.device)
            dist.broadcast(spent_tensor, src=0)
            spent = float(spent_tensor)
        return spent >= self.config.max_time

    def _epoch_line(
        self,
        epoch: int,
        losses: dict[str, float],
        score: float,
        best: dict[str, Any],
        history: list[dict[str, Any]],
    ) -> str:
        r"""One line per epoch: loss, valid metric, best so far, seconds, and the time
        left at this pace until early stopping at the latest and until the epoch
        limit."""
        config = self.config
        seconds = [row["train_time"] + row["eval_time"] for row in history]
        pace = sum(seconds[-5:]) / len(seconds[-5:])
        to_patience = (config.patience - best["bad_epochs"]) * pace
        to_limit = (config.epochs - epoch) * pace
        return (
            f"epoch {epoch}/{config.epochs}  loss {losses.get('loss', 0.0):.4f}  "
            f"valid {config.stopping_metric} {score:.4f}  best {best['score']:.4f} "
            f"@{best['epoch']}  {seconds[-1]:.1f} s  ETA <= {_duration(to_patience)} "
            f"(patience), {_duration(to_limit)} (epoch limit)"
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        r"""Full-ranking validation and test metrics of the current weights."""
        self.model.eval()
        user_emb, item_emb = self.model.embeddings()
        return self.evaluator.evaluate(user_emb, item_emb, distributed=self.distributed)

    def fit(self) -> TrainResult:
        r"""Runs the protocol and returns the result at the best epoch."""
        config = self.config
        start_epoch, history = 1, []
        best: dict[str, Any] = {
            "epoch": 0,
            "score": -1.0,
            "valid": {},
            "test": {},
            "bad_epochs": 0,
            "state": None,
        }
        checkpoint = self.out_dir / CHECKPOINT_NAME if self.out_dir else None
        if config.resume and checkpoint is not None and checkpoint.exists():
            last_epoch, best, history = self._load(checkpoint)
            start_epoch = last_epoch + 1
            log.info("Resumed from %s at epoch %d", checkpoint, last_epoch)
            if self.is_main:
                print(f"dreamgeo: resumed from {checkpoint} after epoch {last_epoch}")
        elif config.resume and self.is_main:
            print(f"dreamgeo: --resume given but no checkpoint in {self.out_dir}; starting anew")

        stopped_early = best["bad_epochs"] >= config.patience
        stopped_by_time = self._out_of_time(history)
        epochs = tqdm(
            range(start_epoch, config.epochs + 1),
            initial=start_epoch - 1,
            total=config.epochs,
            desc="training",
            disable=not config.progress or None,
        )
        for epoch in epochs:
            if stopped_early or stopped_by_time:
                break
            tic = time.perf_counter()
            losses = self.train_epoch(epoch)
            train_time = time.perf_counter() - tic
            tic = time.perf_counter()
            metrics = self.evaluate()
            eval_time = time.perf_counter() - tic
            score = metrics["valid"][config.stopping_metric]
            row = {
                "epoch": epoch,
                **losses,
                **{f"valid_{k}": v for k, v in metrics["valid"].items()},
                **{f"test_{k}": v for k, v in metrics["test"].items()},
                "train_time": train_time,
                "eval_time": eval_time,
            }
            if self.callbacks:
                self.model.eval()
                with torch.no_grad():
                    for callback in self.callbacks:
                        row.update(callback(self, epoch))
            history.append(row)
            if score > best["score"]:
                best.update(
                    epoch=epoch,
                    score=score,
                    valid=metrics["valid"],
                    test=metrics["test"],
                    bad_epochs=0,
                    state=copy.deepcopy(self.model.state_dict()),
                )
            else:
                best["bad_epochs"] += 1
            stopped_early = best["bad_epochs"] >= config.patience
            stopped_by_time = self._out_of_time(history)
            if self.is_main and config.log_epochs:
                tqdm.write(self._epoch_line(epoch, losses, score, best, history))
                sys.stdout.flush()  # one line per epoch also when stdout is a file
            epochs.set_postfix(
                loss=f"{losses.get('loss', 0):.4f}",
                valid=f"{score:.4f}",
                best=f"{best['score']:.4f}@{best['epoch']}",
            )
            if self.out_dir is not None:
                ranks = self._rank_states()
                if self.is_main:
                    self._write_logs(history)
                    atomic_save(self._state(epoch, best, history, ranks), checkpoint)
                if self.distributed:
                    dist.barrier()
            for hook in self.epoch_hooks:
                hook(epoch, row, best)
        epochs.close()
        if stopped_by_time and not stopped_early and self.is_main:
            log.info(
                "Time budget of %.0f s reached after epoch %d; best epoch %d kept",
                config.max_time,
                history[-1]["epoch"],
                best["epoch"],
            )

        if best["state"] is not None:
            self.model.load_state_dict(best["state"])
        train_times = [row["train_time"] for row in history]
        eval_times = [row["eval_time"] for row in history]
        return TrainResult(
            best_epoch=best["epoch"],
            valid=best["valid"],
            test=best["test"],
            history=history,
            epoch_time=sum(train_times) / max(len(train_times), 1),
            eval_time=sum(eval_times) / max(len(eval_times), 1),
            stopped_early=stopped_early,
            stopped_by_time=stopped_by_time and not stopped_early,
        )
