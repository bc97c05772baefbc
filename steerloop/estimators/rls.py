"""Recursive least squares with exponential forgetting, kept as sufficient statistics.

The model is z = Θᵀφ + e with regressor φ ∈ R^p, target z ∈ R^m and parameters Θ ∈ R^{p×m}
(docs/architecture.md, "RLS drift"). Observation k of n carries weight w_k = λ^{n−k}. The
estimator keeps the weighted sufficient statistics

    J = Σ w_k φ_k φ_kᵀ,   H = Σ w_k φ_k z_kᵀ,   Z = Σ w_k z_k z_kᵀ,   W = Σ w_k,   W₂ = Σ w_k²,

updated in O(p²) by J ← λJ + φφᵀ (and alike), and solves

    Θ = (J + P₀⁻¹)⁻¹ (H + P₀⁻¹ Θ₀)                                                    (1)

on demand (one p × p solve, cached until the next update). This is recursive least squares
in *information form* with a regularized forgetting (Gunnarsson 1996): the prior P₀ = p₀ I
(mean Θ₀ = 0) is not forgotten, so for every λ ∈ (0, 1], Θ is exactly the λ-weighted ridge
regression with penalty 1/p₀, and the covariance-form recursion
g = Pφ, k = g/(λ + φᵀg), Θ ← Θ + k eᵀ, P ← (P − g gᵀ/(λ + φᵀg))/λ gives the same Θ when
λ = 1 (tests check both). Because P₀⁻¹ stays in the information matrix, the covariance
P = (J + P₀⁻¹)⁻¹ can never wind up under poor excitation: P ≤ p₀ I always, and
cond(P) ≤ 1 + p₀ max‖φ‖² / (1 − λ) for λ < 1 (for λ = 1 information along excited
directions grows without bound, which shrinks P: learning, not windup).

Sufficient statistics add: a *prior* given as another set of statistics (for example the
pooled statistics of a fleet of sessions, scaled) enters (1) as pseudo-observations,
Θ = (J + J_prior + P₀⁻¹)⁻¹ (H + H_prior).

The residual scatter at Θ is E = Z − ΘᵀH − HᵀΘ + ΘᵀJΘ (exact for any Θ); the residual
covariance is E / (W (1 − p / n_eff)) with n_eff = W²/W₂ the effective sample size, the
weighted generalisation of SSE/(n − p). The parameters' covariance is
Cov(vec Θ) ≈ C_e ⊗ (W₂/W) P, the sandwich σ² P (Σ w_k² φφᵀ) P with Σ w_k² φφᵀ ≈ (W₂/W) J:
exact for λ = 1, and for λ < 1 it is what makes standard errors hold under forgetting
(the plain σ² P overstates the variance by up to (1 + λ) ≈ 2).

References
----------
S. Gunnarsson, "Combining tracking and regularization in recursive least squares
identification", Proc. 35th IEEE Conference on Decision and Control, 1996.
L. Ljung and T. Söderström, *Theory and Practice of Recursive Identification*, MIT Press, 1983.

Examples
--------
Learn z = Θᵀφ with Θ = [[2, 0], [1, -1]] from noiseless data:

>>> import numpy as np
>>> rls = RecursiveLeastSquares(2, 2, initial_covariance=1e6)
>>> true_theta = np.array([[2.0, 0.0], [1.0, -1.0]])
>>> for phi in ([1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]):
...     x = np.array(phi)
...     rls.update(x, true_theta.T @ x)
>>> np.round(rls.fit().theta, 4).tolist()
[[2.0, 0.0], [1.0, -1.0]]
>>> rls.predict(np.array([1.0, 2.0])).round(4).tolist()
[4.0, -2.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.errors import NotReadyError, NumericalError, ShapeError
from steerloop.estimators.ewstats import check_forgetting

__all__ = [
    "LeastSquaresFit",
    "LeastSquaresStats",
    "RecursiveLeastSquares",
    "residual_scatter",
    "solve_stats",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LeastSquaresStats:
    """Weighted sufficient statistics J, H, Z, W, W₂ and the count (module docstring)."""

    information: FloatArray
    cross: FloatArray
    target_scatter: FloatArray
    weight: float
    weight_sq: float
    count: int

    @classmethod
    def zeros(cls, n_features: int, n_outputs: int) -> LeastSquaresStats:
        """Statistics of no observation."""
        return cls(
            np.zeros((n_features, n_features)),
            np.zeros((n_features, n_outputs)),
            np.zeros((n_outputs, n_outputs)),
            0.0,
            0.0,
            0,
        )

    @property
    def effective_size(self) -> float:
        """Kish effective sample size W² / W₂ (0 when empty)."""
        return self.weight * self.weight / self.weight_sq if self.weight_sq > 0 else 0.0

    def scaled(self, factor: float) -> LeastSquaresStats:
        """The statistics of the same observations with every weight multiplied by ``factor``."""
        return replace(
            self,
            information=self.information * factor,
            cross=self.cross * factor,
            target_scatter=self.target_scatter * factor,
            weight=self.weight * factor,
            weight_sq=factor * factor * self.weight_sq,
        )

    def plus(self, other: LeastSquaresStats) -> LeastSquaresStats:
        """The statistics of both sets of observations."""
        return LeastSquaresStats(
            self.information + other.information,
            self.cross + other.cross,
            self.target_scatter + other.target_scatter,
            self.weight + other.weight,
            self.weight_sq + other.weight_sq,
            self.count + other.count,
        )


@dataclass(frozen=True)
class LeastSquaresFit:
    """The solution (1) and what is read off it.

    Attributes
    ----------
    theta : ndarray, shape (p, m)
        Parameters Θ.
    inverse_information : ndarray, shape (p, p)
        P = (J + P₀⁻¹)⁻¹.
    residual_scatter : ndarray, shape (m, m)
        Weighted residual scatter E at Θ (symmetric, positive semi-definite).
    target_variance : float
        Total weighted variance of the targets, tr(Z − H_last H_lastᵀ / W) / W (the row of H
        of a constant regressor is Σ w z when the last feature is 1).
    weight, effective_size : float
        W and n_eff of the statistics the fit used.
    n_features : int
        p.
    """

    theta: FloatArray
    inverse_information: FloatArray
    residual_scatter: FloatArray
    target_variance: float
    weight: float
    weight_sq: float
    effective_size: float
    n_features: int

    @property
    def residual_covariance(self) -> FloatArray | None:
        """C_e = E / (W (1 − p/n_eff)); ``None`` while n_eff ≤ p (no degree of freedom left)."""
        if self.effective_size <= self.n_features + 1e-9:
            return None
        dof = self.weight * (1.0 - self.n_features / self.effective_size)
        return self.residual_scatter / dof

    @property
    def covariance_scale(self) -> float:
        """W₂ / W: Cov(vec Θ) ≈ C_e ⊗ (W₂/W) P (module docstring); 1 when λ = 1."""
        return self.weight_sq / self.weight if self.weight > 0 else 1.0

    @property
    def r2(self) -> float | None:
        """In-sample R² = 1 − tr E / (W · target variance), in [0, 1].

        ``None`` when the targets are constant to rounding (variance ≤ 1e-24 per unit
        weight), where R² is undefined.
        """
        if not self.target_variance > 1e-24 or self.weight <= 0:
            return None
        value = 1.0 - float(np.trace(self.residual_scatter)) / (self.weight * self.target_variance)
        return min(1.0, max(0.0, value))


class RecursiveLeastSquares:
    """Vector-output recursive least squares with forgetting (information form, module doc).

    Parameters
    ----------
    n_features : int
        Regressor dimension p (include a constant 1 as the *last* feature for an intercept).
    n_outputs : int
        Target dimension m.
    forgetting : float
        λ ∈ (0, 1]; observation k of n carries weight λ^{n−k}.
    initial_covariance : float
        p₀ > 0 of the prior P₀ = p₀ I (ridge penalty 1/p₀).
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        *,
        forgetting: float = 1.0,
        initial_covariance: float = 1e4,
    ) -> None:
        if n_features < 1 or n_outputs < 1:
            raise ValueError(f"need n_features, n_outputs >= 1, got {n_features}, {n_outputs}")
        if not 0.0 < initial_covariance < math.inf:
            raise ValueError(
                f"initial_covariance must be positive and finite, got {initial_covariance}"
            )
        self._p = n_features
        self._m = n_outputs
        self._forgetting = check_forgetting(forgetting)
        self._prior_precision = 1.0 / float(initial_covariance)
        self._stats = LeastSquaresStats.zeros(n_features, n_outputs)
        self._fit: LeastSquaresFit | None = None

    @property
    def n_features(self) -> int:
        """Regressor dimension p."""
        return self._p

    @property
    def n_outputs(self) -> int:
        """Target dimension m."""
        return self._m

    @property
    def count(self) -> int:
        """Number of updates."""
        return self._stats.count

    @property
    def stats(self) -> LeastSquaresStats:
        """The sufficient statistics (read-only arrays; replaced, never mutated, by updates)."""
        return self._stats

    def update(self, regressor: ArrayLike, target: ArrayLike) -> None:
        """Learn one observation (φ, z): J ← λJ + φφᵀ, H ← λH + φzᵀ, Z ← λZ + zzᵀ.

        Raises
        ------
        ShapeError
            If φ or z has the wrong shape.
        NumericalError
            If φ or z is not finite; the estimator is left unchanged.
        """
        phi = np.asarray(regressor, dtype=np.float64)
        z = np.asarray(target, dtype=np.float64)
        if phi.shape != (self._p,):
            raise ShapeError("regressor", (self._p,), phi.shape)
        if z.shape != (self._m,):
            raise ShapeError("target", (self._m,), z.shape)
        if not (np.isfinite(phi).all() and np.isfinite(z).all()):
            raise NumericalError(
                "RLS update", "regressor or target is not finite; drop missing values first"
            )
        lam = self._forgetting
        s = self._stats
        self._stats = LeastSquaresStats(
            lam * s.information + np.outer(phi, phi),
            lam * s.cross + np.outer(phi, z),
            lam * s.target_scatter + np.outer(z, z),
            lam * s.weight + 1.0,
            lam * lam * s.weight_sq + 1.0,
            s.count + 1,
        )
        self._fit = None

    def fit(self, prior: LeastSquaresStats | None = None) -> LeastSquaresFit:
        """Solve (1), with ``prior`` statistics added as pseudo-observations if given.

        Raises
        ------
        NotReadyError
            Before the first update when there is no prior either.
        NumericalError
            If the statistics are not finite.
        """
        if prior is None and self._fit is not None:
            return self._fit
        stats = self._stats if prior is None else self._stats.plus(prior)
        if stats.count < 1:
            raise NotReadyError("least-squares fit", 1, 0)
        result = solve_stats(stats, self._prior_precision)
        if prior is None:
            self._fit = result
        return result

    def predict(self, regressor: ArrayLike) -> FloatArray:
        """Prediction Θᵀφ, shape (m,), with Θ of :meth:`fit` (zero before any update)."""
        phi = np.asarray(regressor, dtype=np.float64)
        if phi.shape != (self._p,):
            raise ShapeError("regressor", (self._p,), phi.shape)
        if self._stats.count == 0:
            return np.zeros(self._m)
        return np.asarray(self.fit().theta.T @ phi, dtype=np.float64)

    def to_state(self) -> LeastSquaresStats:
        """Snapshot: the sufficient statistics (immutable; an exact round trip)."""
        return self._stats

    @classmethod
    def from_state(
        cls, state: LeastSquaresStats, *, forgetting: float, initial_covariance: float
    ) -> RecursiveLeastSquares:
        """Rebuild from :meth:`to_state` output; the settings come from configuration."""
        information = np.asarray(state.information, dtype=np.float64)
        cross = np.asarray(state.cross, dtype=np.float64)
        if information.ndim != 2 or cross.ndim != 2:
            raise ShapeError("information", (-1, -1), information.shape)
        p, m = cross.shape
        rls = cls(p, m, forgetting=forgetting, initial_covariance=initial_covariance)
        if information.shape != (p, p):
            raise ShapeError("information", (p, p), information.shape)
        scatter = np.asarray(state.target_scatter, dtype=np.float64)
        if scatter.shape != (m, m):
            raise ShapeError("target_scatter", (m, m), scatter.shape)
        rls._stats = LeastSquaresStats(
            information,
            cross,
            scatter,
            float(state.weight),
            float(state.weight_sq),
            int(state.count),
        )
        return rls


def solve_stats(stats: LeastSquaresStats, prior_precision: float) -> LeastSquaresFit:
    """Solve (1) for statistics ``stats`` and a ridge prior of precision 1/p₀."""
    p = stats.information.shape[0]
    matrix = stats.information + prior_precision * np.eye(p)
    if not (np.isfinite(matrix).all() and np.isfinite(stats.cross).all()):
        raise NumericalError("least-squares fit", "the statistics are not finite; reset the model")
    inverse = np.linalg.inv(matrix)
    inverse = 0.5 * (inverse + inverse.T)
    theta = inverse @ stats.cross
    residual = residual_scatter(stats, theta)
    total = stats.cross[-1]
    weight = stats.weight
    if weight > 0:
        variance = float(np.trace(stats.target_scatter) - total @ total / weight) / weight
    else:
        variance = 0.0
    return LeastSquaresFit(
        theta=theta,
        inverse_information=inverse,
        residual_scatter=residual,
        target_variance=max(variance, 0.0),
        weight=weight,
        weight_sq=stats.weight_sq,
        effective_size=stats.effective_size,
        n_features=p,
    )


def residual_scatter(stats: LeastSquaresStats, theta: FloatArray) -> FloatArray:
    """E = Z − ΘᵀH − HᵀΘ + ΘᵀJΘ: the weighted residual scatter of ``stats`` at any Θ.

    Symmetrized; rounding can leave tiny negative eigenvalues, so the diagonal is clipped at 0.
    """
    projected = theta.T @ stats.cross
    residual = stats.target_scatter - projected - projected.T + theta.T @ stats.information @ theta
    residual = 0.5 * (residual + residual.T)
    np.fill_diagonal(residual, np.maximum(np.diagonal(residual), 0.0))
    return np.asarray(residual, dtype=np.float64)
