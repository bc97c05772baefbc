"""Horizon planner (steerloop.estimators.planner): closed forms, Monte Carlo, choices."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
from direct_iteration import iterate
from numpy.typing import NDArray

from steerloop.estimators.planner import (
    Plan,
    PlanRequest,
    PlanSettings,
    Schedule,
    StrategyModel,
    default_horizons,
    plan,
    plan_together,
)

FloatArray = NDArray[np.float64]

#: Expected-utility draws of the planner (module: 16 antithetic pairs).
PLANNER_DRAWS = 32
UTILITIES: tuple[Literal["min", "mean"], ...] = ("min", "mean")

# A slow strategy with the best equilibrium (0.9, 0.9) and a fast mediocre one (0.7, 0.6).
SLOW = StrategyModel(A=-0.1 * np.eye(2), b=np.array([0.09, 0.09]), Q=1e-4 * np.eye(2))
FAST = StrategyModel(A=-0.8 * np.eye(2), b=np.array([0.56, 0.48]), Q=1e-4 * np.eye(2))
START, START_COV = np.array([0.2, 0.2]), 0.01 * np.eye(2)


def simulate_states(
    rng: np.random.Generator,
    phases: list[tuple[StrategyModel, int]],
    mean: FloatArray,
    cov: FloatArray,
    n: int,
    record: tuple[int, ...] = (),
) -> dict[int, FloatArray]:
    """Monte Carlo of the linear SDE through ``phases`` (model, steps): the states after each
    step count in ``record`` and at the end.

    The parameter error is persistent: each path draws one equilibrium shift δ ~ Cov(x̂*) per
    phase and follows x_{t+1} = F x_t + c + (I − F) δ + w_t.
    """
    d = mean.shape[0]
    x = rng.multivariate_normal(mean, cov, size=n)
    states, elapsed = {}, 0
    for model, steps in phases:
        F = np.eye(d) + model.A * model.dt
        offset = np.broadcast_to(model.b * model.dt, (n, d))
        if model.equilibrium_covariance is not None:
            delta = rng.multivariate_normal(np.zeros(d), model.equilibrium_covariance, size=n)
            offset = offset + delta @ (np.eye(d) - F).T
        root = np.linalg.cholesky(model.Q)
        for _ in range(steps):
            x = x @ F.T + offset + rng.standard_normal((n, d)) @ root.T
            elapsed += 1
            if elapsed in record:
                states[elapsed] = x
    states[elapsed] = x
    return states


def utility_of(states: FloatArray, utility: str = "min") -> tuple[float, float, float]:
    """(mean utility of clip(x, 0, 1), its standard error, the sd of the utility)."""
    x = np.clip(states, 0.0, 1.0)
    u = x.min(axis=1) if utility == "min" else x.mean(axis=1)
    return float(u.mean()), float(u.std() / math.sqrt(len(u))), float(u.std())


# ----------------------------------------------------------------------------- Monte Carlo


MC_CASES = {
    "interior": (
        StrategyModel(
            A=np.array([[-0.3, 0.1], [0.05, -0.5]]),
            b=np.array([0.2, 0.15]),
            Q=np.array([[4e-3, 1e-3], [1e-3, 3e-3]]),
        ),
        np.array([0.3, 0.5]),
        0.01 * np.eye(2),
    ),
    "clipped": (
        StrategyModel(A=-0.4 * np.eye(2), b=np.array([0.38, 0.2]), Q=0.02 * np.eye(2)),
        np.array([0.8, 0.6]),
        0.02 * np.eye(2),
    ),
    "uncertain equilibrium": (
        StrategyModel(
            A=np.array([[-0.3, 0.1], [0.05, -0.5]]),
            b=np.array([0.2, 0.15]),
            Q=1e-3 * np.eye(2),
            equilibrium_covariance=np.array([[0.01, 0.003], [0.003, 0.02]]),
        ),
        np.array([0.3, 0.5]),
        0.01 * np.eye(2),
    ),
    "spiral, dt 0.5": (
        StrategyModel(
            A=np.array([[-0.3, -0.5], [0.5, -0.3]]),
            b=np.array([0.3, 0.0]),
            Q=5e-3 * np.eye(2),
            dt=0.5,
        ),
        np.array([0.2, 0.9]),
        0.005 * np.eye(2),
    ),
}


@pytest.mark.parametrize("name", list(MC_CASES))
def test_expected_utility_matches_a_monte_carlo_simulation(name: str) -> None:
    """E[u(clip(x_H, 0, 1))] of the planner vs 100,000 simulated paths, H ∈ {3, 12, 40},
    u the minimum and the mean over objectives.

    Tolerance: one standard error of a plain 32-draw Monte Carlo estimate, sd(u)/√32, plus
    four standard errors of the simulation (the planner's antithetic common draws do better:
    the worst case, spiral with min utility at H = 40, uses 46 % of the tolerance).
    """
    model, mean, cov = MC_CASES[name]
    states = simulate_states(
        np.random.default_rng(17), [(model, 40)], mean, cov, 100_000, record=(3, 12)
    )
    for horizon in (3, 12, 40):
        for utility in UTILITIES:
            settings_ = PlanSettings(horizons=((horizon, 1.0),), utility=utility, two_phase=False)
            value = plan(mean, cov, {"s": model}, settings_).value
            expected, mc_error, spread = utility_of(states[horizon], utility)
            tolerance = spread / math.sqrt(PLANNER_DRAWS) + 4.0 * mc_error
            assert abs(value - expected) <= tolerance, (
                f"H = {horizon}, {utility}: planner {value:.4f}, Monte Carlo {expected:.4f} "
                f"± {mc_error:.4f}, tolerance {tolerance:.4f}"
            )


def test_two_phase_value_matches_a_monte_carlo_simulation() -> None:
    """The value of "fast for 4 steps, then slow" at H = 20 against simulated paths."""
    schedule = Schedule("fast", 4, "slow")
    settings_ = PlanSettings(horizons=((20, 1.0),), two_phase=False)
    result = plan(START, START_COV, {"slow": SLOW, "fast": FAST}, settings_, extra=[schedule])
    rng = np.random.default_rng(8)
    states = simulate_states(rng, [(FAST, 4), (SLOW, 16)], START, START_COV, 100_000)
    expected, mc_error, spread = utility_of(states[20])
    tolerance = spread / math.sqrt(PLANNER_DRAWS) + 4.0 * mc_error
    assert abs(result.values[schedule] - expected) <= tolerance


# ----------------------------------------------------------------------------- choices


def test_hold_choices_at_short_and_long_horizons() -> None:
    """The fast mediocre strategy wins a 5-step loop, the slow one with the better
    equilibrium an 80-step loop (means: fast 0.60 vs slow 0.49 at 5; 0.60 vs 0.90 at 80)."""
    models = {"slow": SLOW, "fast": FAST}
    short = plan(START, START_COV, models, PlanSettings(horizons=((5, 1.0),), two_phase=False))
    assert short.schedule == Schedule("fast")
    assert short.value == pytest.approx(0.6, abs=0.02)
    long = plan(START, START_COV, models, PlanSettings(horizons=((80, 1.0),), two_phase=False))
    assert long.schedule == Schedule("slow")
    assert long.value == pytest.approx(0.9, abs=0.02)
    assert set(long.values) == {Schedule("slow"), Schedule("fast")}
    assert long.hold_value("fast") == pytest.approx(0.6, abs=0.02)
    assert long.hold_value("missing") is None


def test_two_phase_wins_at_a_medium_horizon() -> None:
    """At 20 steps, fast for 4 steps then slow reaches min ≈ 0.84 (means: 0.9 − 0.3·0.9¹⁶),
    better than holding slow (≈ 0.81) or fast (0.60); later switches are worse."""
    models = {"slow": SLOW, "fast": FAST}
    result = plan(START, START_COV, models, PlanSettings(horizons=((20, 1.0),)))
    assert result.schedule == Schedule("fast", 4, "slow")
    assert result.schedule.describe() == "fast for 4 steps, then slow"
    splits = {s.switch_after for s in result.values if s.second is not None}
    assert splits == {4, 8, 12}  # 0.2, 0.4, 0.6 of the horizon
    holds = {s: v for s, v in result.values.items() if s.second is None}
    assert max(holds.values()) < result.value - 0.01
    rng = np.random.default_rng(2)
    # The chosen schedule is the best of the candidates by an independent simulation too.
    simulated = {}
    for schedule in result.values:
        if schedule.second is None or schedule.switch_after is None:
            phases = [((SLOW if schedule.first == "slow" else FAST), 20)]
        else:
            first = SLOW if schedule.first == "slow" else FAST
            second = SLOW if schedule.second == "slow" else FAST
            phases = [(first, schedule.switch_after), (second, 20 - schedule.switch_after)]
        end = simulate_states(rng, phases, START, START_COV, 50_000)[20]
        simulated[schedule] = utility_of(end)[0]
    assert max(simulated, key=simulated.__getitem__) == result.schedule


def test_horizon_distribution_averages_the_horizons() -> None:
    """Value = Σ_h w_h · value at h; a switch beyond a possible end is valued as the first
    phase held to that end."""
    models = {"slow": SLOW, "fast": FAST}
    switch = Schedule("fast", 7, "slow")
    mixed = plan(START, START_COV, models, PlanSettings(horizons=((3, 0.5), (30, 0.5))))
    assert switch in mixed.values  # 0.4 × the mean horizon 16.5
    at = {
        h: plan(
            START,
            START_COV,
            models,
            PlanSettings(horizons=((h, 1.0),), two_phase=False),
            extra=[switch],
        )
        for h in (3, 30)
    }
    for schedule in (Schedule("slow"), Schedule("fast"), switch):
        expected = 0.5 * at[3].values[schedule] + 0.5 * at[30].values[schedule]
        assert mixed.values[schedule] == pytest.approx(expected, rel=1e-12)
    assert at[3].values[switch] == pytest.approx(at[3].values[Schedule("fast")], rel=1e-12)
    # Under the uncertain end, holding fast beats the schedule that pays only after its switch.
    late = Schedule("slow", 10, "fast")
    assert mixed.values[late] < mixed.values[Schedule("fast")]


def test_default_horizons_is_a_distribution() -> None:
    horizons = default_horizons()
    assert sum(w for _, w in horizons) == pytest.approx(1.0, rel=1e-15)
    assert [h for h, _ in horizons] == sorted(h for h, _ in horizons)
    assert all(h >= 1 for h, _ in horizons)
    result = plan(START, START_COV, {"slow": SLOW, "fast": FAST}, PlanSettings(horizons=horizons))
    assert math.isfinite(result.value) and 0.0 <= result.value <= 1.0


def test_ties_go_to_the_first_candidate() -> None:
    """Equilibria far above 1: every draw clips to 1, every candidate is worth exactly 1."""
    high = StrategyModel(A=-0.5 * np.eye(2), b=np.array([2.5, 2.5]), Q=1e-4 * np.eye(2))
    higher = StrategyModel(A=-0.9 * np.eye(2), b=np.array([4.5, 4.5]), Q=1e-4 * np.eye(2))
    mean, cov = np.array([3.0, 3.0]), 1e-4 * np.eye(2)
    settings_ = PlanSettings(horizons=((10, 1.0),))
    extra = [Schedule("b", 1, "a")]
    for models, first in (({"a": high, "b": higher}, "a"), ({"b": higher, "a": high}, "b")):
        result = plan(mean, cov, models, settings_, extra=extra)
        assert set(result.values.values()) == {1.0}
        assert result.schedule == Schedule(first)
        assert result.value == 1.0


def test_utilities_mean_and_weighted() -> None:
    """A point belief inside [0, 1] with no noise: the utility of the mean state exactly."""
    still = StrategyModel(A=-1.0 * np.eye(3), b=np.array([0.2, 0.5, 0.8]), Q=np.zeros((3, 3)))
    mean, cov = np.array([0.2, 0.5, 0.8]), np.zeros((3, 3))
    horizons = ((4, 1.0),)
    assert plan(mean, cov, {"s": still}, PlanSettings(horizons)).value == pytest.approx(
        0.2, abs=1e-5
    )
    mean_value = plan(mean, cov, {"s": still}, PlanSettings(horizons, utility="mean")).value
    assert mean_value == pytest.approx(0.5, abs=1e-5)
    weights = np.array([0.0, 1.0, 3.0])
    weighted = plan(
        mean, cov, {"s": still}, PlanSettings(horizons, utility="weighted", weights=weights)
    )
    assert weighted.value == pytest.approx((0.5 + 3 * 0.8) / 4, abs=1e-5)
    unweighted = plan(mean, cov, {"s": still}, PlanSettings(horizons, utility="weighted"))
    assert unweighted.value == pytest.approx(0.5, abs=1e-5)  # no weights: the mean


def test_plans_made_together_equal_plans_made_alone() -> None:
    """plan_together batches several plans (e.g. the learnt drifts' and a posterior draw's):
    each result is the plan made alone, to rounding; an unplannable request gets no plan."""
    jordan = StrategyModel(
        A=np.array([[-0.5, 1.0], [0.0, -0.5]]), b=np.array([0.2, 0.2]), Q=1e-3 * np.eye(2)
    )
    uncertain = StrategyModel(A=SLOW.A, b=SLOW.b, Q=SLOW.Q, equilibrium_covariance=0.01 * np.eye(2))
    requests = [
        PlanRequest(
            {"slow": uncertain, "fast": FAST}, PlanSettings(((40, 1.0),)), (Schedule("fast"),)
        ),
        PlanRequest({"jordan": jordan}, PlanSettings(((10, 1.0),))),
        PlanRequest(
            {"fast": FAST, "slow": SLOW}, PlanSettings(default_horizons(), two_phase=False)
        ),
    ]
    together = plan_together(START, START_COV, requests)
    assert together[1] == Plan(Schedule("jordan"), -math.inf, {})
    for request, made in zip(requests, together, strict=True):
        alone = plan(START, START_COV, request.models, request.settings, extra=request.extra)
        assert made.schedule == alone.schedule
        assert made.values.keys() == alone.values.keys()
        for schedule, value in alone.values.items():
            assert made.values[schedule] == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert plan_together(START, START_COV, []) == []
    with pytest.raises(ValueError, match="share the utility"):
        plan_together(
            START,
            START_COV,
            [requests[0], PlanRequest({"slow": SLOW}, PlanSettings(((5, 1.0),), utility="mean"))],
        )


def test_nearly_defective_strategies_are_left_out() -> None:
    jordan = StrategyModel(
        A=np.array([[-0.5, 1.0], [0.0, -0.5]]), b=np.array([0.2, 0.2]), Q=1e-3 * np.eye(2)
    )
    settings_ = PlanSettings(horizons=((10, 1.0),))
    result = plan(
        START, START_COV, {"jordan": jordan, "fast": FAST}, settings_, extra=[Schedule("jordan")]
    )
    assert result.schedule == Schedule("fast")
    assert set(result.values) == {Schedule("fast")}
    nothing = plan(START, START_COV, {"jordan": jordan}, settings_)
    assert nothing == Plan(Schedule("jordan"), -math.inf, {})
    with pytest.raises(ValueError, match="at least one"):
        plan(START, START_COV, {}, settings_)


def test_no_usable_horizon_gives_no_plan() -> None:
    result = plan(START, START_COV, {"fast": FAST}, PlanSettings(horizons=((10, 0.0),)))
    assert result.value == -math.inf and result.schedule == Schedule("fast")


# ----------------------------------------------------------------------------- helpers


def test_schedule_describe_and_advance() -> None:
    hold = Schedule("a")
    assert hold.describe() == "a" and hold.advanced() == hold
    two = Schedule("a", 3, "b")
    assert two.describe() == "a for 3 steps, then b"
    assert two.advanced() == Schedule("a", 2, "b")
    assert two.advanced().advanced().advanced() == Schedule("b")


def test_docstring_example_numbers() -> None:
    models = {"slow": SLOW, "fast": FAST}
    short = plan(START, START_COV, models, PlanSettings(horizons=((5, 1.0),), two_phase=False))
    assert (short.schedule.first, round(short.value, 2)) == ("fast", 0.6)


@pytest.mark.parametrize("two_phase", [False, True])
def test_a_belief_that_overflows_is_never_chosen_and_raises_nothing(two_phase: bool) -> None:
    # An unstable learnt model (F = 1.9 I) held for 2,000 steps: its moments overflow.
    unstable = StrategyModel(A=0.9 * np.eye(2), b=np.array([0.1, 0.1]), Q=1e-4 * np.eye(2))
    settings = PlanSettings(horizons=((2000, 1.0),), two_phase=two_phase)
    models = {"unstable": unstable, "slow": SLOW}
    with np.errstate(all="raise"):  # no floating-point warning escapes to the caller
        result = plan(START, START_COV, models, settings)
        alone = plan(START, START_COV, {"unstable": unstable}, settings)
    assert result.values[Schedule("unstable")] == -math.inf
    assert math.isfinite(result.value) and result.schedule != Schedule("unstable")
    if not two_phase:
        assert result.schedule == Schedule("slow")
    assert alone.value == -math.inf and alone.schedule == Schedule("unstable")


def test_a_first_phase_that_leaves_the_range_is_not_valued_by_its_impossible_return() -> None:
    # F = 1.9 I for 400 steps takes the mean to ~1e111 (finite); the slow strategy then
    # contracts it by 0.9^1600 ~ 1e-73: without the bound at the switch the state would still
    # be ~1e38, clipped to 1 at the end, and the schedule would look perfect.
    unstable = StrategyModel(A=0.9 * np.eye(2), b=np.array([0.1, 0.1]), Q=1e-4 * np.eye(2))
    settings = PlanSettings(horizons=((2000, 1.0),), two_phase=True)
    result = plan(START, START_COV, {"unstable": unstable, "slow": SLOW}, settings)
    returned = result.values[Schedule("unstable", 400, "slow")]
    assert returned <= result.values[Schedule("slow")] + 1e-9
    assert result.schedule == Schedule("slow")


def test_the_bound_at_a_switch_changes_nothing_inside_the_range() -> None:
    settings = PlanSettings(horizons=((30, 1.0),), two_phase=True, splits=(0.3,))
    models = {"slow": SLOW, "fast": FAST}
    result = plan(START, START_COV, models, settings)
    mean, cov = iterate(FAST, START, START_COV, 9)
    mean, cov = iterate(SLOW, mean, cov, 21)
    draws = np.random.default_rng(0).multivariate_normal(mean, cov, size=200_000)
    expected = float(np.clip(draws, 0.0, 1.0).min(axis=1).mean())
    assert result.values[Schedule("fast", 9, "slow")] == pytest.approx(expected, abs=0.01)
