"""Rule engine semantics on hand-built diagnostics: priority, dwell, cooldown, actions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from steerloop.policies.metrics import DiagnosticValue
from steerloop.estimators.interference import interference_order
from steerloop.policies.engine import EngineContext, EngineMemory, PolicyEngine
from steerloop.policies.loader import load_preset
from steerloop.policies.schema import Policy, validate_policy

OBJECTIVES = ["security", "efficiency", "functionality"]
STRATEGIES = {
    "security_focused": {"prompt": "secure", "emphasis": {"security": 1.0}},
    "efficiency_focused": {"prompt": "fast", "emphasis": {"efficiency": 1.0}},
    "feature_focused": {"prompt": "features", "emphasis": {"functionality": 1.0}},
    "adaptive_integration": {
        "prompt": "balance {objectives}",
        "emphasis": {"security": 1.0, "efficiency": 1.0, "functionality": 1.0},
    },
}


def make_policy(rules: list[dict[str, Any]], **extra: Any) -> Policy:
    return validate_policy(
        Policy.model_validate(
            {
                "objectives": OBJECTIVES,
                "strategies": STRATEGIES,
                "initial": "adaptive_integration",
                "rules": rules,
                **extra,
            }
        )
    )


def diag(**values: DiagnosticValue) -> dict[str, DiagnosticValue]:
    base: dict[str, DiagnosticValue] = {
        "step": 10.0,
        "interference.min": None,
        "severity.value": 0.1,
        "severity.phase": "subcritical",
        "drift.rate": 0.5,
        "drift.regime": "exponential",
    }
    for name in OBJECTIVES:
        base[f"objective.{name}"] = 0.5
    for key, value in values.items():
        base[key.replace("__", ".")] = value
    return base


def context(step: int, strategy: str, **kwargs: Any) -> EngineContext:
    defaults: dict[str, Any] = {
        "warmed_up": True,
        "filtered": np.full(3, 0.5),
        "equilibria": {},
        "estimated": frozenset(),
        "interference": None,
    }
    defaults.update(kwargs)
    return EngineContext(step=step, strategy=strategy, **defaults)


SEVERITY_RULE = {
    "name": "runaway",
    "priority": 100,
    "when": {"metric": "severity.value", "above": 0.7},
    "then": {"switch_to": "security_focused"},
}


def test_first_matching_rule_by_priority_acts_and_reason_has_numbers() -> None:
    policy = make_policy(
        [
            {
                "name": "overshoot",
                "when": {"metric": "drift.rate", "above": 1.5},
                "then": {"switch_to": "efficiency_focused"},
            },
            SEVERITY_RULE,
        ]
    )
    engine, memory = PolicyEngine(policy), EngineMemory()
    outcome = engine.decide(
        diag(drift__rate=2.0, severity__value=0.8), context(10, "adaptive_integration"), memory
    )
    assert outcome.strategy == "security_focused"
    assert outcome.rule == "runaway"
    assert "severity.value = 0.8 > 0.7" in outcome.reason
    assert memory.last_switch_step == 10


def test_warmup_holds() -> None:
    engine = PolicyEngine(make_policy([SEVERITY_RULE]))
    outcome = engine.decide(
        diag(severity__value=0.9),
        context(2, "adaptive_integration", warmed_up=False),
        EngineMemory(),
    )
    assert outcome.strategy == "adaptive_integration"
    assert outcome.rule is None


def test_min_dwell_defers_a_switch_then_allows_it() -> None:
    policy = make_policy(
        [
            SEVERITY_RULE,
            {
                "name": "slow",
                "when": {"metric": "drift.rate", "below": 0.1},
                "then": {"switch_to": "efficiency_focused"},
            },
        ],
        switching={"min_dwell": 3},
    )
    engine, memory = PolicyEngine(policy), EngineMemory()
    first = engine.decide(diag(severity__value=0.9), context(10, "adaptive_integration"), memory)
    assert first.strategy == "security_focused"
    blocked = [
        engine.decide(diag(drift__rate=0.05), context(step, "security_focused"), memory)
        for step in (11, 12)
    ]
    assert [o.strategy for o in blocked] == ["security_focused", "security_focused"]
    assert all("dwell needs" in o.reason for o in blocked)
    assert blocked[0].rule == "slow"
    allowed = engine.decide(diag(drift__rate=0.05), context(13, "security_focused"), memory)
    assert allowed.strategy == "efficiency_focused"


def test_cooldown_skips_a_rule_that_acted() -> None:
    policy = make_policy(
        [
            {**SEVERITY_RULE, "cooldown": 5},
            {
                "name": "fallback",
                "priority": 1,
                "when": {"metric": "severity.value", "above": 0.5},
                "then": {"switch_to": "adaptive_integration"},
            },
        ],
        switching={"min_dwell": 0},
    )
    engine, memory = PolicyEngine(policy), EngineMemory()
    assert engine.decide(
        diag(severity__value=0.9), context(10, "feature_focused"), memory
    ).rule == ("runaway")
    during = engine.decide(diag(severity__value=0.9), context(12, "security_focused"), memory)
    assert during.rule == "fallback"
    assert during.strategy == "adaptive_integration"
    after = engine.decide(diag(severity__value=0.9), context(15, "adaptive_integration"), memory)
    assert after.rule == "runaway"


def test_alert_does_not_consume_the_decision_and_hold_keeps_strategy() -> None:
    policy = make_policy(
        [
            {
                "name": "warn",
                "priority": 5,
                "when": {"metric": "severity.value", "above": 0.3},
                "then": {"alert": {"message": "severity rising", "severity": "warning"}},
            },
            {
                "name": "stay",
                "when": {"metric": "severity.value", "above": 0.2},
                "then": {"hold": True},
            },
        ]
    )
    outcome = PolicyEngine(policy).decide(
        diag(severity__value=0.4), context(9, "feature_focused"), EngineMemory()
    )
    assert [a.rule for a in outcome.alerts] == ["warn"]
    assert outcome.alerts[0].message == "severity rising"
    assert outcome.rule == "stay"
    assert outcome.strategy == "feature_focused"


def test_none_metric_never_matches() -> None:
    policy = make_policy(
        [
            {
                "name": "interf",
                "when": {"metric": "interference.min", "below": -0.15},
                "then": {"switch_to": "security_focused"},
            }
        ]
    )
    outcome = PolicyEngine(policy).decide(diag(), context(9, "feature_focused"), EngineMemory())
    assert outcome.rule is None
    assert outcome.strategy == "feature_focused"


SEQUENTIAL_RULE = {
    "name": "interference",
    "priority": 10,
    "when": {"metric": "interference.min", "below": -0.15},
    "then": {"sequential": {"order": "auto", "target": 0.8, "patience": 2, "exit_above": -0.05}},
}


def test_interference_order_puts_most_negative_first() -> None:
    matrix = np.array([[1.0, 0.1, -0.09], [0.1, 1.0, -0.17], [-0.09, -0.17, 1.0]])
    assert interference_order(matrix, OBJECTIVES) == ["functionality", "efficiency", "security"]


def test_sequential_enters_advances_on_target_and_stall_and_completes() -> None:
    policy = make_policy([SEQUENTIAL_RULE], switching={"min_dwell": 0})
    engine, memory = PolicyEngine(policy), EngineMemory()
    matrix = np.array([[1.0, 0.1, -0.09], [0.1, 1.0, -0.17], [-0.09, -0.17, 1.0]])
    enter = engine.decide(
        diag(interference__min=-0.2),
        context(10, "adaptive_integration", interference=matrix),
        memory,
    )
    assert (enter.mode, enter.focus, enter.strategy) == (
        "sequential",
        "functionality",
        "feature_focused",
    )
    assert memory.sequential_order == ["functionality", "efficiency", "security"]
    # interference partly recovered (-0.1 is not above exit_above -0.05): stay (hysteresis)
    stay = engine.decide(
        diag(interference__min=-0.1, objective__functionality=0.6),
        context(11, "feature_focused"),
        memory,
    )
    assert (stay.mode, stay.focus) == ("sequential", "functionality")
    # functionality reaches its target: advance to efficiency
    advance = engine.decide(
        diag(interference__min=-0.1, objective__functionality=0.85),
        context(12, "feature_focused"),
        memory,
    )
    assert (advance.focus, advance.strategy) == ("efficiency", "efficiency_focused")
    assert "objective.functionality = 0.85 >= target 0.8" in advance.reason
    # efficiency stalls for `patience` steps: advance to security
    outcomes = [
        engine.decide(
            diag(interference__min=-0.1, objective__efficiency=0.5),
            context(step, "efficiency_focused"),
            memory,
        )
        for step in (13, 14, 15)
    ]
    assert outcomes[-1].focus == "security"
    assert outcomes[-1].strategy == "security_focused"
    assert "stalled" in outcomes[-1].reason
    done = engine.decide(
        diag(interference__min=-0.1, objective__security=0.9),
        context(16, "security_focused"),
        memory,
    )
    assert done.mode == "direct"
    assert done.strategy == "adaptive_integration"
    assert "schedule complete" in done.reason
    assert not memory.sequential_active


def test_sequential_exits_when_interference_recovers() -> None:
    policy = make_policy([SEQUENTIAL_RULE], switching={"min_dwell": 0})
    engine, memory = PolicyEngine(policy), EngineMemory()
    engine.decide(diag(interference__min=-0.3), context(10, "adaptive_integration"), memory)
    assert memory.sequential_active
    leave = engine.decide(diag(interference__min=0.02), context(11, "security_focused"), memory)
    assert leave.mode == "direct"
    assert "interference recovered" in leave.reason
    assert leave.strategy == "adaptive_integration"


def test_higher_priority_rule_preempts_sequential_lower_waits() -> None:
    policy = make_policy(
        [
            SEVERITY_RULE,
            SEQUENTIAL_RULE,
            {
                "name": "low",
                "priority": 1,
                "when": {"metric": "drift.rate", "above": 1.5},
                "then": {"switch_to": "adaptive_integration"},
            },
        ],
        switching={"min_dwell": 0},
    )
    engine, memory = PolicyEngine(policy), EngineMemory()
    engine.decide(diag(interference__min=-0.3), context(10, "adaptive_integration"), memory)
    waited = engine.decide(
        diag(interference__min=-0.1, drift__rate=2.0), context(11, "security_focused"), memory
    )
    assert waited.mode == "sequential"
    assert waited.rule == "interference"
    preempted = engine.decide(
        diag(interference__min=-0.3, severity__value=0.95), context(12, "security_focused"), memory
    )
    assert preempted.rule == "runaway"
    assert preempted.mode == "direct"
    assert not memory.sequential_active


def test_best_predicted_explores_then_exploits() -> None:
    policy = make_policy(
        [
            {
                "name": "predict",
                "when": {"metric": "step", "above": 0},
                "then": {"best_predicted": {"utility": "min"}},
            }
        ],
        switching={"min_dwell": 0},
    )
    engine, memory = PolicyEngine(policy), EngineMemory()
    assert engine.reads_drift_models
    exploring = engine.decide(diag(), context(6, "adaptive_integration"), memory)
    assert exploring.strategy == "adaptive_integration"
    assert "exploring" in exploring.reason
    equilibria = {
        "security_focused": np.array([0.9, 0.4, 0.5]),
        "efficiency_focused": np.array([0.3, 0.9, 0.5]),
        "feature_focused": np.array([0.0, 0.5, 1.2]),
        "adaptive_integration": np.array([0.6, 0.65, 0.7]),
    }
    untried = engine.decide(
        diag(),
        context(
            7,
            "adaptive_integration",
            estimated=frozenset({"adaptive_integration"}),
            equilibria=equilibria,
        ),
        memory,
    )
    assert untried.strategy == "security_focused"
    everything = frozenset(equilibria)
    best = engine.decide(
        diag(), context(20, "feature_focused", estimated=everything, equilibria=equilibria), memory
    )
    assert best.strategy == "adaptive_integration"
    assert "0.6" in best.reason


def test_faulty_condition_is_counted_and_skipped() -> None:
    policy = make_policy(
        [
            {
                "name": "broken",
                "priority": 5,
                "when": {"metric": "drift.rate", "above": 1.5},
                "then": {"switch_to": "security_focused"},
            },
            {
                "name": "ok",
                "when": {"metric": "drift.rate", "above": 0.0},
                "then": {"switch_to": "efficiency_focused"},
            },
        ]
    )
    engine = PolicyEngine(policy)

    class Exploding(dict[str, DiagnosticValue]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "drift.rate" and self.get_calls == 0:
                self.get_calls += 1
                raise RuntimeError("boom")
            return super().get(key, default)

        def __getitem__(self, key: str) -> Any:
            if key == "drift.rate" and self.get_calls == 0:
                self.get_calls += 1
                raise RuntimeError("boom")
            return super().__getitem__(key)

        get_calls = 0

    outcome = engine.decide(
        Exploding(diag(drift__rate=2.0)), context(9, "feature_focused"), EngineMemory()
    )
    assert outcome.rule_errors == 1
    assert outcome.rule == "ok"


@pytest.mark.parametrize("strategy", ["gone"])
def test_unknown_current_strategy_falls_back_to_initial(strategy: str) -> None:
    engine = PolicyEngine(make_policy([]))
    outcome = engine.decide(diag(), context(9, strategy), EngineMemory())
    assert outcome.strategy == "adaptive_integration"


def test_only_best_predicted_policies_read_the_drift_models() -> None:
    assert not PolicyEngine(load_preset("paper")).reads_drift_models
    assert PolicyEngine(load_preset("predictive")).reads_drift_models
