"""Per-strategy linear drift μ(x) = A x + b learnt online (Shukla & Joshi, eq. 1–2).

The objective state follows dx = μ(x) dt + σ dW; its Euler–Maruyama step is
Δx = (A x + b) Δt + σ √Δt ε, ε ~ N(0, I) (docs/architecture.md, "Math"). Each transition
y_t → y_{t+1} of one strategy gives the regressor φ_t = [y_t; 1] ∈ R^{d+1} and the target
z_t = (y_{t+1} − y_t)/Δt, so z_t = Θᵀφ_t + e_t with Θ = [Aᵀ; bᵀ], fitted by
:class:`~steerloop.estimators.rls.RecursiveLeastSquares` with forgetting λ.

**Which input.** The session feeds the *raw scores* y (complete score vectors only), as the
paper's offline analysis did, never the Kalman-filtered state: a filter that uses the learnt
drift in its own prediction feeds the model its own smoothing back, and with an over-stated
measurement noise that made the learnt rates 59–91 % too slow. With raw scores y = x + v the
measurement noise v (variance R) sits in the regressor, which biases Â towards faster decay by
about R / (Var x + R) in the regressor's direction; during the transients that dominate a
loop of tens of iterations Var x ≫ R and the bias is a few per cent (README, "Honest
estimates", gives the measured figures of both inputs).

**Residual statistics.** From the sufficient statistics the model reads, at the current Θ,
the residual covariance C_e (the fit's a-posteriori residuals: no prediction error made with
the initial prior enters it), and the lag-one residual covariance C₁ = Cov(e_{t+1}, e_t) of
consecutive transitions, from S₁ = Σ w u_{t+1} u_tᵀ with u = [φ; z] and
e = [−Θᵀ, I] u. In state units ε = e Δt these obey, for raw regressors,

    Cov(ε) = Q + R + F R Fᵀ,   Cov(ε_{t+1}, ε_t) = −F R,   F = I + A Δt,              (2)

which :mod:`steerloop.estimators.noise` solves for the process noise Q = ΣΣᵀ Δt and the
measurement noise R (autocovariance least squares, Odelson, Rajamani & Rawlings 2006).

**Errors-in-variables correction.** Given R, the regressor noise is removed from the
statistics before solving (bias-compensated least squares, Stoica & Söderström 1982):

    J_c = J − s W diag(R, 0),   H_c = H + s W [diag(R); 0] / Δt,                       (3)

with the share s ≤ 1 capped so that J_c keeps at least half of the regressors' information
about A given b (J's Schur complement of the intercept, J_xx − J_x1 J_1x / J_11: their spread
about the mean) in every direction: where that signal is weaker than the score noise (a
strategy sitting at its equilibrium for a long time) the full correction would trade the
bias for an exploding variance, and the cap keeps the estimate usable. Measured on the paper
environment (README, "Honest estimates"), the corrected fit stays within ~10 % of the true
rates at 50–80 iterations and removes part of the long-run bias at 300. The session reports
the corrected fit but predicts with the uncorrected one (``measurement_noise=None`` in
:meth:`DriftModel.fit`; :mod:`steerloop.controller.models`, "Which fit predicts").

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739. P. Stoica and T. Söderström, "Bias correction in
least-squares identification", International Journal of Control 35(3), 1982.
B. J. Odelson, M. R. Rajamani and J. B. Rawlings, "A new
autocovariance least-squares method for estimating noise covariances", Automatica 42(2), 2006.

Examples
--------
Transitions of x_{t+1} = x_t + (A x_t + b)Δt with A = −0.5 I, b = 0.25 (equilibrium 0.5):

>>> import numpy as np
>>> model = DriftModel(DriftConfig(2, forgetting=1.0, warmup=3))
>>> A, b = -0.5 * np.eye(2), np.array([0.25, 0.25])
>>> for x in ([0.0, 1.0], [1.0, 0.0], [0.2, 0.3], [0.9, 0.6], [0.4, 0.8]):
...     x = np.array(x)
...     model.update(x, x + A @ x + b)
>>> fit = model.fit()
>>> np.round(fit.A, 3).tolist(), np.round(fit.equilibrium, 3).tolist()
([[-0.5, 0.0], [0.0, -0.5]], [0.5, 0.5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.errors import NotReadyError, ShapeError
from steerloop.estimators.ewstats import check_forgetting
from steerloop.estimators.rls import (
    LeastSquaresFit,
    LeastSquaresStats,
    RecursiveLeastSquares,
    residual_scatter,
    solve_stats,
)

__all__ = [
    "EQUILIBRIUM_MAX_CONDITION",
    "DriftConfig",
    "DriftFit",
    "DriftModel",
    "DriftState",
    "correct_for_noise",
    "equilibrium_of",
]

FloatArray = NDArray[np.float64]

#: The equilibrium −A⁻¹b is reported only when cond₂(A) is at most this.
EQUILIBRIUM_MAX_CONDITION = 1e8
#: The errors-in-variables correction keeps at least this share of the regressors'
#: information in every direction (module docstring, eq. 3).
EIV_KEEP = 0.5


@dataclass(frozen=True)
class DriftConfig:
    """Settings of one strategy's drift model (from the policy's ``estimation`` block).

    Attributes
    ----------
    dim : int
        Number of objectives d.
    forgetting : float
        λ ∈ (0, 1] of the fit.
    dt : float
        Time between iterations Δt.
    warmup : int
        Transitions before :attr:`DriftModel.ready`.
    initial_covariance : float
        p₀ of the ridge prior P₀ = p₀ I on Θ = [Aᵀ; bᵀ].
    """

    dim: int
    forgetting: float = 0.98
    dt: float = 1.0
    warmup: int = 5
    initial_covariance: float = 1e4

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        check_forgetting(self.forgetting)
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be positive and finite, got {self.dt}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


@dataclass(frozen=True)
class DriftState:
    """Snapshot of a :class:`DriftModel`.

    ``lag_scatter`` is S₁ = Σ w u_{t+1} u_tᵀ over consecutive transitions (u = [φ; z], size
    2d + 1) and ``lag_weight`` its total weight; ``last`` is u of the last transition (the
    next one continues it when it starts where that one ended).
    """

    stats: LeastSquaresStats
    lag_scatter: FloatArray
    lag_weight: float
    last: FloatArray | None


def correct_for_noise(
    stats: LeastSquaresStats, measurement_noise: FloatArray, dt: float
) -> LeastSquaresStats:
    """Errors-in-variables correction (3) of drift statistics for regressor noise R.

    With raw regressors y = x + v, E[J] carries W·diag(R, 0) and E[H] carries
    −W·[diag(R); 0]/Δt that the noise-free regression would not (v_t sits in φ_t and, with
    the opposite sign, in z_t). The correction removes s times both, s ≤ 1 the largest share
    that keeps at least :data:`EIV_KEEP` of the regressors' centred information in every
    direction, M − s W R ⪰ EIV_KEEP · M with M = J_xx − J_x1 J_1x / J_11 (the information
    about A given b; the last feature is the intercept; module docstring, eq. 3).
    """
    d = measurement_noise.shape[0]
    weight = stats.weight
    noise = weight * np.diag(measurement_noise)
    information = stats.information + np.eye(d + 1) * 1e-12
    # The uncentred J_xx also holds the regressors' mean (scores sit near 0.5, not 0): a cap
    # on it would never act. The Schur complement of the intercept is their spread.
    cross = information[:d, d]
    block = information[:d, :d] - np.outer(cross, cross) / information[d, d]
    try:
        lower = np.linalg.cholesky(0.5 * (block + block.T))
    except np.linalg.LinAlgError:
        return stats
    whitened = np.linalg.solve(lower, np.linalg.solve(lower, noise).T)
    largest = float(np.linalg.eigvalsh(0.5 * (whitened + whitened.T))[-1])
    share = 1.0 if largest <= 0 else min(1.0, (1.0 - EIV_KEEP) / largest)
    corrected_information = stats.information.copy()
    corrected_information[:d, :d] -= share * noise
    corrected_cross = stats.cross.copy()
    corrected_cross[:d, :] += share * noise / dt
    return replace(stats, information=corrected_information, cross=corrected_cross)


def equilibrium_of(A: FloatArray, b: FloatArray) -> FloatArray | None:
    """x* = −A⁻¹b, or ``None`` when cond₂(A) > :data:`EQUILIBRIUM_MAX_CONDITION` or not finite."""
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        return None
    if not np.linalg.cond(A) <= EQUILIBRIUM_MAX_CONDITION:
        return None
    solution = np.asarray(-np.linalg.solve(A, b), dtype=np.float64)
    return solution if np.isfinite(solution).all() else None


@dataclass(frozen=True)
class DriftFit:
    """One fit of a drift model: Θ and what is read off it (all in the model's units).

    Attributes
    ----------
    fit : LeastSquaresFit
        The least-squares solution behind the numbers.
    dim : int
        d.
    dt : float
        Δt.
    lag_covariance : ndarray (d, d) or None
        C₁ = Cov(e_{t+1}, e_t) of the target residuals (``None`` without consecutive pairs).
    lag_weight : float
        Weight of the consecutive pairs behind C₁.
    """

    fit: LeastSquaresFit
    dim: int
    dt: float
    lag_covariance: FloatArray | None
    lag_weight: float

    @property
    def A(self) -> FloatArray:  # noqa: N802 - the papers' name for the drift matrix
        """Drift matrix A (d, d)."""
        return np.asarray(self.fit.theta[: self.dim].T, dtype=np.float64)

    @property
    def b(self) -> FloatArray:
        """Drift offset b (d,)."""
        return np.asarray(self.fit.theta[self.dim], dtype=np.float64)

    @property
    def F(self) -> FloatArray:  # noqa: N802 - the transition matrix's usual name
        """One-step transition F = I + AΔt."""
        return np.eye(self.dim) + self.A * self.dt

    @cached_property
    def equilibrium(self) -> FloatArray | None:
        """Predicted equilibrium −A⁻¹b (``None`` when A is ill conditioned)."""
        return equilibrium_of(self.A, self.b)

    @property
    def residual_covariance(self) -> FloatArray | None:
        """C_e of the increment targets z (``None`` until n_eff > d + 2)."""
        return self.fit.residual_covariance

    @property
    def step_covariance(self) -> FloatArray | None:
        """Cov(ε) = C_e Δt² of the one-step residual in state units (eq. 2)."""
        covariance = self.fit.residual_covariance
        return None if covariance is None else covariance * self.dt * self.dt

    @property
    def step_lag_covariance(self) -> FloatArray | None:
        """Cov(ε_{t+1}, ε_t) = C₁ Δt² in state units (eq. 2)."""
        lag = self.lag_covariance
        return None if lag is None else lag * self.dt * self.dt

    @property
    def r2(self) -> float | None:
        """In-sample one-step R² of the increments (``None`` on constant targets)."""
        return self.fit.r2

    @property
    def effective_size(self) -> float:
        """Effective number of transitions behind the fit."""
        return self.fit.effective_size

    def parameter_covariance(self) -> tuple[FloatArray, FloatArray] | None:
        """``(C_e, K)`` with Cov(vec Θ) ≈ C_e ⊗ K, K = (W₂/W) P (rls module docstring)."""
        covariance = self.fit.residual_covariance
        if covariance is None:
            return None
        return covariance, self.fit.covariance_scale * self.fit.inverse_information

    def predict(self, x: ArrayLike) -> FloatArray:
        """One-step prediction x + (A x + b)Δt."""
        state = np.asarray(x, dtype=np.float64)
        if state.shape != (self.dim,):
            raise ShapeError("x", (self.dim,), state.shape)
        return np.asarray(state + (self.A @ state + self.b) * self.dt, dtype=np.float64)


class DriftModel:
    """Online estimate of one strategy's drift A x + b and its residual statistics.

    Parameters
    ----------
    config : DriftConfig
        Dimension and estimation settings.
    """

    def __init__(self, config: DriftConfig) -> None:
        self._config = config
        d = config.dim
        self._rls = RecursiveLeastSquares(
            d + 1, d, forgetting=config.forgetting, initial_covariance=config.initial_covariance
        )
        self._lag = np.zeros((2 * d + 1, 2 * d + 1))
        self._lag_weight = 0.0
        self._last: FloatArray | None = None
        self._fit: DriftFit | None = None

    @property
    def config(self) -> DriftConfig:
        """The model's settings."""
        return self._config

    @property
    def count(self) -> int:
        """Transitions learned."""
        return self._rls.count

    @property
    def stats(self) -> LeastSquaresStats:
        """Sufficient statistics of the regression (what a fleet pool adds up)."""
        return self._rls.stats

    @property
    def ready(self) -> bool:
        """Warm-up done and enough effective transitions for a residual covariance."""
        stats = self._rls.stats
        return stats.count >= self._config.warmup and stats.effective_size > self._config.dim + 1

    def update(self, previous: ArrayLike, current: ArrayLike) -> None:
        """Learn the transition ``previous`` → ``current`` (finite vectors of shape (d,)).

        Raises
        ------
        ShapeError
            If a state does not have shape (d,).
        NumericalError
            If a state is not finite; the model is left unchanged.
        """
        d, dt = self._config.dim, self._config.dt
        x0 = np.asarray(previous, dtype=np.float64)
        x1 = np.asarray(current, dtype=np.float64)
        if x0.shape != (d,):
            raise ShapeError("previous", (d,), x0.shape)
        if x1.shape != (d,):
            raise ShapeError("current", (d,), x1.shape)
        phi = np.append(x0, 1.0)
        target = (x1 - x0) / dt
        self._rls.update(phi, target)  # validates finiteness before anything changes
        u = np.concatenate((phi, target))
        lam = self._config.forgetting
        self._lag *= lam
        self._lag_weight *= lam
        last = self._last
        if last is not None and np.allclose(
            last[:d] + last[d + 1 :] * dt, x0, rtol=0.0, atol=1e-12
        ):
            self._lag += np.outer(u, last)
            self._lag_weight += 1.0
        self._last = u
        self._fit = None

    def break_chain(self) -> None:
        """The next transition does not continue the last one (a missing score, a switch)."""
        self._last = None

    def fit(
        self,
        prior: LeastSquaresStats | None = None,
        measurement_noise: FloatArray | None = None,
    ) -> DriftFit:
        """The drift fit (module docstring).

        Parameters
        ----------
        prior : LeastSquaresStats, optional
            Statistics added as pseudo-observations (a fleet pool, scaled).
        measurement_noise : array (d,), optional
            Variances R of the raw scores the model learns from: the fit then applies the
            errors-in-variables correction (:func:`correct_for_noise`) to Θ; its residual
            statistics (C_e, C₁, R²) stay those of the raw data at that Θ (eq. 2).

        Raises
        ------
        NotReadyError
            Before the first transition when there is no prior either.
        """
        plain = prior is None and measurement_noise is None
        if plain and self._fit is not None:
            return self._fit
        stats = self._rls.stats if prior is None else self._rls.stats.plus(prior)
        if stats.count < 1:
            raise NotReadyError("drift fit", 1, 0)
        prior_precision = 1.0 / self._config.initial_covariance
        if measurement_noise is None:
            fit = solve_stats(stats, prior_precision)
        else:
            dt = self._config.dt
            fit = solve_stats(correct_for_noise(stats, measurement_noise, dt), prior_precision)
            # Eq. (2) is about the residuals of the raw data at Θ; the corrected statistics'
            # own scatter is larger by s W (R − F R Fᵀ)/Δt², which would inflate Q by that.
            fit = replace(fit, residual_scatter=residual_scatter(stats, fit.theta))
        result = DriftFit(fit, self._config.dim, self._config.dt, *self._lag_moment(fit))
        if plain:
            self._fit = result
        return result

    def require_ready(self, what: str) -> None:
        """Raise :class:`NotReadyError` unless :attr:`ready`."""
        if not self.ready:
            raise NotReadyError(what, self._config.warmup, self.count)

    def _lag_moment(self, fit: LeastSquaresFit) -> tuple[FloatArray | None, float]:
        """C₁ = M S₁ Mᵀ / W₁ with M = [−Θᵀ, I] (module docstring)."""
        if self._lag_weight < 2.0:
            return None, self._lag_weight
        d = self._config.dim
        projection = np.hstack((-fit.theta.T, np.eye(d)))
        lag = projection @ self._lag @ projection.T / self._lag_weight
        return np.asarray(lag, dtype=np.float64), self._lag_weight

    def to_state(self) -> DriftState:
        """Snapshot (an exact round trip)."""
        last = None if self._last is None else self._last.copy()
        return DriftState(self._rls.to_state(), self._lag.copy(), self._lag_weight, last)

    @classmethod
    def from_state(cls, state: DriftState, config: DriftConfig) -> DriftModel:
        """Rebuild from :meth:`to_state` output under ``config``."""
        model = cls(config)
        model._rls = RecursiveLeastSquares.from_state(
            state.stats, forgetting=config.forgetting, initial_covariance=config.initial_covariance
        )
        d = config.dim
        if (model._rls.n_features, model._rls.n_outputs) != (d + 1, d):
            raise ShapeError(
                "stats.cross", (d + 1, d), (model._rls.n_features, model._rls.n_outputs)
            )
        lag = np.array(state.lag_scatter, dtype=np.float64)
        if lag.shape != (2 * d + 1, 2 * d + 1):
            raise ShapeError("lag_scatter", (2 * d + 1, 2 * d + 1), lag.shape)
        model._lag = lag
        model._lag_weight = float(state.lag_weight)
        model._last = None if state.last is None else np.array(state.last, dtype=np.float64)
        return model
