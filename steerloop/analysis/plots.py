"""PNG plots of an analysis (extra ``plot``: ``pip install 'steerloop[plot]'``).

Matplotlib is imported lazily, and only its object-oriented API with the Agg canvas is used
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``): nothing touches ``pyplot`` or the
global backend, so plotting is safe inside an application that uses another backend.

:func:`write_plots` writes four files into a folder:

``trajectories.png``
    mean score per step of each objective, one panel per strategy (records grouped by the
    strategy that produced them), with a ±1 standard deviation band;
``rates.png``
    fitted convergence rate ρ = −max Re λ per strategy, coloured by regime;
``interference.png``
    the pooled interference matrix I_ij = Corr(Δy_i, Δy_j) as a heatmap;
``severity.png``
    the stationary density P(s) ∝ σ(s)⁻² exp(∫ 2μ/σ²) of the fitted severity SDE
    (:func:`steerloop.estimators.severity.stationary_density`) over a histogram of the
    observed severities.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from steerloop.analysis.fit import AnalysisReport
from steerloop.analysis.trajectory import TrajectoryArrays

__all__ = ["PLOT_FILES", "require_matplotlib", "write_plots"]

#: File names :func:`write_plots` writes, in order.
PLOT_FILES = ("trajectories.png", "rates.png", "interference.png", "severity.png")

_REGIME_COLOURS = {
    "exponential": "#1b9e77",
    "oscillatory": "#7570b3",
    "boundary-seeking": "#d95f02",
    "unstable": "#e7298a",
    "unknown": "#999999",
}


def require_matplotlib() -> Any:
    """Import matplotlib's Figure and Agg canvas, or raise ImportError naming the extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plots need matplotlib; install the plot extra: pip install 'steerloop[plot]'"
        ) from error
    return Figure, FigureCanvasAgg


def _save(figure: Any, canvas_type: Any, path: Path) -> Path:
    canvas_type(figure)
    figure.savefig(path, dpi=110)
    return path


def _plot_trajectories(figure: Any, data: TrajectoryArrays, strategies: list[str]) -> None:
    count = max(len(strategies), 1)
    cols = min(count, 2)
    rows = math.ceil(count / cols)
    steps = int(data.step.max()) + 1 if len(data) else 1
    for k, name in enumerate(strategies):
        axis = figure.add_subplot(rows, cols, k + 1)
        index = data.strategy_names.index(name)
        mask = data.strategy == index
        step = data.step[mask]
        scores = data.scores[mask]
        for j, objective in enumerate(data.objectives):
            sums = np.bincount(step, weights=np.nan_to_num(scores[:, j]), minlength=steps)
            valid = np.isfinite(scores[:, j]).astype(np.float64)
            counts = np.bincount(step, weights=valid, minlength=steps)
            squares = np.bincount(step, weights=np.nan_to_num(scores[:, j]) ** 2, minlength=steps)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = sums / counts
                spread = np.sqrt(np.maximum(squares / counts - mean * mean, 0.0))
            x = np.arange(steps)
            line = axis.plot(x, mean, label=objective)[0]
            axis.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.15)
        axis.set_title(name, fontsize=9)
        axis.set_ylim(0.0, 1.0)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        if k == 0:
            axis.legend(fontsize=7, loc="lower right")
    figure.suptitle("Scores by strategy (mean ± sd over sessions)", fontsize=10)
    figure.tight_layout()


def _plot_rates(figure: Any, report: AnalysisReport, reference: Mapping[str, float] | None) -> None:
    axis = figure.add_subplot(1, 1, 1)
    names = list(report.strategies)
    rates = [report.strategies[n].rate for n in names]
    colours = [_REGIME_COLOURS.get(report.strategies[n].regime, "#999999") for n in names]
    positions = np.arange(len(names))
    axis.bar(positions, [r if r is not None else 0.0 for r in rates], color=colours)
    if reference:
        for pos, name in zip(positions, names, strict=True):
            if name in reference:
                axis.plot([pos - 0.4, pos + 0.4], [reference[name]] * 2, "k--", linewidth=1)
    for pos, name in zip(positions, names, strict=True):
        axis.text(pos, 0.02, report.strategies[name].regime, ha="center", fontsize=7, rotation=90)
    axis.set_xticks(positions)
    axis.set_xticklabels(names, rotation=20, fontsize=8)
    axis.set_ylabel("rate ρ = −max Re λ")
    title = "Convergence rate by strategy (colour: regime"
    axis.set_title(title + ("; dashed: paper)" if reference else ")"), fontsize=10)
    figure.tight_layout()


def _plot_interference(figure: Any, report: AnalysisReport) -> None:
    axis = figure.add_subplot(1, 1, 1)
    d = len(report.objectives)
    matrix = (
        np.array(
            [[np.nan if v is None else v for v in row] for row in (report.interference or [])]
        ).reshape(d, d)
        if report.interference
        else np.full((d, d), np.nan)
    )
    image = axis.imshow(matrix, cmap="RdBu", vmin=-1.0, vmax=1.0)
    for i in range(d):
        for j in range(d):
            if math.isfinite(matrix[i, j]):
                axis.text(j, i, f"{matrix[i, j]:+.2f}", ha="center", va="center", fontsize=9)
    axis.set_xticks(range(d))
    axis.set_yticks(range(d))
    axis.set_xticklabels(report.objectives, rotation=20, fontsize=8)
    axis.set_yticklabels(report.objectives, fontsize=8)
    axis.set_title("Interference I_ij = Corr(Δy_i, Δy_j), pooled", fontsize=10)
    figure.colorbar(image, ax=axis)
    figure.tight_layout()


def _plot_severity(figure: Any, report: AnalysisReport, data: TrajectoryArrays) -> None:
    from steerloop.estimators.severity import stationary_density

    axis = figure.add_subplot(1, 1, 1)
    if np.isfinite(data.severity).all() and len(data):
        observed = data.severity
    else:
        with np.errstate(invalid="ignore"):
            lowest = np.where(np.isfinite(data.scores), data.scores, np.inf).min(axis=1)
        observed = 1.0 - lowest[np.isfinite(lowest)]
    if observed.size:
        axis.hist(observed, bins=40, range=(0.0, 1.0), density=True, alpha=0.35, label="observed")
    fit = report.severity
    if fit is not None:
        try:
            grid, density = stationary_density(
                fit.alpha, fit.beta, fit.gamma, fit.sigma0, fit.sigma1, grid=801
            )
        except ValueError as error:
            axis.text(0.5, 0.5, f"no stationary density: {error}", ha="center", fontsize=7)
        else:
            axis.plot(grid, density, "k-", label="stationary density (fit)")
        axis.set_title(
            f"Severity: α={fit.alpha:.2f}, β={fit.beta:.2f}, γ={fit.gamma:.3f} → {fit.phase}",
            fontsize=10,
        )
    axis.set_xlabel("severity s")
    axis.set_xlim(0.0, 1.0)
    axis.legend(fontsize=8)
    figure.tight_layout()


def write_plots(
    report: AnalysisReport,
    data: TrajectoryArrays,
    folder: str | Path,
    *,
    reference_rates: Mapping[str, float] | None = None,
) -> list[Path]:
    """Write :data:`PLOT_FILES` into ``folder`` (created if needed); return their paths.

    Parameters
    ----------
    report : AnalysisReport
        Output of :func:`~steerloop.analysis.fit_trajectories` on ``data``.
    data : TrajectoryArrays
        The trajectories (for the per-step means and the severity histogram).
    folder : str or Path
        Output folder.
    reference_rates : mapping, optional
        Rates to mark per strategy (e.g. the paper's), drawn as dashed lines.

    Raises
    ------
    ImportError
        When matplotlib is not installed (the message names the ``plot`` extra).
    """
    figure_type, canvas_type = require_matplotlib()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    strategies = [
        n for n in data.strategy_names if (data.strategy == data.strategy_names.index(n)).any()
    ]
    paths: list[Path] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = math.ceil(max(len(strategies), 1) / 2)
        figure = figure_type(figsize=(9.0, 3.2 * rows))
        _plot_trajectories(figure, data, strategies)
        paths.append(_save(figure, canvas_type, out / PLOT_FILES[0]))
        figure = figure_type(figsize=(7.0, 4.0))
        _plot_rates(figure, report, reference_rates)
        paths.append(_save(figure, canvas_type, out / PLOT_FILES[1]))
        figure = figure_type(figsize=(5.5, 4.5))
        _plot_interference(figure, report)
        paths.append(_save(figure, canvas_type, out / PLOT_FILES[2]))
        figure = figure_type(figsize=(6.5, 4.0))
        _plot_severity(figure, report, data)
        paths.append(_save(figure, canvas_type, out / PLOT_FILES[3]))
    return paths
