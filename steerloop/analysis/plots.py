"""PNG plots of an analysis (extra ``plot``: ``pip install 'steerloop[plot]'``).

Matplotlib is imported lazily, and only its object-oriented API with the Agg canvas is used
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``): nothing touches ``pyplot`` or the
global backend, so plotting is safe inside an application that uses another backend.

:func:`write_plots` writes four files into a folder:

``trajectories.png``
    mean score per step of each objective, one panel per strategy (records grouped by the
    strategy that produced them), with a ±1 standard deviation band (the spread across
    sessions, not an uncertainty of the mean);
``rates.png``
    fitted convergence rate ρ = −max Re λ per strategy (1/step), coloured by regime, with
    its 95 % interval ±1.96 se (delta method, :mod:`steerloop.analysis.uncertainty`); a
    strategy with too few transitions for a fit is drawn as a hatched placeholder that says so;
``interference.png``
    the pooled interference matrix I_ij = Corr(Δy_i, Δy_j) as a heatmap, each cell with its
    95 % interval (Fisher z);
``severity.png``
    one panel per strategy: the histogram of the observed severities in the second half of
    the run (after the transient) and the stationary density of that strategy's fitted
    severity SDE on the range its data cover (:func:`steerloop.analysis.severity.
    severity_density`), titled with α − β ± se and the phase.

**Why one severity panel per strategy, on the observed range.** The earlier single panel drew
the density of *one* SDE fitted to the transitions of all strategies over a histogram of all
severities. Both choices made the curve disagree with its own histogram: the pooled data are a
mixture of processes with different equilibria (paper environment: s ≈ 0.25, 0.6, 0.7 and
0.97), which one quadratic drift cannot describe (its fit had R² ≈ 0.005); and the density was
evaluated on all of [0, 1], where a fitted σ(s) = σ₀ + σ₁ s falls to its floor away from the
data and P(s) ∝ σ(s)⁻² piled the mass there (at s = 0, where no observation lies). The
histogram binning (40 bins of width 0.025 over [0, 1], wider than a strategy's spread of
≈ 0.01) hid the shape as well; each panel now bins its own range.

Every axis says what it measures and in which unit; scores, severities and correlations are
unitless (scores and severities in [0, 1]), rates are per step of the loop (Δt = 1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steerloop.analysis.fit import AnalysisReport
from steerloop.analysis.severity import SeverityFit, severity_chain_sample, severity_density
from steerloop.analysis.trajectory import TrajectoryArrays
from steerloop.analysis.uncertainty import correlation_interval

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


def _grid(figure: Any, count: int, cols: int = 2) -> list[Any]:
    cols = min(max(count, 1), cols)
    rows = math.ceil(max(count, 1) / cols)
    return [figure.add_subplot(rows, cols, k + 1) for k in range(count)]


def _plot_trajectories(figure: Any, data: TrajectoryArrays, strategies: list[str]) -> None:
    steps = int(data.step.max()) + 1 if len(data) else 1
    x = np.arange(steps)
    for k, (axis, name) in enumerate(zip(_grid(figure, len(strategies)), strategies, strict=True)):
        mask = data.strategy == data.strategy_names.index(name)
        step = data.step[mask]
        scores = data.scores[mask]
        for j, objective in enumerate(data.objectives):
            column = scores[:, j]
            valid = np.isfinite(column)
            counts = np.bincount(step[valid], minlength=steps).astype(np.float64)
            sums = np.bincount(step[valid], weights=column[valid], minlength=steps)
            squares = np.bincount(step[valid], weights=column[valid] ** 2, minlength=steps)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = sums / counts
                spread = np.sqrt(np.maximum(squares / counts - mean * mean, 0.0))
            line = axis.plot(x, mean, label=objective)[0]
            axis.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.15)
        axis.set_title(f"{name} ({int(np.unique(data.session[mask]).size)} sessions)", fontsize=9)
        axis.set_ylim(0.0, 1.0)
        axis.set_xlabel("step (iteration of the loop)", fontsize=8)
        axis.set_ylabel("score (0–1)", fontsize=8)
        axis.tick_params(labelsize=7)
        if k == 0:
            axis.legend(fontsize=7, loc="lower right")
    figure.suptitle(
        "Scores by strategy: mean over sessions (line), ±1 sd across sessions (band)", fontsize=10
    )
    figure.tight_layout()


def _plot_rates(figure: Any, report: AnalysisReport, reference: Mapping[str, float] | None) -> None:
    axis = figure.add_subplot(1, 1, 1)
    fits = list(report.strategies.values())
    positions = np.arange(len(fits))
    fitted = [k for k, fit in enumerate(fits) if fit.rate is not None]
    top = max([fits[k].rate or 0.0 for k in fitted] + [0.1])
    for k, fit in enumerate(fits):
        if fit.rate is None:
            axis.bar(k, top, color="none", edgecolor="#999999", hatch="//")
            axis.text(
                k,
                top / 2,
                f"no fit:\n{fit.transitions} transitions",
                ha="center",
                va="center",
                fontsize=7,
            )
            continue
        axis.bar(k, fit.rate, color=_REGIME_COLOURS.get(fit.regime, "#999999"))
        if fit.rate_stderr is not None:
            axis.errorbar(k, fit.rate, yerr=1.96 * fit.rate_stderr, color="black", capsize=4)
        axis.text(
            k,
            0.02 * top,
            f"{fit.regime}\nn = {fit.transitions}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    if reference:
        for k, fit in enumerate(fits):
            if fit.strategy in reference:
                axis.plot([k - 0.4, k + 0.4], [reference[fit.strategy]] * 2, "k--", linewidth=1)
    axis.set_xticks(positions)
    axis.set_xticklabels([fit.strategy for fit in fits], rotation=20, fontsize=8)
    axis.set_xlabel("strategy", fontsize=8)
    axis.set_ylabel("rate ρ = −max Re λ (1/step)", fontsize=8)
    note = "; dashed: paper" if reference else ""
    axis.set_title(
        f"Convergence rate by strategy, 95 % interval ±1.96 se (colour: regime{note})",
        fontsize=10,
    )
    figure.tight_layout()


def _plot_interference(figure: Any, report: AnalysisReport) -> None:
    axis = figure.add_subplot(1, 1, 1)
    d = len(report.objectives)
    matrix = np.full((d, d), np.nan)
    for i, row in enumerate(report.interference or []):
        matrix[i] = [np.nan if v is None else v for v in row]
    image = axis.imshow(matrix, cmap="RdBu", vmin=-1.0, vmax=1.0)
    for i in range(d):
        for j in range(d):
            if not math.isfinite(matrix[i, j]):
                continue
            text = f"{matrix[i, j]:+.2f}"
            interval = correlation_interval(matrix[i, j], report.transitions) if i != j else None
            if interval is not None:
                text += f"\n[{interval[0]:+.2f}, {interval[1]:+.2f}]"
            colour = "white" if abs(matrix[i, j]) > 0.6 else "black"
            axis.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    axis.set_xticks(range(d))
    axis.set_yticks(range(d))
    axis.set_xticklabels(report.objectives, rotation=20, fontsize=8)
    axis.set_yticklabels(report.objectives, fontsize=8)
    axis.set_xlabel("increment Δy_j (score change per step)", fontsize=8)
    axis.set_ylabel("increment Δy_i (score change per step)", fontsize=8)
    axis.set_title(
        f"Interference I_ij = Corr(Δy_i, Δy_j), pooled, n = {report.transitions}\n"
        "[95 % interval, Fisher z]",
        fontsize=9,
    )
    figure.colorbar(image, ax=axis, label="correlation (unitless, −1 to 1)")
    figure.tight_layout()


def _severities(data: TrajectoryArrays) -> NDArray[np.float64]:
    """Each row's severity: the records' when all carry one, else 1 − min score (as the fit)."""
    if np.isfinite(data.severity).all():
        return data.severity
    with np.errstate(invalid="ignore"):
        lowest = np.where(np.isfinite(data.scores), data.scores, np.inf).min(axis=1)
    return np.where(np.isfinite(lowest), 1.0 - lowest, np.nan)


def _fitted_curves(axis: Any, fit: SeverityFit, dt: float, bins: NDArray[np.float64]) -> None:
    """The fitted chain's stationary histogram (dashed) and the SDE's density (solid)."""
    chain = severity_chain_sample(fit, dt=dt, rng=np.random.default_rng(0))
    heights, _ = np.histogram(chain, bins=bins)
    inside = chain[(chain >= bins[0]) & (chain <= bins[-1])].size
    if inside:
        width = float(bins[1] - bins[0])
        axis.stairs(
            heights / (chain.size * width),
            bins,
            color="black",
            linestyle="--",
            label=f"fitted one-step chain (Δt = {dt:g}), simulated",
        )
    if fit.low is not None and fit.high is not None and fit.high > fit.low:
        try:
            grid, density = severity_density(fit, fit.low, fit.high)
        except ValueError:
            return
        axis.plot(grid, density, "k-", linewidth=1, label="continuous-time SDE density")


def _severity_panel(
    axis: Any, name: str, fit: SeverityFit, observed: NDArray[np.float64], dt: float
) -> None:
    if observed.size:
        low, high = float(observed.min()), float(observed.max())
    else:
        low, high = fit.low or 0.0, fit.high if fit.high is not None else 1.0
    pad = max(0.15 * (high - low), 0.01)
    bins = np.linspace(max(low - pad, 0.0), min(high + pad, 1.0), 31)
    if observed.size:
        axis.hist(
            observed, bins=bins, density=True, alpha=0.4, label="observed, 2nd half of the run"
        )
    if fit.note:
        axis.text(
            0.5,
            0.5,
            f"fit not meaningful:\n{fit.note}",
            transform=axis.transAxes,
            ha="center",
            va="center",
            fontsize=7,
            wrap=True,
        )
        title = f"{name}: {fit.transitions} transitions"
    else:
        _fitted_curves(axis, fit, dt, bins)
        se = f" ± {fit.margin_stderr:.2f}" if fit.margin_stderr is not None else ""
        title = f"{name}: α−β = {fit.margin:+.2f}{se} → {fit.phase}"
        title += f", R² {fit.r2:.2f}" if fit.r2 is not None else ""
    axis.set_xlim(float(bins[0]), float(bins[-1]))
    axis.set_title(title, fontsize=8)
    recorded = "severity s (recorded, 0–1)"
    axis.set_xlabel(
        recorded if fit.source == "records" else "severity s = 1 − min score (0–1)", fontsize=8
    )
    axis.set_ylabel("probability density (per unit s)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.legend(fontsize=6, loc="best")


def _plot_severity(figure: Any, report: AnalysisReport, data: TrajectoryArrays) -> None:
    fits = report.severity_by_strategy
    if not fits:
        axis = figure.add_subplot(1, 1, 1)
        axis.text(
            0.5,
            0.5,
            "too few severity transitions for a fit (need ≥ 4 per strategy)",
            ha="center",
            va="center",
            fontsize=9,
            transform=axis.transAxes,
        )
        axis.set_axis_off()
        return
    severity = _severities(data)
    late = data.step >= (int(data.step.max()) + 1) / 2 if len(data) else data.step >= 0
    for axis, (name, fit) in zip(_grid(figure, len(fits)), fits.items(), strict=True):
        mask = (data.strategy == data.strategy_names.index(name)) & late
        observed = severity[mask]
        _severity_panel(axis, name, fit, observed[np.isfinite(observed)], data.dt)
    figure.suptitle(
        "Severity by strategy: observed vs the stationary distribution of the fitted model",
        fontsize=10,
    )
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
        The trajectories (for the per-step means and the severity histograms).
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
    panels = math.ceil(max(len(strategies), 1) / 2)
    severity_panels = math.ceil(max(len(report.severity_by_strategy), 1) / 2)
    draws: list[tuple[tuple[float, float], Callable[[Any], None]]] = [
        ((9.0, 3.2 * panels + 0.4), lambda f: _plot_trajectories(f, data, strategies)),
        ((7.5, 4.2), lambda f: _plot_rates(f, report, reference_rates)),
        ((6.0, 5.0), lambda f: _plot_interference(f, report)),
        ((9.0, 3.2 * severity_panels + 0.4), lambda f: _plot_severity(f, report, data)),
    ]
    paths: list[Path] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for (size, draw), name in zip(draws, PLOT_FILES, strict=True):
            figure = figure_type(figsize=size)
            draw(figure)
            paths.append(_save(figure, canvas_type, out / name))
    return paths
