r"""Hyper-parameter search with :mod:`optuna` over a model's declared search space
(:mod:`dreamgeo.hparams`).

Optuna does the searching, pruning, storing and stopping: a
:class:`~optuna.samplers.GridSampler` over the MMRec grid or a seeded
:class:`~optuna.samplers.TPESampler`, a :class:`~optuna.pruners.MedianPruner` or
:class:`~optuna.pruners.SuccessiveHalvingPruner` fed with every epoch's validation
Recall@20, an SQLite (or any RDB) storage that several processes and machines can share,
and :class:`~optuna.study.MaxTrialsCallback` counting finished trials. This module adds
what is specific to dreamgeo: each trial trains one configuration with
:class:`~dreamgeo.train.Trainer`, a study killed at any moment resumes without losing or
repeating a finished trial, and the best configuration is written as a config file that
``dreamgeo train --config`` reads, then retrained once for its test metrics (which never
take part in the choice).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import io
import json
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from torch_geometric.data import HeteroData

from dreamgeo.config import load_config, write_config
from dreamgeo.datasets.source import data_checksum
from dreamgeo.hparams import HParam
from dreamgeo.models import ModelInfo
from dreamgeo.train.checkpoint import atomic_write_text
from dreamgeo.train.evaluate import format_metrics_table
from dreamgeo.train.trainer import TrainConfig, Trainer

try:  # fcntl locks are released by the kernel when their process dies, even by SIGKILL
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

try:  # optuna >= 4.9 renamed RetryFailedTrialCallback
    from optuna.storages import RetryHeartbeatStaleTrialCallback as _RetryCallback

    _RETRY_ARGUMENT = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - optuna < 4.9
    from optuna.storages import RetryFailedTrialCallback as _RetryCallback

    _RETRY_ARGUMENT = "failed_trial_callback"

__all__ = ["Tuner", "TuneResult", "TuneError", "SAMPLERS", "PRUNERS", "FINISHED"]

#: Values of :obj:`Tuner(sampler=...)`.
SAMPLERS = ("auto", "grid", "random", "tpe")
#: Values of :obj:`Tuner(pruner=...)` (besides :obj:`None` and a pruner object).
PRUNERS = ("median", "halving")
#: The states of a finished trial: what ``trials`` counts.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

_METRIC = "recall@20"
_REPORTED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


class TuneError(ValueError):
    r"""A tuning setting that cannot be used, or a study that cannot be resumed with the
    given settings; the message says what to change."""


@dataclass
class TuneResult:
    r"""What :meth:`Tuner.run` returns.

    Args:
        study_name (str): The Optuna study.
        storage (str): Its storage URL.
        out_dir (Path): The run folder.
        sampler (str): ``"grid"`` or ``"tpe"``.
        finished (int): Finished (complete or pruned) trials in the study.
        grid_exhausted (bool): Every grid point has been tried (grid sampler only).
        best_trial (int, optional): Number of the best complete trial. (default:
            :obj:`None`, none completed)
        best_value (float, optional): Its valid Recall@20. (default: :obj:`None`)
        best_values (dict): Its every hyper-parameter value (what ``best.yaml`` holds).
            (default: :obj:`{}`)
        best_result (dict, optional): The retrained best configuration's metrics
            (``best_result.json``). (default: :obj:`None`, not retrained)
        files (list[Path]): The files written. (default: :obj:`[]`)
    """

    study_name: str
    storage: str
    out_dir: Path
    sampler: str
    finished: int
    grid_exhausted: bool = False
    best_trial: int | None = None
    best_value: float | None = None
    best_values: dict[str, Any] = field(default_factory=dict)
    best_result: dict[str, Any] | None = None
    files: list[Path] = field(default_factory=list)


def _say(line: str) -> None:
    print(line, flush=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    r"""Optuna's experimental-feature warnings (heartbeat, retry callback) silenced:
    dreamgeo uses them on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


class _FolderLock:
    r"""An exclusive lock on a run folder held by one live process: ``tune.lock`` holds
    its PID and host. With :mod:`fcntl` the kernel drops the lock when the process dies
    (SIGKILL included), so a stale file never blocks; without it a file whose PID is no
    longer alive is taken over."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: io.TextIOWrapper | None = None

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "an unknown process"
        except OSError:
            return "an unknown process"

    def __enter__(self) -> _FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            handle = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise TuneError(
                    f"{self.path.parent} is being tuned by {self._holder()} (lock {self.path}); "
                    "wait for it, stop it, or give another --out-dir (several processes share "
                    "one study through --storage URL)"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"PID {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            self.handle = handle
            return self
        if self.path.exists():  # pragma: no cover - not POSIX
            text = self._holder()
            pid = int(text.split()[1]) if text.startswith("PID ") else None
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                raise TuneError(f"{self.path.parent} is being tuned by {text} (lock {self.path})")
        self.path.write_text(f"PID {os.getpid()} on {socket.gethostname()}\n")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.handle.close()  # closing releases the flock
            self.handle = None
        else:  # pragma: no cover - not POSIX
            with contextlib.suppress(OSError):
                self.path.unlink()


def _pid_alive(pid: int) -> bool:  # pragma: no cover - not POSIX
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _TrialHook:
    r"""The :class:`~dreamgeo.train.Trainer` epoch hook of one trial: reports each
    epoch's valid Recall@20 to Optuna, keeps the best epoch's metrics and raises
    :class:`optuna.TrialPruned` when the pruner says so."""

    def __init__(self, trial: optuna.Trial, prune: bool):
        self.trial = trial
        self.prune = prune
        self.best: dict[str, Any] = {"epoch": 0, "valid": {}}
        self.epochs = 0
        self.stopped = ""

    def __call__(self, epoch: int, row: dict[str, Any], best: dict[str, Any]) -> None:
        self.epochs = epoch
        self.best = {"epoch": best["epoch"], "valid": dict(best["valid"])}
        self.trial.report(float(row[f"valid_{_METRIC}"]), epoch)
        if self.prune and self.trial.should_prune():
            self.stopped = f"pruned at epoch {epoch}"
            raise optuna.TrialPruned(self.stopped)

    def summary(self, seconds: float) -> dict[str, Any]:
        valid = self.best["valid"]
        return {
            "valid_recall@20": valid.get("recall@20"),
            "valid_ndcg@20": valid.get("ndcg@20"),
            "best_epoch": self.best["epoch"],
            "epochs": self.epochs,
            "seconds": round(seconds, 3),
            "stopped": self.stopped,
        }


class Tuner:
    r"""Tunes one model's declared hyper-parameters on one dataset with :mod:`optuna`,
    into a run folder: the study (``study.db``, SQLite, unless :obj:`storage` is given),
    ``trials.md`` / ``trials.csv`` (every trial, rewritten after each), ``best.yaml``
    (the best configuration, every value, for ``dreamgeo train --config``) and
    ``best_result.json`` / ``best_result.md`` (that configuration retrained once: valid
    and test metrics; the test split is never used to choose).

    **Search space.** The hyper-parameters the model declares a grid (or a TPE interval)
    for (``dreamgeo train --model NAME --list-hparams``), except those given in
    :obj:`fixed`: a value the user fixes is taken out of the search. Every other value
    is the declared default, or the one in :obj:`fixed`. With :obj:`search`, exactly the
    keys and values it gives are searched instead (a staged search, e.g. the relation
    graph's size and the depth on top of a tuned configuration), and every other value
    is fixed. Every trial's values go
    through :meth:`ModelInfo.resolve <dreamgeo.models.ModelInfo.resolve>`, so they are
    checked like any ``--set``.

    **Seeds.** Every trial trains with the same seed (the resolved ``seed``, default 0)
    so that trials differ only by their hyper-parameters; it is recorded in each trial's
    user attributes (``seed``) and in the trials table, and ``best.yaml`` holds it. The
    sampler has its own seed (:obj:`sampler_seed`).

    **Resuming.** The study lives in the storage; running the same tuning again resumes
    it, and :obj:`trials` counts the finished (complete + pruned) trials of the whole
    study, so a resumed run only runs the missing ones. With the default local storage
    the run folder is locked to one process (``tune.lock``, its PID; the kernel drops it
    when the process dies), and on start every trial left running by a dead process
    (killed at any moment, even by SIGKILL) or interrupted by Ctrl-C is marked failed and
    queued again with the same parameters (Optuna's
    :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, which keeps its grid
    point), so no grid point is lost and no finished trial is repeated. With a shared
    :obj:`storage` URL, several processes or machines work on one study; Optuna's
    heartbeat fails a dead worker's trial after :obj:`heartbeat` × 3 seconds and the
    same callback queues it again. A resumed study must have the same model, data,
    fixed values and search space (else :class:`TuneError`).

    Args:
        info (ModelInfo): The model (:func:`dreamgeo.models.get_model`).
        data (HeteroData): The dataset.
        out_dir (str or Path): The run folder.
        fixed (Mapping[str, Any], optional): Values the user fixed (names or aliases;
            checked); taken out of the search. (default: :obj:`None`)
        fixed_source (str, optional): Where :obj:`fixed` came from, for error messages.
            (default: :obj:`"fixed"`)
        search (Mapping[str, Sequence], optional): Names (or aliases) to the values to
            try, replacing the declared search space: only these keys are searched, on
            these values (checked like any ``--set``; a key fixed in :obj:`fixed` is
            searched all the same). (default: :obj:`None`, the declared space)
        dataset (str, optional): The dataset's name (study name, comments).
            (default: :obj:`"data"`)
        data_description (str, optional): One phrase describing the data for logs and
            ``best.yaml``. (default: :obj:`None`, :obj:`dataset`)
        sampler (str, optional): ``"grid"`` (:class:`~optuna.samplers.GridSampler` over
            the declared grids), ``"random"`` (:class:`~optuna.samplers.BruteForceSampler`
            over the same grids: their points in random order, never one twice), ``"tpe"``
            (:class:`~optuna.samplers.TPESampler`) or ``"auto"``: grid when the grid has
            at most :obj:`trials` points, else random when every searched value is a grid
            value, else TPE (a resumed study keeps its sampler). ``random`` and ``tpe``
            try the declared defaults first. (default: :obj:`"auto"`)
        sampler_seed (int, optional): Seed of the sampler (the grid's order; TPE's
            draws, offset by the number of trials already in the study so that a resumed
            TPE does not redraw its first points). (default: :obj:`0`)
        trials (int, optional): Finished trials the study should have in all; the grid
            sampler also ends the study when the grid is exhausted. (default: :obj:`20`)
        timeout (float, optional): Seconds after which this call starts no new trial.
            (default: :obj:`None`)
        pruner (str or optuna.pruners.BasePruner, optional): ``"median"``
            (:class:`~optuna.pruners.MedianPruner` after 5 trials and
            :obj:`prune_warmup` epochs), ``"halving"``
            (:class:`~optuna.pruners.SuccessiveHalvingPruner`, minimum resource
            :obj:`prune_warmup` epochs), a pruner object, or :obj:`None` for no pruning.
            (default: :obj:`"median"`)
        prune_warmup (int, optional): Epochs before a trial may be pruned.
            (default: :obj:`10`)
        jobs (int, optional): Trials run in parallel threads of this process
            (``study.optimize(n_jobs=...)``); torch's threads are split between them.
            (default: :obj:`1`)
        storage (str or optuna.storages.BaseStorage, optional): An Optuna storage URL
            (e.g. ``postgresql://...``, ``sqlite:///shared/study.db``) or object, shared
            by several workers. (default: :obj:`None`, ``sqlite:///OUT_DIR/study.db``,
            locked to one process)
        study_name (str, optional): (default: :obj:`None`, ``<dataset>-<model>``)
        max_time (float, optional): Each trial's wall-clock budget in seconds
            (:obj:`TrainConfig.max_time <dreamgeo.train.TrainConfig>`). (default:
            :obj:`None`)
        device (str, optional): ``"cpu"`` or ``"cuda"``. (default: :obj:`"cpu"`)
        runtime (Mapping[str, Any], optional): Runtime options passed to
            :meth:`ModelInfo.build <dreamgeo.models.ModelInfo.build>` (e.g.
            ``graph_cache_dir``). (default: :obj:`None`)
        heartbeat (int, optional): Heartbeat interval in seconds of a :obj:`storage`
            URL. (default: :obj:`60`)
        retrain (bool, optional): Retrain the best configuration for its test metrics.
            (default: :obj:`True`)
        export (str or Path, optional): Also copy ``best.yaml`` there. (default:
            :obj:`None`)
        log (Callable[[str], None], optional): Where progress lines go. (default:
            :func:`print` with flush, so lines appear also when stdout is a file)
    """

    def __init__(
        self,
        info: ModelInfo,
        data: HeteroData,
        out_dir: str | os.PathLike,
        fixed: Mapping[str, Any] | None = None,
        fixed_source: str = "fixed",
        search: Mapping[str, Sequence[Any]] | None = None,
        dataset: str = "data",
        data_description: str | None = None,
        sampler: str = "auto",
        sampler_seed: int = 0,
        trials: int = 20,
        timeout: float | None = None,
        pruner: str | optuna.pruners.BasePruner | None = "median",
        prune_warmup: int = 10,
        jobs: int = 1,
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        max_time: float | None = None,
        device: str = "cpu",
        runtime: Mapping[str, Any] | None = None,
        heartbeat: int = 60,
        retrain: bool = True,
        export: str | os.PathLike | None = None,
        log: Callable[[str], None] | None = None,
    ):
        if not isinstance(trials, int) or trials < 1:
            raise TuneError(f"--trials must be an integer >= 1, got {trials}")
        if not isinstance(jobs, int) or jobs < 1:
            raise TuneError(f"--jobs must be an integer >= 1, got {jobs}")
        if timeout is not None and not timeout > 0:
            raise TuneError(f"--timeout must be > 0 seconds, got {timeout}")
        if max_time is not None and not max_time > 0:
            raise TuneError(f"--max-time must be > 0 seconds, got {max_time}")
        if prune_warmup < 0:
            raise TuneError(f"--prune-warmup must be >= 0 epochs, got {prune_warmup}")
        if heartbeat < 1:
            raise TuneError(f"--heartbeat must be >= 1 second, got {heartbeat}")
        if sampler not in SAMPLERS:
            raise TuneError(f"--sampler must be one of {', '.join(SAMPLERS)}, got '{sampler}'")
        if isinstance(pruner, str) and pruner not in PRUNERS:
            raise TuneError(f"--pruner must be one of {', '.join(PRUNERS)}, got '{pruner}'")
        self.info = info
        self.data = data
        self.out_dir = Path(out_dir)
        self.fixed_source = fixed_source
        # the user's keys as declared names, values checked (raises HParamError)
        given = info.resolve((fixed_source, dict(fixed or {})))
        self.overrides = self._search_overrides(info, search, given)
        self.pinned = {info.hparams.canonical(str(key)) for key in (fixed or {})}
        self.pinned -= set(self.overrides)
        self.fixed = {name: given[name] for name in self.pinned}
        self.values = given  # defaults overridden by fixed: every non-searched value
        self.dataset = dataset
        self.data_description = data_description or dataset
        self.requested_sampler = sampler
        self.sampler_seed = sampler_seed
        self.trials = trials
        self.timeout = timeout
        self.pruner = pruner
        self.prune_warmup = prune_warmup
        self.jobs = jobs
        self.local = storage is None
        self.storage = storage or f"sqlite:///{(self.out_dir / 'study.db').as_posix()}"
        self.study_name = study_name or f"{dataset}-{info.name}"
        self.max_time = max_time
        self.device = device
        self.runtime = dict(runtime or {})
        self.heartbeat = heartbeat
        self.retrain = retrain
        self.export = Path(export) if export is not None else None
        self.log = log or _say
        if self.overrides:
            self.grid_space = {name: list(p.grid) for name, p in self.overrides.items()}
            self.tpe_space = list(self.overrides.values())
        else:
            self.grid_space = {
                name: values
                for name, values in info.hparams.grid_space(self.values).items()
                if name not in self.pinned
            }
            self.tpe_space = [
                p for p in info.hparams.searched("tpe", self.values) if p.name not in self.pinned
            ]
        if not self.tpe_space:
            declared = [p.name for p in info.hparams.searched("tpe", self.values)]
            raise TuneError(
                f"nothing to tune: {info.name} declares no search space"
                if not declared
                else f"nothing to tune: every searched hyper-parameter of {info.name} "
                f"({', '.join(declared)}) is fixed by {fixed_source}"
            )
        if sampler in ("grid", "random") and not self.grid_space:
            raise TuneError(
                f"--sampler {sampler}: {info.name} has no grid left to search "
                f"({'its grids are fixed by ' + fixed_source if self.pinned else 'none declared'})"
                "; use --sampler tpe"
            )
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._threads = max(1, torch.get_num_threads() // jobs)
        self._checksum = data_checksum(data)
        self._durations: list[float] = []
        self.kind = "grid"  # decided in run()

    # ------------------------------------------------------------------ space
    @staticmethod
    def _search_overrides(
        info: ModelInfo, search: Mapping[str, Sequence[Any]] | None, values: Mapping[str, Any]
    ) -> dict[str, HParam]:
        r"""The declarations of the :obj:`search` keys with their grid replaced by the
        given values (parsed and checked); raises :class:`TuneError` on an unknown key,
        an empty or repeated value list, or a key that does not matter here."""
        overrides: dict[str, HParam] = {}
        for key, raw in (search or {}).items():
            name = info.hparams.canonical(str(key))
            if name is None:
                raise TuneError(
                    f"--search {key}: {info.name} has no hyper-parameter '{key}' "
                    f"(see dreamgeo train --model {info.name} --list-hparams)"
                )
            if name in overrides:
                raise TuneError(f"--search {key}: '{name}' is given twice")
            param = info.hparams[name]
            parsed = [param.parse(value, f"--search {key}") for value in raw]
            if not parsed:
                raise TuneError(f"--search {key}: give at least one value")
            if len(set(parsed)) != len(parsed):
                raise TuneError(f"--search {key}: a value is repeated in {raw}")
            if param.requires is not None and values.get(param.requires[0]) != param.requires[1]:
                need, value = param.requires
                have = values.get(need)
                raise TuneError(
                    f"--search {key}: '{name}' matters only with {need}={str(value).lower()}, "
                    f"which is {str(have).lower()} here"
                )
            overrides[name] = dataclasses.replace(param, grid=tuple(parsed), search=None)
        return overrides

    def _param(self, name: str) -> HParam:
        return self.overrides.get(name) or self.info.hparams[name]

    @property
    def grid_size(self) -> int:
        r"""Points of the grid left to search (the declared grids minus fixed keys)."""
        size = 1
        for values in self.grid_space.values():
            size *= len(values)
        return size if self.grid_space else 0

    def space(self, kind: str) -> list[HParam]:
        r"""The hyper-parameters the ``kind`` (``"grid"``, ``"random"`` or ``"tpe"``)
        sampler varies."""
        if kind in ("grid", "random"):
            return [self._param(name) for name in self.grid_space]
        return list(self.tpe_space)

    def _space_text(self, kind: str) -> str:
        if kind in ("grid", "random"):
            return " x ".join(
                f"{name} [{', '.join(map(_fmt, values))}]"
                for name, values in self.grid_space.items()
            )
        return ", ".join(
            f"{p.name} {p.space_text().split('; ')[-1] if p.search else p.space_text()}"
            for p in self.tpe_space
        )

    def _settings(self, kind: str) -> dict[str, Any]:
        r"""What a resumed study must share with the one stored (JSON-able)."""
        searched = {p.name for p in self.space(kind)}
        return {
            "model": self.info.name,
            "data": self.data_description,
            "data_checksum": self._checksum,
            "sampler": kind,
            "space": {p.name: p.space_text() for p in self.space(kind)},
            "fixed": {k: v for k, v in self.values.items() if k not in searched},
            "max_time": self.max_time,
            "sampler_seed": self.sampler_seed,
        }

    # ------------------------------------------------------------------ optuna parts
    def _make_storage(self) -> optuna.storages.BaseStorage:
        if not isinstance(self.storage, str):
            return self.storage
        engine = {"connect_args": {"timeout": 120}} if self.storage.startswith("sqlite") else {}
        with _quiet_optuna():
            if self.local:  # one process (locked): stale trials are recovered on start
                return optuna.storages.RDBStorage(self.storage, engine_kwargs=engine)
            return optuna.storages.RDBStorage(
                self.storage,
                engine_kwargs=engine,
                heartbeat_interval=self.heartbeat,
                grace_period=3 * self.heartbeat,
                **{_RETRY_ARGUMENT: _RetryCallback(max_retry=3)},
            )

    def _make_sampler(self, kind: str, existing: int) -> optuna.samplers.BaseSampler:
        if kind == "grid":
            return optuna.samplers.GridSampler(self.grid_space, seed=self.sampler_seed)
        if kind == "random":
            with _quiet_optuna(), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.BruteForceSampler(seed=self.sampler_seed + existing)
        with _quiet_optuna():
            return optuna.samplers.TPESampler(seed=self.sampler_seed + existing, constant_liar=True)

    def _make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner is None:
            return optuna.pruners.NopPruner()
        if isinstance(self.pruner, optuna.pruners.BasePruner):
            return self.pruner
        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=self.prune_warmup)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.prune_warmup or "auto")

    def _pruner_text(self) -> str:
        if self.pruner is None:
            return "no pruning"
        if isinstance(self.pruner, optuna.pruners.BasePruner):
            return f"pruner {type(self.pruner).__name__}"
        if self.pruner == "median":
            return (
                f"median pruning (after 5 trials and {self.prune_warmup} warm-up epochs, "
                "per-epoch valid R@20)"
            )
        return f"successive-halving pruning (minimum {self.prune_warmup or 'auto'} epochs)"

    # ------------------------------------------------------------------ recovery
    def _recover(self, study: optuna.Study) -> list[str]:
        r"""Trials left running by a dead process, or interrupted: queued again with the
        same parameters (and grid point) through Optuna's retry callback, then marked
        failed. Idempotent: a trial already queued again is only marked failed, so a kill
        during this step loses nothing either."""
        notes = []
        trials = study.get_trials(deepcopy=True)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        with _quiet_optuna():
            retry = _RetryCallback()
        for trial in trials:
            running = trial.state == TrialState.RUNNING
            interrupted = trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted")
            if not (running or interrupted):
                continue
            if trial.number not in retried:
                with _quiet_optuna():
                    retry(study, trial)
                what = "left running by a dead process" if running else "interrupted"
                notes.append(
                    f"trial {trial.number} ({self._params_text(trial)}) was {what}: marked "
                    "failed and its parameters queued again"
                )
            if running:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return notes

    # ------------------------------------------------------------------ trials
    def _objective(self, trial: optuna.Trial) -> float:
        params = {p.name: p.suggest(trial, self.kind) for p in self.space(self.kind)}
        values = self.info.resolve(
            (self.fixed_source, self.fixed), (f"trial {trial.number}", params)
        )
        seed = values["seed"]
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("hparams", values)
        # CPU float sums depend on the thread count: the retrain of the best trial uses
        # the same count, so that it reproduces the trial's metric in any process
        trial.set_user_attr("threads", self._threads)
        if trial.user_attrs.get("interrupted"):  # inherited from the trial it retries
            trial.set_user_attr("interrupted", False)
        hook = _TrialHook(trial, prune=self.pruner is not None)
        tic = time.perf_counter()
        try:
            result = self._train(values, hooks=[hook])
        except FloatingPointError as error:  # a diverging trial is a bad one, not a crash
            hook.stopped = f"diverged at epoch {hook.epochs + 1}"
            raise optuna.TrialPruned(f"{hook.stopped}: {error}") from None
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        finally:
            trial.set_user_attr("result", hook.summary(time.perf_counter() - tic))
        return float(result.valid[_METRIC])

    def _train(
        self, values: Mapping[str, Any], hooks: list | None = None, threads: int | None = None
    ):
        r"""Builds (seeded, one build at a time) and trains one configuration with
        :obj:`threads` torch threads (default: this tuner's per-job share)."""
        torch.set_num_threads(threads or self._threads)
        with self._build_lock:
            torch.manual_seed(values["seed"])
            model = self.info.build(self.data, values, **self.runtime)
        _, train_values = self.info.hparams.split(values)
        config = TrainConfig(
            **train_values,
            device=self.device,
            max_time=self.max_time,
            progress=False,
            log_epochs=False,
        )
        return Trainer(model, self.data, config, epoch_hooks=hooks).fit()

    def _params_text(self, trial: FrozenTrial) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()) or "no parameters yet"

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        r"""Optuna callback: one progress line, and the tables rewritten."""
        with self._lock:
            seconds = trial.duration.total_seconds() if trial.duration else 0.0
            self._durations.append(seconds)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            result = trial.user_attrs.get("result", {})
            value = result.get("valid_recall@20")
            value_text = f"{value:.4f}" if value is not None else "-"
            if complete:
                best = max(complete, key=lambda t: t.value)
                best_text = f"{best.value:.4f} (trial {best.number})"
            else:
                best_text = "none yet"
            left = max(self.target - finished, 0)
            eta = left * (sum(self._durations) / len(self._durations)) / self.jobs
            self.log(
                f"trial {finished}/{self.target}: {trial.state.name.lower()} valid R@20 "
                f"{value_text} (epoch {result.get('best_epoch', '-')}), best so far "
                f"{best_text}, {seconds:.1f} seconds, ETA {_minutes(eta)}  "
                f"[#{trial.number}: {self._params_text(trial)}"
                f"{'; ' + result['stopped'] if result.get('stopped') else ''}]"
            )
            self._write_tables(study)

    # ------------------------------------------------------------------ outputs
    def _rows(self, study: optuna.Study) -> tuple[list[str], list[dict[str, Any]]]:
        trials = study.get_trials(deepcopy=False)
        names = [name for name in self.info.hparams if any(name in t.params for t in trials)]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value).number if complete else None
        retried = {
            t.system_attrs["retry_history"][-1]: t.number
            for t in trials
            if t.system_attrs.get("retry_history")
        }
        rows = []
        for t in trials:
            result = t.user_attrs.get("result", {})
            notes = []
            if t.number == best:
                notes.append("best")
            if t.user_attrs.get("defaults"):
                notes.append("declared defaults")
            if t.system_attrs.get("retry_history"):
                notes.append(f"retry of trial {t.system_attrs['retry_history'][-1]}")
            if result.get("stopped"):
                notes.append(result["stopped"])
            seconds = t.duration.total_seconds() if t.duration else None
            if t.number in retried:
                how = "interrupted" if t.user_attrs.get("interrupted") else "its process died"
                notes.append(f"{how}; queued again as trial {retried[t.number]}")
                seconds = None  # until it was found dead: not a training time
            rows.append(
                {
                    "number": t.number,
                    "state": t.state.name,
                    **{name: t.params.get(name, "") for name in names},
                    "valid_recall@20": result.get("valid_recall@20"),
                    "valid_ndcg@20": result.get("valid_ndcg@20"),
                    "best_epoch": result.get("best_epoch"),
                    "epochs": result.get("epochs"),
                    "seconds": round(seconds, 2) if seconds is not None else None,
                    "seed": t.user_attrs.get("seed"),
                    "note": "; ".join(notes),
                }
            )
        return names, rows

    def _write_tables(self, study: optuna.Study) -> list[Path]:
        names, rows = self._rows(study)
        columns = ["number", "state", *names, "valid_recall@20", "valid_ndcg@20"]
        columns += ["best_epoch", "epochs", "seconds", "seed", "note"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        csv_path = self.out_dir / "trials.csv"
        atomic_write_text(buffer.getvalue(), csv_path)

        metrics = {"valid_recall@20", "valid_ndcg@20"}

        def cell(column: str, value: Any) -> str:
            if value is None or value == "":
                return "-"
            if column in metrics:
                return f"{value:.4f}"
            return _fmt(value)

        header = ["trial", "state", *names, "valid R@20", "valid N@20", "best epoch"]
        header += ["epochs", "seconds", "seed", "note"]
        lines = [
            f"# Tuning {self.info.label} on {self.data_description}",
            "",
            f"Study `{self.study_name}` in `{self._storage_text()}`; {self.kind} sampler over "
            f"{self._space_text(self.kind)}; {self._pruner_text()}; fixed: "
            f"{self._fixed_text()}. Valid R@20 / N@20 are at each trial's best epoch "
            "(the test split is not used to choose).",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for row in rows:
            lines.append("| " + " | ".join(cell(c, row[c]) for c in columns) + " |")
        md_path = self.out_dir / "trials.md"
        atomic_write_text("\n".join(lines) + "\n", md_path)
        return [md_path, csv_path]

    def _storage_text(self) -> str:
        if not isinstance(self.storage, str):
            return type(self.storage).__name__
        if "@" in self.storage:  # never print a password
            scheme, _, rest = self.storage.partition("://")
            return f"{scheme}://***@{rest.rpartition('@')[2]}"
        return self.storage

    def _fixed_text(self) -> str:
        searched = {p.name for p in self.space(self.kind)}
        keys = ["epochs", "patience", "seed", *sorted(self.pinned - {"epochs", "patience", "seed"})]
        text = ", ".join(f"{k} {_fmt(self.values[k])}" for k in keys if k not in searched)
        if self.max_time is not None:
            text += f", max-time {self.max_time:g} s per trial"
        return text + " (other values: the declared defaults)"

    # ------------------------------------------------------------------ run
    def run(self) -> TuneResult:
        r"""Runs (or resumes) the study, writes the tables, ``best.yaml`` and, unless
        :obj:`retrain` is :obj:`False`, the retrained best configuration's results."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lock = _FolderLock(self.out_dir / "tune.lock") if self.local else contextlib.nullcontext()
        with lock:
            return self._run()

    def _run(self) -> TuneResult:
        storage = self._make_storage()
        study = optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            direction="maximize",
            load_if_exists=True,
        )
        stored = study.user_attrs.get("settings")
        kind = self.requested_sampler
        if kind == "auto":
            if stored is not None:
                kind = stored["sampler"]
            else:
                kind = self._auto_sampler()
        self.kind = kind
        settings = self._settings(kind)
        if stored is None:
            study.set_user_attr("settings", settings)
        else:
            self._check_settings(stored, settings)
        notes = self._recover(study) if self.local else []
        existing = len(study.get_trials(deepcopy=False))
        study.sampler = self._make_sampler(kind, existing)
        if kind in ("tpe", "random") and existing == 0:
            # the declared defaults are the first point TPE tries: the study then also
            # measures the untuned model, and its best can never be worse on valid
            defaults = {
                p.name: self.values[p.name]
                for p in self.space(kind)
                if p.in_space(self.values[p.name], "grid" if kind == "random" else kind)
            }
            if defaults:
                study.enqueue_trial(defaults, user_attrs={"defaults": True})
        study.pruner = self._make_pruner()
        self.target = (
            min(self.trials, self.grid_size) if kind in ("grid", "random") else self.trials
        )
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))

        self.log(
            f"dreamgeo tune: {self.info.label} on {self.data_description}; study "
            f"'{self.study_name}' in {self._storage_text()}; run folder {self.out_dir}"
        )
        size = {
            "grid": f" ({self.grid_size} points)",
            "random": f" ({self.grid_size} points in random order, none twice)",
        }.get(kind, "")
        self.log(
            f"dreamgeo tune: {kind} sampler over {self._space_text(kind)}{size}; "
            f"{self._pruner_text()}; fixed: {self._fixed_text()}; seed {self.values['seed']} "
            f"for every trial; {self.jobs} job(s) x {self._threads} torch thread(s)"
        )
        if kind == "grid" and self.trials > self.grid_size:
            self.log(
                f"dreamgeo tune: --trials {self.trials} > the grid's {self.grid_size} points: "
                "the study ends when the grid is exhausted"
            )
        for note in notes:
            self.log(f"dreamgeo tune: {note}")
        remaining = max(self.target - finished, 0)
        self.log(
            f"dreamgeo tune: {finished} of {self.target} trials finished already; "
            f"running {remaining} more"
            + (f" (at most {self.timeout:.0f} s)" if self.timeout and remaining else "")
        )
        files: list[Path] = []
        if remaining:
            original_threads = torch.get_num_threads()
            try:
                with _quiet_optuna():
                    study.optimize(
                        self._objective,
                        n_trials=remaining,
                        timeout=self.timeout,
                        n_jobs=self.jobs,
                        callbacks=[
                            optuna.study.MaxTrialsCallback(self.target, states=FINISHED),
                            self._after_trial,
                        ],
                    )
            finally:
                torch.set_num_threads(original_threads)
                files = self._write_tables(study)
        else:
            files = self._write_tables(study)
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        result = TuneResult(
            self.study_name, self._storage_text(), self.out_dir, kind, finished, files=files
        )
        if kind == "grid":
            result.grid_exhausted = self._grid_exhausted(study)
            if result.grid_exhausted:
                self.log(
                    f"dreamgeo tune: the grid is exhausted: all {self.grid_size} points tried; "
                    "the study ends"
                )
        if finished < self.target:
            self.log(
                f"dreamgeo tune: {finished} of {self.target} trials finished (stopped by "
                "--timeout); run the same command again to continue"
            )
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            self.log("dreamgeo tune: no trial completed; no best configuration yet")
            return result
        best = study.best_trial
        result.best_trial, result.best_value = best.number, float(best.value)
        result.best_values = dict(best.user_attrs["hparams"])
        best_yaml = self._write_best(best, finished)
        result.files.append(best_yaml)
        if self.export is not None:
            self.export.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(best_yaml, self.export)
            result.files.append(self.export)
            self.log(f"dreamgeo tune: best.yaml copied to {self.export}")
        if self.retrain:
            result.best_result = self._retrain_best(best, best_yaml)
            result.files += [self.out_dir / "best_result.json", self.out_dir / "best_result.md"]
        self.log(
            f"dreamgeo tune: run folder {self.out_dir}: " + ", ".join(p.name for p in result.files)
        )
        return result

    def _auto_sampler(self) -> str:
        r"""``--sampler auto``: the whole grid when the budget covers it; else the grid's
        points in random order when every searched value is a grid value (TPE would
        propose the same points again); else TPE."""
        if 0 < self.grid_size <= self.trials:
            return "grid"
        if self.grid_space and all(p.search is None for p in self.tpe_space):
            return "random"
        return "tpe"

    def _check_settings(self, stored: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        r"""Refuses to resume a study run with another model, data, fixed values or time
        budget; the same sampler must also keep its search space (and the grid its
        seed, which orders the grid). Another sampler may continue a study."""
        stored = json.loads(json.dumps(stored))
        current = json.loads(json.dumps(settings))
        searched = set(stored.get("space", {})) | set(current["space"])
        for record in (stored, current):
            record["fixed"] = {k: v for k, v in record["fixed"].items() if k not in searched}
        keys = ["model", "data_checksum", "fixed", "max_time"]
        if stored.get("sampler") == current["sampler"]:
            keys.append("space")
            if current["sampler"] == "grid":
                keys.append("sampler_seed")
        diffs = []
        for key in keys:
            old, new = stored.get(key), current.get(key)
            if old == new:
                continue
            if isinstance(old, dict) and isinstance(new, dict):
                for name in sorted(set(old) | set(new)):
                    if old.get(name) != new.get(name):
                        diffs.append(f"{name} {old.get(name)} then, {new.get(name)} now")
            else:
                diffs.append(f"{key} {old} then, {new} now")
        if diffs:
            raise TuneError(
                f"study '{self.study_name}' in {self._storage_text()} was run with other "
                f"settings ({'; '.join(diffs)}); rerun with the same settings to resume it, or "
                "give another --out-dir / --study-name"
            )

    def _grid_exhausted(self, study: optuna.Study) -> bool:
        names = list(self.grid_space)
        seen = {
            tuple(t.params.get(name) for name in names)
            for t in study.get_trials(deepcopy=False, states=FINISHED)
        }
        return len(seen) >= self.grid_size

    def _write_best(self, best: FrozenTrial, finished: int) -> Path:
        result = best.user_attrs.get("result", {})
        budget = f"epochs {best.user_attrs['hparams']['epochs']}, patience "
        budget += f"{best.user_attrs['hparams']['patience']}"
        if self.max_time is not None:
            budget += f", max-time {self.max_time:g} s"
        comments = [
            f"dreamgeo tune: best of {finished} finished trials ({self.kind} sampler, "
            f"{self._pruner_text()}) of study '{self.study_name}'",
            f"dataset: {self.data_description} (checksum {self._checksum})",
            f"trial {best.number}: valid R@20 {best.value:.4f}, valid N@20 "
            f"{result.get('valid_ndcg@20', float('nan')):.4f}, best epoch "
            f"{result.get('best_epoch')}",
            f"budget per trial: {budget}; searched: {self._space_text(self.kind)}",
            f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "train it: dreamgeo train --config best.yaml (with the same data flags)",
        ]
        path = self.out_dir / "best.yaml"
        write_config(path, self.info.name, best.user_attrs["hparams"], comments)
        self.log(
            f"dreamgeo tune: best trial {best.number} ({self._params_text(best)}): valid R@20 "
            f"{best.value:.4f}; written to {path}"
        )
        return path

    def _retrain_best(self, best: FrozenTrial, best_yaml: Path) -> dict[str, Any]:
        r"""``best.yaml``'s configuration trained again with its seed: its valid Recall@20
        must equal the trial's (on the CPU), and its test metrics are reported."""
        previous = self.out_dir / "best_result.json"
        if previous.is_file():
            done = json.loads(previous.read_text())
            if (
                done.get("study") == self.study_name
                and done.get("trial") == best.number
                and done.get("hparams") == json.loads(json.dumps(best.user_attrs["hparams"]))
            ):
                self.log(f"dreamgeo tune: {previous} is already the best trial's; kept")
                return done
        model, values = load_config(best_yaml)
        values = self.info.resolve((str(best_yaml), values))
        self.log(f"dreamgeo tune: retraining best.yaml (trial {best.number}) for its test metrics")
        original_threads = torch.get_num_threads()
        tic = time.perf_counter()
        try:
            result = self._train(values, threads=best.user_attrs.get("threads"))
        finally:
            torch.set_num_threads(original_threads)
        wall = time.perf_counter() - tic
        again = float(result.valid[_METRIC])
        agree = again == float(best.value)
        record = {
            "study": self.study_name,
            "trial": best.number,
            "model": self.info.name,
            "data": self.data_description,
            "trial_valid_recall@20": float(best.value),
            "retrain_valid_recall@20": again,
            "reproduced": agree,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "valid": {k: result.valid[k] for k in _REPORTED},
            "test": {k: result.test[k] for k in _REPORTED},
            "wall_time": round(wall, 2),
            "hparams": values,
            "note": "test metrics of the best configuration only; never used to choose it",
        }
        atomic_write_text(json.dumps(record, indent=2) + "\n", self.out_dir / "best_result.json")
        verdict = "the same" if agree else "DIFFERENT"
        if not agree:
            verdict += (
                " (a --max-time budget stops at a time-dependent epoch)"
                if self.max_time is not None
                else " (expected equal on the CPU with the same seed)"
            )
        lines = [
            f"# Best {self.info.label} configuration on {self.data_description}",
            "",
            f"Trial {best.number} of study `{self.study_name}` (`best.yaml`), retrained with "
            f"seed {values['seed']}: best epoch {result.best_epoch} of {len(result.history)}, "
            f"{wall:.1f} s. Valid R@20 {again:.6f} retrained, {best.value:.6f} in the trial: "
            f"{verdict}. Test metrics are reported for this configuration only and were not "
            "used to choose it.",
            "",
            format_metrics_table({"valid": record["valid"], "test": record["test"]}, short=True),
        ]
        text = "\n".join(lines) + "\n"
        atomic_write_text(text, self.out_dir / "best_result.md")
        self.log(
            f"dreamgeo tune: retrained valid R@20 {again:.6f}, trial {best.value:.6f}: {verdict}"
        )
        self.log(text.split("\n\n", 2)[2].rstrip())
        return record
