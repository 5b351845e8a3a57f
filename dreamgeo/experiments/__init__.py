r"""The paper's experiments (Tables 2-4, the hyper-parameter grid, repeated seeds) as
runs of ``dreamgeo train`` and the tables made from their results; ``dreamgeo
experiment`` (:mod:`dreamgeo.commands.experiment`) trains the runs."""

from dreamgeo.experiments.report import Table
from dreamgeo.experiments.spec import (
    EXPERIMENTS,
    GRID,
    TABLE2_MODELS,
    TABLE3_ABLATIONS,
    TABLE4_MODELS,
    RunSpec,
    ablation_runs,
    bma_plugin_runs,
    grid_runs,
    overall_comparison_runs,
    seed_runs,
)

__all__ = [
    "RunSpec",
    "Table",
    "EXPERIMENTS",
    "GRID",
    "TABLE2_MODELS",
    "TABLE3_ABLATIONS",
    "TABLE4_MODELS",
    "overall_comparison_runs",
    "ablation_runs",
    "bma_plugin_runs",
    "grid_runs",
    "seed_runs",
]
