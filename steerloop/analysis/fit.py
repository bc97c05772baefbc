"""Offline fit of logged trajectories: the papers' pipeline as one batch computation.

:func:`fit_trajectories` turns trajectories (a
:class:`~steerloop.analysis.trajectory.TrajectoryLog`, records, or
:class:`~steerloop.analysis.trajectory.TrajectoryArrays`) into an :class:`AnalysisReport`:

**Transitions.** Rows are sorted by (session, step); rows t and t + 1 of the same session
with consecutive step numbers and all scores present form a transition, attributed to the
strategy of row t + 1 (the strategy whose prompt produced the new response). Gaps and
missing scores break the chain (counted in ``skipped_transitions``).

**Drift ([1], eq. 1–2; docs/architecture.md "RLS drift").** Per strategy π, with regressors
φ_t = [y_t; 1] and targets z_t = (y_{t+1} − y_t)/Δt, ordinary least squares

    Θ̂ = argmin Σ_t ‖z_t − Θᵀφ_t‖²,   Θ = [Aᵀ; bᵀ],                                  (1)

the batch counterpart of the online RLS with λ = 1. Residuals e_t = z_t − Θ̂ᵀφ_t give the
diffusion **ΣΣᵀ = Cov(e) Δt** (Cov with n − d − 1 degrees of freedom) and the one-step
predictive **R² = 1 − Σ_i SSE_i / Σ_i SST_i** (SST_i = Σ_t (z_{t,i} − z̄_i)²), pooled over
objectives exactly as the online :class:`~steerloop.estimators.drift.DriftModel` pools its
a-priori residuals. The equilibrium is x* = −Â⁻¹b̂ when cond(Â) ≤ 10⁸.

**Spectrum ([1], §3.4).** Eigenvalues, rate ρ = −max Re λ, spectral radius and regime
come from :func:`steerloop.estimators.spectrum.analyze_spectrum` (same rules online and
offline).

**Interference ([1], §4.4).** I_ij = Corr(Δy_i, Δy_j), the plain (λ = 1) correlation of
the increments of all transitions, pooled over strategies and per strategy.

**Uncertainty.** Each strategy's rate carries a delta-method standard error
(:mod:`steerloop.analysis.uncertainty`); fits with fewer than
:data:`RELIABLE_TRANSITIONS_PER_REGRESSOR` transitions per regressor carry a ``note``, and
:meth:`AnalysisReport.warnings` lists every such caveat in one place.

**Severity ([2]).** s_t is the record's severity when every record of the data carries
one, else s_t = 1 − min_i y_{t,i}; :func:`~steerloop.analysis.severity.fit_severity` fits the
severity SDE pooled over strategies and per strategy (:mod:`steerloop.analysis.severity`).

References
----------
[1] A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739.
[2] A. Shukla and A. Joshi, "A Stochastic Dynamical Theory of LLM Self-Adversariality",
arXiv:2501.16783.

Examples
--------
>>> import numpy as np
>>> from steerloop.simulate import paper_environment, rollout_arrays
>>> env = paper_environment()
>>> data = rollout_arrays(env, ["efficiency_focused"], sessions=100, steps=50,
...                       rng=np.random.default_rng(0))
>>> report = fit_trajectories(data)
>>> fit = report.strategies["efficiency_focused"]
>>> fit.regime, round(fit.rate, 2)
('exponential', 0.33)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from steerloop.analysis.severity import MIN_SEVERITY_TRANSITIONS, SeverityFit, fit_severity
from steerloop.analysis.trajectory import TrajectoryArrays, TrajectoryLog, TrajectoryRecord
from steerloop.analysis.uncertainty import rate_stderr
from steerloop.estimators.drift import EQUILIBRIUM_MAX_CONDITION
from steerloop.estimators.spectrum import analyze_spectrum

__all__ = [
    "MIN_INTERFERENCE_INCREMENTS",
    "MIN_SEVERITY_TRANSITIONS",
    "RELIABLE_TRANSITIONS_PER_REGRESSOR",
    "REPORT_VERSION",
    "AnalysisReport",
    "DriftFit",
    "InterferencePair",
    "SeverityFit",
    "StrategyFit",
    "fit_drift",
    "fit_severity",
    "fit_trajectories",
    "increment_correlation",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

REPORT_VERSION = 1

#: A drift fit with fewer than this many transitions per regressor (d + 1 of them) is reported
#: with a note: its rate, regime and R² are rough.
RELIABLE_TRANSITIONS_PER_REGRESSOR = 10
#: A pooled interference matrix from fewer increments is reported with a warning (the 95 %
#: interval of a correlation near 0 is then wider than ±0.36).
MIN_INTERFERENCE_INCREMENTS = 30


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _num(value: float) -> float | None:
    """JSON-safe float: None for NaN/inf."""
    return float(value) if math.isfinite(value) else None


def _matrix(values: FloatArray) -> list[list[float | None]]:
    return [[_num(float(v)) for v in row] for row in values]


class DriftFit(_Model):
    """Batch least-squares fit of z = A y + b + e, eq. (1).

    Attributes
    ----------
    transitions : int
        Number of transitions n used.
    A, b : matrix (d, d), vector (d,)
        Drift estimates (per unit time).
    diffusion : matrix (d, d)
        ΣΣᵀ = Cov(e) Δt, the diffusion covariance per unit time.
    r2 : float | None
        Pooled one-step R² (None when the targets have no variance).
    r2_by_objective : list of float | None
        R²_i = 1 − SSE_i / SST_i per objective.
    equilibrium : vector (d,) | None
        x* = −A⁻¹b when cond(A) ≤ 10⁸.
    rank_deficient : bool
        True when the regressors [y, 1] do not span d + 1 dimensions (a pinned or collinear
        objective): A is then the minimum-norm solution and its spectrum is not meaningful.
    gram_inverse : matrix (d + 1, d + 1) | None
        (ΦᵀΦ)⁻¹ of the regressors [y, 1] (None when rank deficient): with the residual
        covariance S = diffusion / Δt, Cov(Θ̂) = (ΦᵀΦ)⁻¹ ⊗ S.
    """

    transitions: int
    A: list[list[float]]
    b: list[float]
    diffusion: list[list[float | None]]
    r2: float | None
    r2_by_objective: list[float | None]
    equilibrium: list[float] | None
    rank_deficient: bool
    gram_inverse: list[list[float]] | None = None


def fit_drift(x: FloatArray, z: FloatArray, *, dt: float = 1.0) -> DriftFit:
    """Least-squares drift fit, eq. (1), from regressors ``x`` (n, d) and targets ``z`` (n, d).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(size=(200, 2))
    >>> A, b = np.array([[-0.5, 0.1], [0.0, -1.0]]), np.array([0.2, 0.5])
    >>> fit = fit_drift(x, x @ A.T + b)
    >>> bool(np.allclose(fit.A, A)), round(fit.r2, 6)
    (True, 1.0)
    """
    n, d = x.shape
    if z.shape != (n, d):
        raise ValueError(f"z must have shape {(n, d)}, got {z.shape}")
    if n < d + 2:
        raise ValueError(f"need at least {d + 2} transitions to fit A, b and a residual, got {n}")
    phi = np.empty((n, d + 1))
    phi[:, :d] = x
    phi[:, d] = 1.0
    theta, _, rank, _ = np.linalg.lstsq(phi, z, rcond=None)
    residual = z - phi @ theta
    a = theta[:d].T
    b = theta[d]
    sse = (residual * residual).sum(axis=0)
    centred = z - z.mean(axis=0)
    sst = (centred * centred).sum(axis=0)
    total = float(sst.sum())
    r2 = 1.0 - float(sse.sum()) / total if total > 0.0 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        r2_i = np.where(sst > 0.0, 1.0 - sse / np.where(sst > 0.0, sst, 1.0), np.nan)
    cov = residual.T @ residual / max(n - d - 1, 1) * dt
    equilibrium: list[float] | None = None
    if np.isfinite(a).all() and np.linalg.cond(a) <= EQUILIBRIUM_MAX_CONDITION:
        equilibrium = (-np.linalg.solve(a, b)).tolist()
    full_rank = bool(rank == d + 1)
    return DriftFit(
        transitions=n,
        A=a.tolist(),
        b=b.tolist(),
        diffusion=_matrix(cov),
        r2=_num(r2),
        r2_by_objective=[_num(float(v)) for v in r2_i],
        equilibrium=equilibrium,
        rank_deficient=not full_rank,
        gram_inverse=np.linalg.inv(phi.T @ phi).tolist() if full_rank else None,
    )


def increment_correlation(increments: FloatArray) -> FloatArray:
    """Plain correlation matrix of increments (n, d); NaN where a variance is zero.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(increment_correlation(np.array([[1.0, -1.0], [-1.0, 1.0], [2.0, -2.0]])), 9)
    array([[ 1., -1.],
           [-1.,  1.]])
    """
    n, d = increments.shape
    if n < 2:
        return np.full((d, d), np.nan)
    centred = increments - increments.mean(axis=0)
    scatter = centred.T @ centred
    scale = np.sqrt(np.diag(scatter))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = scatter / np.outer(scale, scale)
    corr[~np.isfinite(corr)] = np.nan
    return np.asarray(np.clip(corr, -1.0, 1.0), dtype=np.float64)


class InterferencePair(_Model):
    """The most negative off-diagonal interference entry."""

    first: str
    second: str
    value: float


class StrategyFit(_Model):
    """Everything fitted for one strategy.

    ``drift`` and the spectrum fields are None when the strategy has fewer than d + 2
    transitions (``note`` says so; it also flags fits with fewer than
    :data:`RELIABLE_TRANSITIONS_PER_REGRESSOR` transitions per regressor). ``final_means``
    averages the last record of every session whose last record used this strategy (None if
    there is none).
    """

    strategy: str
    transitions: int
    sessions: int
    drift: DriftFit | None
    eigenvalues: list[tuple[float, float]] | None = Field(
        None, description="(real, imaginary) pairs, slowest mode first"
    )
    rate: float | None
    max_real: float | None
    spectral_radius: float | None
    regime: str
    regime_reason: str
    interference: list[list[float | None]] | None
    final_means: dict[str, float | None] | None
    note: str = ""
    rate_stderr: float | None = Field(
        None, description="delta-method standard error of rate (steerloop.analysis.uncertainty)"
    )

    @property
    def r2(self) -> float | None:
        """Pooled one-step R² (shortcut to ``drift.r2``)."""
        return None if self.drift is None else self.drift.r2


class AnalysisReport(_Model):
    """Result of :func:`fit_trajectories` (JSON-serializable; NaN is written as null)."""

    version: Literal[1] = 1
    objectives: list[str]
    dt: float
    records: int
    sessions: int
    transitions: int
    skipped_transitions: int
    strategies: dict[str, StrategyFit]
    interference: list[list[float | None]] | None
    interference_min: InterferencePair | None
    final_means: dict[str, float | None]
    severity: SeverityFit | None
    severity_by_strategy: dict[str, SeverityFit]

    def warnings(self) -> list[str]:
        """Every caveat of this report, one line each: fits from too few transitions, an
        interference matrix from few increments, a severity fit that is not meaningful."""
        lines = [
            f"strategy {fit.strategy}: {fit.note}" for fit in self.strategies.values() if fit.note
        ]
        if self.interference is not None and self.transitions < MIN_INTERFERENCE_INCREMENTS:
            lines.append(
                f"interference: only {self.transitions} increments; the correlations are rough"
            )
        if self.severity is not None and self.severity.note:
            lines.append(f"severity: {self.severity.note}")
        return lines

    def interference_value(self, first: str, second: str) -> float | None:
        """Pooled I[first, second] (None when undefined)."""
        if self.interference is None:
            return None
        i, j = self.objectives.index(first), self.objectives.index(second)
        return self.interference[i][j]


def _min_pair(matrix: FloatArray, objectives: Sequence[str]) -> InterferencePair | None:
    d = len(objectives)
    best: tuple[int, int, float] | None = None
    for i in range(d):
        for j in range(i + 1, d):
            value = float(matrix[i, j])
            if math.isfinite(value) and (best is None or value < best[2]):
                best = (i, j, value)
    if best is None:
        return None
    return InterferencePair(first=objectives[best[0]], second=objectives[best[1]], value=best[2])


def _as_arrays(
    data: TrajectoryArrays | TrajectoryLog | Iterable[TrajectoryRecord],
    objectives: Sequence[str] | None,
    dt: float | None,
) -> TrajectoryArrays:
    if isinstance(data, TrajectoryArrays):
        if objectives is not None and tuple(objectives) != data.objectives:
            raise ValueError(
                f"objectives {list(objectives)} differ from the data's {data.objectives}"
            )
        return data
    if isinstance(data, TrajectoryLog):
        names = list(objectives) if objectives is not None else data.header.objectives
        return TrajectoryArrays.from_records(
            data.records, names, dt=dt if dt is not None else data.header.dt
        )
    records = list(data)
    if objectives is None:
        seen: dict[str, None] = {}
        for record in records:
            seen.update(dict.fromkeys(record.scores))
        objectives = list(seen)
        if not objectives:
            raise ValueError("no objectives: pass objectives=... or records with scores")
    return TrajectoryArrays.from_records(records, objectives, dt=dt if dt is not None else 1.0)


class _Transitions:
    """Rows sorted by (session, step) and the transitions between consecutive rows."""

    def __init__(self, arrays: TrajectoryArrays) -> None:
        order = np.lexsort((arrays.step, arrays.session))
        session = arrays.session[order]
        step = arrays.step[order]
        self.strategy = arrays.strategy[order]
        self.scores = arrays.scores[order]
        self.severity = arrays.severity[order]
        self.same_session = session[1:] == session[:-1]
        duplicate = self.same_session & (step[1:] == step[:-1])
        if duplicate.any():
            row = int(np.argmax(duplicate))
            raise ValueError(
                f"session {arrays.session_names[int(session[row])]!r} has step "
                f"{int(step[row])} twice; each (session, step) must appear once"
            )
        self.consecutive = self.same_session & (step[1:] == step[:-1] + 1)
        complete = np.asarray(np.isfinite(self.scores).all(axis=1), dtype=np.bool_)
        self.usable = self.consecutive & complete[:-1] & complete[1:]
        self.now = self.scores[:-1][self.usable]
        self.increments = self.scores[1:][self.usable] - self.now
        self.trans_strategy = self.strategy[1:][self.usable]
        self.trans_session = session[1:][self.usable]
        self.last: NDArray[np.bool_] = np.ones(len(order), dtype=np.bool_)
        self.last[:-1] = np.logical_not(self.same_session)


def _means(rows: FloatArray, names: Sequence[str]) -> dict[str, float | None]:
    if rows.shape[0] == 0:
        return dict.fromkeys(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column is NaN
        values = np.nanmean(rows, axis=0)
    return {name: _num(float(v)) for name, v in zip(names, values, strict=True)}


def _strategy_fit(
    name: str, now: FloatArray, increments: FloatArray, sessions: int, final: Any, dt: float
) -> StrategyFit:
    """Drift, spectrum, rate standard error and interference of one strategy."""
    count, d = now.shape
    if count < d + 2:
        return StrategyFit(
            strategy=name,
            transitions=count,
            sessions=sessions,
            drift=None,
            rate=None,
            max_real=None,
            spectral_radius=None,
            regime="unknown",
            regime_reason=f"{count} transitions; a fit needs at least {d + 2}",
            interference=None,
            final_means=final,
            note=f"too few transitions ({count}; a fit needs at least {d + 2})",
        )
    drift = fit_drift(now, increments / dt, dt=dt)
    spectrum = analyze_spectrum(np.asarray(drift.A), dt=dt, equilibrium=drift.equilibrium)
    stderr = None
    if drift.gram_inverse is not None:
        residual_cov = np.array(drift.diffusion, dtype=np.float64) / dt
        stderr = rate_stderr(np.asarray(drift.A), residual_cov, np.asarray(drift.gram_inverse))
    note = ""
    if drift.rank_deficient:
        note = "regressors are rank deficient; A is not identified"
    elif count < RELIABLE_TRANSITIONS_PER_REGRESSOR * (d + 1):
        note = (
            f"only {count} transitions for {d + 1} regressors (fewer than "
            f"{RELIABLE_TRANSITIONS_PER_REGRESSOR} each): rate, regime and R² are rough"
        )
    return StrategyFit(
        strategy=name,
        transitions=count,
        sessions=sessions,
        drift=drift,
        eigenvalues=[(float(z.real), float(z.imag)) for z in spectrum.eigenvalues] or None,
        rate=_num(spectrum.rate),
        rate_stderr=stderr,
        max_real=_num(spectrum.max_real),
        spectral_radius=_num(spectrum.spectral_radius),
        regime=spectrum.regime,
        regime_reason=spectrum.reason,
        interference=_matrix(increment_correlation(increments)),
        final_means=final,
        note=note,
    )


def _severity_fits(
    t: _Transitions, strategy_names: Sequence[str], dt: float, phase_margin: float
) -> tuple[SeverityFit | None, dict[str, SeverityFit]]:
    """Pooled and per-strategy severity fits (from records when all carry one, else 1 − min)."""
    source: Literal["records", "1 - min objective"]
    if np.isfinite(t.severity).all():
        values, source = t.severity, "records"
    else:
        with np.errstate(invalid="ignore"):
            lowest = np.where(np.isfinite(t.scores), t.scores, np.inf).min(axis=1)
        values, source = np.where(np.isfinite(lowest), 1.0 - lowest, np.nan), "1 - min objective"
    ok = t.consecutive & np.isfinite(values[:-1]) & np.isfinite(values[1:])
    s_now, s_next, strategy = values[:-1][ok], values[1:][ok], t.strategy[1:][ok]
    if s_now.shape[0] < 4:
        return None, {}

    def fit(mask: NDArray[np.bool_] | slice) -> SeverityFit:
        return fit_severity(
            s_now[mask], s_next[mask], dt=dt, phase_margin=phase_margin, source=source
        )

    by_strategy = {
        name: fit(strategy == index)
        for index, name in enumerate(strategy_names)
        if int((strategy == index).sum()) >= 4
    }
    pooled = fit(slice(None))
    return pooled, by_strategy


def fit_trajectories(
    data: TrajectoryArrays | TrajectoryLog | Iterable[TrajectoryRecord],
    *,
    objectives: Sequence[str] | None = None,
    dt: float | None = None,
    phase_margin: float = 0.05,
) -> AnalysisReport:
    """Fit drift, diffusion, spectrum, R², interference and severity (see module docstring).

    Parameters
    ----------
    data : TrajectoryArrays, TrajectoryLog or iterable of TrajectoryRecord
        The trajectories. For bare records, ``objectives`` defaults to the score keys in
        order of first appearance and Δt to 1.
    objectives : sequence of str, optional
        Objective order (defaults to the header's).
    dt : float, optional
        Δt between steps (defaults to the header's).
    phase_margin : float
        ``margin`` of the severity phase rule (policy ``severity.phase_margin``).

    Raises
    ------
    ValueError
        When a (session, step) pair occurs twice or there is no data.
    """
    arrays = _as_arrays(data, objectives, dt)
    names = list(arrays.objectives)
    if len(arrays) == 0:
        raise ValueError("no trajectory records to analyse")
    t = _Transitions(arrays)
    final_rows = t.scores[t.last]
    final_strategy = t.strategy[t.last]
    fits: dict[str, StrategyFit] = {}
    for index, name in enumerate(arrays.strategy_names):
        mask = t.trans_strategy == index
        finals = final_rows[final_strategy == index]
        fits[name] = _strategy_fit(
            name,
            t.now[mask],
            t.increments[mask],
            int(np.unique(t.trans_session[mask]).size),
            _means(finals, names) if finals.shape[0] else None,
            arrays.dt,
        )
    pooled = increment_correlation(t.increments) if t.increments.shape[0] >= 2 else None
    severity, by_strategy = _severity_fits(t, arrays.strategy_names, arrays.dt, phase_margin)
    return AnalysisReport(
        objectives=names,
        dt=arrays.dt,
        records=len(arrays),
        sessions=len(arrays.session_names),
        transitions=int(t.usable.sum()),
        skipped_transitions=int(t.same_session.sum() - t.usable.sum()),
        strategies=fits,
        interference=None if pooled is None else _matrix(pooled),
        interference_min=None if pooled is None else _min_pair(pooled, names),
        final_means=_means(final_rows, names),
        severity=severity,
        severity_by_strategy=by_strategy,
    )
