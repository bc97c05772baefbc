"""Offline fit of logged trajectories: the papers' pipeline as one batch computation.

:func:`fit_trajectories` turns trajectories (a
:class:`~steerloop.analysis.trajectory.TrajectoryLog`, records, or
:class:`~steerloop.analysis.trajectory.TrajectoryArrays`) into an :class:`AnalysisReport`:

**Transitions.** Rows are sorted by (session, step); rows t and t + 1 of the same session
with consecutive step numbers and all scores present form a transition, attributed to the
strategy of row t + 1 (the strategy whose prompt produced the new response). Gaps and
missing scores break the chain (counted in ``skipped_transitions``).

**Drift (paper 1, eq. 1–2; DESIGN.md "RLS drift").** Per strategy π, with regressors
φ_t = [y_t; 1] and targets z_t = (y_{t+1} − y_t)/Δt, ordinary least squares

    Θ̂ = argmin Σ_t ‖z_t − Θᵀφ_t‖²,   Θ = [Aᵀ; bᵀ],                                  (1)

the batch counterpart of the online RLS with λ = 1. Residuals e_t = z_t − Θ̂ᵀφ_t give the
diffusion **ΣΣᵀ = Cov(e) Δt** (Cov with n − d − 1 degrees of freedom) and the one-step
predictive **R² = 1 − Σ_i SSE_i / Σ_i SST_i** (SST_i = Σ_t (z_{t,i} − z̄_i)²), pooled over
objectives exactly as the online :class:`~steerloop.estimators.drift.DriftModel` pools its
a-priori residuals. The equilibrium is x* = −Â⁻¹b̂ when cond(Â) ≤ 10⁸.

**Spectrum (paper 1, §3.4).** Eigenvalues, rate ρ = −max Re λ, spectral radius and regime
come from :func:`steerloop.estimators.spectrum.analyze_spectrum` (same rules online and
offline).

**Interference (paper 1, §4.4).** I_ij = Corr(Δy_i, Δy_j), the plain (λ = 1) correlation of
the increments of all transitions, pooled over strategies and per strategy.

**Severity (paper 2).** s_t is the record's severity when every record of the data carries
one, else s_t = 1 − min_i y_{t,i}. Least squares on the Euler form
Δs/Δt = α s(1−s) − β s² + γ + e, i.e. regressors φ(s) = [s(1−s), −s², 1]; Cov(θ̂) = σ̂_e²
(ΦᵀΦ)⁻¹ gives se(α̂ − β̂), and the phase follows
:func:`steerloop.estimators.severity.phase` (supercritical iff α̂ − β̂ > margin + 1.645 se).
The diffusion σ(s) = σ₀ + σ₁ s is fitted by least squares of |e| √Δt √(π/2) on [1, s] (its
mean is σ(s) for Gaussian noise), floored like the online model.

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
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from steerloop.analysis.trajectory import TrajectoryArrays, TrajectoryLog, TrajectoryRecord
from steerloop.estimators.drift import EQUILIBRIUM_MAX_CONDITION
from steerloop.estimators.severity import PHASE_Z, SIGMA_FLOOR
from steerloop.estimators.severity import phase as severity_phase
from steerloop.estimators.spectrum import analyze_spectrum

__all__ = [
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
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)


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
    """

    transitions: int
    A: list[list[float]]
    b: list[float]
    diffusion: list[list[float | None]]
    r2: float | None
    r2_by_objective: list[float | None]
    equilibrium: list[float] | None
    rank_deficient: bool


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
    return DriftFit(
        transitions=n,
        A=a.tolist(),
        b=b.tolist(),
        diffusion=_matrix(cov),
        r2=_num(r2),
        r2_by_objective=[_num(float(v)) for v in r2_i],
        equilibrium=equilibrium,
        rank_deficient=bool(rank < d + 1),
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
    transitions (``note`` says so). ``final_means`` averages the last record of every session
    whose last record used this strategy (None if there is none).
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

    @property
    def r2(self) -> float | None:
        """Pooled one-step R² (shortcut to ``drift.r2``)."""
        return None if self.drift is None else self.drift.r2


class SeverityFit(_Model):
    """Least-squares fit of the severity SDE (paper 2), pooled over sessions."""

    source: Literal["records", "1 - min objective"]
    transitions: int
    alpha: float
    beta: float
    gamma: float
    margin: float = Field(description="α − β")
    margin_stderr: float | None
    phase: Literal["supercritical", "subcritical"]
    phase_margin: float
    sigma0: float
    sigma1: float
    r2: float | None
    mean: float


def fit_severity(
    s_now: FloatArray,
    s_next: FloatArray,
    *,
    dt: float = 1.0,
    phase_margin: float = 0.05,
    source: Literal["records", "1 - min objective"] = "1 - min objective",
) -> SeverityFit:
    """Fit α, β, γ, σ₀, σ₁ and the phase from severity transitions s_t → s_{t+1}.

    Examples
    --------
    >>> import numpy as np
    >>> from steerloop.estimators.severity import simulate
    >>> paths = simulate(0.2, 1.2, 0.3, 0.02, 0.03, 0.0, dt=1.0, n_steps=60,
    ...                  rng=np.random.default_rng(3), n_paths=200)
    >>> fit = fit_severity(paths[:-1].ravel(), paths[1:].ravel())
    >>> fit.phase, round(fit.alpha, 1), round(fit.beta, 1)
    ('supercritical', 1.2, 0.3)
    """
    n = s_now.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 severity transitions, got {n}")
    phi = np.column_stack([s_now * (1.0 - s_now), -s_now * s_now, np.ones(n)])
    target = (s_next - s_now) / dt
    theta, _, rank, _ = np.linalg.lstsq(phi, target, rcond=None)
    residual = target - phi @ theta
    sse = float(residual @ residual)
    sigma2 = sse / max(n - 3, 1)
    stderr: float | None = None
    if rank == 3:
        gram_inv = np.linalg.inv(phi.T @ phi)
        c = np.array([1.0, -1.0, 0.0])
        stderr = math.sqrt(max(float(c @ gram_inv @ c) * sigma2, 0.0))
    alpha, beta, gamma = (float(v) for v in theta)
    centred = target - target.mean()
    sst = float(centred @ centred)
    scale_target = np.abs(residual) * math.sqrt(dt) * _SQRT_HALF_PI
    design = np.column_stack([np.ones(n), s_now])
    (sigma0, sigma1), *_ = np.linalg.lstsq(design, scale_target, rcond=None)
    sigma0 = max(float(sigma0), SIGMA_FLOOR)
    sigma1 = max(float(sigma1), SIGMA_FLOOR - sigma0)
    phase = severity_phase(
        alpha, beta, phase_margin, stderr if stderr is not None else math.inf, z=PHASE_Z
    )
    return SeverityFit(
        source=source,
        transitions=n,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        margin=alpha - beta,
        margin_stderr=stderr,
        phase=phase,
        phase_margin=phase_margin,
        sigma0=sigma0,
        sigma1=sigma1,
        r2=_num(1.0 - sse / sst) if sst > 0.0 else None,
        mean=float(np.concatenate([s_now, s_next[-1:]]).mean()),
    )


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
    d = len(names)
    n = len(arrays)
    if n == 0:
        raise ValueError("no trajectory records to analyse")
    step_dt = arrays.dt
    order = np.lexsort((arrays.step, arrays.session))
    session = arrays.session[order]
    step = arrays.step[order]
    strategy = arrays.strategy[order]
    scores = arrays.scores[order]

    same_session = session[1:] == session[:-1]
    duplicate = same_session & (step[1:] == step[:-1])
    if duplicate.any():
        row = int(np.argmax(duplicate))
        raise ValueError(
            f"session {arrays.session_names[int(session[row])]!r} has step {int(step[row])} "
            "twice; each (session, step) must appear once"
        )
    consecutive = same_session & (step[1:] == step[:-1] + 1)
    complete = np.asarray(np.isfinite(scores).all(axis=1), dtype=np.bool_)
    usable = consecutive & complete[:-1] & complete[1:]
    now = scores[:-1][usable]
    nxt = scores[1:][usable]
    trans_strategy = strategy[1:][usable]
    trans_session = session[1:][usable]
    increments = nxt - now

    # last record of each session
    last: NDArray[np.bool_] = np.ones(n, dtype=np.bool_)
    last[:-1] = np.logical_not(same_session)
    final_rows = scores[last]
    final_strategy = strategy[last]

    def means(rows: FloatArray) -> dict[str, float | None]:
        if rows.shape[0] == 0:
            return dict.fromkeys(names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column is NaN
            values = np.nanmean(rows, axis=0)
        return {name: _num(float(v)) for name, v in zip(names, values, strict=True)}

    fits: dict[str, StrategyFit] = {}
    for index, strategy_name in enumerate(arrays.strategy_names):
        mask = trans_strategy == index
        count = int(mask.sum())
        sessions_k = int(np.unique(trans_session[mask]).size)
        finals = final_rows[final_strategy == index]
        final = means(finals) if finals.shape[0] else None
        if count < d + 2:
            fits[strategy_name] = StrategyFit(
                strategy=strategy_name,
                transitions=count,
                sessions=sessions_k,
                drift=None,
                rate=None,
                max_real=None,
                spectral_radius=None,
                regime="unknown",
                regime_reason=f"{count} transitions; a fit needs at least {d + 2}",
                interference=None,
                final_means=final,
                note="too few transitions",
            )
            continue
        drift = fit_drift(now[mask], (increments[mask]) / step_dt, dt=step_dt)
        spectrum = analyze_spectrum(np.asarray(drift.A), dt=step_dt, equilibrium=drift.equilibrium)
        eigenvalues = [(float(z.real), float(z.imag)) for z in spectrum.eigenvalues]
        fits[strategy_name] = StrategyFit(
            strategy=strategy_name,
            transitions=count,
            sessions=sessions_k,
            drift=drift,
            eigenvalues=eigenvalues or None,
            rate=_num(spectrum.rate),
            max_real=_num(spectrum.max_real),
            spectral_radius=_num(spectrum.spectral_radius),
            regime=spectrum.regime,
            regime_reason=spectrum.reason,
            interference=_matrix(increment_correlation(increments[mask])),
            final_means=final,
            note="regressors are rank deficient; A is not identified"
            if drift.rank_deficient
            else "",
        )

    pooled = increment_correlation(increments) if increments.shape[0] >= 2 else None

    # severity: from records when every record has one, else 1 - min score
    given = arrays.severity[order]
    if np.isfinite(given).all():
        severity_values = given
        source: Literal["records", "1 - min objective"] = "records"
    else:
        with np.errstate(invalid="ignore"):
            lowest = np.where(np.isfinite(scores), scores, np.inf).min(axis=1)
        severity_values = np.where(np.isfinite(lowest), 1.0 - lowest, np.nan)
        source = "1 - min objective"
    sev_ok = consecutive & np.isfinite(severity_values[:-1]) & np.isfinite(severity_values[1:])
    s_now = severity_values[:-1][sev_ok]
    s_next = severity_values[1:][sev_ok]
    sev_strategy = strategy[1:][sev_ok]
    severity: SeverityFit | None = None
    by_strategy: dict[str, SeverityFit] = {}
    if s_now.shape[0] >= 4:
        severity = fit_severity(s_now, s_next, dt=step_dt, phase_margin=phase_margin, source=source)
        for index, strategy_name in enumerate(arrays.strategy_names):
            mask = sev_strategy == index
            if int(mask.sum()) >= 4:
                try:
                    by_strategy[strategy_name] = fit_severity(
                        s_now[mask],
                        s_next[mask],
                        dt=step_dt,
                        phase_margin=phase_margin,
                        source=source,
                    )
                except np.linalg.LinAlgError:  # pragma: no cover - degenerate data
                    continue

    return AnalysisReport(
        objectives=names,
        dt=step_dt,
        records=n,
        sessions=len(arrays.session_names),
        transitions=int(usable.sum()),
        skipped_transitions=int(same_session.sum() - usable.sum()),
        strategies=fits,
        interference=None if pooled is None else _matrix(pooled),
        interference_min=None if pooled is None else _min_pair(pooled, names),
        final_means=means(final_rows),
        severity=severity,
        severity_by_strategy=by_strategy,
    )
