"""Online estimate of the severity SDE from a stream of severities s_t ∈ [0, 1].

The severity follows ds = μ(s) dt + σ(s) dW with μ(s) = α s(1−s) − β s² + γ and
σ(s) = σ₀ + σ₁ s (:mod:`steerloop.estimators.severity`, eq. 1). Each transition
s_{t−1} → s_t is one update of the least-squares fit of the Euler form

    (s_t − s_{t−1}) / Δt = θᵀ φ(s_{t−1}) + e_t,   φ(s) = [s(1−s), −s², 1],   θ = (α, β, γ),

(:class:`~steerloop.estimators.rls.RecursiveLeastSquares`, with its own forgetting λ_s —
default 1, i.e. no forgetting: the phase test needs many transitions, and it is a property of
the loop rather than of the current strategy), and one update of the residual-scale fit
|ẽ_t| √Δt √(π/2) = σ₀ + σ₁ s_{t−1} + noise, where ẽ_t is the a-priori residual divided by
√(1 + φᵀPφ) (its variance is σ(s)²/Δt, and E|N(0, σ²)| = σ √(2/π)).

The phase uses rule (5) of the severity module with the standard error

    se(α̂ − β̂)² = cᵀ Cov(θ̂) c,   c = (1, −1, 0),   Cov(θ̂) = σ̂_e² (W₂/W) P,

σ̂_e² the residual variance of the fit and (W₂/W) P the sandwich covariance under forgetting
(:mod:`steerloop.estimators.rls`): exact ordinary least squares for λ_s = 1, and still
calibrated when the user sets λ_s < 1 (the plain σ̂_e² P would overstate it by up to √2).

A non-finite observation is ignored and breaks the chain: no transition is formed across it.

References
----------
A. Shukla and A. Joshi, "A Stochastic Dynamical Theory of LLM Self-Adversariality",
arXiv:2501.16783.

Examples
--------
>>> import numpy as np
>>> from steerloop.estimators.severity import simulate
>>> path = simulate(0.05, 0.9, 0.3, 0.02, 0.05, 0.0, dt=1.0, n_steps=300,
...                 rng=np.random.default_rng(1))
>>> model = SeverityModel()
>>> for s in path[:, 0]:
...     model.update(float(s))
>>> model.count, model.phase
(300, 'supercritical')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from steerloop.errors import NotReadyError, ShapeError
from steerloop.estimators.ewstats import check_forgetting
from steerloop.estimators.rls import LeastSquaresStats, RecursiveLeastSquares
from steerloop.estimators.severity import (
    PHASE_Z,
    SIGMA_FLOOR,
    Phase,
    mean_first_passage,
    phase,
    stationary_density,
)

__all__ = ["SeverityModel", "SeverityModelConfig", "SeverityState"]

FloatArray = NDArray[np.float64]

_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
_CONTRAST = np.array([1.0, -1.0, 0.0])


@dataclass(frozen=True)
class SeverityModelConfig:
    """Settings of the online severity model (policy ``severity`` and ``estimation`` blocks).

    Attributes
    ----------
    forgetting : float
        λ_s ∈ (0, 1] of both fits (default 1: no forgetting).
    dt : float
        Time between observations Δt.
    warmup : int
        Transitions before estimates can be read.
    phase_margin, phase_z : float
        ``margin`` and ``z`` of rule (5).
    phase_transitions : int
        Transitions before the phase is called at all (until then :attr:`SeverityModel.phase`
        is ``"unknown"``): with a few points the standard error itself is too uncertain for
        rule (5) to mean anything, and a false "supercritical" preempts every other rule.
    initial_covariance : float
        p₀ of the ridge prior of both fits.
    """

    forgetting: float = 1.0
    dt: float = 1.0
    warmup: int = 5
    phase_margin: float = 0.05
    phase_z: float = PHASE_Z
    phase_transitions: int = 20
    initial_covariance: float = 1e4

    def __post_init__(self) -> None:
        check_forgetting(self.forgetting)
        if not (math.isfinite(self.dt) and self.dt > 0.0):
            raise ValueError(f"dt must be positive and finite, got {self.dt}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if not math.isfinite(self.phase_margin):
            raise ValueError(f"phase_margin must be finite, got {self.phase_margin}")
        if not (math.isfinite(self.phase_z) and self.phase_z >= 0.0):
            raise ValueError(f"phase_z must be finite and >= 0, got {self.phase_z}")


@dataclass(frozen=True)
class SeverityState:
    """Snapshot of a :class:`SeverityModel`."""

    drift: LeastSquaresStats
    diffusion: LeastSquaresStats
    last_value: float | None
    count: int


class SeverityModel:
    """Online estimate of the severity SDE (module docstring).

    Parameters
    ----------
    config : SeverityModelConfig, optional
        Settings (defaults when omitted).
    """

    def __init__(self, config: SeverityModelConfig | None = None) -> None:
        self._config = config or SeverityModelConfig()
        self._drift = self._new_fit(3)
        self._diffusion = self._new_fit(2)
        self._last: float | None = None
        self._count = 0

    def _new_fit(self, n_features: int) -> RecursiveLeastSquares:
        return RecursiveLeastSquares(
            n_features,
            1,
            forgetting=self._config.forgetting,
            initial_covariance=self._config.initial_covariance,
        )

    # ------------------------------------------------------------------ learning

    def update(self, value: float) -> None:
        """Learn one observation (clipped to [0, 1]; non-finite: ignored, chain broken)."""
        s = float(value)
        if not math.isfinite(s):
            self._last = None
            return
        s = min(max(s, 0.0), 1.0)
        previous = self._last
        self._last = s
        if previous is None:
            return
        phi = np.array([previous * (1.0 - previous), -previous * previous, 1.0])
        target = (s - previous) / self._config.dt
        if self._count >= 3:
            fit = self._drift.fit()
            residual = target - float(fit.theta[:, 0] @ phi)
            leverage = float(phi @ fit.inverse_information @ phi)
            scale = abs(residual) / math.sqrt(1.0 + max(leverage, 0.0))
            self._diffusion.update(
                np.array([1.0, previous]), [scale * math.sqrt(self._config.dt) * _SQRT_HALF_PI]
            )
        self._drift.update(phi, [target])
        self._count += 1

    # ------------------------------------------------------------------ reading

    @property
    def count(self) -> int:
        """Number of transitions learned."""
        return self._count

    @property
    def ready(self) -> bool:
        """Whether ``count`` has reached the warm-up (and a residual variance exists)."""
        return self._count >= max(self._config.warmup, 5)

    @property
    def value(self) -> float | None:
        """Last observation of the current chain (``None`` before any, or after a break)."""
        return self._last

    def _require_ready(self) -> None:
        if not self.ready:
            raise NotReadyError("severity estimate", max(self._config.warmup, 5), self._count)

    def parameters(self) -> tuple[float, float, float]:
        """(α̂, β̂, γ̂); needs warm-up."""
        self._require_ready()
        alpha, beta, gamma = self._drift.fit().theta[:, 0].tolist()
        return alpha, beta, gamma

    def sigmas(self) -> tuple[float, float]:
        """(σ̂₀, σ̂₁), floored so that σ̂(s) ≥ ``SIGMA_FLOOR`` on [0, 1]; needs warm-up."""
        self._require_ready()
        if self._diffusion.count == 0:
            return SIGMA_FLOOR, 0.0
        raw0, raw1 = self._diffusion.fit().theta[:, 0].tolist()
        sigma0 = max(raw0, SIGMA_FLOOR)
        return sigma0, max(raw1, SIGMA_FLOOR - sigma0)

    @property
    def margin(self) -> float:
        """α̂ − β̂ (positive: the supercritical side)."""
        alpha, beta, _ = self.parameters()
        return alpha - beta

    @property
    def margin_stderr(self) -> float:
        """se(α̂ − β̂) (module docstring); ``inf`` while the residual variance is unknown."""
        self._require_ready()
        fit = self._drift.fit()
        covariance = fit.residual_covariance
        if covariance is None:
            return math.inf
        quadratic = float(_CONTRAST @ fit.inverse_information @ _CONTRAST)
        variance = float(covariance[0, 0]) * fit.covariance_scale * max(quadratic, 0.0)
        return math.sqrt(variance)

    @property
    def phase(self) -> Phase | Literal["unknown"]:
        """Phase by rule (5) with the configured margin and z; ``"unknown"`` before
        ``phase_transitions`` transitions."""
        if self._count < self._config.phase_transitions:
            return "unknown"
        alpha, beta, _ = self.parameters()
        return phase(
            alpha, beta, self._config.phase_margin, self.margin_stderr, z=self._config.phase_z
        )

    def first_passage(self, threshold: float, *, start: float | None = None) -> float:
        """Expected number of steps (time / Δt) to reach ``threshold``, eq. (4)."""
        return self.deferred_first_passage(threshold, start=start)()

    def deferred_first_passage(
        self, threshold: float, *, start: float | None = None
    ) -> Callable[[], float]:
        """:meth:`first_passage` with today's estimates, computed when the result is called.

        Raises :class:`~steerloop.errors.NotReadyError` now, before warm-up or without a
        current value and a ``start``.
        """
        self._require_ready()
        origin = self._last if start is None else start
        if origin is None:
            raise NotReadyError("severity first passage (no current value)", 1, 0)
        origin = min(max(float(origin), 0.0), 1.0)
        alpha, beta, gamma = self.parameters()
        sigma0, sigma1 = self.sigmas()
        dt = self._config.dt

        def compute() -> float:
            return mean_first_passage(origin, threshold, alpha, beta, gamma, sigma0, sigma1) / dt

        return compute

    def stationary_density(self, grid_size: int = 2001) -> tuple[FloatArray, FloatArray]:
        """Stationary density (2) of the fitted SDE on ``grid_size`` points of [0, 1]."""
        alpha, beta, gamma = self.parameters()
        sigma0, sigma1 = self.sigmas()
        return stationary_density(alpha, beta, gamma, sigma0, sigma1, grid=grid_size)

    # ------------------------------------------------------------------ state

    def to_state(self) -> SeverityState:
        """Snapshot (an exact round trip)."""
        return SeverityState(
            self._drift.to_state(), self._diffusion.to_state(), self._last, self._count
        )

    @classmethod
    def from_state(
        cls, state: SeverityState, config: SeverityModelConfig | None = None
    ) -> SeverityModel:
        """Rebuild from :meth:`to_state` output under ``config``.

        Raises
        ------
        ShapeError
            If the drift statistics are not of 3 features and the diffusion's of 2 (1 output).
        """
        model = cls(config)
        settings = model._config
        model._drift = RecursiveLeastSquares.from_state(
            state.drift,
            forgetting=settings.forgetting,
            initial_covariance=settings.initial_covariance,
        )
        model._diffusion = RecursiveLeastSquares.from_state(
            state.diffusion,
            forgetting=settings.forgetting,
            initial_covariance=settings.initial_covariance,
        )
        for name, fit, shape in (("drift", model._drift, 3), ("diffusion", model._diffusion, 2)):
            got = (fit.n_features, fit.n_outputs)
            if got != (shape, 1):
                raise ShapeError(f"severity {name} statistics", (shape, 1), got)
        model._last = state.last_value
        model._count = int(state.count)
        return model
