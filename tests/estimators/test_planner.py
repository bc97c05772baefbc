"""Horizon planner (steerloop.estimators.planner): closed forms, Monte Carlo, choices."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from steerloop.estimators.planner import (
    Plan,
    PlanRequest,
    PlanSettings,
    Schedule,
    StrategyModel,
    _Dynamics,
    _inverses,
    default_horizons,
    equilibrium_covariance,
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


def iterate(
    model: StrategyModel, mean: FloatArray, cov: FloatArray, steps: int
) -> tuple[FloatArray, FloatArray]:
    """m ← F m + c, C ← F C Fᵀ + Q, n times, then + (I − Fⁿ) Cov(x̂*) (I − Fⁿ)ᵀ."""
    d = mean.shape[0]
    F = np.eye(d) + model.A * model.dt
    offset = model.b * model.dt
    power = np.eye(d)
    for _ in range(steps):
        mean = F @ mean + offset
        cov = F @ cov @ F.T + model.Q
        power = F @ power
    if model.equilibrium_covariance is not None:
        gap = np.eye(d) - power
        cov = cov + gap @ model.equilibrium_covariance @ gap.T
    return mean, cov


def propagate(
    models: list[StrategyModel],
    index: list[int],
    mean: FloatArray,
    cov: FloatArray,
    steps: list[int],
) -> tuple[FloatArray, FloatArray]:
    count = len(index)
    return _Dynamics(models).propagate(
        np.array(index, dtype=np.intp),
        np.broadcast_to(mean, (count, mean.shape[0])),
        np.broadcast_to(cov, (count, *cov.shape)),
        np.array(steps, dtype=np.int64),
    )


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


# ----------------------------------------------------------------------------- closed form

PROPAGATION_MODELS = {
    "diagonal": StrategyModel(
        A=np.diag([-0.3, -0.8]), b=np.array([0.2, 0.4]), Q=np.diag([1e-3, 2e-3])
    ),
    "non-normal": StrategyModel(
        A=np.array([[-0.3, 0.4], [0.05, -0.5]]),
        b=np.array([0.2, 0.15]),
        Q=np.array([[4e-3, 1e-3], [1e-3, 3e-3]]),
        equilibrium_covariance=np.array([[0.01, 0.003], [0.003, 0.02]]),
    ),
    "complex pair, dt 0.5": StrategyModel(
        A=np.array([[-0.3, -0.5], [0.5, -0.3]]), b=np.array([0.3, 0.0]), Q=5e-3 * np.eye(2), dt=0.5
    ),
    "overshoot": StrategyModel(A=np.diag([-1.6, -0.4]), b=np.array([0.8, 0.2]), Q=1e-3 * np.eye(2)),
    "unit eigenvalue": StrategyModel(  # A has a zero eigenvalue: F = 1 in that direction
        A=np.array([[0.0, 0.0], [0.0, -0.5]]), b=np.array([0.01, 0.25]), Q=1e-3 * np.eye(2)
    ),
    "three objectives": StrategyModel(
        A=np.array([[-0.4, 0.1, 0.0], [0.0, -0.3, 0.2], [0.1, 0.0, -0.6]]),
        b=np.array([0.2, 0.1, 0.3]),
        Q=np.diag([1e-3, 2e-3, 3e-3]),
        equilibrium_covariance=1e-3 * np.eye(3),
    ),
}


@pytest.mark.parametrize("name", list(PROPAGATION_MODELS))
def test_propagate_equals_direct_iteration(name: str) -> None:
    """Eq. (1) in eigen form against n explicit steps of mean and covariance (rel 1e-10)."""
    model = PROPAGATION_MODELS[name]
    d = int(model.b.shape[0])
    rng = np.random.default_rng(3)
    mean = rng.uniform(0.0, 1.0, size=(d,))
    root = rng.normal(scale=0.1, size=(d, d))
    cov = root @ root.T
    steps = [0, 1, 2, 7, 40]
    got_mean, got_cov = propagate([model], [0] * len(steps), mean, cov, steps)
    for k, n in enumerate(steps):
        want_mean, want_cov = iterate(model, mean, cov, n)
        scale = max(1.0, float(np.abs(want_mean).max()))
        np.testing.assert_allclose(got_mean[k], want_mean, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(
            got_cov[k], want_cov, rtol=0, atol=1e-10 * float(np.abs(want_cov).max())
        )
        assert np.array_equal(got_cov[k], got_cov[k].T)


def test_propagate_picks_each_rows_strategy_and_steps() -> None:
    models = list(PROPAGATION_MODELS.values())[:4]
    mean, cov = np.array([0.3, 0.6]), 0.02 * np.eye(2)
    index, steps = [3, 0, 2, 1, 0], [5, 9, 1, 0, 30]
    got_mean, got_cov = propagate(models, index, mean, cov, steps)
    for k, (i, n) in enumerate(zip(index, steps, strict=True)):
        want_mean, want_cov = iterate(models[i], mean, cov, n)
        np.testing.assert_allclose(got_mean[k], want_mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got_cov[k], want_cov, rtol=0, atol=1e-12)


def test_repeated_rows_and_a_shared_belief_agree_with_direct_iteration() -> None:
    """Rows that repeat a (strategy, steps) pair share one transition; each row still gets
    its own belief, and the shared-belief form gives every row the same as propagate."""
    models = list(PROPAGATION_MODELS.values())[:3]
    dynamics = _Dynamics(models)
    mean, cov = np.array([0.3, 0.6]), 0.02 * np.eye(2)
    index = np.array([2, 0, 2, 1, 0, 2], dtype=np.intp)
    steps = np.array([7, 3, 7, 0, 3, 12], dtype=np.int64)
    means = mean + 0.05 * np.arange(6)[:, None]  # a different belief per row
    got_mean, got_cov = dynamics.propagate(index, means, np.broadcast_to(cov, (6, 2, 2)), steps)
    shared_mean, shared_cov = dynamics.propagate_shared(index, mean, cov, steps)
    for k, (i, n) in enumerate(zip(index.tolist(), steps.tolist(), strict=True)):
        want_mean, want_cov = iterate(models[i], means[k], cov, n)
        np.testing.assert_allclose(got_mean[k], want_mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got_cov[k], want_cov, rtol=0, atol=1e-12)
        want_mean, want_cov = iterate(models[i], mean, cov, n)
        np.testing.assert_allclose(shared_mean[k], want_mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(shared_cov[k], want_cov, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 4),
    steps=st.integers(0, 60),
    radius=st.floats(0.05, 0.99),
)
def test_propagate_equals_direct_iteration_for_random_stable_maps(
    seed: int, d: int, steps: int, radius: float
) -> None:
    """F = T diag(μ) T⁻¹ with |μ| ≤ radius (complex pairs included) and cond(T) ≤ 4."""
    rng = np.random.default_rng(seed)
    blocks = []
    size = 0
    while size < d:
        if d - size >= 2 and rng.random() < 0.5:
            r, angle = radius * rng.uniform(0.2, 1.0), rng.uniform(0.1, 3.0)
            c, s = r * math.cos(angle), r * math.sin(angle)
            blocks.append(np.array([[c, -s], [s, c]]))
            size += 2
        else:
            blocks.append(np.array([[radius * rng.uniform(-1.0, 1.0)]]))
            size += 1
    J = np.zeros((d, d))
    start = 0
    for block in blocks:
        J[start : start + len(block), start : start + len(block)] = block
        start += len(block)
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    T = q1 @ np.diag(rng.uniform(0.5, 2.0, d)) @ q2
    F = T @ J @ np.linalg.inv(T)
    root = rng.normal(scale=0.05, size=(d, d))
    model = StrategyModel(A=F - np.eye(d), b=rng.uniform(0.0, 0.2, d), Q=root @ root.T)
    mean, cov = rng.uniform(0.0, 1.0, d), 0.01 * np.eye(d)
    got_mean, got_cov = propagate([model], [0], mean, cov, [steps])
    want_mean, want_cov = iterate(model, mean, cov, steps)
    np.testing.assert_allclose(got_mean[0], want_mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        got_cov[0], want_cov, rtol=0, atol=1e-9 * max(1.0, np.abs(want_cov).max())
    )
    assert np.linalg.eigvalsh(got_cov[0]).min() >= -1e-12


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


def test_one_singular_eigenbasis_does_not_fail_the_batch() -> None:
    """The eigenbases are inverted as one batch; a singular one is flagged, the others are
    still inverted (and a batch of models plans each as it would alone)."""
    good = np.array([[2.0, 1.0], [0.0, 1.0]], dtype=np.complex128)
    singular = np.array([[1.0, 1.0], [1.0, 1.0]], dtype=np.complex128)
    inverse, invertible = _inverses(np.stack([good, singular, good]))
    assert invertible.tolist() == [True, False, True]
    np.testing.assert_allclose(inverse[0] @ good, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(inverse[2] @ good, np.eye(2), atol=1e-12)
    models = [m for m in PROPAGATION_MODELS.values() if m.b.shape == (2,)]
    together = _Dynamics(models)
    for i, model in enumerate(models):
        alone = _Dynamics([model])
        assert together.ok[i] == alone.ok[0]
        np.testing.assert_allclose(
            np.sort_complex(together.values[i]), np.sort_complex(alone.values[0]), rtol=1e-12
        )


def test_no_usable_horizon_gives_no_plan() -> None:
    result = plan(START, START_COV, {"fast": FAST}, PlanSettings(horizons=((10, 0.0),)))
    assert result.value == -math.inf and result.schedule == Schedule("fast")


# ----------------------------------------------------------------------------- helpers


def test_equilibrium_covariance_is_the_delta_method() -> None:
    """Cov(x̂*) = A⁻¹ (φ*ᵀ K φ*) C_e A⁻ᵀ against 100,000 draws vec Θ ~ N(Θ̂, C_e ⊗ K) of
    x* = −A⁻¹ b (small covariance, so the linearisation holds to a few per cent)."""
    A = np.array([[-0.5, 0.1], [0.05, -0.3]])
    b = np.array([0.3, 0.2])
    C = np.array([[4e-4, 1e-4], [1e-4, 3e-4]])
    root = np.random.default_rng(0).normal(size=(3, 3))
    K = 0.05 * root @ root.T + 0.01 * np.eye(3)
    covariance = equilibrium_covariance(A, b, C, K)
    assert covariance is not None
    rng = np.random.default_rng(1)
    theta = np.vstack([A.T, b])
    draws = (
        theta
        + np.linalg.cholesky(K) @ rng.standard_normal((100_000, 3, 2)) @ np.linalg.cholesky(C).T
    )
    x_star = -np.linalg.solve(draws[:, :2].transpose(0, 2, 1), draws[:, 2][:, :, None])[:, :, 0]
    sample = np.cov(x_star.T)
    np.testing.assert_allclose(covariance, sample, rtol=0.05, atol=0.05 * np.abs(sample).max())
    np.testing.assert_array_equal(covariance, covariance.T)
    assert equilibrium_covariance(np.zeros((2, 2)), b, C, K) is None


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
