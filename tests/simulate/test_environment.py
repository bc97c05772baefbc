"""Tests of steerloop.simulate.environment: Euler–Maruyama stepping, boundary rule, shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from steerloop.errors import ShapeError
from steerloop.simulate.environment import Environment, StrategyDynamics

A = np.array([[-0.5, 0.1, 0.0], [0.0, -0.3, 0.05], [0.1, 0.0, -0.8]])
D = np.array([[0.004, 0.001, 0.0], [0.001, 0.002, -0.0005], [0.0, -0.0005, 0.003]])


def make_env(**kwargs: object) -> Environment:
    strategies = {
        "inside": StrategyDynamics.from_equilibrium(A, [0.5, 0.4, 0.6], D),
        "outside": StrategyDynamics.from_equilibrium(
            -np.eye(3), [-0.2, 0.5, 1.3], 1e-6 * np.eye(3)
        ),
    }
    options: dict[str, object] = {
        "objectives": ("a", "b", "c"),
        "strategies": strategies,
        "noise_sd": 0.02,
        "initial_mean": (0.3, 0.5, 0.7),
        "initial_std": 0.1,
    }
    options.update(kwargs)
    return Environment.model_validate(options)


def test_shapes_of_reset_step_observe() -> None:
    env = make_env()
    rng = np.random.default_rng(0)
    x = env.reset(7, rng)
    assert x.shape == (7, 3)
    assert env.step(x, "inside", rng).shape == (7, 3)
    assert env.observe(x, rng).shape == (7, 3)
    assert env.drift(x, 0).shape == (7, 3)
    assert env.reset(0, rng).shape == (0, 3)


@pytest.mark.parametrize(
    "strategies",
    ["inside", 0, ["inside", "outside", "inside"], [0, 1, 0], np.array([0, 1, 0])],
)
def test_strategy_arguments(strategies: object) -> None:
    env = make_env()
    x = np.full((3, 3), 0.5)
    mu = env.drift(x, strategies)  # type: ignore[arg-type]
    expected_first = A @ x[0] + np.asarray(env.strategies["inside"].b)
    np.testing.assert_allclose(mu[0], expected_first)


def test_per_session_strategies_use_their_own_drift() -> None:
    env = make_env()
    x = np.full((2, 3), 0.5)
    mu = env.drift(x, ["inside", "outside"])
    np.testing.assert_allclose(mu[1], -(x[1] - np.array([-0.2, 0.5, 1.3])))


def test_bad_arguments() -> None:
    env = make_env()
    rng = np.random.default_rng(0)
    with pytest.raises(ShapeError):
        env.step(np.zeros((4, 2)), "inside", rng)
    with pytest.raises(ShapeError):
        env.step(np.zeros((4, 3)), ["inside"], rng)
    with pytest.raises(KeyError, match="unknown strategy 'nope'"):
        env.step(np.zeros((4, 3)), "nope", rng)
    with pytest.raises(IndexError):
        env.step(np.zeros((2, 3)), [0, 5], rng)


def test_one_step_moments_match_euler_maruyama() -> None:
    """E[x'] = x + (Ax + b)Δt and Cov[x'] = D Δt away from the boundary (Monte Carlo)."""
    env = make_env(dt=0.5)
    rng = np.random.default_rng(1)
    n = 40_000
    x = np.tile([0.45, 0.5, 0.55], (n, 1))
    nxt = env.step(x, "inside", rng)
    b = np.asarray(env.strategies["inside"].b)
    np.testing.assert_allclose(nxt.mean(axis=0), x[0] + (A @ x[0] + b) * 0.5, atol=1e-3)
    np.testing.assert_allclose(np.cov(nxt.T), D * 0.5, atol=6e-5)


def test_boundary_rule_clips_and_pins_at_the_face() -> None:
    """Clipping: a drift into the face keeps the state exactly on it."""
    env = make_env()
    rng = np.random.default_rng(2)
    x = env.reset(50, rng)
    for _ in range(20):
        x = env.step(x, "outside", rng)
    assert (x[:, 0] == 0.0).all()
    assert (x[:, 2] == 1.0).all()
    np.testing.assert_allclose(x[:, 1], 0.5, atol=0.01)


def test_observe_adds_noise_and_clips() -> None:
    env = make_env(noise_sd=(0.0, 0.05, 0.5))
    rng = np.random.default_rng(3)
    x = np.tile([0.2, 0.5, 0.99], (20_000, 1))
    y = env.observe(x, rng)
    assert (y[:, 0] == 0.2).all()
    assert abs(y[:, 1].std() - 0.05) < 0.002
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert (y[:, 2] == 1.0).mean() > 0.4


@settings(max_examples=60, deadline=None)
@given(
    state=hnp.arrays(np.float64, (5, 3), elements=st.floats(0.0, 1.0)),
    scale=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_step_stays_in_the_box(state: np.ndarray, scale: float, seed: int) -> None:
    env = Environment(
        objectives=("a", "b", "c"),
        strategies={
            "s": StrategyDynamics.from_equilibrium(-scale * np.eye(3), [2.0, -1.0, 0.5], np.eye(3))
        },
    )
    out = env.step(state, "s", np.random.default_rng(seed))
    assert out.shape == (5, 3)
    assert ((out >= 0.0) & (out <= 1.0)).all()


def test_reproducible_for_a_seed() -> None:
    env = make_env()
    first = env.rollout("inside", 10, 20, np.random.default_rng(42))
    second = env.rollout("inside", 10, 20, np.random.default_rng(42))
    other = env.rollout("inside", 10, 20, np.random.default_rng(43))
    np.testing.assert_array_equal(first.scores, second.scores)
    np.testing.assert_array_equal(first.states, second.states)
    assert not np.array_equal(first.scores, other.scores)


def test_rollout_layout() -> None:
    env = make_env()
    run = env.rollout("outside", 4, 6, np.random.default_rng(0))
    assert run.states.shape == run.scores.shape == (6, 4, 3)
    assert run.strategies.shape == (6, 4)
    assert (run.strategies == env.strategy_index("outside")).all()
    with pytest.raises(ValueError):
        env.rollout("inside", 4, 0, np.random.default_rng(0))


def test_singular_diffusion_is_accepted() -> None:
    """A rank-one covariance (perfectly correlated noise) is factored by eigen-square-root."""
    v = np.array([1.0, -1.0, 0.0]) * 0.05
    env = Environment(
        objectives=("a", "b", "c"),
        strategies={
            "s": StrategyDynamics.from_equilibrium(-np.eye(3), [0.5, 0.5, 0.5], np.outer(v, v))
        },
    )
    rng = np.random.default_rng(5)
    nxt = env.step(np.full((5000, 3), 0.5), "s", rng)
    delta = nxt - 0.5
    np.testing.assert_allclose(delta[:, 0], -delta[:, 1], atol=1e-12)
    np.testing.assert_array_equal(delta[:, 2], 0.0)


@pytest.mark.parametrize(
    ("diffusion", "message"),
    [
        ([[1.0, 0.0], [0.5, 1.0]], "symmetric"),
        ([[1.0, 2.0], [2.0, 1.0]], "positive semi-definite"),
        ([[1.0]], "covariance"),
    ],
)
def test_strategy_validation(diffusion: list[list[float]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StrategyDynamics(A=[[-1.0, 0.0], [0.0, -1.0]], b=[0.5, 0.5], diffusion=diffusion)


def test_environment_validation() -> None:
    dyn = StrategyDynamics.from_equilibrium(-np.eye(2), [0.5, 0.5], 0.01 * np.eye(2))
    with pytest.raises(ValidationError, match="dimension"):
        Environment(objectives=("a", "b", "c"), strategies={"s": dyn})
    with pytest.raises(ValidationError, match="unique"):
        Environment(objectives=("a", "a"), strategies={"s": dyn})
    with pytest.raises(ValidationError, match="1 or 2 values"):
        Environment(objectives=("a", "b"), strategies={"s": dyn}, initial_mean=(0.1, 0.2, 0.3))
    with pytest.raises(ValidationError, match="standard deviations"):
        Environment(objectives=("a", "b"), strategies={"s": dyn}, noise_sd=-0.1)


def test_json_round_trip() -> None:
    env = make_env()
    again = Environment.model_validate_json(env.model_dump_json())
    assert again == env
    a = env.rollout("inside", 3, 5, np.random.default_rng(9)).scores
    b = again.rollout("inside", 3, 5, np.random.default_rng(9)).scores
    np.testing.assert_array_equal(a, b)


def test_equilibrium() -> None:
    env = make_env()
    np.testing.assert_allclose(env.equilibrium("inside"), [0.5, 0.4, 0.6])
    singular = StrategyDynamics(
        A=[[0.0, 0.0], [0.0, -1.0]], b=[0.0, 0.5], diffusion=[[0.0, 0.0], [0.0, 0.0]]
    )
    assert singular.equilibrium is None
