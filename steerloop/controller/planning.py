"""The planning context of one step: what ``plan`` and ``best_predicted`` read.

:class:`StepPlanning` implements :class:`steerloop.policies.planning.PlanningContext` for a
session at one step: it builds each strategy's :class:`~steerloop.estimators.planner.
StrategyModel` from the session's own drift statistics plus the fleet pool's prior (lazily,
once per step), the belief N(x̂_t, P_t) from the filter, and the horizon distribution:

* told — ``steps_left`` from :meth:`steerloop.Session.update`, or the policy's ``horizon``
  minus the steps done — a point mass;
* not told — :func:`untold_horizons`: the steps left given the steps already run, by the
  Copernican (scale-free) rule — the step reached is taken to be a uniformly random point of
  the loop, so a loop that has run t steps has run half its course with probability 1/2,
  and the longer it has run, the longer it is expected to go on.

Posterior draws for Thompson sampling come from a generator seeded by the session's seed and
the step, so a restored session draws the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.models import PriorSource, SessionModels
from steerloop.estimators.planner import (
    Plan,
    PlanRequest,
    PlanSettings,
    Schedule,
    StrategyModel,
    default_horizons,
    plan_together,
)
from steerloop.policies.schema import PlanAction

__all__ = ["UNTOLD_MAX_STEPS", "UNTOLD_MIN_LENGTH", "StepPlanning", "untold_horizons"]

FloatArray = NDArray[np.float64]


#: Quantiles of the elapsed share u of the loop at which :func:`untold_horizons` evaluates the
#: steps left (equal weights: the midpoints of five equal-probability bins).
_ELAPSED_QUANTILES = (0.9, 0.7, 0.5, 0.3, 0.1)
#: A loop is taken to run at least this many steps (the scale of the untold prior).
UNTOLD_MIN_LENGTH = 10
#: The longest steps-left point: every stable strategy is at its equilibrium long before, and
#: an unstable estimate's powers Fⁿ would overflow.
UNTOLD_MAX_STEPS = 200


def untold_horizons(step: int) -> tuple[tuple[int, float], ...]:
    """The steps-left distribution when the loop's length is not told, after ``step`` steps.

    The Copernican rule (J. R. Gott, "Implications of the Copernican principle for our future
    prospects", Nature 363, 1993): the elapsed share u = t / T of a loop of unknown length T
    is uniform on (0, 1), so the steps left are T − t = t / u − t — a scale-free (log-uniform)
    prior on T conditioned on T > t: the longer a loop has run, the longer it is expected to
    go on. A loop is taken to run at least :data:`UNTOLD_MIN_LENGTH` steps (t is replaced by
    that length in t / u while it is shorter). Evaluated at the quantiles
    :data:`_ELAPSED_QUANTILES` of u, with equal weights, and at most :data:`UNTOLD_MAX_STEPS`.
    docs/architecture.md, "Planning".

    Examples
    --------
    >>> untold_horizons(20)
    ((2, 0.2), (9, 0.2), (20, 0.2), (47, 0.2), (180, 0.2))
    >>> untold_horizons(40)[-1]
    (200, 0.2)
    >>> [steps for steps, _ in untold_horizons(4)]
    [7, 10, 16, 29, 96]
    """
    done = max(step, 0)
    scale = max(done, UNTOLD_MIN_LENGTH)
    weight = 1.0 / len(_ELAPSED_QUANTILES)
    return tuple(
        (min(UNTOLD_MAX_STEPS, max(1, round(scale / u - done))), weight) for u in _ELAPSED_QUANTILES
    )


class StepPlanning:
    """Planning context of one session step (module docstring)."""

    def __init__(
        self,
        models: SessionModels,
        prior: PriorSource,
        strategies: Sequence[str],
        *,
        step: int,
        steps_left: int | None,
        seed: int,
        min_phase: int = 1,
    ) -> None:
        self._models = models
        self._prior = prior
        self._strategies = list(strategies)
        self._step = step
        self._steps_left = steps_left
        self._seed = seed
        self._min_phase = min_phase
        self._mean = models.kalman.mean
        self._covariance = models.kalman.covariance
        self._known: dict[str, StrategyModel | None] | None = None
        self._plans: dict[tuple[int, Schedule | None, bool], Plan | None] = {}
        self._first: Plan | None = None

    @property
    def steps_left(self) -> int | None:
        """Steps left when the horizon is told."""
        return self._steps_left

    @property
    def seed(self) -> int:
        """The session's seed (stable across restores)."""
        return self._seed

    @property
    def horizons(self) -> tuple[tuple[int, float], ...]:
        """The steps-left distribution the planner uses."""
        if self._steps_left is not None:
            return ((max(1, self._steps_left), 1.0),)
        return untold_horizons(self._step)

    @property
    def expected_length(self) -> float:
        """The loop's length: steps so far plus steps left when told; else the mean of the
        default steps-left distribution (constant, so a budget set on it does not grow)."""
        if self._steps_left is not None:
            return float(self._step + self._steps_left)
        return sum(steps * weight for steps, weight in default_horizons())

    def knowledge(self) -> Mapping[str, float]:
        """Transitions known per strategy: the session's own, or the pool's lent weight."""
        drift = self._models.drift_models
        known: dict[str, float] = {}
        for name in self._strategies:
            model = drift.get(name)
            pooled = self._prior(name)
            # The session's own transitions are in the pool too: the larger of the two, and
            # the pool's weight counted in whole transitions (5 discounted ones weigh 4.995).
            known[name] = max(
                0.0 if model is None else float(model.count),
                0.0 if pooled is None else float(round(pooled.weight)),
            )
        return known

    def strategy_models(self) -> Mapping[str, StrategyModel | None]:
        """Each strategy's model (posterior mean), ``None`` when not known yet."""
        if self._known is None:
            self._known = {
                name: self._models.strategy_model(name, self._prior) for name in self._strategies
            }
        return self._known

    def equilibria(self) -> Mapping[str, NDArray[np.float64] | None]:
        """Predicted equilibrium of every known strategy."""
        out: dict[str, NDArray[np.float64] | None] = {}
        for name in self._strategies:
            fit = self._models.fit(name, self._prior)
            if fit is not None:
                out[name] = fit.equilibrium
        return out

    def plan(
        self,
        action: PlanAction,
        current: Schedule | None,
        *,
        draw: bool,
        also_draw: bool = False,
    ) -> Plan | None:
        """The planner's result for ``action`` (cached for the step).

        ``also_draw``: the caller will ask for the posterior-draw plan next, so both are made
        at once (:func:`~steerloop.estimators.planner.plan_together`).
        """
        key = (id(action), current, draw)
        if key not in self._plans:
            flags = (draw, True) if also_draw and not draw else (draw,)
            for flag, result in zip(flags, self._make(action, current, flags), strict=True):
                self._plans[(id(action), current, flag)] = result
            if not draw and self._first is None:
                self._first = self._plans[key]
        return self._plans[key]

    def latest(self, action: PlanAction) -> Plan | None:
        """The step's plan (the action's, when it has run), else a plan made for ``action``."""
        if self._first is not None:
            return self._first
        return self.plan(action, None, draw=False)

    def _make(
        self, action: PlanAction, current: Schedule | None, draws: Sequence[bool]
    ) -> list[Plan | None]:
        """The plans of ``action`` from the learnt drifts (``False``) or one posterior draw of
        them (``True``), in the order of ``draws``, computed together."""
        objectives = self._models.settings.objectives
        weights = np.array([action.weights.get(name, 0.0) for name in objectives])
        extra = (current,) if current is not None else ()
        requests: list[PlanRequest | None] = []
        for draw in draws:
            known = {
                name: model for name, model in self._models_for(draw).items() if model is not None
            }
            settings = PlanSettings(
                horizons=self.horizons,
                utility=action.utility,
                weights=weights,
                two_phase=self._two_phase(action.schedules) and not draw,
                min_phase=self._min_phase,
            )
            requests.append(PlanRequest(known, settings, extra) if known else None)
        made = iter(plan_together(self._mean, self._covariance, [r for r in requests if r]))
        return [None if request is None else next(made) for request in requests]

    def _models_for(self, draw: bool) -> Mapping[str, StrategyModel | None]:
        """Every strategy's model: the posterior mean, or one posterior draw (``draw``)."""
        if not draw:
            return self.strategy_models()
        rng = np.random.default_rng([self._seed, self._step])
        return {
            name: self._models.strategy_model(name, self._prior, rng) for name in self._strategies
        }

    def _two_phase(self, schedules: Literal["auto", "hold", "two_phase"]) -> bool:
        if schedules == "auto":
            return self._steps_left is not None
        return schedules == "two_phase"
