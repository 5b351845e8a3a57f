r"""Runs an experiment's training runs one after another, each in its own process,
on identical data, splits, negatives (seeded sampler) and evaluator."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamgeo.experiments.spec import RunSpec
from dreamgeo.train.run_dir import record_differences

__all__ = ["ExperimentRunner", "RunFailed"]

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    r"""A training run exited with an error; the message names its log file."""


class ExperimentRunner:
    r"""Trains each :class:`~dreamgeo.experiments.RunSpec` with ``dreamgeo train`` in a
    fresh process (so one run's memory or crash cannot touch the next) writing to
    ``out_root/<run name>/``, and returns the runs' ``result.json`` contents.

    A run whose ``result.json`` exists and was made with the same result-relevant
    arguments is not trained again; a run that has a checkpoint but no result (killed)
    continues with ``--resume``; a result made with other arguments is an error unless
    :obj:`force` is set. So an interrupted experiment loses at most one epoch.

    Args:
        out_root (str or Path): Folder of the experiment's runs.
        common_argv (list[str]): ``dreamgeo train`` flags shared by every run (data,
            epochs, learning rate, time budget, device, ...).
        force (bool, optional): Retrain runs whose stored arguments differ.
            (default: :obj:`False`)
        progress (bool, optional): Show each run's progress bars. (default: :obj:`False`)
        keep_going (bool, optional): After a failed run, go on with the others and
            report the failure at the end instead of stopping. (default: :obj:`True`)
    """

    def __init__(
        self,
        out_root: str | Path,
        common_argv: Sequence[str],
        force: bool = False,
        progress: bool = False,
        keep_going: bool = True,
    ):
        self.out_root = Path(out_root)
        self.common_argv = list(common_argv)
        self.force = force
        self.progress = progress
        self.keep_going = keep_going
        self.failures: list[str] = []

    def command(self, spec: RunSpec, resume: bool = False, overwrite: bool = False) -> list[str]:
        r"""The full command line of ``spec``."""
        argv = [sys.executable, "-m", "dreamgeo.commands", "train", *self.common_argv, *spec.argv()]
        argv += ["--out-dir", str(self.out_root / spec.name)]
        if not self.progress:
            argv.append("--no-progress")
        if resume:
            argv.append("--resume")
        if overwrite:
            argv.append("--overwrite")
        return argv

    def expected_args(self, spec: RunSpec) -> dict[str, Any]:
        r"""What ``spec`` will run with, as ``dreamgeo train`` resolves it: the model,
        the data and every hyper-parameter value (checked: a key the model does not take
        raises :class:`~dreamgeo.hparams.HParamError` here, before anything runs)."""
        from dreamgeo.commands.train import train_parser
        from dreamgeo.config import given_hparam_flags, join_negative_values, resolve_run
        from dreamgeo.datasets.source import resolve_source

        argv = join_negative_values(["train", *self.common_argv, *spec.argv()])
        args = train_parser().parse_args(argv)
        info, values = resolve_run(
            args.model, args.config, args.assignments, given_hparam_flags(args)
        )
        source = resolve_source(
            args.dataset, args.data_root, args.preset, args.data_seed, args.modalities
        )
        return {
            "model": info.name,
            "data": source.describe(),
            "hparams": values,
            "max_time": args.max_time,
        }

    def stored_result(self, spec: RunSpec) -> dict[str, Any] | None:
        r"""``spec``'s finished result if one with the same arguments exists."""
        path = self.out_root / spec.name / "result.json"
        if not path.exists():
            return None
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; the run is trained again", path)
            return None
        expected = json.loads(json.dumps(self.expected_args(spec)))
        stored = {key: result.get(key) for key in expected}
        if stored != expected:
            changed = record_differences(stored, expected)
            if not self.force:
                raise ValueError(
                    f"{path} was made with other arguments ({', '.join(changed)}); pass "
                    "--force to retrain it or choose another --out-root"
                )
            return None
        return result

    def run(self, spec: RunSpec) -> dict[str, Any]:
        r"""Trains ``spec`` (or reuses its stored result) and returns ``result.json``."""
        result = self.stored_result(spec)
        if result is not None:
            print(f"dreamgeo: {spec.name}: finished earlier, reusing its result")
            return result
        run_dir = self.out_root / spec.name
        run_dir.mkdir(parents=True, exist_ok=True)
        finished = (run_dir / "result.json").exists()  # with other arguments: --force
        resume = (run_dir / "checkpoint.pt").exists() and not finished
        command = self.command(spec, resume=resume, overwrite=finished)
        print(f"dreamgeo: {spec.name}: {'resuming' if resume else 'training'} -> {run_dir}")
        log_path = run_dir / "train.log"
        tic = time.perf_counter()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_path.open("a") as log_file:
            if self.progress:
                code = subprocess.run(command, env=env).returncode
            else:
                code = subprocess.run(
                    command, stdout=log_file, stderr=subprocess.STDOUT, env=env
                ).returncode
        if code != 0:
            raise RunFailed(f"{spec.name} failed (exit code {code}); see {log_path}")
        result = json.loads((run_dir / "result.json").read_text())
        print(
            f"dreamgeo: {spec.name}: test R@20 {result['test']['recall@20']:.4f} at epoch "
            f"{result['best_epoch']} ({time.perf_counter() - tic:.0f} s)"
        )
        return result

    def run_all(self, specs: Sequence[RunSpec]) -> dict[str, dict[str, Any]]:
        r"""Runs every spec in order; returns run name to result. With :obj:`keep_going`,
        failed runs are left out and their errors kept in :obj:`failures`."""
        results: dict[str, dict[str, Any]] = {}
        self.failures = []
        for index, spec in enumerate(specs, start=1):
            print(f"dreamgeo: run {index}/{len(specs)}")
            try:
                results[spec.name] = self.run(spec)
            except RunFailed as error:
                if not self.keep_going:
                    raise
                print(f"dreamgeo: {error}")
                self.failures.append(str(error))
        return results
