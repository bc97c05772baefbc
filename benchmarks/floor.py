"""The floor: one controller step's math written as one lean numpy function.

:func:`floor_step` does the numerical work of one :meth:`steerloop.Session.update`
(docs/architecture.md "One step, as data flows") with nothing around it: no input validation, no
missing-value handling, no stabilisation guards, no diagnostics mapping, no rule engine, no
decision object, no telemetry. It is what the step would cost if the controller were a single
hand-written numpy function, so ``Session.update / floor_step`` measures the price of
everything else.

Contents of one full floor step (``full=True``, the floor the goal is measured against):

1. the scores mapping -> vector y_t;
2. Kalman update with H = I (Joseph form): S = P + R, K = P S⁻¹, x += K(y − x),
   P = (I − K) P (I − K)ᵀ + K R Kᵀ;
3. drift RLS update on φ = [x_{t−1}; 1], z = x_t − x_{t−1} (g = Pφ, Θ += g eᵀ/δ,
   P = (P − g gᵀ/δ)/λ), the EW moments of its residual (diffusion) and of its target, the
   EW mean of e² and the predictive R² = 1 − Σ MSE_i / tr C_z;
4. interference: EW moments of the increment, pooled and for the current strategy;
5. severity s = 1 − x_0: RLS of the severity drift on [s(1−s), −s², 1] and of its scale
   on [1, s], the EW mean of s, and the phase with its confidence margin
   (α − β > margin + z·se, se² = cᵀP c · σ̂(s̄)², DESIGN "Severity");
6. eigvals(A) -> rate, max real part, spectral radius of I + A, oscillation test; cond(A)
   and, when A is well conditioned, x* = −A⁻¹b; the pooled EW correlation and its most
   negative off-diagonal entry;
7. a few comparisons: the regime tests and the paper preset's rules, as ``if``/``elif``;
8. Kalman predict with F = I + A, offset b, Q = residual covariance while the map
   contracts (spectral radius < 1), else a random walk.

``full=False`` is the *minimal* floor, the issue's list taken literally: Kalman predict and
update, one RLS update, eigvals, one EW correlation, a few comparisons (steps 1, 2, the RLS of
3, the pooled moments of 4, 6 without cond and x*, 7, 8). It is reported for context only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["FloorState", "floor_step"]

FloatArray = NDArray[np.float64]


class _Moments:
    """EW weight W, mean m and scatter S (West's recurrence with forgetting)."""

    __slots__ = ("mean", "scatter", "weight")

    def __init__(self, dim: int) -> None:
        self.weight = 0.0
        self.mean: FloatArray = np.zeros(dim)
        self.scatter: FloatArray = np.zeros((dim, dim))

    def update(self, value: FloatArray, lam: float) -> None:
        decayed = lam * self.weight
        weight = decayed + 1.0
        delta = value - self.mean
        self.mean = self.mean + delta / weight
        self.scatter = lam * self.scatter + (decayed / weight) * np.outer(delta, delta)
        self.weight = weight


class FloorState:
    """State of the floor: Kalman x, P; drift Θ, P; moments; severity RLS; last values."""

    def __init__(
        self,
        objectives: Sequence[str],
        *,
        forgetting: float = 0.98,
        measurement_noise: float = 0.01,
        initial_covariance: float = 100.0,
        strategies: int = 4,
    ) -> None:
        d = len(objectives)
        self.names = tuple(objectives)
        self.dim = d
        self.lam = forgetting
        self.x: FloatArray = np.full(d, 0.5)
        self.P: FloatArray = np.eye(d)
        self.R: FloatArray = measurement_noise * np.eye(d)
        self.eye: FloatArray = np.eye(d)
        self.theta: FloatArray = np.zeros((d + 1, d))
        self.theta_cov: FloatArray = initial_covariance * np.eye(d + 1)
        self.phi: FloatArray = np.ones(d + 1)
        self.previous: FloatArray | None = None
        self.residuals = _Moments(d)
        self.targets = _Moments(d)
        self.pooled = _Moments(d)
        self.by_strategy = [_Moments(d) for _ in range(strategies)]
        self.strategy = 0
        self.sev_theta: FloatArray = np.zeros(3)
        self.sev_cov: FloatArray = initial_covariance * np.eye(3)
        self.scale_theta: FloatArray = np.zeros(2)
        self.scale_cov: FloatArray = initial_covariance * np.eye(2)
        self.severity: float | None = None
        self.severity_mean = 0.5
        self.severity_weight = 0.0
        self.squared_error: FloatArray = np.zeros(d)
        self.margin_vector: FloatArray = np.array([1.0, -1.0, 0.0])
        self.upper = np.triu_indices(d, 1)


def _rls(
    theta: FloatArray, cov: FloatArray, phi: FloatArray, target: FloatArray | float, lam: float
) -> FloatArray:
    """One RLS update in place (symmetric covariance form); returns the a-priori residual."""
    g = cov @ phi
    denom = lam + phi @ g
    error: FloatArray = target - theta.T @ phi
    theta += np.multiply.outer(g / denom, error)
    cov -= np.outer(g, g) / denom
    cov *= 1.0 / lam
    return error


def floor_step(st: FloorState, scores: Mapping[str, float], full: bool = True) -> int:
    """One step of the floor (see the module docstring); returns the chosen strategy index."""
    lam = st.lam
    d = st.dim
    y = np.array([scores[name] for name in st.names])
    # Kalman update, H = I, Joseph form
    P = st.P
    K = P @ np.linalg.inv(P + st.R)
    x = st.x + K @ (y - st.x)
    IK = st.eye - K
    P = IK @ P @ IK.T + K @ st.R @ K.T
    # drift RLS and its residual/target moments; interference moments
    previous = st.previous
    if previous is not None:
        phi = st.phi
        phi[:d] = previous
        z = x - previous
        error = _rls(st.theta, st.theta_cov, phi, z, lam)
        st.pooled.update(z, lam)
        if full:
            st.residuals.update(error, lam)
            st.targets.update(z, lam)
            st.by_strategy[st.strategy].update(z, lam)
            st.squared_error += (error * error - st.squared_error) / st.residuals.weight
    st.previous = x
    # severity SDE: drift RLS on [s(1-s), -s^2, 1] and scale RLS on [1, s]
    s = 1.0 - float(x[0])
    s_prev = st.severity
    if full and s_prev is not None:
        features = np.array([s_prev * (1.0 - s_prev), -s_prev * s_prev, 1.0])
        residual = _rls(st.sev_theta, st.sev_cov, features, s - s_prev, lam)
        _rls(st.scale_theta, st.scale_cov, np.array([1.0, s_prev]), abs(float(residual)), lam)
        st.severity_weight = lam * st.severity_weight + 1.0
        st.severity_mean += (s_prev - st.severity_mean) / st.severity_weight
    st.severity = s
    # spectrum, equilibrium, interference
    A = st.theta[:d].T
    b = st.theta[d]
    eigenvalues = np.linalg.eigvals(A)
    real = eigenvalues.real
    max_real = float(real.max())
    rate = -max_real
    radius = float(np.abs(1.0 + eigenvalues).max())
    oscillating = bool((np.abs(eigenvalues.imag) > 0.5 * np.abs(real)).any())
    lowest_equilibrium = 1.0
    if full and np.linalg.cond(A) < 1e8:
        equilibrium = np.linalg.solve(A, -b)
        lowest_equilibrium = float(equilibrium.min())
        outside = lowest_equilibrium < 0.0 or float(equilibrium.max()) > 1.0
    else:
        outside = False
    scale = np.sqrt(np.diag(st.pooled.scatter))
    corr = st.pooled.scatter / np.outer(scale, scale)
    interference_min = float(corr[st.upper].min())
    if full:  # predictive R² and the severity phase with its confidence margin
        total = float(np.trace(st.targets.scatter)) / st.targets.weight
        r2 = 1.0 - float(st.squared_error.sum()) / total
        sigma = float(st.scale_theta[0] + st.scale_theta[1] * st.severity_mean)
        quad = float(st.margin_vector @ st.sev_cov @ st.margin_vector)
        threshold = 0.05 + 1.645 * (max(quad, 0.0) * sigma * sigma) ** 0.5
    else:
        r2, threshold = 0.0, 0.05
    # regimes and the paper preset's rules
    if max_real > 0.0 or radius >= 1.0:
        regime = "unstable"
    elif oscillating:
        regime = "oscillatory"
    elif rate < 0.05 or outside:
        regime = "boundary-seeking"
    else:
        regime = "exponential"
    margin = float(st.sev_theta[0] - st.sev_theta[1])
    if margin > threshold or s > 0.7:
        choice = 1
    elif interference_min < -0.15:
        choice = 2
    elif rate > 1.5 or regime == "oscillatory":
        choice = 3
    elif lowest_equilibrium < 0.2 or (regime == "boundary-seeking" and r2 < 2.0):
        choice = 0
    else:
        choice = st.strategy
    # Kalman predict with the drift (F = I + A, offset b, Q = residual covariance) while the
    # discrete map contracts, else a random walk
    if radius < 1.0:
        F = st.eye + A
        if full and st.residuals.weight > 0.0:
            Q = st.residuals.scatter / st.residuals.weight
        else:
            Q = st.R
        st.x = F @ x + b
        st.P = F @ P @ F.T + Q
    else:
        st.x = x
        st.P = P + st.R
    return choice
