"""Eigenvalue diagnostics of a linear drift: convergence rate and dynamical regime.

For a strategy π with locally linear drift μ(x) = A_π x + b_π (Shukla & Joshi, eq. 1–2 and
§3.4), the eigenvalues λ_i of A_π decide how the objective state moves near the equilibrium
x*_π = −A_π⁻¹ b_π. A is the drift of the *Euler* model fitted to the loop,
x_{t+1} = (I + AΔt) x_t + bΔt, so the rate reported everywhere in steerloop is the
**per-step (Euler) rate**

    ρ = −max_i Re λ_i(A),

in units of 1/Δt, as the paper reports it (0.33–1.29 at Δt = 1). It is not the rate of a
continuous process sampled every Δt: a process dx = −κ x dt sampled at Δt has the Euler
drift (e^{−κΔt} − 1)/Δt, so its per-step rate is (1 − e^{−κΔt})/Δt (0.3935 for κ = 0.5,
Δt = 1), and κ = −log(1 − ρΔt)/Δt when ρΔt < 1. The loop runs the discrete map, whose
multipliers are 1 + λ_i Δt. :func:`analyze_spectrum` classifies the drift into one regime:

``unstable``
    max Re λ > z·se (the drift diverges beyond its estimation error), or the spectral radius
    r = max_i |1 + λ_i Δt| of the discrete map is ≥ 1 + z·se (the iteration does not
    contract). ``se`` is the standard error of max Re λ (:func:`max_real_stderr`), 0 by
    default, so rounding noise (Re λ = +6e-20) no longer reads as instability.
``oscillatory``
    some eigenvalue has |Im λ| > ``oscillation_ratio`` · |Re λ| (a complex pair: the state
    spirals into x* instead of approaching it along a line).
``boundary-seeking``
    the drift is slow, ρ < ``slow_rate``, or the equilibrium x* lies outside [0, 1]^d by more
    than ``boundary_tolerance`` (scores are pushed against a bound, e.g. security driven to 0).
``exponential``
    none of the above: every mode decays geometrically towards an interior equilibrium.
``unknown``
    the matrix (or the equilibrium) is not usable: non-finite entries, wrong shape.

Precedence is ``unknown`` > ``unstable`` > ``oscillatory`` > ``boundary-seeking`` >
``exponential``.

**The "ρ > 1.5 means overshoot" heuristic.** For a real eigenvalue λ = −ρ the multiplier is
1 − ρΔt: with Δt = 1, 0 < ρ < 1 converges monotonically, 1 < ρ < 2 overshoots x* every step
(the ``overshoot`` flag) and ρ ≥ 2 no longer contracts (unstable). The policy threshold
ρ > 1.5 sits inside the overshoot band; the stability boundary is r ≥ 1, tested here.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739, §3.4. J. H. Wilkinson, *The Algebraic Eigenvalue Problem*,
Oxford, 1965 (first-order eigenvalue perturbation, used by :func:`max_real_stderr`).

Examples
--------
>>> import numpy as np
>>> report = analyze_spectrum(np.diag([-0.4, -0.9]))
>>> report.regime, report.rate, round(report.spectral_radius, 12)
('exponential', 0.4, 0.6)
>>> analyze_spectrum(np.array([[-0.3, -0.5], [0.5, -0.3]])).regime
'oscillatory'
>>> report = analyze_spectrum(-2.5 * np.eye(2))
>>> report.regime, report.spectral_radius, report.overshoot
('unstable', 1.5, True)
>>> analyze_spectrum(np.diag([-0.5, -0.5]), equilibrium=np.array([0.5, 1.2])).regime
'boundary-seeking'
>>> analyze_spectrum(np.diag([1e-3, -0.5]), max_real_se=0.01).regime
'boundary-seeking'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Regime", "SpectrumReport", "analyze_spectrum", "max_real_stderr"]

FloatArray = NDArray[np.float64]

Regime = Literal["exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"]

# Imaginary parts below sqrt(eps)·max(1, max|A_ij|) are round-off: LAPACK returns a spurious
# complex pair of that size for a (nearly) defective real eigenvalue.
_IMAG_FLOOR = math.sqrt(float(np.finfo(np.float64).eps))


@dataclass(frozen=True)
class SpectrumReport:
    """Result of :func:`analyze_spectrum`.

    Attributes
    ----------
    eigenvalues : tuple of complex
        Eigenvalues of A by decreasing real part, then increasing imaginary part. Empty when
        the regime is ``"unknown"``.
    rate : float
        Per-step (Euler) rate ρ = −max Re λ_i (module docstring); NaN if unknown.
    max_real : float
        max Re λ_i (= −ρ); NaN if unknown.
    spectral_radius : float
        max_i |1 + λ_i Δt| of the discrete map I + AΔt; NaN if unknown.
    regime : {"exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"}
        Classification (module docstring).
    reason : str
        One line explaining the classification with the numbers that decided it.
    overshoot : bool
        Some multiplier has 1 + Re λ_i Δt < 0 (the iteration jumps past x*).
    """

    eigenvalues: tuple[complex, ...]
    rate: float
    max_real: float
    spectral_radius: float
    regime: Regime
    reason: str
    overshoot: bool = False


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _unknown(reason: str) -> SpectrumReport:
    nan = math.nan
    return SpectrumReport((), nan, nan, nan, "unknown", reason)


def _check(dt: float, *values: tuple[str, float]) -> None:
    if not (math.isfinite(dt) and dt > 0.0):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    for name, value in values:
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def _real_matrix(A: ArrayLike) -> FloatArray | None:
    try:
        array = np.asarray(A)
    except (TypeError, ValueError):
        return None
    if array.dtype.kind not in "biuf":
        return None
    return array.astype(np.float64)


def analyze_spectrum(
    A: ArrayLike,
    *,
    dt: float = 1.0,
    equilibrium: ArrayLike | None = None,
    max_real_se: float = 0.0,
    z: float = 2.0,
    slow_rate: float = 0.05,
    oscillation_ratio: float = 0.5,
    boundary_tolerance: float = 0.0,
) -> SpectrumReport:
    """Eigenvalues, per-step rate and regime of the drift matrix ``A`` (module docstring).

    Parameters
    ----------
    A : array_like, shape (d, d)
        Drift matrix A_π of the Euler model (per unit of Δt).
    dt : float, default 1.0
        Step Δt of the loop.
    equilibrium : array_like, shape (d,), optional
        Predicted equilibrium x*_π; NaN components are ignored by the box test.
    max_real_se : float, default 0.0
        Standard error of max Re λ; "unstable" needs the excess beyond ``z`` of them.
    z : float, default 2.0
        Standard errors of the instability tests.
    slow_rate : float, default 0.05
        Rates below this count as "ρ near 0" (boundary-seeking).
    oscillation_ratio : float, default 0.5
        A mode oscillates when |Im λ| > ratio · |Re λ| (> 0.5 rad per e-fold of decay).
    boundary_tolerance : float, default 0.0
        Slack around [0, 1]^d for the equilibrium test.

    Returns
    -------
    SpectrumReport
        ``regime="unknown"`` for a bad ``A`` or ``equilibrium``; ``ValueError`` only for a
        non-positive ``dt`` or a negative or non-finite threshold.
    """
    _check(
        dt,
        ("max_real_se", max_real_se),
        ("z", z),
        ("slow_rate", slow_rate),
        ("oscillation_ratio", oscillation_ratio),
        ("boundary_tolerance", boundary_tolerance),
    )
    matrix = _real_matrix(A)
    if matrix is None or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not matrix.size:
        return _unknown("A must be a real square (d, d) matrix with d >= 1")
    if not np.isfinite(matrix).all():
        return _unknown("A has non-finite entries (NaN or inf)")
    target = None if equilibrium is None else _real_matrix(equilibrium)
    if equilibrium is not None and (target is None or target.shape != (matrix.shape[0],)):
        return _unknown(f"equilibrium must be a real vector of shape ({matrix.shape[0]},)")
    try:
        raw = np.linalg.eigvals(matrix)
    except np.linalg.LinAlgError:
        return _unknown("eigenvalue computation did not converge")
    if not np.isfinite(raw).all():
        return _unknown("eigenvalues are not finite (entries of A too large)")
    values = np.asarray(raw[np.lexsort((raw.imag, -raw.real))], dtype=np.complex128)
    real, imag = values.real, values.imag
    max_real = float(real[0])
    step_real = 1.0 + real * dt
    radius = float(np.hypot(step_real, imag * dt).max())
    overshoot = bool((step_real < 0.0).any())
    regime, reason = _classify(
        values,
        float(np.abs(matrix).max()),
        radius,
        target,
        dt=dt,
        tolerance=z * max_real_se,
        slow_rate=slow_rate,
        oscillation_ratio=oscillation_ratio,
        boundary_tolerance=boundary_tolerance,
    )
    eigenvalues = tuple(complex(v) for v in values)
    return SpectrumReport(eigenvalues, 0.0 - max_real, max_real, radius, regime, reason, overshoot)


def _classify(
    values: NDArray[np.complex128],
    largest_entry: float,
    radius: float,
    target: FloatArray | None,
    *,
    dt: float,
    tolerance: float,
    slow_rate: float,
    oscillation_ratio: float,
    boundary_tolerance: float,
) -> tuple[Regime, str]:
    """The regime of sorted eigenvalues and why (module docstring; first match wins)."""
    real, imag = values.real, values.imag
    max_real = float(real[0])
    rate = 0.0 - max_real
    if max_real > tolerance:
        return "unstable", f"max Re λ = {_fmt(max_real)} > {_fmt(tolerance)}"
    if radius >= 1.0 + tolerance * dt:
        return "unstable", f"spectral radius of I + AΔt = {_fmt(radius)} >= 1"
    abs_imag = np.abs(imag)
    floor = _IMAG_FLOOR * max(1.0, largest_entry)
    oscillating = (abs_imag > oscillation_ratio * np.abs(real)) & (abs_imag > floor)
    if oscillating.any():
        pair = complex(values[int(np.argmax(oscillating))])
        return "oscillatory", (
            f"complex pair {_fmt(pair.real)} ± {_fmt(abs(pair.imag))}i "
            f"(|Im|/|Re| > {_fmt(oscillation_ratio)})"
        )
    causes = []
    if rate < slow_rate:
        causes.append(f"rate ρ = {_fmt(rate)} < {_fmt(slow_rate)}")
    if target is not None:
        outside = (target < -boundary_tolerance) | (target > 1.0 + boundary_tolerance)
        if outside.any():
            causes.append(f"equilibrium outside [0, 1] in {int(outside.sum())} component(s)")
    if causes:
        return "boundary-seeking", "; ".join(causes)
    return "exponential", f"rate ρ = {_fmt(rate)}, spectral radius {_fmt(radius)} < 1"


def max_real_stderr(A: FloatArray, residual_covariance: FloatArray, scale: FloatArray) -> float:
    """First-order standard error of max Re λ(A) when Cov(A_jk, A_lm) = C_jl K_km.

    With right and left eigenvectors v, w of the dominant eigenvalue (w v = 1),
    ∂λ/∂A_jk = w_j v_k, so Var(Re λ) = Σ G_jk C_jl K_km G_lm with G = Re(w vᵀ) (Wilkinson).
    ``residual_covariance`` is C (d, d) and ``scale`` is K (d, d), the A-block of the
    regression's (W₂/W) P. ``inf`` when A is not diagonalisable to working precision.

    Examples
    --------
    >>> import numpy as np
    >>> round(max_real_stderr(np.diag([-0.5, -1.0]), np.eye(2) * 0.04, np.eye(2) * 0.25), 6)
    0.1
    """
    values, right = np.linalg.eig(A)
    if np.linalg.cond(right) > 1e8:
        return math.inf
    left = np.linalg.inv(right)
    index = int(np.argmax(values.real))
    gradient = np.outer(left[index], right[:, index]).real
    variance = float(np.sum((residual_covariance @ gradient @ scale) * gradient))
    return math.sqrt(max(variance, 0.0))
