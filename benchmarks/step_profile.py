r"""Where the time of one training epoch goes, for one model, in this (fresh) process.

The epoch runs the trainer's own step (zero the gradients, ``model.loss``, backward,
Adam) while wall-clock timers wrapped around the model's parts add up *exclusive*
time (a part's time minus the parts it calls):

* **sampler**: drawing the batch (``BPRSampler``),
* **behaviour line**: ``model.behavior()`` (DREAM, MGCN, FREEDOM) or ``propagate()``
  (LightGCN): the LightGCN propagation over the user–item graph,
* **modal line**: ``model.modal()`` and its relation-graph products and gates, without
  the projections,
* **d_m→d projections**: every ``torch.nn.Linear`` call and DREAM's
  ``ModalEncoder.project`` (forward only; their backward is inside *backward*),
* **losses**: the calls of the loss modules (``BPRLoss``, ``BMALoss``, ``S3Loss``),
* **loss glue**: the rest of ``model.loss`` (gathering the batch rows, scores),
* **backward** and **optimizer step**.

CUDA is synchronized at every boundary, so GPU times are attributed correctly (and the
epoch runs a little slower than unprofiled). Run by ``run_all.py`` (table C); prints
one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_benchmark_model, emit_result, synchronize  # noqa: E402

__all__ = ["RegionTimer", "instrument", "main", "PARTS"]

#: The parts of a step, in the order of the table.
PARTS = (
    "sampler",
    "behaviour line",
    "modal line",
    "d_m→d projections",
    "losses",
    "loss glue",
    "backward",
    "optimizer step",
)


class RegionTimer:
    r"""Adds up the exclusive wall time of nested, labelled regions."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._children: list[float] = []

    def wrap(self, label: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            synchronize()
            tic = time.perf_counter()
            self._children.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                synchronize()
                elapsed = time.perf_counter() - tic
                inner = self._children.pop()
                self.seconds[label] += elapsed - inner
                if self._children:
                    self._children[-1] += elapsed

        return timed

    def run(self, label: str, fn: Callable, *args, **kwargs) -> Any:
        return self.wrap(label, fn)(*args, **kwargs)


def instrument(model, timer: RegionTimer) -> None:
    r"""Replaces, on the instances, the methods of ``model`` and its submodules that
    make up each part of :data:`PARTS` by timed ones."""
    import torch

    from dreamgeo.nn.bma_loss import BMALoss
    from dreamgeo.nn.bpr_loss import BPRLoss
    from dreamgeo.nn.modal_encoder import ModalEncoder
    from dreamgeo.nn.s3_loss import S3Loss

    model.loss = timer.wrap("loss glue", model.loss)
    for name in ("behavior", "propagate"):
        if hasattr(model, name):
            setattr(model, name, timer.wrap("behaviour line", getattr(model, name)))
    for name in ("modal", "item_modal", "modal_views"):
        if hasattr(model, name):
            setattr(model, name, timer.wrap("modal line", getattr(model, name)))
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.forward = timer.wrap("d_m→d projections", module.forward)
        elif isinstance(module, ModalEncoder):
            module.project = timer.wrap("d_m→d projections", module.project)
        elif isinstance(module, (BPRLoss, BMALoss, S3Loss)):
            for name in ("forward", "ranking", "regularization", "from_factor", "gathered"):
                if hasattr(module, name):
                    setattr(module, name, timer.wrap("losses", getattr(module, name)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--feature-dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)

    import torch

    from dreamgeo.commands import load_data
    from dreamgeo.train import TrainConfig, Trainer

    torch.manual_seed(0)
    data, info = load_data(args.preset, args.data_root, args.preset)
    model = build_benchmark_model(args.model, data, feature_dtype=args.feature_dtype)
    trainer = Trainer(
        model,
        data,
        TrainConfig(batch_size=args.batch_size, device=args.device, progress=False, seed=0),
    )
    for step, (users, pos, neg) in enumerate(trainer.sampler.epoch()):
        if step >= args.warmup_steps:
            break
        trainer.train_step(users, pos, neg)

    timer = RegionTimer()
    instrument(trainer.model, timer)
    optimizer = trainer.optimizer
    batches = iter(trainer.sampler.epoch())
    steps = 0
    synchronize()
    tic = time.perf_counter()
    while True:
        batch = timer.run("sampler", next, batches, None)
        if batch is None:
            break
        optimizer.zero_grad(set_to_none=True)
        loss, _ = trainer.loss_module(*batch)
        timer.run("backward", loss.backward)
        timer.run("optimizer step", optimizer.step)
        steps += 1
    synchronize()
    total = time.perf_counter() - tic
    emit_result(
        {
            "model": args.model,
            "feature_dtype": args.feature_dtype,
            "data": info,
            "steps": steps,
            "epoch_seconds": total,
            "parts": {part: timer.seconds.get(part, 0.0) for part in PARTS},
            "untimed_seconds": total - sum(timer.seconds.values()),
        }
    )


if __name__ == "__main__":
    main()
