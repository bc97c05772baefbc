"""Online estimates of the measurement noise R and the process noise Q.

With raw scores y = x + v (v ~ N(0, R), R diagonal: each scorer's own noise) and the Euler
transition x_{t+1} = F x_t + c + w_t (w ~ N(0, Q), F = I + AΔt), the one-step residual of a
drift fit, ε_t = y_{t+1} − F y_t − c = w_t + v_{t+1} − F v_t, has the autocovariances

    Cov(ε_t) = Q + R + F R Fᵀ,        Cov(ε_{t+1}, ε_t) = −F R                          (1)

(:mod:`steerloop.estimators.drift`, eq. 2). Both sides are known up to R and Q: this is the
autocovariance least-squares idea of Odelson, Rajamani & Rawlings (2006), specialised to a
diagonal R. Column j of the lag equation reads C₁[:, j] = −F[:, j] R_jj, so per strategy π

    N_π,j = −Σ_i F_ij (C₁)_ij,   D_π,j = Σ_i F_ij²,   E[N_π,j] = R_jj D_π,j,

and the measurement noise, which belongs to the scorers and not to a strategy, is the pooled
least-squares solution with a weak prior (R₀, n₀ pseudo-pairs with D = 1):

    R_jj = (n₀ R₀ + Σ_π W₁,π N_π,j) / (n₀ + Σ_π W₁,π D_π,j),   clipped to [r_min, r_max]   (2)

(W₁,π the weight of consecutive transition pairs of strategy π). The process noise of a
strategy is the remainder of (1), Q = Cov(ε) − R − F R Fᵀ, projected onto the symmetric
matrices with eigenvalues ≥ ``floor``. Q is thus estimated from the raw residuals, never from
residuals of filtered states (whose variance is K S Kᵀ, not Q).

The default prior R₀ is small (the scores are trusted until the data say otherwise): a filter
with too small an R only smooths less, while one with too large an R lags the truth, and the
data raise R quickly (evidence grows with R) but lower it slowly.

References
----------
B. J. Odelson, M. R. Rajamani and J. B. Rawlings, "A new autocovariance least-squares method
for estimating noise covariances", Automatica 42(2), 303–308, 2006.

Examples
--------
>>> import numpy as np
>>> F = np.diag([0.5, 0.8])
>>> R_true = np.array([0.01, 0.02])
>>> lag = -F @ np.diag(R_true)
>>> evidence = lag_evidence(F, lag)
>>> R_hat = pooled_measurement_noise([(evidence, 100.0)], prior=1e-4, prior_weight=1.0)
>>> np.round(R_hat, 4).tolist()
[0.0096, 0.0197]
>>> step = np.diag([0.05, 0.06]) + np.diag(R_true) + F @ np.diag(R_true) @ F.T
>>> Q = process_noise(step, R_true, F)
>>> np.round(Q, 6).tolist()
[[0.05, 0.0], [0.0, 0.06]]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_MEASUREMENT_NOISE",
    "MIN_MEASUREMENT_NOISE",
    "PROCESS_NOISE_FLOOR",
    "lag_evidence",
    "pooled_measurement_noise",
    "process_noise",
]

FloatArray = NDArray[np.float64]

#: Bounds of the estimated measurement variance (scores live in [0, 1]: a variance of 0.25 is
#: a coin flip between the ends).
MIN_MEASUREMENT_NOISE = 1e-6
MAX_MEASUREMENT_NOISE = 0.25
#: Smallest eigenvalue of an estimated process noise Q.
PROCESS_NOISE_FLOOR = 1e-6


def lag_evidence(F: FloatArray, lag_covariance: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(N, D)`` of one strategy: N_j = −Σ_i F_ij (C₁)_ij, D_j = Σ_i F_ij² (module doc)."""
    numerator = -np.einsum("ij,ij->j", F, lag_covariance)
    denominator = np.einsum("ij,ij->j", F, F)
    return np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)


def pooled_measurement_noise(
    evidence: Iterable[tuple[tuple[FloatArray, FloatArray], float]],
    *,
    prior: float | FloatArray,
    prior_weight: float,
    bounds: tuple[float, float] = (MIN_MEASUREMENT_NOISE, MAX_MEASUREMENT_NOISE),
) -> FloatArray:
    """Measurement variances R_jj by eq. (2) from ``((N, D), W₁)`` per strategy.

    Parameters
    ----------
    evidence : iterable of ((N, D), weight)
        :func:`lag_evidence` of each strategy with its pair weight W₁.
    prior : float or array (d,)
        R₀.
    prior_weight : float
        n₀ ≥ 0, in pseudo-pairs.
    bounds : (float, float)
        Clip range of the result.
    """
    items = list(evidence)
    prior_vector = np.asarray(prior, dtype=np.float64)
    numerator = prior_weight * prior_vector
    denominator = prior_weight * np.ones_like(numerator)
    for (n, d), weight in items:
        numerator = numerator + weight * n
        denominator = denominator + weight * d
    if not items and prior_weight <= 0:
        return np.full(np.shape(numerator), bounds[1])
    safe = np.where(denominator > 0, denominator, 1.0)
    values = np.where(denominator > 0, numerator / safe, bounds[1])
    return np.asarray(np.clip(values, bounds[0], bounds[1]), dtype=np.float64)


def process_noise(
    step_covariance: FloatArray,
    measurement_noise: FloatArray,
    F: FloatArray,
    *,
    floor: float = PROCESS_NOISE_FLOOR,
) -> FloatArray:
    """Q = Cov(ε) − R − F R Fᵀ (eq. 1), projected to eigenvalues ≥ ``floor``."""
    R = np.diag(measurement_noise)
    remainder = step_covariance - R - F @ R @ F.T
    remainder = 0.5 * (remainder + remainder.T)
    values, vectors = np.linalg.eigh(remainder)
    return np.asarray((vectors * np.maximum(values, floor)) @ vectors.T, dtype=np.float64)
