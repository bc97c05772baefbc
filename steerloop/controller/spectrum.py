"""Eigenvalue diagnostics of a linear drift: convergence rate and dynamical regime.

For a strategy π with locally linear drift μ(x) = A_π x + b_π (paper 1, eq. 1–2), the
eigenvalues λ_i of A_π decide how the objective state moves near the equilibrium
x*_π = −A_π⁻¹ b_π (paper 1, §3.4). The continuous-time convergence rate is

    ρ = −max_i Re λ_i,

and the loop itself runs the explicit Euler map x_{t+1} = (I + A_π Δt) x_t + b_π Δt, whose
eigenvalues are the multipliers 1 + λ_i Δt. :func:`analyze_spectrum` computes both with one
call to :func:`numpy.linalg.eigvals` and classifies the drift into one regime:

``unstable``
    max Re λ > 0 (the continuous drift diverges), or the spectral radius
    r = max_i |1 + λ_i Δt| of the discrete map is ≥ 1 (the iteration does not contract).
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
``exponential``: the first regime whose test passes is reported.

**Relation to the "ρ > 1.5 means overshoot" heuristic.** For a real eigenvalue λ = −ρ the
discrete multiplier is 1 − ρΔt. With Δt = 1:

* 0 < ρ < 1: multiplier in (0, 1), monotone convergence;
* ρ = 1: multiplier 0, the equilibrium is reached in one step;
* 1 < ρ < 2: multiplier in (−1, 0), the iterate jumps past x* every step and the error
  alternates in sign while shrinking — *overshoot*, reported by the ``overshoot`` flag
  (any 1 + Re λ_i Δt < 0);
* ρ ≥ 2: |multiplier| ≥ 1, the oscillation around x* no longer shrinks — *unstable*.

The policy threshold ρ > 1.5 (DESIGN, rule ``overshoot``) sits inside the overshoot band: the
step lands on the far side of x* at more than half the previous distance. It is a policy
choice, not a stability boundary; the exact boundary is r ≥ 1, tested here. For complex λ the
test r ≥ 1 reads (1 + Re λ Δt)² + (Im λ Δt)² ≥ 1, so a lightly damped rotation is unstable as
a discrete map although Re λ < 0: A = [[−0.1, −1], [1, −0.1]] has λ = −0.1 ± i and
|1 + λ| ≈ 1.345 at Δt = 1 (it is ``oscillatory`` at Δt = 0.1, where |1 + 0.1λ| ≈ 0.995).
A zero eigenvalue (a direction with no restoring force) has multiplier exactly 1 and is
therefore ``unstable`` too.

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
>>> analyze_spectrum(np.array([[np.nan, 0.0], [0.0, -1.0]])).regime
'unknown'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.controller import _linalg

__all__ = ["Regime", "SpectrumReport", "SpectrumSummary", "analyze_spectrum", "summarize_spectrum"]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]

Regime = Literal["exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"]

# Imaginary parts below sqrt(eps)·max(1, max|A_ij|) are treated as round-off: LAPACK returns
# a spurious complex pair of that size for a (nearly) defective real eigenvalue, and an
# oscillation with such a period (> 10⁸ steps for unit-scale A) is not one.
_IMAG_FLOOR = math.sqrt(float(np.finfo(np.float64).eps))


@dataclass(frozen=True)
class SpectrumReport:
    """Result of :func:`analyze_spectrum`.

    Attributes
    ----------
    eigenvalues : tuple of complex
        Eigenvalues λ_i of A, sorted by decreasing real part, then increasing imaginary part
        (so ``eigenvalues[0]`` is a dominant, slowest mode). Empty when ``regime`` is
        ``"unknown"``.
    rate : float
        Convergence rate ρ = −max Re λ_i (negative when the drift diverges); NaN if unknown.
    max_real : float
        max Re λ_i (= −ρ); NaN if unknown.
    spectral_radius : float
        max_i |1 + λ_i Δt|, the spectral radius of the discrete map I + AΔt; NaN if unknown.
    regime : {"exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"}
        Classification, see the module docstring for the tests and their precedence.
    reason : str
        One line explaining the classification with the numbers that decided it.
    overshoot : bool
        True when some multiplier has negative real part, 1 + Re λ_i Δt < 0: the discrete
        iteration jumps past the equilibrium along that mode (for a real λ = −ρ this is
        ρΔt > 1). Independent of ``regime``; False when unknown.
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


def _fmt_complex(value: complex) -> str:
    if value.imag == 0.0:
        return _fmt(value.real)
    return f"{_fmt(value.real)} ± {_fmt(abs(value.imag))}i"


def _unknown(reason: str) -> SpectrumReport:
    nan = math.nan
    return SpectrumReport(
        eigenvalues=(),
        rate=nan,
        max_real=nan,
        spectral_radius=nan,
        regime="unknown",
        reason=reason,
        overshoot=False,
    )


def _check_parameters(
    dt: float, slow_rate: float, oscillation_ratio: float, boundary_tolerance: float
) -> None:
    if not (math.isfinite(dt) and dt > 0.0):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    if not (math.isfinite(slow_rate) and slow_rate >= 0.0):
        raise ValueError(f"slow_rate must be a finite number >= 0, got {slow_rate}")
    if not (math.isfinite(oscillation_ratio) and oscillation_ratio >= 0.0):
        raise ValueError(f"oscillation_ratio must be a finite number >= 0, got {oscillation_ratio}")
    if not (math.isfinite(boundary_tolerance) and boundary_tolerance >= 0.0):
        raise ValueError(
            f"boundary_tolerance must be a finite number >= 0, got {boundary_tolerance}"
        )


def _as_real_array(value: ArrayLike) -> FloatArray | None:
    """``value`` as a float64 array, or None when it is not a real numeric array."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.dtype.kind not in "biuf":
        return None
    return array.astype(np.float64, copy=False)


def analyze_spectrum(
    A: ArrayLike,
    *,
    dt: float = 1.0,
    equilibrium: ArrayLike | None = None,
    slow_rate: float = 0.05,
    oscillation_ratio: float = 0.5,
    boundary_tolerance: float = 0.0,
) -> SpectrumReport:
    """Eigenvalues, convergence rate and regime of the drift matrix ``A`` (paper 1, §3.4).

    Computes λ_i = eig(A) once, ρ = −max Re λ_i, the spectral radius
    r = max_i |1 + λ_i Δt| of the Euler map I + AΔt, and classifies (first match wins):

    1. ``unknown`` — ``A`` is not a finite real (d, d) matrix with d ≥ 1, its eigenvalues are
       not finite, or ``equilibrium`` is given with a shape other than (d,);
    2. ``unstable`` — max Re λ > 0 or r ≥ 1;
    3. ``oscillatory`` — some λ has |Im λ| > ``oscillation_ratio`` · |Re λ| (and |Im λ| above
       round-off, √eps · max(1, max|A_ij|));
    4. ``boundary-seeking`` — ρ < ``slow_rate``, or some component of ``equilibrium`` is
       below −``boundary_tolerance`` or above 1 + ``boundary_tolerance``;
    5. ``exponential`` — otherwise.

    Parameters
    ----------
    A : array_like, shape (d, d)
        Drift matrix A_π (continuous time, per unit of time).
    dt : float, default 1.0
        Step Δt of the discrete loop (one iteration = Δt).
    equilibrium : array_like, shape (d,), optional
        Predicted equilibrium x*_π = −A_π⁻¹ b_π, or None when it is not available (singular
        A). NaN components are ignored by the box test; ±inf components are outside the box.
    slow_rate : float, default 0.05
        Rates below this count as "ρ near 0" (boundary-seeking). 0.05 is an order of
        magnitude below the slowest strategy rate the paper measured (0.33): such a drift
        needs ~20 steps per e-fold and in practice drifts to a bound before converging.
    oscillation_ratio : float, default 0.5
        A mode is oscillatory when |Im λ| > ratio · |Re λ|. At the default 0.5 the state
        turns by more than 0.5 rad (≈ 29°) per e-fold of decay, so a spiral is visible in
        the trajectory; a smaller |Im| only bends an otherwise monotone approach.
    boundary_tolerance : float, default 0.0
        Slack around [0, 1]^d for the equilibrium test.

    Returns
    -------
    SpectrumReport
        Never raises for a bad ``A`` or ``equilibrium``: those give ``regime="unknown"``
        with NaN numbers, an empty ``eigenvalues`` tuple and the cause in ``reason``.

    Raises
    ------
    ValueError
        If ``dt`` is not positive and finite, or ``slow_rate``, ``oscillation_ratio`` or
        ``boundary_tolerance`` is negative or not finite (configuration errors).

    Notes
    -----
    Cost: one ``eigvals`` call (O(d³)) and O(d) vectorized work; no Python loop over modes.
    See the module docstring for how r ≥ 1 relates to the "ρ > 1.5 means overshoot" rule.

    Examples
    --------
    >>> import numpy as np
    >>> report = analyze_spectrum(np.array([[-0.1, -1.0], [1.0, -0.1]]), dt=0.1)
    >>> report.regime, [complex(round(z.real, 9), round(z.imag, 9)) for z in report.eigenvalues]
    ('oscillatory', [(-0.1-1j), (-0.1+1j)])
    >>> analyze_spectrum(np.array([[-0.1, -1.0], [1.0, -0.1]]), dt=1.0).regime
    'unstable'
    >>> report = analyze_spectrum(np.diag([-1.8, -0.6]))
    >>> report.regime, report.rate, report.overshoot
    ('exponential', 0.6, True)
    """
    _check_parameters(dt, slow_rate, oscillation_ratio, boundary_tolerance)

    matrix = _as_real_array(A)
    if matrix is None:
        return _unknown("A is not a real numeric array")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        return _unknown(f"A must be a square (d, d) matrix with d >= 1, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        return _unknown("A has non-finite entries (NaN or inf)")
    dim = matrix.shape[0]

    target: FloatArray | None = None
    if equilibrium is not None:
        target = _as_real_array(equilibrium)
        if target is None:
            return _unknown("equilibrium is not a real numeric array")
        if target.shape != (dim,):
            return _unknown(f"equilibrium must have shape ({dim},), got {target.shape}")

    try:
        raw: ComplexArray = _linalg.eigvals(matrix)
    except np.linalg.LinAlgError:
        return _unknown("eigenvalue computation did not converge")
    if not np.isfinite(raw).all():
        return _unknown("eigenvalues are not finite (entries of A too large)")
    if not raw.imag.any():  # as numpy.linalg.eigvals: all real -> imaginary parts +0.0
        raw = raw.real.astype(np.complex128)

    real = raw.real
    imag = raw.imag
    order = np.lexsort((imag, -real))
    values = raw[order]
    real = real[order]
    imag = imag[order]

    max_real = float(real[0])
    rate = 0.0 - max_real  # not -max_real: a zero eigenvalue gives rate +0.0, not -0.0
    step_real = 1.0 + real * dt
    radius = float(np.hypot(step_real, imag * dt).max())
    overshoot = bool((step_real < 0.0).any())
    eigenvalues = tuple(complex(z) for z in values)

    def report(regime: Regime, reason: str) -> SpectrumReport:
        if overshoot:
            reason += (
                f"; the discrete step overshoots x* (1 + min Re λ·Δt = {_fmt(float(step_real[-1]))}"
                " < 0)"
            )
        return SpectrumReport(
            eigenvalues=eigenvalues,
            rate=rate,
            max_real=max_real,
            spectral_radius=radius,
            regime=regime,
            reason=reason,
            overshoot=overshoot,
        )

    if max_real > 0.0:
        return report(
            "unstable",
            f"max Re λ = {_fmt(max_real)} > 0: the drift pushes away from equilibrium "
            f"(spectral radius of I + AΔt = {_fmt(radius)} at Δt = {_fmt(dt)})",
        )
    if radius >= 1.0:
        return report(
            "unstable",
            f"spectral radius of I + AΔt = {_fmt(radius)} >= 1 at Δt = {_fmt(dt)} "
            f"(max Re λ = {_fmt(max_real)}): the discrete iteration does not contract",
        )

    abs_imag = np.abs(imag)
    floor = _IMAG_FLOOR * max(1.0, float(np.abs(matrix).max()))
    oscillating = (abs_imag > oscillation_ratio * np.abs(real)) & (abs_imag > floor)
    if oscillating.any():
        first = int(np.argmax(oscillating))
        pair = eigenvalues[first]
        ratio = abs(pair.imag) / abs(pair.real)
        return report(
            "oscillatory",
            f"complex pair λ = {_fmt_complex(pair)} with |Im|/|Re| = {_fmt(ratio)} > "
            f"{_fmt(oscillation_ratio)} (period {_fmt(2.0 * math.pi / abs(pair.imag))}, "
            f"rate ρ = {_fmt(rate)})",
        )

    causes: list[str] = []
    if rate < slow_rate:
        causes.append(f"rate ρ = {_fmt(rate)} < slow_rate {_fmt(slow_rate)}")
    if target is not None:
        outside = (target < -boundary_tolerance) | (target > 1.0 + boundary_tolerance)
        if outside.any():
            worst = int(np.argmax(np.where(outside, np.abs(target - 0.5), -np.inf)))
            causes.append(
                f"equilibrium x*[{worst}] = {_fmt(float(target[worst]))} outside [0, 1] "
                f"(tolerance {_fmt(boundary_tolerance)}, {int(outside.sum())} of {dim} "
                "components outside)"
            )
    if causes:
        return report("boundary-seeking", "; ".join(causes))

    where = ", equilibrium inside [0, 1]^d" if target is not None else ""
    return report(
        "exponential",
        f"rate ρ = {_fmt(rate)} >= slow_rate {_fmt(slow_rate)}, spectral radius "
        f"{_fmt(radius)} < 1, no oscillating pair{where}",
    )


class SpectrumSummary(NamedTuple):
    """The numbers and regime of :func:`analyze_spectrum`, without eigenvalues or reason."""

    rate: float
    max_real: float
    spectral_radius: float
    regime: Regime
    overshoot: bool


_UNKNOWN_SUMMARY = SpectrumSummary(math.nan, math.nan, math.nan, "unknown", False)


def summarize_spectrum(
    A: FloatArray,
    *,
    dt: float = 1.0,
    equilibrium: FloatArray | None = None,
    slow_rate: float = 0.05,
    oscillation_ratio: float = 0.5,
    boundary_tolerance: float = 0.0,
) -> SpectrumSummary:
    """:func:`analyze_spectrum`'s rate, max real part, spectral radius, regime and overshoot.

    The same tests and the same numbers (bit for bit), for the per-step hot path: no sorted
    eigenvalue tuple and no explanation, and the arguments are trusted instead of checked —
    ``A`` is a float64 (d, d) array (non-finite entries still give ``unknown``),
    ``equilibrium`` is None or a *finite* float64 array of shape (d,), and the thresholds
    are valid (:func:`analyze_spectrum` raises on bad ones). Use :func:`analyze_spectrum`
    anywhere else.

    Examples
    --------
    >>> import numpy as np
    >>> summarize_spectrum(np.diag([-0.4, -0.9]))
    SpectrumSummary(rate=0.4, max_real=-0.4, spectral_radius=0.6, regime='exponential', \
overshoot=False)
    """
    # A finite sum of squares means every entry is finite; otherwise (non-finite entries, or
    # entries beyond ~1e154) decide on max |A_ij|, which is needed below only then.
    abs_max: float | None = None
    if not math.isfinite(float(np.vdot(A, A))):
        abs_max = float(np.abs(A).max())
        if not math.isfinite(abs_max):
            return _UNKNOWN_SUMMARY
    try:
        raw = _linalg.eigvals(A)
    except np.linalg.LinAlgError:
        return _UNKNOWN_SUMMARY
    real = raw.real
    imag = raw.imag
    # max, min and any do not depend on the order analyze_spectrum sorts the modes in. With
    # every eigenvalue finite (a finite sum), Python's max/min of the list equal numpy's.
    values = raw.tolist()
    reals = [z.real for z in values]
    imags = [abs(z.imag) for z in values]
    if math.isfinite(sum(reals) + sum(imags)):
        max_real, min_real, max_imag = max(reals), min(reals), max(imags)
    else:  # NaN propagates through numpy's max/min: the extremes are finite iff all are
        max_real = float(real.max())
        min_real = float(real.min())
        max_imag = float(np.abs(imag).max())
        if not (math.isfinite(max_real) and math.isfinite(min_real) and math.isfinite(max_imag)):
            return _UNKNOWN_SUMMARY
    rate = 0.0 - max_real
    # 1 + λΔt is monotone in Re λ, so min_i (1 + Re λ_i Δt) = 1 + min Re λ · Δt.
    overshoot = 1.0 + min_real * dt < 0.0
    if max_imag == 0.0:
        # A real spectrum: |1 + λΔt| is largest at an extreme eigenvalue (hypot(x, 0) = |x|).
        radius = max(abs(1.0 + max_real * dt), abs(1.0 + min_real * dt))
    else:
        radius = float(np.hypot(1.0 + real * dt, imag * dt).max())
    if max_real > 0.0 or radius >= 1.0:
        return SpectrumSummary(rate, max_real, radius, "unstable", overshoot)
    # floor ≥ _IMAG_FLOOR: below that no mode can oscillate, and max |A_ij| is not needed.
    if max_imag > _IMAG_FLOOR:
        if abs_max is None:
            abs_max = float(np.abs(A).max())
        floor = _IMAG_FLOOR * max(1.0, abs_max)
        abs_imag = np.abs(imag)
        if max_imag > floor and bool(
            ((abs_imag > oscillation_ratio * np.abs(real)) & (abs_imag > floor)).any()
        ):
            return SpectrumSummary(rate, max_real, radius, "oscillatory", overshoot)
    if rate < slow_rate or (
        equilibrium is not None
        and (
            float(equilibrium.min()) < -boundary_tolerance
            or float(equilibrium.max()) > 1.0 + boundary_tolerance
        )
    ):
        return SpectrumSummary(rate, max_real, radius, "boundary-seeking", overshoot)
    return SpectrumSummary(rate, max_real, radius, "exponential", overshoot)
