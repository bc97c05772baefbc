"""Tests of steerloop.simulate.generated: an environment for any policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerloop.policies.loader import load_preset
from steerloop.policies.schema import Policy
from steerloop.simulate import environment_for, paper_environment, policy_environment
from steerloop.simulate.experiment import run_experiment
from steerloop.simulate.generated import fits_paper_environment


def two_objective_policy() -> Policy:
    return Policy.model_validate(
        {
            "name": "docs",
            "objectives": ["accuracy", "brevity"],
            "strategies": {
                "thorough": {"prompt": "Be thorough.", "emphasis": {"accuracy": 1.0}},
                "terse": {"prompt": "Be brief.", "emphasis": {"brevity": 2.0, "accuracy": 0.5}},
                "plain": {"prompt": "Answer."},
            },
            "initial": "thorough",
            "rules": [
                {
                    "name": "too-long",
                    "when": {"metric": "objective.brevity", "below": 0.5},
                    "then": {"switch_to": "terse"},
                }
            ],
        }
    )


def test_equilibria_follow_the_emphasis() -> None:
    env = policy_environment(two_objective_policy(), seed=0, jitter=0.0)
    assert env.objectives == ("accuracy", "brevity")
    assert env.strategy_names == ("thorough", "terse", "plain")
    # emphasis normalised by its maximum: low + (high - low) * e with low 0.3, high 0.85
    assert env.equilibrium("thorough") == pytest.approx([0.85, 0.3], abs=1e-9)
    assert env.equilibrium("terse") == pytest.approx([0.3 + 0.55 * 0.25, 0.85], abs=1e-9)
    assert env.equilibrium("plain") == pytest.approx([0.85, 0.85], abs=1e-9)  # no emphasis: equal


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    coupling=st.floats(0.0, 0.9),
    rate_max=st.floats(0.2, 1.0),
)
def test_drift_is_stable_by_gershgorin(d: int, seed: int, coupling: float, rate_max: float) -> None:
    names = [f"o{i}" for i in range(d)]
    policy = Policy.model_validate(
        {
            "objectives": names,
            "strategies": {f"s{i}": {"prompt": "x", "emphasis": {names[i]: 1.0}} for i in range(d)},
            "initial": "s0",
        }
    )
    rate_min = min(0.1, rate_max)
    env = policy_environment(
        policy, seed=seed, coupling=coupling, rate_min=rate_min, rate_max=rate_max
    )
    for dynamics in env.strategies.values():
        a = np.asarray(dynamics.A)
        rate = -a[0, 0]
        assert np.allclose(np.diag(a), -rate)
        eig = np.linalg.eigvals(a)
        assert eig.real.max() <= -rate * (1.0 - coupling) + 1e-12
        assert np.abs(1.0 + eig).max() < 1.0  # the Euler map contracts


def test_seeded_and_validated() -> None:
    policy = two_objective_policy()
    assert policy_environment(policy, seed=4) == policy_environment(policy, seed=4)
    assert policy_environment(policy, seed=4) != policy_environment(policy, seed=5)
    with pytest.raises(ValueError, match="Euler"):
        policy_environment(policy, rate_max=1.8, coupling=0.2)
    with pytest.raises(ValueError, match="low"):
        policy_environment(policy, low=0.9, high=0.2)
    with pytest.raises(ValueError, match="coupling"):
        policy_environment(policy, coupling=1.0)


def test_environment_for_picks_paper_when_the_policy_fits() -> None:
    paper = load_preset("paper")
    assert fits_paper_environment(paper)
    assert environment_for(paper) == paper_environment()
    assert environment_for(paper, "policy", seed=1) == policy_environment(paper, seed=1)
    custom = two_objective_policy()
    assert not fits_paper_environment(custom)
    assert environment_for(custom, seed=2) == policy_environment(custom, seed=2)
    with pytest.raises(ValueError, match="paper environment simulates"):
        environment_for(custom, "paper")


def test_any_policy_can_be_steered_on_its_environment() -> None:
    policy = two_objective_policy()
    env = environment_for(policy, seed=0)
    report = run_experiment(env, {"docs": policy, "thorough": "thorough"}, 6, 40, seed=3)
    steered, static = report.policies["docs"], report.policies["thorough"]
    assert steered.kind == "steered" and steered.controller_updates == 6 * 40
    # the static "thorough" strategy settles with brevity near its low equilibrium (~0.3);
    # the policy's rule moves sessions to "terse", which raises brevity
    assert static.final_means["brevity"] < 0.45
    assert steered.final_means["brevity"] > static.final_means["brevity"] + 0.1
    assert steered.switches_by_rule.get("too-long", 0.0) > 0.0
