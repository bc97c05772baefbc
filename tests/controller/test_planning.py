"""StepPlanning: the planning context of one session step (what ``plan`` reads)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from controller_helpers import A_TRUE, X_STAR, make_policy

from steerloop.controller.models import SessionModels
from steerloop.controller.planning import (
    UNTOLD_MAX_STEPS,
    UNTOLD_MIN_LENGTH,
    StepPlanning,
    untold_horizons,
)
from steerloop.controller.pools import FleetPool
from steerloop.controller.settings import ModelSettings
from steerloop.estimators.planner import Schedule, default_horizons
from steerloop.policies.schema import PlanAction

STRATEGIES = ["balanced", "secure", "fast", "features"]


def trained(strategies: dict[str, int], seed: int = 0) -> SessionModels:
    """Models that learnt ``steps`` transitions of the known drift under each strategy."""
    models = SessionModels(ModelSettings.from_policy(make_policy(rules=[])))
    rng = np.random.default_rng(seed)
    x = np.array([0.3, 0.2, 0.4])
    models.learn(x, next(iter(strategies)))  # a start: each later score makes a transition
    for name, steps in strategies.items():
        for _ in range(steps):
            models.learn(np.clip(x + rng.normal(0, 0.01, 3), 0, 1), name)
            models.predict(name)
            x = np.clip(x + A_TRUE @ (x - X_STAR) + rng.normal(0, 0.05, 3), 0, 1)
    return models


def planning(models: SessionModels, **kwargs: Any) -> StepPlanning:
    options: dict[str, Any] = {"step": 10, "steps_left": None, "seed": 1}
    options.update(kwargs)
    prior = options.pop("prior", lambda _name: None)
    return StepPlanning(models, prior, STRATEGIES, **options)


def test_horizons_told_or_the_default_spread() -> None:
    models = trained({"balanced": 10})
    told = planning(models, steps_left=12)
    assert (told.steps_left, told.horizons, told.expected_length) == (12, ((12, 1.0),), 22.0)
    assert planning(models, steps_left=0).horizons == ((1, 1.0),)  # at least one step
    untold = planning(models)
    assert untold.steps_left is None and untold.horizons == untold_horizons(10)
    assert planning(models, step=30).horizons == untold_horizons(30)
    # Untold: the default distribution's mean, not growing with the steps done (a budget
    # set on it must not grow).
    assert untold.expected_length == pytest.approx(sum(s * w for s, w in default_horizons()))
    assert planning(models, step=30).expected_length == untold.expected_length


@pytest.mark.parametrize("step", [0, 3, 10, 17, 40, 120, 500])
def test_untold_horizons_follow_the_copernican_rule(step: int) -> None:
    horizons = untold_horizons(step)
    steps = [s for s, _ in horizons]
    assert sum(w for _, w in horizons) == pytest.approx(1.0)
    assert steps == sorted(steps) and steps[0] >= 1 and steps[-1] <= UNTOLD_MAX_STEPS
    # Monte Carlo of the rule: the elapsed share u = t / T is uniform, T = max(t, t0) / u.
    # Each point is the median of its fifth of the steps-left distribution.
    u = np.random.default_rng(step).uniform(size=200_000)
    scale = max(step, UNTOLD_MIN_LENGTH)
    left = np.sort(np.minimum(scale / u - step, UNTOLD_MAX_STEPS))
    for k, point in enumerate(steps):
        middle = float(np.quantile(left, 0.1 + 0.2 * k))
        assert point == pytest.approx(middle, rel=0.02, abs=1.0)


def test_untold_horizons_grow_with_the_steps_run() -> None:
    # Past the minimum length the median steps left equals the steps run (Gott's rule).
    for step in (10, 20, 60):
        assert untold_horizons(step)[2][0] == step
    means = [sum(s * w for s, w in untold_horizons(t)) for t in range(10, 100, 10)]
    assert means == sorted(means)


def test_knowledge_adds_own_and_lent_transitions() -> None:
    models = trained({"balanced": 12, "secure": 3})
    pool = FleetPool(3, prior_weight=7.0)
    rng = np.random.default_rng(2)
    for _ in range(30):
        before = rng.random(3)
        pool.add("fast", before, before + 0.1, 1.0, first=False)
    known = planning(models, prior=pool.prior).knowledge()
    assert known == pytest.approx({"balanced": 12.0, "secure": 3.0, "fast": 7.0, "features": 0.0})


def test_only_known_strategies_have_models_and_equilibria() -> None:
    models = trained({"balanced": 30, "secure": 3})
    context = planning(models)
    found = context.strategy_models()
    assert [name for name, model in found.items() if model is not None] == ["balanced"]
    assert context.strategy_models() is found  # built once per step
    equilibria = context.equilibria()
    assert set(equilibria) == {"balanced"}
    np.testing.assert_allclose(equilibria["balanced"], X_STAR, atol=0.1)


def test_nothing_known_nothing_planned() -> None:
    context = planning(trained({"balanced": 2}))
    assert context.plan(PlanAction(), None, draw=False) is None
    assert context.latest(PlanAction()) is None


def test_a_plan_values_the_known_strategies_and_the_incumbent() -> None:
    context = planning(trained({"balanced": 30, "secure": 30}, seed=3), steps_left=20)
    action = PlanAction()
    incumbent = Schedule("secure", 4, "balanced")
    result = context.plan(action, incumbent, draw=False)
    assert result is not None
    assert {Schedule("balanced"), Schedule("secure"), incumbent} <= set(result.values)
    assert result.value == max(result.values.values())
    assert 0.0 <= result.value <= 1.0
    assert context.plan(action, incumbent, draw=False) is result  # cached for the step
    assert context.latest(action) is result  # the step's plan is the first one made
    hold = planning(trained({"balanced": 30, "secure": 30}, seed=3)).plan(action, None, draw=False)
    assert hold is not None and all(s.second is None for s in hold.values)  # untold: holds only


def test_posterior_draws_depend_on_seed_and_step_only() -> None:
    models = trained({"balanced": 30, "secure": 30, "fast": 30}, seed=4)
    action = PlanAction()

    def drawn(seed: int, step: int) -> dict[Schedule, float]:
        result = planning(models, seed=seed, step=step).plan(action, None, draw=True)
        assert result is not None
        return dict(result.values)

    assert drawn(1, 10) == drawn(1, 10)
    assert drawn(1, 10) != drawn(1, 11)
    assert drawn(1, 10) != drawn(2, 10)
    mean = planning(models).plan(action, None, draw=False)
    assert mean is not None and dict(mean.values) != drawn(1, 10)
