"""EngineMemory: the per-session bookkeeping of the rule engine and its snapshot."""

from __future__ import annotations

import dataclasses

import numpy as np

from steerloop.policies.memory import EngineMemory, EngineState
from steerloop.policies.planning import utility_of
from steerloop.policies.schema import BestPredictedAction, PlanAction


def busy_memory() -> EngineMemory:
    return EngineMemory(
        last_switch_step=7,
        rule_last_fired={"a": 3, "b": 7},
        sequential_active=True,
        sequential_rule="b",
        sequential_order=["security", "efficiency"],
        sequential_index=1,
        sequential_best=0.625,
        sequential_stall=2,
        plan_first="fast",
        plan_switch_after=4,
        plan_second="secure",
        explore_steps=5,
        explore_target="fast",
    )


def test_state_has_the_same_fields_and_round_trips() -> None:
    assert [f.name for f in dataclasses.fields(EngineState)] == [
        f.name for f in dataclasses.fields(EngineMemory)
    ]
    memory = busy_memory()
    state = memory.to_state()
    assert state.sequential_order == ("security", "efficiency")  # immutable in the snapshot
    again = EngineMemory.from_state(state)
    assert again == memory
    again.rule_last_fired["c"] = 1
    again.sequential_order.append("functionality")
    assert "c" not in state.rule_last_fired and memory.rule_last_fired == {"a": 3, "b": 7}
    assert EngineMemory.from_state(EngineState()) == EngineMemory()


def test_focus_leave_sequential_and_forget_plan() -> None:
    memory = busy_memory()
    assert memory.focus == "efficiency"
    memory.sequential_index = 2
    assert memory.focus is None  # past the end of the schedule
    memory.leave_sequential()
    assert (memory.sequential_active, memory.sequential_rule, memory.sequential_order) == (
        False,
        None,
        [],
    )
    assert (memory.sequential_best, memory.sequential_stall, memory.focus) == (None, 0, None)
    memory.forget_plan()
    assert (memory.plan_first, memory.plan_switch_after, memory.plan_second) == (None, None, None)
    assert memory.explore_steps == 5 and memory.rule_last_fired == {"a": 3, "b": 7}


def test_utility_of_a_state_is_clipped_and_weighted() -> None:
    objectives = ["a", "b", "c"]
    state = np.array([1.25, 0.5, -0.5])
    assert utility_of(state, PlanAction(utility="min"), objectives) == 0.0
    assert utility_of(state, BestPredictedAction(utility="mean"), objectives) == 0.5
    weighted = PlanAction(utility="weighted", weights={"a": 1.0, "b": 3.0})
    assert utility_of(state, weighted, objectives) == (1.0 * 1.0 + 3.0 * 0.5) / 4.0
    unweighted = PlanAction(utility="weighted", weights={})
    assert utility_of(state, unweighted, objectives) == 0.5  # no weights: the mean
