"""Severity SDE: drift, diffusion, stationary density, first passage, phase, simulation.

The severity s ∈ [0, 1] of a loop (Shukla & Joshi, arXiv:2501.16783) follows

    ds = μ(s) dt + σ(s) dW,   μ(s) = α s(1−s) − β s² + γ,   σ(s) = σ₀ + σ₁ s,      (1)

with reflecting boundaries at 0 and 1. α is self-reinforcement, β alignment damping and γ the
baseline drift; the *phase* is supercritical (runaway) when α > β and subcritical otherwise.
Note α − β = 4 (μ(½) − μ(0)): the phase says whether the drift at mid severity exceeds the
baseline drift.

Pure functions
--------------
:func:`drift`, :func:`diffusion` evaluate (1). :func:`stationary_density` is the zero-flux
solution of the Fokker–Planck equation

    P(s) ∝ σ(s)⁻² exp(Φ(s)),   Φ(s) = ∫₀ˢ 2 μ(z) / σ(z)² dz,                           (2)

normalised on [0, 1]. :func:`mean_first_passage` solves the backward equation

    (σ²/2) T'' + μ T' = −1,   T'(0) = 0 (reflection),   T(s*) = 0 (absorption),       (3)

whose solution, with the scale density ψ(s) = exp(−Φ(s)), is

    T'(y) = −ψ(y) ∫₀^y 2 / (σ(z)² ψ(z)) dz,
    T(s₀) = ∫_{s₀}^{s*} ∫₀^y 2 σ(z)⁻² exp(Φ(z) − Φ(y)) dz dy.                        (4)

Both are computed by quadrature in log space (Φ can reach thousands when σ is small), so
they neither overflow nor lose the shape of sharp peaks; a first-passage time beyond the
double range is ``inf``. :func:`phase` applies the confidence rule (5) below and
:func:`simulate` is the Euler–Maruyama scheme with reflection, vectorised over paths.

The online estimator of (α, β, γ, σ₀, σ₁) is :class:`steerloop.estimators.severity_model.
SeverityModel`. Rule (5), used by :func:`phase`:

    supercritical  ⇔  α̂ − β̂ > margin + z · se(α̂ − β̂).                                (5)

References
----------
A. Shukla and A. Joshi, "A Stochastic Dynamical Theory of LLM Self-Adversariality",
arXiv:2501.16783. C. W. Gardiner, *Stochastic Methods*, 4th ed., Springer, 2009 (stationary
density and mean first-passage time of a one-dimensional diffusion, §5.2).
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.errors import ShapeError

__all__ = [
    "PHASE_Z",
    "SIGMA_FLOOR",
    "Phase",
    "diffusion",
    "drift",
    "features",
    "mean_first_passage",
    "phase",
    "simulate",
    "stationary_density",
]

FloatArray = NDArray[np.float64]
Phase = Literal["supercritical", "subcritical"]

#: z of rule (5) used by :func:`phase` by default, chosen from a measured ROC (README,
#: "Severity phase"): on 300-step runs it calls α − β = +0.4 supercritical in ~95 % of runs
#: and α − β ≤ −0.2 in none.
PHASE_Z = 0.25
#: Smallest diffusion the estimator reports: σ₀ ≥ SIGMA_FLOOR and σ₀ + σ₁ ≥ SIGMA_FLOOR.
SIGMA_FLOOR = 1e-3


# --------------------------------------------------------------------------- pure functions


@overload
def drift(s: float, alpha: float, beta: float, gamma: float) -> float: ...
@overload
def drift(s: FloatArray, alpha: float, beta: float, gamma: float) -> FloatArray: ...
def drift(s: float | FloatArray, alpha: float, beta: float, gamma: float) -> float | FloatArray:
    """Drift μ(s) = α s(1−s) − β s² + γ of eq. (1).

    Examples
    --------
    >>> drift(0.5, 1.0, 0.5, 0.1)
    0.225
    """
    if isinstance(s, np.ndarray):
        x = np.asarray(s, dtype=np.float64)
        return np.asarray(alpha * x * (1.0 - x) - beta * x * x + gamma, dtype=np.float64)
    x0 = float(s)
    return alpha * x0 * (1.0 - x0) - beta * x0 * x0 + gamma


@overload
def diffusion(s: float, sigma0: float, sigma1: float) -> float: ...
@overload
def diffusion(s: FloatArray, sigma0: float, sigma1: float) -> FloatArray: ...
def diffusion(s: float | FloatArray, sigma0: float, sigma1: float) -> float | FloatArray:
    """Diffusion σ(s) = σ₀ + σ₁ s of eq. (1).

    Examples
    --------
    >>> diffusion(0.5, 0.05, 0.1)
    0.1
    """
    if isinstance(s, np.ndarray):
        return np.asarray(sigma0 + sigma1 * np.asarray(s, dtype=np.float64), dtype=np.float64)
    return sigma0 + sigma1 * float(s)


def features(s: float) -> FloatArray:
    """Regressor φ(s) = [s(1−s), −s², 1] of the drift, so that μ(s) = (α, β, γ) · φ(s)."""
    return np.array([s * (1.0 - s), -s * s, 1.0])


def _check_params(alpha: float, beta: float, gamma: float, sigma0: float, sigma1: float) -> None:
    for name, value in (
        ("alpha", alpha),
        ("beta", beta),
        ("gamma", gamma),
        ("sigma0", sigma0),
        ("sigma1", sigma1),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")


def _check_positive_sigma(sigma0: float, sigma1: float) -> None:
    if not (sigma0 > 0.0 and sigma0 + sigma1 > 0.0):
        raise ValueError(
            f"σ(s) = σ₀ + σ₁ s must be positive on [0, 1], got σ₀ = {sigma0}, σ₁ = {sigma1}; "
            "pass σ₀ > 0 and σ₀ + σ₁ > 0"
        )


def _log_phi(
    grid: FloatArray, alpha: float, beta: float, gamma: float, sigma0: float, sigma1: float
) -> tuple[FloatArray, FloatArray]:
    """Φ(s) = ∫₀ˢ 2μ/σ² dz on ``grid`` (grid[0] = 0) by the trapezoid rule, and log σ(s)²."""
    sig = diffusion(grid, sigma0, sigma1)
    ratio = 2.0 * drift(grid, alpha, beta, gamma) / (sig * sig)
    steps = np.diff(grid)
    phi = np.concatenate(([0.0], np.cumsum(0.5 * steps * (ratio[1:] + ratio[:-1]))))
    return np.asarray(phi, dtype=np.float64), np.asarray(2.0 * np.log(sig), dtype=np.float64)


def _log_segments(grid: FloatArray, log_f: FloatArray) -> FloatArray:
    """Log of ∫ f over each grid segment, with log f interpolated linearly.

    On a segment of width h with end values l₀, l₁ of log f, ∫ exp(linear) =
    h · exp(m) · (1 − e^{−|d|}) / |d|, m = max(l₀, l₁), d = l₁ − l₀: exact for exponentials,
    so steep integrands such as exp(Φ) keep second-order accuracy in the *log* curvature.
    Segments with a zero end (log = −inf) use the ordinary trapezoid rule.
    """
    left = log_f[:-1]
    right = log_f[1:]
    log_h = np.log(np.diff(grid))
    top = np.maximum(left, right)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(right - left)
        ratio = np.where(gap > 1e-12, -np.expm1(-gap) / gap, 1.0 - 0.5 * gap)
        exp_fit = log_h + top + np.log(ratio)
        trapezoid = log_h - math.log(2.0) + np.logaddexp(left, right)
    finite = np.isfinite(left) & np.isfinite(right)
    return np.asarray(np.where(finite, exp_fit, trapezoid), dtype=np.float64)


def _log_cumulative(grid: FloatArray, log_f: FloatArray) -> FloatArray:
    """log ∫_{grid[0]}^{grid[k]} f for every k (first entry −inf), see :func:`_log_segments`."""
    segments = _log_segments(grid, log_f)
    return np.concatenate(([-np.inf], np.logaddexp.accumulate(segments)))


def stationary_density(
    alpha: float,
    beta: float,
    gamma: float,
    sigma0: float,
    sigma1: float,
    grid: int = 2001,
) -> tuple[FloatArray, FloatArray]:
    """Stationary density of (1) with reflecting boundaries, eq. (2).

    P(s) ∝ σ(s)⁻² exp(Φ(s)), Φ(s) = ∫₀ˢ 2μ(z)/σ(z)² dz, the zero-flux solution of the
    Fokker–Planck equation ∂P/∂t = −∂(μP)/∂s + ½ ∂²(σ²P)/∂s². Φ is integrated by the
    cumulative trapezoid rule on ``grid`` equally spaced points of [0, 1] and the density is
    normalised in log space so that its trapezoid integral over the grid is 1.

    Parameters
    ----------
    alpha, beta, gamma : float
        Drift coefficients of μ(s) = α s(1−s) − β s² + γ.
    sigma0, sigma1 : float
        Diffusion σ(s) = σ₀ + σ₁ s; must be positive on [0, 1].
    grid : int
        Number of grid points (≥ 3).

    Returns
    -------
    (s_grid, density) : tuple of arrays of shape (grid,)

    Examples
    --------
    >>> s, p = stationary_density(0.0, 0.0, 0.0, 0.1, 0.0, grid=5)  # μ = 0: uniform
    >>> p.tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    _check_params(alpha, beta, gamma, sigma0, sigma1)
    _check_positive_sigma(sigma0, sigma1)
    if grid < 3:
        raise ValueError(f"grid must have at least 3 points, got {grid}")
    s_grid = np.linspace(0.0, 1.0, grid)
    phi, log_sig2 = _log_phi(s_grid, alpha, beta, gamma, sigma0, sigma1)
    log_p = phi - log_sig2
    h = s_grid[1] - s_grid[0]
    # trapezoid: Z = h (Σ p_i − (p_0 + p_n)/2), evaluated as a log-sum-exp
    weights = np.full(grid, math.log(h))
    weights[[0, -1]] -= math.log(2.0)
    log_z = float(np.logaddexp.reduce(log_p + weights))
    density = np.exp(log_p - log_z)
    return s_grid, np.asarray(density, dtype=np.float64)


def mean_first_passage(
    s0: float,
    threshold: float,
    alpha: float,
    beta: float,
    gamma: float,
    sigma0: float,
    sigma1: float,
    *,
    grid: int = 4001,
) -> float:
    """Expected time for (1) started at ``s0`` to reach ``threshold`` s*, reflecting at 0.

    Solves (σ²/2) T'' + μ T' = −1 with T'(0) = 0 and T(s*) = 0, eq. (3): multiplying by the
    integrating factor 1/ψ = exp(Φ) gives (T'/ψ)' = −2/(σ² ψ), hence eq. (4)

        T(s₀) = ∫_{s₀}^{s*} ∫₀^y 2 σ(z)⁻² exp(Φ(z) − Φ(y)) dz dy.

    Both integrals are cumulative log-space quadratures on ``grid`` points of [0, s*] (the
    segment holding s₀ integrated over [s₀, x_{j+1}]), so T is non-increasing in s₀ up to
    rounding; a result beyond the double range is ``inf``.

    Parameters
    ----------
    s0 : float
        Start, in [0, 1].
    threshold : float
        s*; 0 when s₀ ≥ s*, ``inf`` when s* > 1 (never reached).
    alpha, beta, gamma, sigma0, sigma1 : float
        Parameters of (1); σ positive on [0, 1]. ``grid``: quadrature points on [0, s*].

    Returns
    -------
    float
        Expected passage time, in the time unit of (1).

    Examples
    --------
    With μ = 0 and constant σ the answer is (s*² − s₀²)/σ²:

    >>> round(mean_first_passage(0.0, 0.5, 0.0, 0.0, 0.0, 0.1, 0.0), 4)
    25.0
    """
    _check_params(alpha, beta, gamma, sigma0, sigma1)
    _check_positive_sigma(sigma0, sigma1)
    if not 0.0 <= s0 <= 1.0:
        raise ValueError(f"s0 must be in [0, 1], got {s0}")
    if math.isnan(threshold):
        raise ValueError("threshold must not be NaN")
    if grid < 3:
        raise ValueError(f"grid must have at least 3 points, got {grid}")
    if s0 >= threshold:
        return 0.0
    if threshold > 1.0:
        return math.inf
    nodes = np.linspace(0.0, threshold, grid)
    phi, log_sig2 = _log_phi(nodes, alpha, beta, gamma, sigma0, sigma1)
    log_inner = _log_cumulative(nodes, math.log(2.0) - log_sig2 + phi)
    log_outer = log_inner - phi  # log(−T'(y)); −inf at y = 0
    segments = _log_segments(nodes, log_outer)
    # segment j holds s₀: x_j ≤ s₀ < x_{j+1}; whole segments above it, then the partial one
    j = min(int(np.searchsorted(nodes, s0, side="right")) - 1, grid - 2)
    log_t = float(np.logaddexp.reduce(segments[j + 1 :])) if j + 1 < grid - 1 else -math.inf
    step = float(nodes[j + 1] - nodes[j])
    frac = (s0 - float(nodes[j])) / step
    left, right = float(log_outer[j]), float(log_outer[j + 1])
    width = math.log(float(nodes[j + 1]) - s0)
    if math.isfinite(left):
        # log-linear interpolant on the segment restricted to [s₀, x_{j+1}]
        at_s0 = left + frac * (right - left)
        partial = float(
            _log_segments(np.array([s0, float(nodes[j + 1])]), np.array([at_s0, right]))[0]
        )
    else:
        # first segment, −T'(0) = 0: linear interpolant, trapezoid on [s₀, x₁]
        partial = width - math.log(2.0) + right + math.log1p(frac) if frac < 1.0 else -math.inf
    log_t = float(np.logaddexp(log_t, partial))
    if log_t > 709.0:
        return math.inf
    return math.exp(log_t)


def phase(
    alpha: float, beta: float, margin: float, stderr: float = 0.0, *, z: float = PHASE_Z
) -> Phase:
    """Phase by rule (5): supercritical when α − β > margin + z · stderr, else subcritical.

    The default z = :data:`PHASE_Z` = 0.25 was chosen from a measured ROC (README, "Severity
    phase"; ``benchmarks/severity_roc.py``): on 300-step runs of the online fit
    (forgetting 1, margin 0.05), α − β = +0.4 is called supercritical in about 95 % of runs
    and α − β ≤ −0.2 in none, while z = 1.645 (a one-sided 95 % test) misses about a third
    of the +0.4 cases. z = 0 decides on the point estimate alone. Anything not clearly above
    (including NaN) is subcritical.

    Examples
    --------
    >>> phase(0.9, 0.3, 0.05), phase(0.9, 0.3, 0.05, stderr=0.5, z=1.645)
    ('supercritical', 'subcritical')
    """
    if alpha - beta > margin + z * stderr:
        return "supercritical"
    return "subcritical"


def _reflect(x: FloatArray) -> FloatArray:
    """Fold ``x`` into [0, 1] by repeated reflection at 0 and 1 (a triangle wave)."""
    folded = np.mod(x, 2.0)
    return np.asarray(np.where(folded > 1.0, 2.0 - folded, folded), dtype=np.float64)


def simulate(
    s0: ArrayLike,
    alpha: ArrayLike,
    beta: ArrayLike,
    gamma: ArrayLike,
    sigma0: ArrayLike,
    sigma1: ArrayLike,
    *,
    dt: float,
    n_steps: int,
    rng: np.random.Generator,
    n_paths: int | None = None,
    record_every: int = 1,
) -> FloatArray:
    """Euler–Maruyama paths of (1) with reflection at 0 and 1, vectorised over paths.

    s_{k+1} = R(s_k + μ(s_k) Δt + σ(s_k) √Δt ε_k), ε_k ~ N(0, 1) i.i.d., where R folds a value
    back into [0, 1] by reflection (−x below 0, 2 − x above 1, repeated if needed).

    Parameters
    ----------
    s0 : float or array of shape (n_paths,)
        Start values, clipped to [0, 1].
    alpha, beta, gamma, sigma0, sigma1 : float or array of shape (n_paths,)
        Parameters of (1), one set for all paths or one per path; σ(s) must be ≥ 0 on [0, 1].
    dt : float
        Time step Δt > 0.
    n_steps : int
        Number of steps.
    rng : numpy.random.Generator
        Source of every random draw (one standard normal per path and step).
    n_paths, record_every : int
        Paths when every other argument is a scalar (default 1); keep every n-th state.

    Returns
    -------
    array of shape (n_steps // record_every + 1, n_paths)
        Row k is the state after k · record_every steps (row 0 is ``s0``).

    Examples
    --------
    >>> paths = simulate(0.1, 0.9, 0.3, 0.02, 0.05, 0.0, dt=1.0, n_steps=50,
    ...                  rng=np.random.default_rng(0), n_paths=4)
    >>> paths.shape, bool(((paths >= 0) & (paths <= 1)).all())
    ((51, 4), True)
    """
    if not (math.isfinite(dt) and dt > 0.0):
        raise ValueError(f"dt must be positive and finite, got {dt}")
    if n_steps < 0 or record_every < 1:
        raise ValueError("n_steps must be >= 0 and record_every >= 1")
    names = ("s0", "alpha", "beta", "gamma", "sigma0", "sigma1")
    arrays = [np.asarray(v, dtype=np.float64) for v in (s0, alpha, beta, gamma, sigma0, sigma1)]
    sizes = {a.shape[0] for a in arrays if a.ndim == 1}
    if n_paths is not None:
        sizes.add(n_paths)
    if len(sizes) > 1:
        raise ValueError(f"s0, the parameters and n_paths disagree on the number of paths: {sizes}")
    size = sizes.pop() if sizes else 1
    columns: list[FloatArray] = []
    for name, array in zip(names, arrays, strict=True):
        if array.ndim > 1:
            raise ShapeError(name, (size,), array.shape)
        if not np.isfinite(array).all():
            raise ValueError(f"{name} must be finite")
        columns.append(np.broadcast_to(array, (size,)))
    state, a, b, c, sig0, sig1 = columns
    if (sig0 < 0.0).any() or (sig0 + sig1 < 0.0).any():
        raise ValueError("σ(s) = σ₀ + σ₁ s must be ≥ 0 on [0, 1]; pass σ₀ ≥ 0 and σ₀ + σ₁ ≥ 0")
    state = np.clip(state, 0.0, 1.0)
    out = np.empty((n_steps // record_every + 1, size))
    out[0] = state
    sqrt_dt = math.sqrt(dt)
    for step in range(1, n_steps + 1):
        noise = rng.standard_normal(size)
        mu = a * state * (1.0 - state) - b * state * state + c
        sigma = sig0 + sig1 * state
        state = _reflect(state + mu * dt + sigma * sqrt_dt * noise)
        if step % record_every == 0:
            out[step // record_every] = state
    return out
