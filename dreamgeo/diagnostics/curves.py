r"""Per-epoch curves of diagnostics columns read from one or several runs'
``metrics.jsonl`` (paper, Fig. 1b, 2a and 6b)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamgeo.diagnostics.pyplot import import_pyplot

__all__ = [
    "read_metrics",
    "plot_epoch_curves",
    "plot_forgetting",
    "plot_behavior_modal_cosine",
]

#: A run: its directory, its ``metrics.jsonl`` or its rows already read.
Run = str | Path | Sequence[Mapping[str, Any]]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    r"""The rows of a run's ``metrics.jsonl`` (``path`` is the file or the run
    directory), one dict per epoch."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a run directory or its metrics.jsonl")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} line {number}: not JSON ({error.msg})") from error
    return rows


def _rows(run: Run) -> list[Mapping[str, Any]]:
    return read_metrics(run) if isinstance(run, (str, Path)) else list(run)


def _style(name: str, palette: dict[str, Any], colors: Sequence[Any]) -> dict[str, Any]:
    # "vbpr" and "vbpr+bma" share a colour, the BMA variant dashed (Fig. 2a's pairs)
    base, _, plugin = name.partition("+")
    if base not in palette:
        palette[base] = colors[len(palette) % len(colors)]
    return {"color": palette[base], "linestyle": "--" if plugin else "-"}


def plot_epoch_curves(
    runs: Mapping[str, Run],
    columns: Sequence[str],
    path: str | Path,
    ylabel: str = "",
    titles: Mapping[str, str] | None = None,
    suptitle: str | None = None,
) -> Path:
    r"""One panel per column, one line per run (value against epoch), saved as a PNG.
    Runs without a column are left out of its panel. Runs whose name has a ``+`` suffix
    (e.g. ``"vbpr+bma"``) are dashed in the colour of their base name (``"vbpr"``).

    Args:
        runs (Mapping[str, Run]): Legend label to run directory, ``metrics.jsonl`` path or
            list of rows.
        columns (Sequence[str]): Columns of the rows to draw.
        path (str or Path): The PNG to write (parent directories are made).
        ylabel (str, optional): Label of the y axes. (default: :obj:`""`)
        titles (Mapping[str, str], optional): Panel title per column. (default: the
            column name)
        suptitle (str, optional): Figure title. (default: :obj:`None`)

    Returns:
        The path written.
    """
    if not columns:
        raise ValueError("plot_epoch_curves: no columns to draw")
    plt = import_pyplot()
    data = {name: _rows(run) for name, run in runs.items()}
    if not any(column in row for rows in data.values() for row in rows for column in columns):
        raise ValueError(
            f"plot_epoch_curves: none of the runs {sorted(runs)} logged any of {list(columns)}; "
            "train them with the DualRepresentationDiagnostics callback"
        )
    num_cols = min(len(columns), 2)
    num_rows = -(-len(columns) // num_cols)
    figure, axes = plt.subplots(
        num_rows, num_cols, figsize=(5.0 * num_cols, 3.6 * num_rows), squeeze=False
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    palette: dict[str, Any] = {}
    for panel, column in zip(axes.flat, columns):
        for name, rows in data.items():
            points = [(row["epoch"], row[column]) for row in rows if column in row]
            if points:
                epochs, values = zip(*points)
                panel.plot(
                    epochs, values, label=name, linewidth=1.5, **_style(name, palette, colors)
                )
        panel.set_title((titles or {}).get(column, column), fontsize=10)
        panel.set_xlabel("epoch")
        panel.set_ylabel(ylabel)
        panel.grid(alpha=0.3)
        if panel.lines:
            panel.legend(fontsize=8)
    for panel in list(axes.flat)[len(columns) :]:
        panel.set_visible(False)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _logged_columns(runs: Mapping[str, Run], prefix: str) -> tuple[dict[str, list], list[str]]:
    data = {name: _rows(run) for name, run in runs.items()}
    columns: list[str] = []
    for rows in data.values():
        for row in rows:
            columns.extend(key for key in row if key.startswith(prefix) and key not in columns)
    return data, columns


def plot_forgetting(runs: Mapping[str, Run], path: str | Path, centered: bool = False) -> Path:
    r"""Fig. 1b: Modal Information Forgetting per epoch, one line per run, one panel per
    ``forgetting_<node>_<modality>`` column (items first).

    Args:
        runs (Mapping[str, Run]): Legend label to run (see :func:`plot_epoch_curves`).
        path (str or Path): The PNG to write.
        centered (bool, optional): Plot the centred reading
            (``forgetting_centered_*`` columns) instead. (default: :obj:`False`)
    """
    prefix = "forgetting_centered_" if centered else "forgetting_"
    data, columns = _logged_columns(runs, prefix)
    if not centered:
        columns = [c for c in columns if not c.startswith("forgetting_centered_")]
    if not columns:
        raise ValueError(
            f"plot_forgetting: none of the runs {sorted(runs)} logged forgetting_* columns; "
            "train them with the DualRepresentationDiagnostics callback"
        )
    columns.sort(key=lambda column: (not column.startswith("forgetting_item"), column))
    titles = {
        column: "{} {} features".format(*column.removeprefix(prefix).split("_", 1))
        for column in columns
    }
    return plot_epoch_curves(
        data,
        columns,
        path,
        ylabel="cosine distance of similarities",
        titles=titles,
        suptitle="Modal Information Forgetting (learned modal vs raw features"
        + (", centred)" if centered else ")"),
    )


def plot_behavior_modal_cosine(
    runs: Mapping[str, Run], path: str | Path, distance: bool = False
) -> Path:
    r"""Fig. 2a (and 6b with :obj:`distance=True`): mean cosine similarity (or distance)
    between each user's / item's behaviour and modal representation per epoch, one line
    per run (``"<model>+bma"`` runs dashed next to ``"<model>"``), panels for users and
    items.

    Args:
        runs (Mapping[str, Run]): Legend label to run (see :func:`plot_epoch_curves`).
        path (str or Path): The PNG to write.
        distance (bool, optional): Plot :math:`1 - \cos` instead. (default: :obj:`False`)
    """
    what = "distance" if distance else "cos"
    columns = [f"behavior_modal_{what}_user", f"behavior_modal_{what}_item"]
    label = "cosine distance" if distance else "cosine similarity"
    return plot_epoch_curves(
        runs,
        columns,
        path,
        ylabel=f"mean {label}",
        titles={columns[0]: "users", columns[1]: "items"},
        suptitle=f"Behaviour vs modal representation: {label}",
    )


def plot_training_curve(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    r"""The training curve of one run: mean training loss (left axis) and valid
    Recall@20 (right axis) per epoch, written to ``path`` (PNG).

    Args:
        history (Sequence[Mapping]): The run's rows (``metrics.jsonl`` or
            :attr:`~dreamgeo.train.TrainResult.history`) with ``epoch``, ``loss`` and
            ``valid_recall@20``.
        path (str or Path): The image file.
    """
    plt = import_pyplot()
    epochs = [row["epoch"] for row in history]
    figure, loss_axis = plt.subplots(figsize=(6, 3.5))
    loss_axis.plot(epochs, [row.get("loss", float("nan")) for row in history], color="C0")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="C0")
    recall_axis = loss_axis.twinx()
    recall = [row.get("valid_recall@20", float("nan")) for row in history]
    recall_axis.plot(epochs, recall, color="C1")
    recall_axis.set_ylabel("valid Recall@20", color="C1")
    if recall:
        best = max(range(len(recall)), key=recall.__getitem__)
        recall_axis.axvline(epochs[best], color="C1", linestyle=":", linewidth=1)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
