r"""Sampling, evaluation and the training loop shared by every model."""

from dreamgeo.train.checkpoint import atomic_save, atomic_write_text
from dreamgeo.train.evaluate import FullRankEvaluator
from dreamgeo.train.sampler import BPRSampler
from dreamgeo.train.trainer import TrainConfig, Trainer, TrainResult, resolve_device
from dreamgeo.train.tune import TuneError, Tuner, TuneResult

__all__ = [
    "atomic_save",
    "atomic_write_text",
    "FullRankEvaluator",
    "BPRSampler",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "resolve_device",
    "Tuner",
    "TuneError",
    "TuneResult",
]
