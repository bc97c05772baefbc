"""Tests of steerloop.simulate.experiment: hypervolume and the experiment runner."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from steerloop.analysis import TrajectoryRecorder, fit_trajectories, read_jsonl
from steerloop.policies.loader import load_preset
from steerloop.policies.schema import Policy
from steerloop.simulate import paper_environment
from steerloop.simulate.experiment import hypervolume, run_experiment
from steerloop.simulate.sequential import sequential_policy


def monte_carlo_hypervolume(points: np.ndarray, samples: int, seed: int) -> float:
    u = np.random.default_rng(seed).uniform(size=(samples, points.shape[1]))
    dominated = np.zeros(samples, dtype=bool)
    for p in points:
        dominated |= (u <= p).all(axis=1)
    return float(dominated.mean())


@pytest.mark.parametrize("n", [1, 5, 40, 150])
def test_hypervolume_3d_matches_monte_carlo(n: int) -> None:
    points = np.random.default_rng(n).uniform(size=(n, 3))
    exact = hypervolume(points)
    estimate = monte_carlo_hypervolume(points, 100_000, seed=7)
    # binomial standard error ≤ sqrt(0.25 / 1e5) ≈ 0.0016: 4 standard errors
    assert exact == pytest.approx(estimate, abs=0.0065)


def test_hypervolume_closed_forms() -> None:
    assert hypervolume(np.array([[0.5, 0.4, 0.2]])) == pytest.approx(0.04)
    # two boxes overlapping in [0, .5]^3
    assert hypervolume(np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.5]])) == pytest.approx(0.375)
    # dominated points change nothing; points below the reference count nothing
    base = np.array([[0.8, 0.6, 0.7]])
    assert hypervolume(np.vstack([base, [[0.1, 0.1, 0.1]]])) == pytest.approx(0.8 * 0.6 * 0.7)
    assert hypervolume(np.array([[0.5, 0.0, 0.5]])) == 0.0
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), reference=np.full(3, 0.5)) == pytest.approx(
        0.125
    )
    assert hypervolume(np.array([[0.3], [0.6]])) == pytest.approx(0.6)
    assert hypervolume(np.zeros((0, 3))) == 0.0
    with pytest.raises(ValueError, match="d <= 3"):
        hypervolume(np.ones((2, 4)))


@settings(max_examples=50, deadline=None)
@given(
    points=hnp.arrays(
        np.float64, st.tuples(st.integers(1, 12), st.just(3)), elements=st.floats(0, 1)
    )
)
def test_hypervolume_properties(points: np.ndarray) -> None:
    """Order-invariant, bounded by the sum of boxes and by the largest box from below."""
    volume = hypervolume(points)
    boxes = points.prod(axis=1)
    assert boxes.max() - 1e-12 <= volume <= boxes.sum() + 1e-12
    assert hypervolume(points[::-1]) == pytest.approx(volume, abs=1e-12)


def test_static_policies_use_common_random_numbers() -> None:
    env = paper_environment()
    a = run_experiment(env, {"AI": "adaptive_integration"}, 30, 20, seed=3)
    b = run_experiment(env, {"FF": "feature_focused", "AI": "adaptive_integration"}, 30, 20, seed=3)
    assert a.policies["AI"] == b.policies["AI"].model_copy(
        update={"seconds": a.policies["AI"].seconds}
    )
    ai, ff = b.policies["AI"], b.policies["FF"]
    assert ai.kind == "static" and ai.controller_updates == 0 and ai.switches_per_session == 0
    assert ai.strategy_share == {"adaptive_integration": 1.0}
    assert ai.min_objective > 0.7 and ai.reached_fraction == 1.0 and ai.steps_to_target is not None
    assert ff.final_means["security"] < 0.1 and ff.steps_to_target is None
    assert ff.severity_alarm_steps > 15  # security ≈ 0 means severity ≈ 1
    assert ai.hypervolume is not None and ff.hypervolume is not None
    assert ai.hypervolume > ff.hypervolume


def test_steered_policy_runs_through_the_controller() -> None:
    env = paper_environment()
    report = run_experiment(env, {"paper": load_preset("paper")}, 6, 25, seed=1, target=0.6)
    outcome = report.policies["paper"]
    assert outcome.kind == "steered"
    assert outcome.controller_updates == 6 * 25
    assert outcome.microseconds_per_update is not None
    assert sum(outcome.strategy_share.values()) == pytest.approx(1.0)
    assert outcome.switches_per_session == pytest.approx(sum(outcome.switches_by_rule.values()))
    assert 0.0 <= outcome.sequential_share <= 1.0


def test_progress_and_recorder() -> None:
    env = paper_environment()
    calls: list[tuple[str, int, int]] = []
    stream = io.StringIO()
    recorder = TrajectoryRecorder(stream, env.objectives)
    run_experiment(
        env,
        {"SF": "security_focused", "seq": sequential_policy()},
        4,
        12,
        seed=0,
        progress=lambda *args: calls.append(args),
        recorder=recorder,
    )
    assert calls[-1] == ("seq", 12, 12) and len(calls) == 24
    log = read_jsonl(io.StringIO(stream.getvalue()))
    assert len(log.records) == 2 * 4 * 12
    assert {r.session.split("/")[0] for r in log.records} == {"SF", "seq"}
    assert fit_trajectories(log).sessions == 8
    static = [r for r in log.records if r.session.startswith("SF/")]
    steered = [r for r in log.records if r.session.startswith("seq/")]
    assert all(r.filtered is None and r.rule is None and r.switched is None for r in static)
    assert all(r.filtered is not None and r.switched is not None for r in steered)
    assert any(r.rule == "one-at-a-time" for r in steered)
    by_session: dict[str, list[str]] = {}
    for record in sorted(steered, key=lambda r: (r.session, r.step)):
        by_session.setdefault(record.session, []).append(record.strategy)
    for record in steered:
        run = by_session[record.session]
        if record.step + 1 < len(run):  # a switch after step t shows in step t + 1's strategy
            assert record.switched == (run[record.step] != run[record.step + 1])


def test_record_sessions_limits_what_is_recorded_but_not_the_outcome() -> None:
    env = paper_environment()
    policies = {"AI": "adaptive_integration", "paper": load_preset("paper")}
    stream = io.StringIO()
    recorder = TrajectoryRecorder(stream, env.objectives)
    limited = run_experiment(env, policies, 5, 10, seed=1, recorder=recorder, record_sessions=2)
    full = run_experiment(env, policies, 5, 10, seed=1)
    sessions = {r.session for r in read_jsonl(io.StringIO(stream.getvalue())).records}
    assert sessions == {"AI/0000", "AI/0001", "paper/0000", "paper/0001"}
    for name in policies:
        assert limited.policies[name].final_means == pytest.approx(
            full.policies[name].final_means, rel=1e-12
        )


def test_policy_environment_mismatch_is_reported() -> None:
    env = paper_environment()
    bad = Policy.model_validate(
        {
            "objectives": ["security", "efficiency", "functionality"],
            "strategies": {"unknown_strategy": {"prompt": "x"}},
            "initial": "unknown_strategy",
        }
    )
    with pytest.raises(ValueError, match="does not simulate"):
        run_experiment(env, {"bad": bad}, 2, 2, seed=0)
    other = Policy.model_validate(
        {
            "objectives": ["a"],
            "strategies": {"feature_focused": {"prompt": "x"}},
            "initial": "feature_focused",
        }
    )
    with pytest.raises(ValueError, match="same objectives"):
        run_experiment(env, {"other": other}, 2, 2, seed=0)
    with pytest.raises(KeyError):
        run_experiment(env, {"nope": "nope"}, 2, 2, seed=0)
    with pytest.raises(ValueError, match=">= 1"):
        run_experiment(env, {}, 0, 2, seed=0)
