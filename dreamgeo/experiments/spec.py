r"""The runs behind each of the paper's tables, as data: which models, ablations,
plug-ins, hyper-parameters and seeds (Zhang et al., "DREAM: A Dual Representation
Learning Model for Multimodal Recommendation", 2024, Tables 2-4 and Section 4.1)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dreamgeo.models import get_model, models_in_table

__all__ = [
    "RunSpec",
    "EXPERIMENTS",
    "TABLE2_MODELS",
    "TABLE3_ABLATIONS",
    "TABLE4_MODELS",
    "GRID",
    "overall_comparison_runs",
    "ablation_runs",
    "bma_plugin_runs",
    "grid_runs",
    "seed_runs",
]

#: Models of the overall comparison (Table 2), in the paper's order (from the registry).
TABLE2_MODELS: tuple[str, ...] = models_in_table("table2")

#: Rows of the ablation study (Table 3), in the paper's order; ``"full"`` is DREAM.
TABLE3_ABLATIONS: tuple[str, ...] = (
    "no_filter_gate",
    "no_relation_graphs",
    "no_text_encoder",
    "no_image_encoder",
    "no_encoders",
    "no_s3",
    "no_inter",
    "no_intra",
    "no_alignment",
    "full",
)

#: Models that get BMA as a plug-in in Table 4 (from the registry).
TABLE4_MODELS: tuple[str, ...] = models_in_table("table4")

#: The paper's hyper-parameter grid (Section 4.1), as DREAM declares it. The paper's
#: alpha_V (``image_weight``) acts only with fixed modality weights, so the grid pins
#: ``modal_weighting`` to ``"fixed"`` (a one-value axis), and BMA keeps the paper's
#: in-batch negatives (``bma_negatives="batch"``), with which the recorded tables ran.
_DREAM_HPARAMS = get_model("dream").hparams
_PAPER_PINS = {"modal_weighting": "fixed", "bma_negatives": "batch"}
GRID: dict[str, tuple] = {
    **{name: (value,) for name, value in _PAPER_PINS.items()},
    **{
        name: tuple(values)
        for name, values in _DREAM_HPARAMS.grid_space(
            {**_DREAM_HPARAMS.defaults(), **_PAPER_PINS}
        ).items()
    },
}


@dataclass(frozen=True)
class RunSpec:
    r"""One training run of an experiment.

    Args:
        model (str): Registry name, e.g. ``"dream"`` or ``"vbpr"``.
        seed (int, optional): Training seed. (default: :obj:`0`)
        ablation (str, optional): DREAM's Table 3 row. (default: :obj:`"full"`)
        bma (bool, optional): Add :class:`~dreamgeo.nn.BMALoss` to a baseline.
            (default: :obj:`False`)
        options (dict, optional): Further ``dreamgeo train`` flags without dashes, e.g.
            ``{"s3_weight": 0.5}``. (default: :obj:`{}`)
        config (str, optional): A ``--config`` file the run starts from (a tuned
            configuration). (default: :obj:`None`)
    """

    model: str
    seed: int = 0
    ablation: str = "full"
    bma: bool = False
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    config: str | None = None

    @property
    def name(self) -> str:
        r"""The run's folder name, e.g. ``dream-no_s3-seed0`` or ``vbpr-bma-seed0``."""
        parts = [self.model]
        if self.ablation != "full":
            parts.append(self.ablation)
        if self.bma:
            parts.append("bma")
        parts.extend(f"{key}={_format(value)}" for key, value in self.options)
        if self.config is not None:
            parts.append("tuned")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    def argv(self) -> list[str]:
        r"""The run's own ``dreamgeo train`` flags."""
        argv = ["--model", self.model, "--seed", str(self.seed)]
        if self.config is not None:
            argv += ["--config", self.config]
        if self.ablation != "full":
            argv += ["--ablation", self.ablation]
        if self.bma:
            argv.append("--bma")
        for key, value in self.options:
            argv += [f"--{key.replace('_', '-')}", _format(value)]
        return argv


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def overall_comparison_runs(
    models: Sequence[str] = TABLE2_MODELS, seeds: Sequence[int] = (0,)
) -> list[RunSpec]:
    r"""Table 2: every model with its defaults, for each seed."""
    return [RunSpec(model, seed) for seed in seeds for model in models]


def ablation_runs(
    ablations: Sequence[str] = TABLE3_ABLATIONS, seeds: Sequence[int] = (0,)
) -> list[RunSpec]:
    r"""Table 3: DREAM with each part switched off, and the full model."""
    return [RunSpec("dream", seed, ablation=name) for seed in seeds for name in ablations]


def bma_plugin_runs(
    models: Sequence[str] = TABLE4_MODELS, seeds: Sequence[int] = (0,)
) -> list[RunSpec]:
    r"""Table 4: each model without and with BMA, nothing else changed."""
    return [RunSpec(m, seed, bma=bma) for seed in seeds for m in models for bma in (False, True)]


def grid_runs(
    grid: dict[str, Sequence[float]] | None = None, seed: int = 0, model: str = "dream"
) -> list[RunSpec]:
    r"""Every combination of the hyper-parameter grid (:data:`GRID` by default)."""
    grid = dict(GRID if grid is None else grid)
    keys = list(grid)
    return [
        RunSpec(model, seed, options=tuple(zip(keys, values)))
        for values in itertools.product(*(grid[key] for key in keys))
    ]


def seed_runs(models: Sequence[str] = ("lightgcn", "dream"), seeds: Sequence[int] = (0, 1, 2)):
    r"""The same models under several training seeds, for mean :math:`\pm` std."""
    return [RunSpec(model, seed) for model in models for seed in seeds]


#: Experiment name to a one-line description (the ``dreamgeo experiment`` choices).
EXPERIMENTS: dict[str, str] = {
    "table2": "overall comparison: every model (Table 2)",
    "table3": "ablations of DREAM (Table 3)",
    "table4": "BMA plugged into VBPR, BM3, FREEDOM, MGCN (Table 4)",
    "grid": "hyper-parameter grid of DREAM, best chosen on valid Recall@20",
    "seeds": "repeated training seeds, mean ± std",
    "figures": "Fig. 1b, 2a and 7 drawn from the runs of table2-4 (no training)",
}
