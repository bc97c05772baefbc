"""SessionCore: one step on checked inputs — counters, progress, horizon, plan diagnostics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from controller_helpers import OBJECTIVES, make_policy

from steerloop import load_preset
from steerloop.controller import step as step_module
from steerloop.controller.planning import StepPlanning
from steerloop.controller.pools import FleetPool
from steerloop.controller.settings import ModelSettings
from steerloop.controller.step import IMPROVEMENT, SessionCore, StepInput
from steerloop.policies.engine import PolicyEngine
from steerloop.policies.planning import REVERSAL_WINDOW
from steerloop.policies.schema import Policy

NAN = math.nan


def step_input(values: list[float], **kwargs: Any) -> StepInput:
    array = np.array(values, dtype=np.float64)
    missing = tuple(name for name, v in zip(OBJECTIVES, values, strict=True) if math.isnan(v))
    defaults: dict[str, Any] = {
        "missing": missing,
        "unknown": 0,
        "severity": None,
        "scorer_errors": 0,
        "steps_left": None,
    }
    defaults.update(kwargs)
    return StepInput(values=array, **defaults)


def core_for(policy: Policy, session_id: str = "s") -> tuple[SessionCore, PolicyEngine]:
    return SessionCore(session_id, policy, ModelSettings.from_policy(policy)), PolicyEngine(policy)


def test_counters_and_last_scores() -> None:
    core, engine = core_for(make_policy())
    first = core.step(step_input([0.5, NAN, 0.7], unknown=2, scorer_errors=1), engine, None)
    second = core.step(step_input([0.6, 0.4, 0.7], unknown=1), engine, None)
    assert (core.step_count, core.strategy_steps, core.scorer_errors, core.unknown_scores) == (
        2,
        2,
        1,
        3,
    )
    assert core.last_scores == {"security": 0.6, "efficiency": 0.4, "functionality": 0.7}
    assert first.diagnostics["score.efficiency"] is None and first.missing == ("efficiency",)
    assert (second.step, second.session_id, second.previous_strategy) == (2, "s", "balanced")
    assert second.diagnostics["scores.unknown"] == 3.0
    assert second.diagnostics["errors.scorer"] == 1.0


def test_progress_stall_counts_steps_without_improvement() -> None:
    core, engine = core_for(make_policy(rules=[], estimation={"measurement_noise": 1e-8}))
    levels = [0.5, 0.5, 0.5, 0.5 + IMPROVEMENT / 2, 0.6, 0.6, 0.55]
    stalls = []
    for level in levels:
        decision = core.step(step_input([level, 0.9, 0.9]), engine, None)
        stalls.append(decision.diagnostics["progress.stall"])
    # near-exact measurements: objective.min follows the scores; a rise of less than
    # IMPROVEMENT is no progress, a fall neither.
    assert stalls == [0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0]
    assert core.best_worst == pytest.approx(0.6, abs=1e-6)


def test_a_switch_resets_strategy_steps() -> None:
    core, engine = core_for(make_policy(switching={"min_dwell": 0}))
    decisions = [core.step(step_input([0.1, 0.8, 0.8]), engine, None) for _ in range(6)]
    assert [d.changed for d in decisions] == [False] * 4 + [True, False]  # warm-up: 5 steps
    assert core.strategy == "secure" and core.strategy_steps == 1


def test_the_seed_depends_on_the_session_id_only() -> None:
    policy = make_policy()
    assert core_for(policy, "a")[0].seed == core_for(make_policy(name="other"), "a")[0].seed
    assert core_for(policy, "a")[0].seed != core_for(policy, "b")[0].seed
    assert 0 <= core_for(policy, "a")[0].seed < 2**64


@pytest.mark.parametrize(
    ("horizon", "told", "step", "expected"),
    [
        (None, None, 7, None),
        (None, 12, 7, 12.0),
        (50, None, 7, 43.0),
        (50, 3, 7, 3.0),  # told beats the policy's horizon
        (5, None, 5, 0.0),  # the horizon's last step
        (5, None, 7, 0.0),  # past the horizon: nothing left, not negative
    ],
)
def test_plan_horizon_is_told_or_from_the_policys_horizon(
    horizon: int | None, told: int | None, step: int, expected: float | None
) -> None:
    policy = load_preset("predictive").model_copy(update={"horizon": horizon})
    core, engine = core_for(policy)
    for _ in range(step - 1):
        core.step(step_input([0.5, 0.6, 0.7]), engine, None)
    decision = core.step(step_input([0.5, 0.6, 0.7], steps_left=told), engine, None)
    assert decision.diagnostics["plan.horizon"] == expected


@pytest.mark.parametrize(
    ("dwell", "shortest"), [(0, REVERSAL_WINDOW), (1, REVERSAL_WINDOW), (9, 9)]
)
def test_the_planners_shortest_phase_is_the_reversal_window_or_the_dwell(
    monkeypatch: pytest.MonkeyPatch, dwell: int, shortest: int
) -> None:
    """A two-phase plan whose first phase is shorter than the reversal window would go
    straight back (A -> B -> A): the planner never proposes one."""
    seen: list[int] = []

    class Spy(StepPlanning):
        def __init__(self, *args: Any, min_phase: int = 1, **kwargs: Any) -> None:
            seen.append(min_phase)
            super().__init__(*args, min_phase=min_phase, **kwargs)

    monkeypatch.setattr(step_module, "StepPlanning", Spy)
    policy = load_preset("predictive")
    policy = policy.model_copy(
        update={"switching": policy.switching.model_copy(update={"min_dwell": dwell})}
    )
    core, engine = core_for(policy)
    core.step(step_input([0.5, 0.6, 0.7], steps_left=20), engine, None)
    assert seen == [shortest]


def test_plan_diagnostics_only_with_a_plan_rule() -> None:
    paper_core, paper = core_for(load_preset("paper"))
    decision = paper_core.step(step_input([0.5, 0.6, 0.7]), paper, None)
    assert [
        decision.diagnostics[f"plan.{k}"] for k in ("strategy", "value", "margin", "horizon")
    ] == [None] * 4
    core, engine = core_for(load_preset("predictive"))
    rng = np.random.default_rng(0)
    for _ in range(80):
        levels = np.clip(np.array([0.6, 0.5, 0.7]) + 0.05 * rng.standard_normal(3), 0, 1)
        decision = core.step(step_input(levels.tolist(), steps_left=30), engine, None)
    d = decision.diagnostics
    assert core.strategy in {name for name, m in core.models.drift_models.items() if m.count >= 8}
    assert d["plan.strategy"] in engine.policy.strategies
    value, margin = d["plan.value"], d["plan.margin"]
    assert isinstance(value, float) and 0.0 <= value <= 1.0
    assert isinstance(margin, float) and margin >= 0.0  # the best plan is at least the hold
    assert d["plan.horizon"] == 30.0


def test_a_learnt_transition_waits_for_the_pool_until_the_step_is_final() -> None:
    policy = make_policy(fleet={"pool": True})
    core, engine = core_for(policy)
    pool = FleetPool(3)

    def step(levels: list[float], session: Any = core) -> Any:
        decision = session.step(step_input(levels), engine, pool)
        if session.pending is not None:  # what Session does once the step is final
            session.pending.add_to(pool)
            session.pending = None
        return decision

    step([0.5, 0.6, 0.7])
    assert (pool.sessions, pool.transitions("balanced"), core.contributed) == (0, 0.0, False)
    decision = core.step(step_input([0.55, 0.6, 0.7]), engine, pool)
    assert decision.diagnostics["pool.transitions"] == 0.0  # read before this step's transition
    assert pool.transitions("balanced") == 0.0 and core.pending is not None  # not added yet
    core.pending.add_to(pool)
    core.pending = None
    assert (pool.sessions, pool.transitions("balanced"), core.contributed) == (1, 1.0, True)
    step([0.6, 0.6, 0.7])
    assert pool.sessions == 1  # a session counts once
    other, _ = core_for(policy, "other")
    step([0.5, 0.6, 0.7], other)
    step([0.5, 0.6, 0.7], other)
    assert pool.sessions == 2


def test_from_state_round_trip_and_fallback_for_a_missing_strategy() -> None:
    policy = make_policy(switching={"min_dwell": 0})
    core, engine = core_for(policy)
    for _ in range(7):
        core.step(step_input([0.1, 0.8, 0.8]), engine, None)
    state = core.to_state()
    again = SessionCore.from_state(state, policy, ModelSettings.from_policy(policy))
    assert again.to_state() == state
    assert again.seed == core.seed
    reduced = make_policy(rules=[], strategies={"balanced": {"prompt": "b"}})
    core.memory.plan_first = "secure"
    fallback = SessionCore.from_state(core.to_state(), reduced, ModelSettings.from_policy(reduced))
    assert (fallback.strategy, fallback.strategy_steps) == ("balanced", 0)
    assert fallback.memory.plan_first is None and not fallback.memory.sequential_active
    assert fallback.step_count == 7


def test_raw_and_base64_snapshots_hold_the_same_numbers() -> None:
    core, engine = core_for(make_policy())
    for i in range(8):
        core.step(step_input([0.5 + 0.01 * i, 0.6, 0.7]), engine, None)
    raw, text = core.to_state(arrays="raw"), core.to_state()
    assert isinstance(raw.models["kalman"]["mean"], np.ndarray)
    assert isinstance(text.models["kalman"]["mean"], dict)
    assert raw.model_dump_json() == text.model_dump_json()
