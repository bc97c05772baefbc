"""Horizon planning: the expected utility of each candidate schedule at the end of the loop.

A loop runs a finite number of iterations. For a strategy π with learnt Euler drift
x_{t+1} = F_π x_t + c_π + w_t (F = I + AΔt, c = bΔt, w ~ N(0, Q_π)), a Gaussian belief
N(m, C) about the objective state propagates over n steps in closed form (docs/architecture.md,
"Planning"; computed by :mod:`steerloop.estimators.propagation`):

    m_n = Fⁿ m + G_n c,                 G_n = Σ_{j<n} F^j = V g_n(Λ) V⁻¹,
    C_n = Fⁿ C Fⁿᵀ + S_n + U_n,         S_n = Σ_{j<n} F^j Q F^jᵀ = V (M ∘ h_n) Vᴴ,      (1)

with F = V Λ V⁻¹, g_n(λ) = (1 − λⁿ)/(1 − λ), M = V⁻¹ Q V⁻ᴴ and h_n(λ_a, λ_b) =
(1 − (λ_a λ̄_b)ⁿ)/(1 − λ_a λ̄_b) (n where the ratio is 0/0). U_n carries the uncertainty of
the estimate itself: the parameter error is persistent, so the state converges to a wrong
equilibrium, and to first order U_n = (I − Fⁿ) Cov(x̂*) (I − Fⁿ)ᵀ with
Cov(x̂*) = A⁻¹ (φ*ᵀ K φ*) C_e A⁻ᵀ, φ* = [x*; 1] (delta method on x* = −A⁻¹b; C_e ⊗ K is
the covariance of Θ̂, :mod:`steerloop.estimators.rls`).

**Candidates.** Every strategy held to the horizon, and (optionally) two-phase schedules:
π₁ for k steps then π₂, for k at fixed fractions of the horizon. **Utility.** The expected
utility at the horizon, E[u(clip(x_H, 0, 1))] for x_H ~ N(m_H, C_H), by a fixed set of
antithetic standard normal draws (common random numbers: the same draws for every candidate
and every call, so comparisons carry no Monte Carlo noise); u is the minimum over objectives
(default), their mean, or a weighted mean. **Horizon.** The loop's remaining length is a
distribution: a point mass when the user tells it, a spread of lengths when not; a two-phase
schedule whose switch lies beyond a possible end is valued at that end as the first phase
held, so a schedule that pays only after its switch is not chosen when the end is uncertain.
At a switch the belief is brought back into the scores' range (mean clipped to [0, 1],
variances at most 1/4), so a first phase that the linear model extrapolates far outside it
cannot look good by "returning" from an impossible state.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739 (the drift model). E. F. Camacho and C. Bordons, *Model
Predictive Control*, Springer, 2007 (receding-horizon choice of a schedule).

Examples
--------
>>> import numpy as np
>>> slow = StrategyModel(A=-0.1 * np.eye(2), b=np.array([0.09, 0.09]), Q=1e-4 * np.eye(2))
>>> fast = StrategyModel(A=-0.8 * np.eye(2), b=np.array([0.56, 0.48]), Q=1e-4 * np.eye(2))
>>> settings = PlanSettings(horizons=((5, 1.0),), two_phase=False)
>>> result = plan(np.array([0.2, 0.2]), 0.01 * np.eye(2), {"slow": slow, "fast": fast}, settings)
>>> result.schedule.first, round(result.value, 2)
('fast', 0.6)
>>> settings = PlanSettings(horizons=((80, 1.0),), two_phase=False)
>>> models = {"slow": slow, "fast": fast}
>>> plan(np.array([0.2, 0.2]), 0.01 * np.eye(2), models, settings).schedule.first
'slow'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.propagation import (
    Dynamics,
    StrategyModel,
    advance,
    advance_shared,
    equilibrium_covariance,
)

__all__ = [
    "Plan",
    "PlanRequest",
    "PlanSettings",
    "Schedule",
    "StrategyModel",
    "default_horizons",
    "equilibrium_covariance",
    "plan",
    "plan_together",
]

FloatArray = NDArray[np.float64]

#: Standard normal draws of the expected-utility integral (antithetic pairs, fixed seed).
_DRAWS = 32
_UNIT_DRAWS: dict[int, FloatArray] = {}


def _unit_draws(dim: int) -> FloatArray:
    found = _UNIT_DRAWS.get(dim)
    if found is None:
        half = np.random.default_rng(20261203).standard_normal((_DRAWS // 2, dim))
        found = np.concatenate((half, -half))
        found.flags.writeable = False
        _UNIT_DRAWS[dim] = found
    return found


@dataclass(frozen=True)
class Schedule:
    """A plan: ``first`` now; after ``switch_after`` steps ``second`` (``None``: hold)."""

    first: str
    switch_after: int | None = None
    second: str | None = None

    def describe(self) -> str:
        """``"A"`` or ``"A for k steps, then B"``."""
        if self.second is None or self.switch_after is None:
            return self.first
        return f"{self.first} for {self.switch_after} steps, then {self.second}"

    def advanced(self) -> Schedule:
        """The same plan one step later."""
        if self.second is None or self.switch_after is None:
            return self
        if self.switch_after <= 1:
            return Schedule(self.second)
        return Schedule(self.first, self.switch_after - 1, self.second)


@dataclass(frozen=True)
class PlanSettings:
    """How to plan.

    Attributes
    ----------
    horizons : tuple of (steps, probability)
        Distribution of the number of steps left (probabilities sum to 1).
    utility : {"min", "mean", "weighted"}
        Utility of a final state.
    weights : ndarray (d,) or None
        Weights of ``"weighted"``.
    two_phase : bool
        Also consider two-phase schedules.
    splits : tuple of float
        Switch points of two-phase schedules, as fractions of the mean horizon.
    min_phase : int
        Shortest first phase of a two-phase schedule (the controller passes the policy's
        dwell, below which a switch could not be made, or the four-step reversal window of
        the ``plan`` action when that is longer).
    """

    horizons: tuple[tuple[int, float], ...]
    utility: Literal["min", "mean", "weighted"] = "min"
    weights: FloatArray | None = None
    two_phase: bool = True
    splits: tuple[float, ...] = (0.2, 0.4, 0.6)
    min_phase: int = 1


def default_horizons() -> tuple[tuple[int, float], ...]:
    """A fixed spread of steps left, 5–80 with equal weights (mean 31).

    The controller plans an untold loop with
    :func:`steerloop.controller.planning.untold_horizons` (which follows the steps already
    run) and uses this spread's constant mean only as the loop length behind the exploration
    budget.
    """
    return ((5, 0.2), (10, 0.2), (20, 0.2), (40, 0.2), (80, 0.2))


@dataclass(frozen=True)
class Plan:
    """The chosen schedule, its expected utility, and every candidate's value."""

    schedule: Schedule
    value: float
    values: Mapping[Schedule, float] = field(default_factory=dict)

    def hold_value(self, strategy: str) -> float | None:
        """Expected utility of holding ``strategy`` to the horizon (``None`` if not planned)."""
        return self.values.get(Schedule(strategy))


def _finite_rows(mean: FloatArray, cov: FloatArray) -> NDArray[np.bool_]:
    """Which beliefs of a batch (B, d), (B, d, d) have finite moments; shape (B,)."""
    return np.asarray(np.isfinite(mean).all(axis=1) & np.isfinite(cov).all(axis=(1, 2)))


def _bounded(mean: FloatArray, cov: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Beliefs (B, d), (B, d, d) at a phase switch, brought back to what a state in [0, 1]ᵈ
    can be: the mean clipped to [0, 1], each variance at most 1/4 (the largest variance of a
    variable on [0, 1]; correlations kept). A linear drift extrapolated far outside the
    scores' range — an unstable estimate held for many steps — would otherwise carry an
    impossible state into the second phase. Non-finite rows are left as they are.
    """
    finite = _finite_rows(mean, cov)
    variance = np.diagonal(cov, axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(variance > 0.25, np.sqrt(0.25 / variance), 1.0)
    shrink = np.where(finite[:, None], shrink, 1.0)
    bounded_cov = cov * shrink[:, :, None] * shrink[:, None, :]
    bounded_mean = np.where(finite[:, None], np.clip(mean, 0.0, 1.0), mean)
    return np.asarray(bounded_mean, dtype=np.float64), np.asarray(bounded_cov, dtype=np.float64)


def _utility(settings: PlanSettings, mean: FloatArray, cov: FloatArray) -> FloatArray:
    """E[u(clip(x))] for x ~ N(mean_b, cov_b), by the fixed draws; shape (B,).

    A belief that overflowed (an unstable learnt model propagated over a long horizon gives
    infinite or NaN moments) has no expected utility: its row is −inf, so it is never chosen.
    """
    d = mean.shape[1]
    finite = _finite_rows(mean, cov)
    if not finite.all():
        mean = np.where(finite[:, None], mean, 0.0)
        cov = np.where(finite[:, None, None], cov, np.eye(d))
    try:
        root = np.linalg.cholesky(cov + 1e-12 * np.eye(d))
    except np.linalg.LinAlgError:  # not positive definite to rounding: the symmetric root
        values, vectors = np.linalg.eigh(cov)
        root = vectors * np.sqrt(np.maximum(values, 0.0))[:, None, :]
    # Laid out (B, d, draws): reductions over the short objective axis are slow in numpy
    # when it is the innermost one.
    samples = root @ _unit_draws(d).T + mean[:, :, None]
    samples = np.clip(samples, 0.0, 1.0)
    if settings.utility == "min":
        scores = samples.min(axis=1)
    elif settings.utility == "mean" or settings.weights is None or settings.weights.sum() <= 0:
        scores = samples.mean(axis=1)
    else:
        scores = (settings.weights / settings.weights.sum()) @ samples
    return np.asarray(np.where(finite, scores.mean(axis=1), -math.inf), dtype=np.float64)


def _candidates(names: Sequence[str], settings: PlanSettings) -> list[Schedule]:
    holds = [Schedule(name) for name in names]
    if not settings.two_phase or len(names) < 2:
        return holds
    mean_horizon = sum(steps * weight for steps, weight in settings.horizons)
    splits = sorted({max(settings.min_phase, 1, round(f * mean_horizon)) for f in settings.splits})
    return holds + [
        Schedule(first, k, second)
        for first in names
        for second in names
        if second != first
        for k in splits
        if k < mean_horizon
    ]


def plan(
    mean: FloatArray,
    covariance: FloatArray,
    models: Mapping[str, StrategyModel],
    settings: PlanSettings,
    *,
    extra: Sequence[Schedule] = (),
) -> Plan:
    """The best schedule by expected utility at the horizon (module docstring).

    Parameters
    ----------
    mean, covariance : ndarray
        Belief about the current objective state (the filtered x̂ and P).
    models : mapping of strategy name to StrategyModel
        The strategies that can be planned (at least one).
    settings : PlanSettings
        Horizon distribution, utility and candidate set.
    extra : sequence of Schedule
        Further candidates to value (e.g. the plan in force, continued).

    Returns
    -------
    Plan
        Ties go to the earlier candidate (holds first, in ``models`` order). A strategy whose
        transition is nearly defective (no stable eigenbasis) is left out of the candidates.
    """
    return plan_together(mean, covariance, [PlanRequest(models, settings, tuple(extra))])[0]


@dataclass(frozen=True)
class PlanRequest:
    """One :func:`plan` to make by :func:`plan_together`: its models, settings and extras."""

    models: Mapping[str, StrategyModel]
    settings: PlanSettings
    extra: tuple[Schedule, ...] = ()


def plan_together(
    mean: FloatArray, covariance: FloatArray, requests: Sequence[PlanRequest]
) -> list[Plan]:
    """:func:`plan` of every request from one belief, computed as one batch.

    The same results as one :func:`plan` per request (to rounding), for less: one batched
    eigen-decomposition of every request's models, one propagation of all their rows and one
    expected-utility batch (e.g. the ``plan`` action's plan from the learnt drifts and its
    Thompson plan from a posterior draw of them). The requests must share the utility
    (``utility`` and ``weights``); their horizons and candidates may differ.

    Raises
    ------
    ValueError
        A request without models, or requests with different utilities.
    """
    if any(not request.models for request in requests):
        raise ValueError("plan needs at least one strategy model")
    if not requests:
        return []
    settings = requests[0].settings
    for request in requests[1:]:
        other = request.settings
        if other.utility != settings.utility or not _same_weights(settings, other):
            raise ValueError("plans made together must share the utility and its weights")
    batch = _Batch(requests)
    if batch.rows == 0:
        return [Plan(Schedule(names[0]), -math.inf, {}) for names in batch.names]
    # An unstable model over a long horizon overflows: _utility values such a row −inf.
    with np.errstate(over="ignore", invalid="ignore"):
        # One transition per distinct (strategy, steps) pair of either phase.
        parts = batch.dynamics.transitions(batch.pair_index, batch.pair_steps)
        end_mean, end_cov = advance_shared(parts, mean, covariance)
        end_mean, end_cov = end_mean[batch.first_pair], end_cov[batch.first_pair]
        if batch.later.size:
            chosen = batch.later
            switch_mean, switch_cov = _bounded(end_mean[chosen], end_cov[chosen])
            end_mean[chosen], end_cov[chosen] = advance(
                parts, batch.second_pair, switch_mean, switch_cov
            )
    utilities = _utility(settings, end_mean, end_cov)
    plans = []
    for names, layout, start in zip(batch.names, batch.layouts, batch.row_starts, strict=True):
        if layout is None:
            plans.append(Plan(Schedule(names[0]), -math.inf, {}))
            continue
        size = len(layout.candidates) * len(layout.weights)
        plans.append(_best(layout, utilities[start : start + size]))
    return plans


class _Batch:
    """The rows of several plans in one set of arrays: request r's models sit at
    ``dynamics`` indices from its offset on, its pairs and rows after the earlier requests'."""

    def __init__(self, requests: Sequence[PlanRequest]) -> None:
        self.names = [list(request.models) for request in requests]
        self.dynamics = Dynamics(
            [request.models[name] for request in requests for name in request.models]
        )
        ok = self.dynamics.ok.tolist()
        self.layouts: list[_Layout | None] = []
        self.row_starts: list[int] = []
        index: list[NDArray[np.intp]] = []
        steps: list[NDArray[np.int64]] = []
        first: list[NDArray[np.intp]] = []
        second: list[NDArray[np.intp]] = []
        later: list[NDArray[np.intp]] = []
        models = pairs = rows = 0
        for request, names in zip(requests, self.names, strict=True):
            usable = [name for i, name in enumerate(names) if ok[models + i]]
            settings = request.settings
            layout = _layout(
                tuple(names),
                tuple(usable),
                request.extra,
                tuple((h, w) for h, w in settings.horizons),
                bool(settings.two_phase),
                tuple(settings.splits),
                int(settings.min_phase),
            )
            self.layouts.append(layout)
            self.row_starts.append(rows)
            if layout is not None:
                index.append(layout.pair_index + models)
                steps.append(layout.pair_steps)
                first.append(layout.first_pair + pairs)
                second.append(layout.second_pair + pairs)
                later.append(layout.later + rows)
                pairs += layout.pair_index.shape[0]
                rows += layout.first_pair.shape[0]
            models += len(names)
        self.rows = rows
        self.pair_index = _joined(index, np.intp)
        self.pair_steps = _joined(steps, np.int64)
        self.first_pair = _joined(first, np.intp)
        self.second_pair = _joined(second, np.intp)
        self.later = _joined(later, np.intp)


_Integer = TypeVar("_Integer", np.intp, np.int64)


def _joined(parts: Sequence[NDArray[_Integer]], dtype: type[_Integer]) -> NDArray[_Integer]:
    """The parts end to end (the only part itself when there is one)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts, dtype=dtype) if parts else np.zeros(0, dtype=dtype)


def _same_weights(one: PlanSettings, other: PlanSettings) -> bool:
    if one.weights is None or other.weights is None:
        return one.weights is None and other.weights is None
    return bool(np.array_equal(one.weights, other.weights))


def _best(layout: _Layout, utilities: FloatArray) -> Plan:
    """The plan of one layout from its rows' utilities (candidates × horizons, horizons inner)."""
    candidates, weights = layout.candidates, layout.weights
    if layout.repeated:
        values = dict.fromkeys(candidates, 0.0)  # a repeated extra candidate: sum its rows
        for i, value in enumerate(utilities.tolist()):
            values[candidates[i // len(weights)]] += weights[i % len(weights)] * value
        totals = [values[schedule] for schedule in candidates]
    else:
        totals = (utilities.reshape(len(candidates), len(weights)) @ np.array(weights)).tolist()
        values = dict(zip(candidates, totals, strict=True))
    best = max(range(len(totals)), key=totals.__getitem__)  # the first of equal values wins
    return Plan(candidates[best], totals[best], values)


@dataclass(frozen=True)
class _Layout:
    """The rows of one plan (every candidate × every horizon, horizons inner) and what each
    row propagates: the first phase for every row, the second for the rows in ``later``.

    Both phases draw on one list of distinct (strategy, steps) pairs (``pair_index``,
    ``pair_steps``): row b's first phase is pair ``first_pair[b]``, the second phase of row
    ``later[j]`` is pair ``second_pair[j]``.
    """

    candidates: tuple[Schedule, ...]
    weights: tuple[float, ...]
    repeated: bool
    later: NDArray[np.intp]
    pair_index: NDArray[np.intp]
    pair_steps: NDArray[np.int64]
    first_pair: NDArray[np.intp]
    second_pair: NDArray[np.intp]


@functools.lru_cache(maxsize=256)
def _layout(
    names: tuple[str, ...],
    usable: tuple[str, ...],
    extra: tuple[Schedule, ...],
    horizon_weights: tuple[tuple[int, float], ...],
    two_phase: bool,
    splits: tuple[float, ...],
    min_phase: int,
) -> _Layout | None:
    """The plan's rows (pure bookkeeping of the candidates; the same for every step of a
    loop whose strategies, horizon and plan in force stay the same, so it is kept)."""
    settings = PlanSettings(
        horizons=horizon_weights, two_phase=two_phase, splits=splits, min_phase=min_phase
    )
    candidates = _candidates(list(usable), settings)
    known = set(candidates)
    candidates += [s for s in extra if s not in known and _plannable(s, usable)]
    horizons = [(max(1, int(h)), float(w)) for h, w in horizon_weights if w > 0]
    if not candidates or not horizons:
        return None
    position = {name: i for i, name in enumerate(names)}
    rows = [(c, h) for c in candidates for h, _ in horizons]
    first_steps = [
        h if c.second is None or c.switch_after is None else min(h, c.switch_after) for c, h in rows
    ]
    later = [i for i, (c, h) in enumerate(rows) if c.second is not None and h > first_steps[i]]
    first = [(position[c.first], steps) for (c, _), steps in zip(rows, first_steps, strict=True)]
    second = [(position[str(rows[i][0].second)], rows[i][1] - first_steps[i]) for i in later]
    pairs: dict[tuple[int, int], int] = {}
    first_pair = [pairs.setdefault(pair, len(pairs)) for pair in first]
    second_pair = [pairs.setdefault(pair, len(pairs)) for pair in second]
    arrays = (
        np.array(later, dtype=np.intp),
        np.array([strategy for strategy, _ in pairs], dtype=np.intp),
        np.array([steps for _, steps in pairs], dtype=np.int64),
        np.array(first_pair, dtype=np.intp),
        np.array(second_pair, dtype=np.intp),
    )
    for array in arrays:
        array.flags.writeable = False
    return _Layout(
        tuple(candidates),
        tuple(w for _, w in horizons),
        len(set(candidates)) != len(candidates),
        *arrays,
    )


def _plannable(schedule: Schedule, usable: Sequence[str]) -> bool:
    return schedule.first in usable and (schedule.second is None or schedule.second in usable)
