"""Offline fit of the severity SDE (arXiv:2501.16783) and its stationary density where data lie.

**Fit.** From severity transitions s_t → s_{t+1}, least squares on the Euler form

    Δs/Δt = α s(1−s) − β s² + γ + e,   φ(s) = [s(1−s), −s², 1],                     (1)

with Cov(θ̂) = σ̂_e² (ΦᵀΦ)⁻¹, σ̂_e² = SSE/(n − 3): standard errors of α̂, β̂, γ̂ and of
α̂ − β̂. The phase follows :func:`steerloop.estimators.severity.phase` (supercritical iff
α̂ − β̂ > margin + 1.645 se). The diffusion σ(s) = σ₀ + σ₁ s is fitted by least squares of
|e| √Δt √(π/2) on [1, s] (its mean is σ(s) for Gaussian noise), floored like the online model.
Fewer than :data:`MIN_SEVERITY_TRANSITIONS` transitions give a fit whose ``note`` says it is
not meaningful (three drift parameters and a noise level from a handful of points).

**Stationary density on the observed range.** The model (1) is identified only where the
data lie. Its stationary density on all of [0, 1] (:func:`steerloop.estimators.severity.
stationary_density`) extrapolates μ and σ far outside that range, and because P(s) ∝ σ(s)⁻²
exp(∫ 2μ/σ²), a fitted σ(s) that falls to its floor where there are no data puts the mass
there: a curve that disagrees with the histogram of the very data it was fitted on.
:func:`severity_density` therefore evaluates the density of the fitted SDE **restricted to
the observed range** [lo, hi] with reflecting ends, exactly, by the affine change of variable
u = (s − lo)/L, L = hi − lo: u follows an SDE of the same family,

    μ_u(u) = μ(lo + L u)/L = α' u(1−u) − β' u² + γ',   σ_u(u) = σ(lo + L u)/L = σ₀' + σ₁ u,
    γ' = μ(lo)/L,  α' = (α − 2(α+β) lo),  β' = (α+β) L − α',  σ₀' = σ(lo)/L,

whose density on [0, 1] gives P(s) = P_u((s − lo)/L)/L.

**The one-step chain.** The data are a chain observed every Δt, and the fit is of its Euler
form. When severity relaxes within about a step (|μ'(s*)| Δt near 1, common at Δt = 1), the
chain's stationary variance σ²Δt / (2|μ'| − μ'² Δt) is well above the continuous-time
σ² / (2|μ'|) of the density above (for |μ'| Δt = 0.9 about 1.8 times). Measurement noise in
the severities makes this the usual case: white noise reads as fast mean reversion.
:func:`severity_chain_sample` simulates the fitted chain itself (steps of Δt, reflecting at 0
and 1, :func:`steerloop.estimators.severity.simulate`), whose histogram is what the observed
histogram should match when the model fits.

References
----------
A. Shukla and A. Joshi, "A Stochastic Dynamical Theory of LLM Self-Adversariality",
arXiv:2501.16783.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from steerloop.estimators.severity import PHASE_Z, SIGMA_FLOOR, simulate, stationary_density
from steerloop.estimators.severity import phase as severity_phase

__all__ = [
    "MIN_SEVERITY_TRANSITIONS",
    "SeverityFit",
    "fit_severity",
    "severity_chain_sample",
    "severity_density",
]

FloatArray = NDArray[np.float64]

#: Below this many transitions a severity fit is reported with a note, and the CLI's text
#: output withholds α, β, γ and the phase (about ten transitions per drift parameter).
MIN_SEVERITY_TRANSITIONS = 30

_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)


class SeverityFit(BaseModel):
    """Least-squares fit of the severity SDE, eq. (1) of the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["records", "1 - min objective"]
    transitions: int
    alpha: float
    beta: float
    gamma: float
    alpha_stderr: float | None = None
    beta_stderr: float | None = None
    gamma_stderr: float | None = None
    margin: float = Field(description="α − β")
    margin_stderr: float | None
    phase: Literal["supercritical", "subcritical"]
    phase_margin: float
    sigma0: float
    sigma1: float
    r2: float | None
    mean: float
    low: float | None = Field(None, description="smallest severity of the fitted transitions")
    high: float | None = Field(None, description="largest severity of the fitted transitions")
    note: str = ""


def _stderrs(phi: FloatArray, sigma2: float) -> tuple[list[float | None], float | None]:
    """Standard errors of (α, β, γ) and of α − β; None when Φ is rank deficient."""
    if np.linalg.matrix_rank(phi) < 3:
        return [None, None, None], None
    cov = np.linalg.inv(phi.T @ phi) * sigma2
    diagonal = [math.sqrt(max(float(v), 0.0)) for v in np.diag(cov)]
    c = np.array([1.0, -1.0, 0.0])
    return list(diagonal), math.sqrt(max(float(c @ cov @ c), 0.0))


def fit_severity(
    s_now: FloatArray,
    s_next: FloatArray,
    *,
    dt: float = 1.0,
    phase_margin: float = 0.05,
    source: Literal["records", "1 - min objective"] = "1 - min objective",
) -> SeverityFit:
    """Fit α, β, γ (with standard errors), σ₀, σ₁ and the phase from transitions s_t → s_{t+1}.

    Examples
    --------
    >>> import numpy as np
    >>> from steerloop.estimators.severity import simulate
    >>> paths = simulate(0.2, 1.2, 0.3, 0.02, 0.03, 0.0, dt=1.0, n_steps=60,
    ...                  rng=np.random.default_rng(3), n_paths=200)
    >>> fit = fit_severity(paths[:-1].ravel(), paths[1:].ravel())
    >>> fit.phase, round(fit.alpha, 1), round(fit.beta, 1), fit.alpha_stderr < 0.1
    ('supercritical', 1.2, 0.3, True)
    """
    n = s_now.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 severity transitions, got {n}")
    phi = np.column_stack([s_now * (1.0 - s_now), -s_now * s_now, np.ones(n)])
    target = (s_next - s_now) / dt
    theta, *_ = np.linalg.lstsq(phi, target, rcond=None)
    residual = target - phi @ theta
    sse = float(residual @ residual)
    (alpha_se, beta_se, gamma_se), margin_se = _stderrs(phi, sse / max(n - 3, 1))
    alpha, beta, gamma = (float(v) for v in theta)
    centred = target - target.mean()
    sst = float(centred @ centred)
    scale_target = np.abs(residual) * math.sqrt(dt) * _SQRT_HALF_PI
    design = np.column_stack([np.ones(n), s_now])
    (sigma0, sigma1), *_ = np.linalg.lstsq(design, scale_target, rcond=None)
    sigma0 = max(float(sigma0), SIGMA_FLOOR)
    sigma1 = max(float(sigma1), SIGMA_FLOOR - sigma0)
    phase = severity_phase(
        alpha, beta, phase_margin, margin_se if margin_se is not None else math.inf, z=PHASE_Z
    )
    note = ""
    if n < MIN_SEVERITY_TRANSITIONS:
        note = (
            f"only {n} transitions (fewer than {MIN_SEVERITY_TRANSITIONS}): α, β, γ and the "
            "phase are not meaningful"
        )
    return SeverityFit(
        source=source,
        transitions=n,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        alpha_stderr=alpha_se,
        beta_stderr=beta_se,
        gamma_stderr=gamma_se,
        margin=alpha - beta,
        margin_stderr=margin_se,
        phase=phase,
        phase_margin=phase_margin,
        sigma0=sigma0,
        sigma1=sigma1,
        r2=(1.0 - sse / sst) if sst > 0.0 else None,
        mean=float(np.concatenate([s_now, s_next[-1:]]).mean()),
        low=float(s_now.min()),
        high=float(s_now.max()),
        note=note,
    )


def severity_density(
    fit: SeverityFit, low: float, high: float, *, grid: int = 801
) -> tuple[FloatArray, FloatArray]:
    """Stationary density of the fitted SDE restricted to [low, high] (reflecting ends).

    Exact, by the change of variable of the module docstring; the density integrates to 1
    over [low, high] (trapezoid rule on the returned grid).

    Raises
    ------
    ValueError
        When ``low >= high``, the range leaves [0, 1], or σ(s) is not positive on it.

    Examples
    --------
    >>> fit = SeverityFit(source="records", transitions=100, alpha=0.0, beta=0.0, gamma=0.0,
    ...                   margin=0.0, margin_stderr=0.1, phase="subcritical", phase_margin=0.05,
    ...                   sigma0=0.1, sigma1=0.0, r2=None, mean=0.5)
    >>> s, p = severity_density(fit, 0.2, 0.6, grid=5)   # μ = 0: uniform on [0.2, 0.6]
    >>> s.round(3).tolist(), p.round(6).tolist()
    ([0.2, 0.3, 0.4, 0.5, 0.6], [2.5, 2.5, 2.5, 2.5, 2.5])
    """
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got [{low}, {high}]")
    length = high - low
    a, b = fit.alpha, fit.beta
    mu_low = a * low * (1.0 - low) - b * low * low + fit.gamma
    alpha_u = a - 2.0 * (a + b) * low
    beta_u = (a + b) * length - alpha_u
    sigma_low = fit.sigma0 + fit.sigma1 * low
    u, density = stationary_density(
        alpha_u, beta_u, mu_low / length, sigma_low / length, fit.sigma1, grid=grid
    )
    return low + length * u, density / length


def severity_chain_sample(
    fit: SeverityFit,
    *,
    dt: float,
    rng: np.random.Generator,
    paths: int = 2000,
    steps: int = 300,
    burn_in: int = 100,
) -> FloatArray:
    """Draws from the stationary distribution of the fitted one-step chain (module docstring).

    Simulates ``paths`` Euler paths of the fitted SDE with step ``dt`` from the fit's mean
    severity and returns their states after ``burn_in`` steps, flattened.

    Examples
    --------
    α = −β makes the drift linear, μ(s) = γ + α s = 0.3 − 0.6 s (s* = 0.5, rate 0.6): the
    chain's stationary sd is σ/√(2·0.6 − 0.6²) = 0.0546, the continuous SDE's σ/√1.2 = 0.0456.

    >>> fit = SeverityFit(source="records", transitions=500, alpha=-0.6, beta=0.6, gamma=0.3,
    ...                   margin=-1.2, margin_stderr=0.01, phase="subcritical",
    ...                   phase_margin=0.05, sigma0=0.05, sigma1=0.0, r2=0.5, mean=0.5)
    >>> sample = severity_chain_sample(fit, dt=1.0, rng=np.random.default_rng(0))
    >>> round(float(sample.mean()), 2), round(float(sample.std()), 3)
    (0.5, 0.055)
    """
    if not 0 <= burn_in < steps:
        raise ValueError(f"need 0 <= burn_in < steps, got burn_in={burn_in}, steps={steps}")
    states = simulate(
        min(max(fit.mean, 0.0), 1.0),
        fit.alpha,
        fit.beta,
        fit.gamma,
        fit.sigma0,
        fit.sigma1,
        dt=dt,
        n_steps=steps,
        rng=rng,
        n_paths=paths,
    )
    return np.asarray(states[burn_in + 1 :].ravel(), dtype=np.float64)
