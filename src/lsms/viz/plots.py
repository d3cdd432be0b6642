"""Small report figures (PNG, matplotlib's Agg backend, no pyplot state): loss curves, bars, scatters."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lsms.atomic import atomic_write
from lsms.errors import DataError

# Columns tried, in order, for the x axis of a loss curve; the row number is used when none is present.
_X_COLUMNS = ("step", "global_step", "iteration", "epoch")


def _new_figure(size: tuple[float, float] = (6.0, 4.0)) -> Figure:
    figure = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, out_png: str | Path) -> Path:
    figure.tight_layout()
    return atomic_write(out_png, lambda tmp: figure.savefig(tmp, format="png"))


def _as_float(value: object) -> float:
    """A finite float, or NaN for blanks and text (a CSV row may log validation loss only at epoch ends)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def plot_loss_curve(
    csv_path_or_rows: str | Path | Iterable[Mapping[str, object]], out_png: str | Path
) -> Path:
    """Plot every column whose name contains ``loss`` against the step (or epoch, or row number).

    ``csv_path_or_rows`` is a CSV file with a header row or an iterable of dicts (e.g. the trainer's log
    rows). Blank cells are skipped, so a ``val_loss`` logged once per epoch draws as its own sparse line.
    """
    if isinstance(csv_path_or_rows, (str, Path)):
        source = str(csv_path_or_rows)
        try:
            with open(csv_path_or_rows, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as error:
            raise DataError(f"{source}: cannot read the loss log ({error.strerror})") from error
    else:
        source = "loss rows"
        rows = [dict(row) for row in csv_path_or_rows]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    loss_columns = [column for column in columns if "loss" in column.lower()]
    if not rows or not loss_columns:
        raise DataError(
            f"{source}: expected rows with at least one column named like '*loss*', got {columns}"
        )
    x_column = next((column for column in _X_COLUMNS if column in columns), None)
    x_values = [_as_float(row.get(x_column)) if x_column else float(i) for i, row in enumerate(rows)]
    figure = _new_figure()
    axes = figure.add_subplot()
    for column in loss_columns:
        points = [(x, _as_float(row.get(column))) for x, row in zip(x_values, rows, strict=True)]
        points = [(x, y) for x, y in points if not (math.isnan(x) or math.isnan(y))]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=column)
    axes.set_xlabel(x_column or "row")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, out_png)


def plot_bar(values: Mapping[str, float], out_png: str | Path, ylabel: str, title: str | None = None) -> Path:
    """One labelled bar per entry, in the mapping's order, with its value written above the bar."""
    if not values:
        raise DataError("bar plot: expected at least one value, got none")
    figure = _new_figure((max(4.0, 1.0 + 0.9 * len(values)), 4.0))
    axes = figure.add_subplot()
    bars = axes.bar(list(values), [float(value) for value in values.values()], color="#4C72B0")
    axes.bar_label(bars, fmt="%.3g", fontsize=8)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=30 if len(values) > 4 else 0)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, out_png)


def plot_scatter(
    points: Mapping[str, tuple[float, float]],
    out_png: str | Path,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
) -> Path:
    """One annotated point per name, e.g. accuracy against parameters or latency for each model."""
    if not points:
        raise DataError("scatter plot: expected at least one point, got none")
    figure = _new_figure()
    axes = figure.add_subplot()
    for name, (x, y) in points.items():
        axes.scatter([float(x)], [float(y)], s=30)
        axes.annotate(name, (float(x), float(y)), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    return _save(figure, out_png)
