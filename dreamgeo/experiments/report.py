r"""Markdown and CSV tables of an experiment's results (the layout of the paper's
Tables 2-4, the hyper-parameter grid and repeated seeds)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from dreamgeo.experiments.spec import RunSpec
from dreamgeo.models import MODELS

__all__ = [
    "Table",
    "overall_table",
    "ablation_table",
    "bma_table",
    "grid_table",
    "seed_table",
    "ABLATION_LABELS",
    "MODEL_LABELS",
]

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
METRIC_LABELS = ("R@10", "R@20", "N@10", "N@20")

#: The paper's names of the models (from the registry).
MODEL_LABELS = {name: info.label for name, info in MODELS.items()}

#: The paper's names of the Table 3 rows.
ABLATION_LABELS = {
    "no_filter_gate": "w/o Filter Gate",
    "no_relation_graphs": "w/o Relation Graphs",
    "no_text_encoder": "w/o Text Encoder",
    "no_image_encoder": "w/o Image Encoder",
    "no_encoders": "w/o Both Encoders",
    "no_s3": "w/o S3",
    "no_inter": "w/o Inter-Alignment",
    "no_intra": "w/o Intra-Alignment",
    "no_alignment": "w/o Alignment",
    "full": "DREAM",
}


class Table:
    r"""A table with a header and rows of cells, written as markdown or CSV.

    Args:
        header (list[str]): Column names.
        rows (list[list]): Cells; floats are printed with 4 decimals in markdown and in
            full in CSV.
        notes (list[str], optional): Lines printed under the markdown table.
            (default: :obj:`[]`)
    """

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[Any]], notes=()):
        self.header = list(header)
        self.rows = [list(row) for row in rows]
        self.notes = list(notes)

    def markdown(self) -> str:
        def cell(value: Any) -> str:
            if isinstance(value, float):
                return "–" if math.isnan(value) else f"{value:.4f}"
            return str(value)

        lines = ["| " + " | ".join(self.header) + " |"]
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()


def _metrics(result: dict[str, Any], split: str = "test") -> list[float]:
    return [float(result[split][metric]) for metric in METRICS]


def _run_facts(result: dict[str, Any]) -> list[Any]:
    if result.get("stopped_early"):
        stop = "early stop"
    elif result.get("stopped_by_time"):
        stop = "time budget"
    else:
        stop = "epoch cap"
    wall = result.get("wall_time", float("nan"))
    return [
        result["best_epoch"],
        result["epochs_run"],
        f"{result['epoch_time']:.2f}",
        f"{wall / 60:.1f} min" if wall >= 60 else f"{wall:.0f} s",
        stop,
    ]


_FACTS = ["best epoch", "epochs run", "s/epoch", "wall time", "ended by"]


def overall_table(specs: Sequence[RunSpec], results: dict[str, dict[str, Any]]) -> Table:
    r"""Table 2: test metrics of each model at its best validation epoch, and the
    improvement of the last model (DREAM) over the best other one."""
    rows, best_other, last = [], None, None
    for spec in specs:
        if spec.name not in results:
            continue
        result = results[spec.name]
        rows.append([MODEL_LABELS.get(spec.model, spec.model), *_metrics(result)])
        rows[-1] += _run_facts(result)
        if spec.model == "dream":
            last = _metrics(result)
        else:
            values = _metrics(result)
            best_other = (
                values if best_other is None else [max(a, b) for a, b in zip(best_other, values)]
            )
    notes = []
    if last is not None and best_other is not None:
        gains = [f"{100 * (a / b - 1):+.2f} %" for a, b in zip(last, best_other) if b > 0]
        notes.append(
            "DREAM vs the best other model per column: "
            + ", ".join(f"{label} {gain}" for label, gain in zip(METRIC_LABELS, gains))
        )
    return Table(["model", *METRIC_LABELS, *_FACTS], rows, notes)


def ablation_table(specs: Sequence[RunSpec], results: dict[str, dict[str, Any]]) -> Table:
    r"""Table 3: test metrics of each ablation and its change against full DREAM."""
    full = next(
        (results[s.name] for s in specs if s.ablation == "full" and s.name in results), None
    )
    rows = []
    for spec in specs:
        if spec.name not in results:
            continue
        values = _metrics(results[spec.name])
        change = (
            f"{100 * (values[1] / _metrics(full)[1] - 1):+.1f} %"
            if full is not None and spec.ablation != "full"
            else ""
        )
        rows.append(
            [ABLATION_LABELS.get(spec.ablation, spec.ablation), *values, change]
            + _run_facts(results[spec.name])
        )
    return Table(["variant", *METRIC_LABELS, "R@20 vs full", *_FACTS], rows)


def bma_table(specs: Sequence[RunSpec], results: dict[str, dict[str, Any]]) -> Table:
    r"""Table 4: each model without and with BMA, and the relative improvement."""
    rows = []
    models = list(dict.fromkeys(spec.model for spec in specs))
    by_key = {(s.model, s.bma): results.get(s.name) for s in specs}
    for model in models:
        without, with_bma = by_key.get((model, False)), by_key.get((model, True))
        label = MODEL_LABELS.get(model, model)
        if without is not None:
            rows.append([label, *_metrics(without), "", *_run_facts(without)])
        if with_bma is not None:
            gain = ""
            if without is not None and _metrics(without)[1] > 0:
                gain = f"{100 * (_metrics(with_bma)[1] / _metrics(without)[1] - 1):+.1f} %"
            rows.append([f"{label} + BMA", *_metrics(with_bma), gain, *_run_facts(with_bma)])
    return Table(["model", *METRIC_LABELS, "R@20 gain", *_FACTS], rows)


def grid_table(specs: Sequence[RunSpec], results: dict[str, dict[str, Any]]) -> Table:
    r"""The grid: each setting's validation and test Recall@20 / NDCG@20; the setting
    with the best *validation* Recall@20 is marked (test numbers never choose)."""
    done = [spec for spec in specs if spec.name in results]
    if not done:
        return Table(["setting"], [])
    keys = [key for key, _ in done[0].options]
    best = max(done, key=lambda spec: results[spec.name]["valid"]["recall@20"])
    rows = []
    for spec in done:
        result = results[spec.name]
        rows.append(
            [
                *(value for _, value in spec.options),
                result["valid"]["recall@20"],
                result["valid"]["ndcg@20"],
                result["test"]["recall@20"],
                result["test"]["ndcg@20"],
                result["best_epoch"],
                "best (valid R@20)" if spec is best else "",
            ]
        )
    labels = {
        "intra_weight": "α (intra)",
        "inter_weight": "β (inter)",
        "s3_weight": "γ (S3)",
        "image_weight": "α_V (image)",
    }
    header = [labels.get(key, key) for key in keys]
    header += ["valid R@20", "valid N@20", "test R@20", "test N@20", "best epoch", "chosen"]
    return Table(header, rows)


def seed_table(specs: Sequence[RunSpec], results: dict[str, dict[str, Any]]) -> Table:
    r"""Repeated seeds: mean :math:`\pm` sample standard deviation of each test metric
    per model, over the seeds that finished."""
    rows = []
    for model in dict.fromkeys(spec.model for spec in specs):
        runs = [results[s.name] for s in specs if s.model == model and s.name in results]
        if not runs:
            continue
        cells = []
        for metric in METRICS:
            values = [float(run["test"][metric]) for run in runs]
            mean = sum(values) / len(values)
            std = (
                math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                if len(values) > 1
                else float("nan")
            )
            cells.append(f"{mean:.4f} ± {std:.4f}")
        rows.append([MODEL_LABELS.get(model, model), len(runs), *cells])
    return Table(["model", "seeds", *METRIC_LABELS], rows)
