"""A session's estimators and how one step runs through them (validate → filter → learn).

:class:`SessionModels` owns the Kalman filter, one drift model per strategy, the interference
tracker, the severity model and the measurement-noise estimate of one session, and runs the
learning half of a step (docs/architecture.md, "One step, as data flows"):

1. the scores y_t (NaN = missing, already checked by :mod:`steerloop.scoring.validation`)
   update the filter with the measurement noise R in force: x̂_t, P_t;
2. a complete score vector that follows a complete one forms a transition y_{t−1} → y_t of the
   strategy that produced y_t: its drift model learns it (raw scores by default, or the filtered
   states with ``input: filtered``) and the interference tracker its increment;
3. the running strategy's lag evidence updates the measurement-noise estimate R̂
   (:mod:`steerloop.estimators.noise`), which from the next step on the fits use for their
   errors-in-variables correction and, with ``measurement_noise: auto``, the filter;
4. severity s_t (a severity score, one objective, or 1 − min_i x̂_i) feeds the severity model.

After the policy has decided, :meth:`SessionModels.predict` sets the filter's prior for t + 1
under the next strategy's drift (or a random walk until that drift is known).

**Which fit predicts.** The diagnostics (rates, equilibria, regimes) and the noise estimate read
the errors-in-variables corrected fit, whose rates are honest (:mod:`steerloop.estimators.
drift`). Prediction — the filter's prior and the planner's :meth:`SessionModels.strategy_model`
— uses the plain least-squares fit of the same statistics: the correction removes a bias of a
few per cent but, from the few transitions a loop has early on, adds enough variance to make
a fit unstable far more often (a slow strategy after 8 transitions: 29 % of fits with an
eigenvalue ≥ 0 against 21 % uncorrected, measured on the value benchmark's tuning
environments), and an unstable model extrapolated to a horizon is worse than a slightly
slow one. On the value benchmark's 60 tuning environments predicting with the plain fit
raised the `predictive` preset's share within 5 % of the best static strategy from
97 / 90 / 87 % to 98 / 100 / 97 % at 30 / 50 / 80 iterations with the horizon told, and from
87 / 75 / 80 % to 93 / 85 / 93 % untold.

Fleet knowledge enters through ``prior``: a function giving, per strategy, pooled statistics to
add to the session's own as pseudo-observations (:mod:`steerloop.controller.pools`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.settings import NOISE_PRIOR, NOISE_PRIOR_WEIGHT, ModelSettings
from steerloop.errors import NumericalError
from steerloop.estimators.drift import DriftFit, DriftModel, DriftState
from steerloop.estimators.interference import InterferenceState, InterferenceTracker
from steerloop.estimators.kalman import KalmanState, ObjectiveFilter
from steerloop.estimators.noise import lag_evidence, pooled_measurement_noise, process_noise
from steerloop.estimators.planner import StrategyModel, equilibrium_covariance
from steerloop.estimators.rls import LeastSquaresStats
from steerloop.estimators.severity_model import SeverityModel, SeverityState

__all__ = ["Evidence", "Learned", "ModelsState", "PriorSource", "SessionModels"]

FloatArray = NDArray[np.float64]
#: ``prior(strategy)`` → pooled statistics to add to the session's own (or ``None``).
PriorSource = Callable[[str], LeastSquaresStats | None]


def _no_prior(_strategy: str) -> LeastSquaresStats | None:
    return None


@dataclass(frozen=True)
class Evidence:
    """One strategy's lag evidence on R: (N, D) of the noise module, and the pair weight."""

    numerator: FloatArray
    denominator: FloatArray
    weight: float


@dataclass(frozen=True)
class ModelsState:
    """Snapshot of :class:`SessionModels`."""

    kalman: KalmanState
    drift: Mapping[str, DriftState]
    interference: InterferenceState
    severity: SeverityState
    noise: FloatArray
    fit_noise: Mapping[str, FloatArray]
    evidence: Mapping[str, Evidence]
    previous_raw: FloatArray | None
    previous_filtered: FloatArray | None


@dataclass(frozen=True)
class Learned:
    """What one step's learning produced, for the diagnostics and the policy."""

    filtered: FloatArray
    covariance: FloatArray
    used: NDArray[np.bool_]
    noise: FloatArray
    fit: DriftFit | None
    severity: float | None
    transition: tuple[FloatArray, FloatArray] | None = None


class SessionModels:
    """The estimators of one session (module docstring).

    Parameters
    ----------
    settings : ModelSettings
        Estimator settings from the policy.
    """

    def __init__(self, settings: ModelSettings) -> None:
        self._settings = settings
        self._kalman = ObjectiveFilter(settings.dim)
        self._drift: dict[str, DriftModel] = {}
        self._interference = InterferenceTracker(
            settings.objectives,
            forgetting=settings.forgetting,
            min_effective=settings.min_effective,
        )
        self._severity = SeverityModel(settings.severity)
        # R̂ in force during a step, and R̂ for the next step (updated by step 3): the fits of
        # one step all see the same R̂, so each is computed once.
        self._noise = np.full(settings.dim, NOISE_PRIOR)
        self._noise_next = self._noise
        self._evidence: dict[str, Evidence] = {}
        self._previous_raw: FloatArray | None = None
        self._previous_filtered: FloatArray | None = None
        # R̂ each strategy's fit uses: the R̂ in force when the strategy last learnt (so an idle
        # strategy's fit does not change with every step of another; part of the snapshot).
        self._fit_noise: dict[str, FloatArray] = {}
        self._clear_caches()

    def _clear_caches(self) -> None:
        # Fits and planner models computed since the last change (caches, not state).
        self._fits: dict[tuple[str, bool], tuple[int, object, bytes, DriftFit | None]] = {}
        self._strategy_models: dict[str, tuple[DriftFit, StrategyModel]] = {}
        # Matrix roots (L_K, L_C) of each fit's posterior, for Thompson draws.
        self._roots: dict[str, tuple[DriftFit, FloatArray, FloatArray]] = {}

    # -- reading ------------------------------------------------------------------------

    @property
    def settings(self) -> ModelSettings:
        """The settings in force."""
        return self._settings

    @property
    def kalman(self) -> ObjectiveFilter:
        """The objective filter."""
        return self._kalman

    @property
    def interference(self) -> InterferenceTracker:
        """The interference tracker."""
        return self._interference

    @property
    def severity(self) -> SeverityModel:
        """The severity model."""
        return self._severity

    @property
    def drift_models(self) -> Mapping[str, DriftModel]:
        """Drift model per strategy that has produced a transition."""
        return self._drift

    @property
    def estimated_noise(self) -> FloatArray:
        """The latest measurement-noise estimate R̂ (in force from the next step; a copy)."""
        return self._noise_next.copy()

    def filter_noise(self) -> FloatArray:
        """R the filter uses: R̂ with ``measurement_noise: auto``, else the configured variance."""
        configured = self._settings.measurement_noise
        if configured == "auto":
            return self._noise.copy()
        return np.full(self._settings.dim, float(configured))

    def fit(
        self, strategy: str, prior: PriorSource = _no_prior, *, corrected: bool = True
    ) -> DriftFit | None:
        """The strategy's drift fit (own data, pooled prior, noise-corrected), or ``None``.

        ``None`` while the own and pooled transitions together are fewer than
        :attr:`ModelSettings.known_after`, or do not yet allow a residual covariance.
        ``corrected=False``: the plain least-squares fit, without the errors-in-variables
        correction (what :meth:`strategy_model` predicts with; module docstring).
        """
        model = self._drift.get(strategy)
        pooled = prior(strategy)
        own = 0 if model is None else model.count
        noise_vector = self._fit_noise.get(strategy, self._noise)
        noise = noise_vector.tobytes()
        cached = self._fits.get((strategy, corrected))
        if cached is not None and cached[0] == own and cached[1] is pooled and cached[2] == noise:
            return cached[3]
        lent = 0.0 if pooled is None else pooled.weight
        result: DriftFit | None = None
        if own + lent >= self._settings.known_after:
            if model is None:
                model = DriftModel(self._settings.drift)
            correct = corrected and self._settings.input == "raw"
            fit = model.fit(pooled, noise_vector if correct else None)
            result = fit if fit.residual_covariance is not None else None
        self._fits[(strategy, corrected)] = (own, pooled, noise, result)
        return result

    # -- one step -----------------------------------------------------------------------

    def learn(
        self,
        values: FloatArray,
        strategy: str,
        *,
        severity: float | None = None,
        prior: PriorSource = _no_prior,
    ) -> Learned:
        """Run steps 1–4 of the module docstring for the scores ``values`` (NaN = missing)."""
        self._noise = self._noise_next
        used = self._kalman.update(values, self.filter_noise())
        filtered = self._kalman.mean
        complete = bool(np.isfinite(values).all())
        transition = self._learn_transition(values, filtered, complete, bool(used.any()), strategy)
        if transition is not None:
            self._fit_noise[strategy] = self._noise
        fit = self.fit(strategy, prior)
        if transition is not None:
            self._update_evidence(strategy, fit)
        severity_value = self._severity_value(filtered, values, severity)
        if severity_value is not None:
            self._severity.update(severity_value)
        return Learned(
            filtered=filtered,
            covariance=self._kalman.covariance,
            used=used,
            noise=self.filter_noise(),
            fit=fit,
            severity=severity_value,
            transition=transition,
        )

    def _learn_transition(
        self,
        values: FloatArray,
        filtered: FloatArray,
        complete: bool,
        any_used: bool,
        strategy: str,
    ) -> tuple[FloatArray, FloatArray] | None:
        """Drift and interference learning of step 2; the transition learned, if any."""
        learned = None
        if self._settings.input == "raw":
            previous, current = self._previous_raw, (values.copy() if complete else None)
        else:
            previous, current = self._previous_filtered, (filtered if any_used else None)
        if previous is not None and current is not None:
            model = self._drift.get(strategy)
            if model is None:
                model = self._drift[strategy] = DriftModel(self._settings.drift)
            model.update(previous, current)
            learned = (previous, current)
        if complete and self._previous_raw is not None:
            self._interference.update(values - self._previous_raw, strategy)
        self._previous_raw = values.copy() if complete else None
        self._previous_filtered = filtered if any_used else None
        return learned

    def _update_evidence(self, strategy: str, fit: DriftFit | None) -> None:
        """Step 3: the running strategy's lag evidence, then the pooled R̂."""
        if fit is None:
            fit = self._drift[strategy].fit(None, self._noise)
        lag = fit.step_lag_covariance
        if lag is None:
            return
        numerator, denominator = lag_evidence(fit.F, lag)
        self._evidence[strategy] = Evidence(numerator, denominator, fit.lag_weight)
        self._noise_next = pooled_measurement_noise(
            (((e.numerator, e.denominator), e.weight) for e in self._evidence.values()),
            prior=NOISE_PRIOR,
            prior_weight=NOISE_PRIOR_WEIGHT,
        )

    def _severity_value(
        self, filtered: FloatArray, values: FloatArray, override: float | None
    ) -> float | None:
        """Severity s_t ∈ [0, 1] from the configured source (``None`` when unavailable)."""
        if override is not None:
            value = float(override)
        else:
            source = self._settings.severity_source
            if source is None:
                value = 1.0 - float(filtered.min())
            elif source.objective is not None:
                level = float(filtered[self._settings.objectives.index(source.objective)])
                value = 1.0 - level if source.invert else level
            else:
                return None  # a severity score arrives as ``override``
        if not math.isfinite(value):
            return None
        return min(1.0, max(0.0, value))

    def predict(self, strategy: str, prior: PriorSource = _no_prior) -> None:
        """Prior for the next step under ``strategy`` (random walk until its drift is known).

        The learnt transition is used only while its discrete map contracts (spectral radius
        of F = I + AΔt below 1); its process noise is Q of :func:`steerloop.estimators.noise.
        process_noise`.
        """
        model = self.strategy_model(strategy, prior)
        if model is not None:
            F = np.eye(self._settings.dim) + model.A * model.dt
            if float(np.abs(np.linalg.eigvals(F)).max()) < 1.0:
                try:
                    self._kalman.predict(F, model.b * model.dt, model.Q)
                    return
                except NumericalError:
                    pass
        self._kalman.predict_random_walk(self._settings.process_noise)

    def strategy_model(
        self,
        strategy: str,
        prior: PriorSource = _no_prior,
        rng: np.random.Generator | None = None,
    ) -> StrategyModel | None:
        """What the planner and the filter's prior use of ``strategy`` (``None`` if unknown).

        With ``rng``, the drift is one draw from its posterior, vec Θ ~ N(vec Θ̂, C_e ⊗ K)
        (Thompson sampling), and carries no further parameter uncertainty.
        """
        fit = self.fit(strategy, prior, corrected=False)
        if fit is None:
            return None
        cached = self._strategy_models.get(strategy)
        if cached is None or cached[0] is not fit:
            step = fit.step_covariance
            parameters = fit.parameter_covariance()
            assert step is not None and parameters is not None  # fit() checked the covariance
            x_cov = None
            if fit.equilibrium is not None:
                x_cov = equilibrium_covariance(fit.A, fit.b, *parameters)
            model = StrategyModel(
                A=fit.A,
                b=fit.b,
                # R̂ of the fit itself, so that Q depends on the snapshot only (not on a cache).
                Q=process_noise(step, self._fit_noise.get(strategy, self._noise), fit.F),
                equilibrium_covariance=x_cov,
                dt=fit.dt,
            )
            cached = self._strategy_models[strategy] = (fit, model)
        if rng is None:
            return cached[1]
        roots = self._roots.get(strategy)
        if roots is None or roots[0] is not fit:
            parameters = fit.parameter_covariance()
            assert parameters is not None
            roots = self._roots[strategy] = (fit, _root(parameters[1]), _root(parameters[0]))
        theta = _posterior_draw(fit.fit.theta, roots[1], roots[2], rng)
        d = self._settings.dim
        return StrategyModel(A=theta[:d].T, b=theta[d], Q=cached[1].Q, dt=fit.dt)

    # -- snapshots ----------------------------------------------------------------------

    def to_state(self) -> ModelsState:
        """Snapshot (an exact round trip)."""
        return ModelsState(
            kalman=self._kalman.to_state(),
            drift={name: model.to_state() for name, model in self._drift.items()},
            interference=self._interference.to_state(),
            severity=self._severity.to_state(),
            noise=self._noise_next.copy(),
            fit_noise={name: value.copy() for name, value in self._fit_noise.items()},
            evidence=dict(self._evidence),
            previous_raw=None if self._previous_raw is None else self._previous_raw.copy(),
            previous_filtered=(
                None if self._previous_filtered is None else self._previous_filtered.copy()
            ),
        )

    @classmethod
    def from_state(cls, state: ModelsState, settings: ModelSettings) -> SessionModels:
        """Rebuild from :meth:`to_state` output under ``settings``."""
        models = cls.__new__(cls)  # every estimator comes from the snapshot: none built twice
        models._settings = settings
        models._kalman = ObjectiveFilter.from_state(state.kalman)
        models._drift = {
            name: DriftModel.from_state(drift, settings.drift)
            for name, drift in state.drift.items()
        }
        models._interference = InterferenceTracker.from_state(
            state.interference,
            settings.objectives,
            forgetting=settings.forgetting,
            min_effective=settings.min_effective,
        )
        models._severity = SeverityModel.from_state(state.severity, settings.severity)
        models._noise = models._noise_next = np.array(state.noise, dtype=np.float64)
        models._fit_noise = {
            name: np.array(value, dtype=np.float64) for name, value in state.fit_noise.items()
        }
        models._evidence = dict(state.evidence)
        models._previous_raw = _optional_array(state.previous_raw)
        models._previous_filtered = _optional_array(state.previous_filtered)
        models._clear_caches()
        return models


def _posterior_draw(
    theta: FloatArray, left: FloatArray, right: FloatArray, rng: np.random.Generator
) -> FloatArray:
    """One draw of Θ from the matrix normal N(Θ̂, K, C_e): Θ̂ + L_K Z L_Cᵀ (roots of K, C_e)."""
    draw = theta + left @ rng.standard_normal(theta.shape) @ right.T
    return np.asarray(draw, dtype=np.float64)


def _root(matrix: FloatArray) -> FloatArray:
    """A square root L with L Lᵀ = matrix (symmetric positive semi-definite)."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return np.asarray(vectors * np.sqrt(np.maximum(values, 0.0)), dtype=np.float64)


def _optional_array(value: FloatArray | None) -> FloatArray | None:
    return None if value is None else np.array(value, dtype=np.float64)
