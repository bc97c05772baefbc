"""Uncertainty of the batch estimates: the convergence rate and the interference correlations.

**Rate (delta method).** The least-squares drift fit (eq. (1) of :mod:`steerloop.analysis.fit`)
has Cov(Θ̂) = (ΦᵀΦ)⁻¹ ⊗ S, S the residual covariance of the targets z (one column of Θ per
objective, shared regressors), so with A_ij = Θ_ji

    Cov(A_ij, A_kl) = S_ik [(ΦᵀΦ)⁻¹]_jl.

For a simple eigenvalue λ of A with right eigenvector v and left eigenvector w (w v = 1),
∂λ/∂A_ij = w_i v_j. The rate ρ = −max Re λ therefore has gradient G_ij = −Re(w_i v_j) for the
eigenvalue attaining the maximum, and

    Var(ρ̂) ≈ Σ_ik S_ik (G M Gᵀ)_ik,   M = [(ΦᵀΦ)⁻¹]_{1..d, 1..d}.

The delta method assumes the slowest mode is separated from the others by more than the
estimation error (a tie between two real eigenvalues makes the maximum non-smooth); the
standard error is withheld (None) when the eigenvectors are ill-conditioned. Regressions on a
Markov chain's own states keep these OLS standard errors valid for large n (the errors are
independent of the current regressors); ``tests/analysis/test_uncertainty.py`` checks them
against the spread of the rate over independent simulated data sets.

**Correlations (Fisher z).** For a correlation r from n pairs, atanh(r) is approximately normal
with standard deviation 1/√(n − 3); :func:`correlation_interval` maps the interval back.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["correlation_interval", "rate_stderr"]

FloatArray = NDArray[np.float64]

_MAX_EIGENVECTOR_CONDITION = 1e8


def rate_stderr(
    a: FloatArray, residual_covariance: FloatArray, gram_inverse: FloatArray
) -> float | None:
    """Delta-method standard error of ρ = −max Re λ(A) (module docstring).

    Parameters
    ----------
    a : array (d, d)
        Fitted drift matrix.
    residual_covariance : array (d, d)
        S, covariance of the regression residuals of z (per unit time, not multiplied by Δt).
    gram_inverse : array (d + 1, d + 1) or (d, d)
        (ΦᵀΦ)⁻¹ of the regressors [y, 1]; only its leading (d, d) block is used.

    Examples
    --------
    Scalar case: ρ = −a, Var(â) = s² / Σ(x − x̄)² (here with the leading block of (ΦᵀΦ)⁻¹):

    >>> import numpy as np
    >>> round(rate_stderr(np.array([[-0.5]]), np.array([[0.04]]), np.array([[0.01]])), 6)
    0.02
    """
    d = a.shape[0]
    if not (np.isfinite(a).all() and np.isfinite(residual_covariance).all()):
        return None
    values, right = np.linalg.eig(a)
    if np.linalg.cond(right) > _MAX_EIGENVECTOR_CONDITION:
        return None
    left = np.linalg.inv(right)
    k = int(np.argmax(values.real))
    gradient = -np.real(np.outer(left[k], right[:, k]))
    m = np.asarray(gram_inverse, dtype=np.float64)[:d, :d]
    variance = float(np.sum(residual_covariance * (gradient @ m @ gradient.T)))
    return math.sqrt(variance) if variance >= 0.0 and math.isfinite(variance) else None


def correlation_interval(r: float, n: int, *, z: float = 1.96) -> tuple[float, float] | None:
    """Approximate confidence interval of a correlation from ``n`` pairs (Fisher z).

    ``z`` = 1.96 gives 95 %. None when n < 4 or r is not finite.

    Examples
    --------
    >>> low, high = correlation_interval(-0.18, 4900)
    >>> round(low, 3), round(high, 3)
    (-0.207, -0.153)
    """
    if n < 4 or not math.isfinite(r):
        return None
    centre = math.atanh(max(min(r, 1.0 - 1e-12), -1.0 + 1e-12))
    half = z / math.sqrt(n - 3)
    return math.tanh(centre - half), math.tanh(centre + half)
