"""Rule engine semantics on hand-built diagnostics: priority, dwell, cooldown, actions.

The model-based actions read a :class:`~steerloop.policies.planning.PlanningContext`; here it
is :class:`FakePlanning`, whose plan values are set by hand, so every decision of ``plan`` and
``best_predicted`` can be predicted exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from steerloop.estimators.interference import interference_order
from steerloop.estimators.planner import Plan, Schedule
from steerloop.policies.engine import EngineContext, PolicyEngine
from steerloop.policies.loader import load_preset
from steerloop.policies.memory import EngineMemory
from steerloop.policies.metrics import DiagnosticValue
from steerloop.policies.outcome import EngineOutcome
from steerloop.policies.planning import REVERSAL_WINDOW
from steerloop.policies.references import validate_policy
from steerloop.policies.schema import PlanAction, Policy

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
NAMES = list(STRATEGIES)
WARMUP = 5
#: Transitions after which the engine treats a strategy as known: the warm-up, and two per
#: parameter of a row of Θ (d + 1 of them).
KNOWN = max(WARMUP, 2 * (len(OBJECTIVES) + 1))


def make_policy(rules: list[dict[str, Any]], **extra: Any) -> Policy:
    return validate_policy(
        Policy.model_validate(
            {
                "objectives": OBJECTIVES,
                "strategies": STRATEGIES,
                "initial": "adaptive_integration",
                "estimation": {"warmup": WARMUP},
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
    return EngineContext(
        step=step, strategy=strategy, warmed_up=kwargs.pop("warmed_up", True), **kwargs
    )


@dataclass
class FakePlanning:
    """A PlanningContext with hand-set values.

    ``values`` are the expected utilities of the schedules the planner would value;
    ``drawn`` those of one posterior draw (Thompson). The plan is the best of them, and the
    incumbent passed in is valued too when it has a value (as the real planner does).
    """

    known: dict[str, float]
    values: dict[Schedule, float] = field(default_factory=dict)
    drawn: dict[Schedule, float] | None = None
    length: float = 40.0
    left: int | None = None
    equilibrium: dict[str, NDArray[np.float64] | None] = field(default_factory=dict)
    calls: list[tuple[Schedule | None, bool]] = field(default_factory=list)
    announced: list[bool] = field(default_factory=list)  # also_draw of each call

    @property
    def expected_length(self) -> float:
        return self.length

    @property
    def steps_left(self) -> int | None:
        return self.left

    @property
    def seed(self) -> int:
        return 0

    def knowledge(self) -> Mapping[str, float]:
        return self.known

    def plan(
        self,
        action: PlanAction,
        current: Schedule | None,
        *,
        draw: bool,
        also_draw: bool = False,
    ) -> Plan | None:
        self.calls.append((current, draw))
        self.announced.append(also_draw)
        table = self.drawn if draw else self.values
        if not table:
            return None
        best = max(table, key=lambda schedule: (table[schedule], schedule.describe()))
        return Plan(best, table[best], dict(table))

    def equilibria(self) -> Mapping[str, NDArray[np.float64] | None]:
        return self.equilibrium


def everything_known() -> dict[str, float]:
    return dict.fromkeys(NAMES, 50.0)


PLAN_RULE = {
    "name": "plan",
    "when": {"metric": "step", "above": 0},
    "then": {"plan": {"utility": "min", "margin": 0.02, "explore": 0.25}},
}
SEVERITY_RULE = {
    "name": "runaway",
    "priority": 100,
    "when": {"metric": "severity.value", "above": 0.7},
    "then": {"switch_to": "security_focused"},
}


# -- rule semantics ----------------------------------------------------------------------


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
    assert outcome == EngineOutcome(
        "security_focused",
        "runaway",
        "severity.value = 0.8 > 0.7 -> security_focused",
        "direct",
        None,
    )
    assert memory.last_switch_step == 10
    assert memory.rule_last_fired == {"runaway": 10}


def test_ties_in_priority_keep_file_order() -> None:
    rules = [
        {"name": f"r{i}", "when": {"metric": "step", "above": 0}, "then": {"switch_to": target}}
        for i, target in enumerate(["feature_focused", "security_focused"])
    ]
    outcome = PolicyEngine(make_policy(rules)).decide(
        diag(), context(10, "adaptive_integration"), EngineMemory()
    )
    assert (outcome.rule, outcome.strategy) == ("r0", "feature_focused")


def test_warmup_holds_without_touching_memory() -> None:
    engine, memory = PolicyEngine(make_policy([SEVERITY_RULE])), EngineMemory()
    outcome = engine.decide(
        diag(severity__value=0.9), context(2, "adaptive_integration", warmed_up=False), memory
    )
    assert (outcome.strategy, outcome.rule, outcome.mode) == (
        "adaptive_integration",
        None,
        "direct",
    )
    assert "warm-up" in outcome.reason
    assert memory == EngineMemory()


def test_no_rule_matched_holds() -> None:
    outcome = PolicyEngine(make_policy([SEVERITY_RULE])).decide(
        diag(), context(10, "feature_focused"), EngineMemory()
    )
    assert outcome == EngineOutcome("feature_focused", None, "no rule matched", "direct", None)


def test_switching_to_the_current_strategy_is_no_switch() -> None:
    memory = EngineMemory()
    outcome = PolicyEngine(make_policy([SEVERITY_RULE])).decide(
        diag(severity__value=0.9), context(10, "security_focused"), memory
    )
    assert (outcome.strategy, outcome.rule) == ("security_focused", "runaway")
    assert outcome.reason.endswith("; already on security_focused")
    assert memory.last_switch_step is None


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
    assert [o.reason.rsplit("needs ", 1)[1] for o in blocked] == [
        "2 more step(s)",
        "1 more step(s)",
    ]
    assert blocked[0].rule == "slow"
    assert "slow" not in memory.rule_last_fired  # a deferred rule does not start its cooldown
    allowed = engine.decide(diag(drift__rate=0.05), context(13, "security_focused"), memory)
    assert allowed.strategy == "efficiency_focused"
    assert memory.last_switch_step == 13


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
    during = engine.decide(diag(severity__value=0.9), context(14, "security_focused"), memory)
    assert (during.rule, during.strategy) == ("fallback", "adaptive_integration")
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
    memory = EngineMemory()
    outcome = PolicyEngine(policy).decide(
        diag(severity__value=0.4), context(9, "feature_focused"), memory
    )
    assert [(a.rule, a.message, a.severity) for a in outcome.alerts] == [
        ("warn", "severity rising", "warning")
    ]
    assert outcome.alerts[0].reason == "severity.value = 0.4 > 0.3"
    assert (outcome.rule, outcome.strategy) == ("stay", "feature_focused")
    assert outcome.reason == "hold: severity.value = 0.4 > 0.2"
    assert memory.rule_last_fired == {"warn": 9, "stay": 9}


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

    class Exploding(dict[str, DiagnosticValue]):
        reads = 0

        def _first_read_explodes(self, key: str) -> None:
            if key == "drift.rate" and self.reads == 0:
                self.reads += 1
                raise RuntimeError("boom")

        def get(self, key: str, default: Any = None) -> Any:
            self._first_read_explodes(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> Any:
            self._first_read_explodes(key)
            return super().__getitem__(key)

    outcome = PolicyEngine(policy).decide(
        Exploding(diag(drift__rate=2.0)), context(9, "feature_focused"), EngineMemory()
    )
    assert outcome.rule_errors == 1
    assert (outcome.rule, outcome.strategy) == ("ok", "efficiency_focused")


def test_unknown_current_strategy_falls_back_to_initial_and_forgets_modes() -> None:
    memory = EngineMemory(sequential_active=True, sequential_rule="x", plan_first="gone")
    outcome = PolicyEngine(make_policy([])).decide(diag(), context(9, "gone"), memory)
    assert outcome.strategy == "adaptive_integration"
    assert "'gone' is not in the policy" in outcome.reason
    assert not memory.sequential_active and memory.plan_first is None


def test_uses_models_only_with_plan_or_best_predicted() -> None:
    assert not PolicyEngine(load_preset("paper")).uses_models
    assert PolicyEngine(load_preset("predictive")).uses_models
    best = {
        "name": "best",
        "when": {"metric": "step", "above": 0},
        "then": {"best_predicted": {"utility": "min"}},
    }
    assert PolicyEngine(make_policy([best])).uses_models
    assert not PolicyEngine(make_policy([SEVERITY_RULE])).uses_models


def test_render_and_focus_strategy() -> None:
    engine = PolicyEngine(make_policy([]))
    assert engine.render("adaptive_integration", None) == (
        "balance security, efficiency, functionality"
    )
    assert [engine.focus_strategy(name) for name in OBJECTIVES] == [
        "security_focused",
        "efficiency_focused",
        "feature_focused",
    ]
    assert engine.focus_strategy("nothing") is None


# -- sequential mode ---------------------------------------------------------------------

SEQUENTIAL_RULE = {
    "name": "interference",
    "priority": 10,
    "when": {"metric": "interference.min", "below": -0.15},
    "then": {"sequential": {"order": "auto", "target": 0.8, "patience": 2, "exit_above": -0.05}},
}
MATRIX = np.array([[1.0, 0.1, -0.09], [0.1, 1.0, -0.17], [-0.09, -0.17, 1.0]])


def test_interference_order_puts_most_negative_first() -> None:
    assert interference_order(MATRIX, OBJECTIVES) == ["functionality", "efficiency", "security"]


def test_sequential_enters_advances_on_target_and_stall_and_completes() -> None:
    policy = make_policy([SEQUENTIAL_RULE], switching={"min_dwell": 0})
    engine, memory = PolicyEngine(policy), EngineMemory()
    enter = engine.decide(
        diag(interference__min=-0.2),
        context(10, "adaptive_integration", interference=MATRIX),
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
    assert [o.focus for o in outcomes] == ["efficiency", "efficiency", "security"]
    assert outcomes[-1].strategy == "security_focused"
    assert "objective.efficiency stalled for 2 steps" in outcomes[-1].reason
    done = engine.decide(
        diag(interference__min=-0.1, objective__security=0.9),
        context(16, "security_focused"),
        memory,
    )
    assert (done.mode, done.strategy) == ("direct", "adaptive_integration")
    assert "schedule complete" in done.reason
    assert not memory.sequential_active


def test_sequential_without_interference_matrix_uses_the_objective_order() -> None:
    engine, memory = PolicyEngine(make_policy([SEQUENTIAL_RULE])), EngineMemory()
    outcome = engine.decide(
        diag(interference__min=-0.3), context(10, "adaptive_integration"), memory
    )
    assert memory.sequential_order == OBJECTIVES
    assert (outcome.focus, outcome.strategy) == ("security", "security_focused")


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
    assert (waited.mode, waited.rule) == ("sequential", "interference")
    preempted = engine.decide(
        diag(interference__min=-0.3, severity__value=0.95), context(12, "security_focused"), memory
    )
    assert (preempted.rule, preempted.mode) == ("runaway", "direct")
    assert not memory.sequential_active


def test_sequential_of_a_rule_that_is_gone_is_left() -> None:
    memory = EngineMemory(
        sequential_active=True, sequential_rule="old", sequential_order=["security"]
    )
    outcome = PolicyEngine(make_policy([])).decide(diag(), context(10, "security_focused"), memory)
    assert outcome.mode == "direct" and not memory.sequential_active


# -- the plan action ---------------------------------------------------------------------


def plan_engine(**plan: Any) -> PolicyEngine:
    rule = {**PLAN_RULE, "then": {"plan": {**PLAN_RULE["then"]["plan"], **plan}}}  # type: ignore[dict-item]
    return PolicyEngine(make_policy([rule], switching={"min_dwell": 0}))


def test_plan_without_a_planning_context_holds() -> None:
    outcome = plan_engine().decide(diag(), context(10, "adaptive_integration"), EngineMemory())
    assert outcome.strategy == "adaptive_integration"
    assert outcome.reason.endswith("no model context")


def test_plan_explores_unknown_strategies_within_the_budget() -> None:
    engine, memory = plan_engine(explore=0.25), EngineMemory()
    known = {"adaptive_integration": 9.0, "security_focused": 9.0}
    known |= {"efficiency_focused": 2.0, "feature_focused": 0.0}
    planning = FakePlanning(known, length=40.0)  # budget: 0.25 x 40 = 10 exploration steps
    strategy, trail = "adaptive_integration", []
    for step in range(6, 30):
        outcome = engine.decide(diag(), context(step, strategy, planning=planning), memory)
        strategy = outcome.strategy
        trail.append(strategy)
        if memory.explore_steps == 4:  # feature_focused has been run for 4 steps: it is known
            planning.known["feature_focused"] = float(KNOWN)
    # The least known strategy first, held while it is unknown; then the next one.
    assert trail[:6] == ["feature_focused"] * 4 + ["efficiency_focused"] * 2
    assert memory.explore_steps == 10  # the whole budget, not one step more
    assert all(s == "efficiency_focused" for s in trail[4:])
    assert memory.explore_target is None
    # Without a plan (no values) the engine holds once the budget is spent.
    assert trail[-1] == "efficiency_focused" and planning.calls[-1] == (
        Schedule("efficiency_focused"),
        False,
    )


def test_plan_explores_the_current_strategy_first_when_it_is_unknown() -> None:
    engine, memory = plan_engine(), EngineMemory()
    known = everything_known() | {"adaptive_integration": 1.0, "feature_focused": 0.0}
    outcome = engine.decide(
        diag(), context(6, "adaptive_integration", planning=FakePlanning(known)), memory
    )
    assert outcome.strategy == "adaptive_integration"
    assert "explore adaptive_integration" in outcome.reason
    # Learning the strategy the session started on costs no exploration budget.
    assert (memory.explore_target, memory.explore_steps) == ("adaptive_integration", 0)


def test_plan_does_not_explore_when_the_loop_ends_too_soon() -> None:
    engine = plan_engine()
    known = everything_known() | {"feature_focused": 0.0}
    values = {Schedule("adaptive_integration"): 0.6}
    for left, explores in [(2 * KNOWN - 1, False), (2 * KNOWN, True), (None, True)]:
        memory = EngineMemory()
        planning = FakePlanning(known, values, left=left)
        outcome = engine.decide(
            diag(), context(10, "adaptive_integration", planning=planning), memory
        )
        assert (outcome.strategy == "feature_focused") is explores, left
        assert (memory.explore_steps == 1) is explores


def test_a_short_loop_explores_what_its_budget_allows() -> None:
    """A loop told 18 steps has an exploration budget (0.25 x 18 = 4.5 steps) shorter than a
    warm-up: it explores while twice what it can still spend is left (its few transitions
    teach the fleet pool), instead of never exploring because a warm-up would not fit."""
    engine = plan_engine(explore=0.25)
    known = everything_known() | {"feature_focused": 0.0}
    values = {Schedule("adaptive_integration"): 0.6}
    for spent, left, explores in [(0, 9, True), (0, 8, False), (2, 5, True), (2, 4, False)]:
        memory = EngineMemory(explore_steps=spent, last_switch_step=0)
        planning = FakePlanning(known, values, length=18.0, left=left)
        outcome = engine.decide(
            diag(), context(10, "adaptive_integration", planning=planning), memory
        )
        assert (outcome.strategy == "feature_focused") is explores, (spent, left)


def test_plan_takes_the_best_schedule_and_remembers_it() -> None:
    engine, memory = plan_engine(margin=0.02), EngineMemory()
    two_phase = Schedule("security_focused", 3, "feature_focused")
    values = {
        Schedule("adaptive_integration"): 0.50,
        Schedule("security_focused"): 0.55,
        two_phase: 0.60,
    }
    planning = FakePlanning(everything_known(), values)
    outcome = engine.decide(diag(), context(10, "adaptive_integration", planning=planning), memory)
    assert outcome.strategy == "security_focused"
    assert "plan security_focused for 3 steps, then feature_focused: expected utility 0.6" in (
        outcome.reason
    )
    assert (memory.plan_first, memory.plan_switch_after, memory.plan_second) == (
        "security_focused",
        3,
        "feature_focused",
    )
    # Next step the plan in force, one step on, is the incumbent the planner values.
    planning.values = {Schedule("security_focused", 2, "feature_focused"): 0.61}
    planning.calls.clear()
    engine.decide(diag(), context(11, "security_focused", planning=planning), memory)
    assert planning.calls[0] == (Schedule("security_focused", 2, "feature_focused"), False)
    assert memory.plan_switch_after == 2


def test_plan_keeps_the_incumbent_within_the_no_thrash_margin() -> None:
    # Values and margin are dyadic fractions, so "better by exactly the margin" is exact.
    engine = plan_engine(margin=0.125, explore=0.0)
    for best, switches in [(0.5625, False), (0.625, True), (0.75, True)]:
        memory = EngineMemory()
        values = {Schedule("adaptive_integration"): 0.5, Schedule("feature_focused"): best}
        planning = FakePlanning(everything_known(), values)
        outcome = engine.decide(
            diag(), context(10, "adaptive_integration", planning=planning), memory
        )
        assert (outcome.strategy == "feature_focused") is switches, best
        assert memory.plan_first == outcome.strategy
        if not switches:
            assert "is within the margin 0.125" in outcome.reason


def test_plan_holds_when_nothing_can_be_planned() -> None:
    for values in ({}, {Schedule("adaptive_integration"): float("nan")}):
        planning = FakePlanning(everything_known(), values)
        outcome = plan_engine().decide(
            diag(), context(10, "feature_focused", planning=planning), EngineMemory()
        )
        assert outcome.strategy == "feature_focused"
        assert "no strategy can be planned yet" in outcome.reason


@pytest.mark.parametrize(
    ("drawn_best", "drawn_incumbent", "takes_draw"),
    [
        (0.625, 0.5625, False),  # the draw prefers B, but by less than the margin
        (0.625, 0.5, True),  # by exactly the margin (dyadic: exact)
        (0.625, 0.25, True),
    ],
)
def test_a_thompson_draw_must_beat_the_choice_by_the_margin(
    drawn_best: float, drawn_incumbent: float, takes_draw: bool
) -> None:
    engine, memory = plan_engine(margin=0.125, explore=0.25), EngineMemory()
    incumbent = Schedule("adaptive_integration")
    values = {incumbent: 0.60, Schedule("feature_focused"): 0.55}
    drawn = {incumbent: drawn_incumbent, Schedule("feature_focused"): drawn_best}
    planning = FakePlanning(everything_known(), values, drawn)
    outcome = engine.decide(diag(), context(10, "adaptive_integration", planning=planning), memory)
    assert planning.calls == [(incumbent, False), (incumbent, True)]
    assert (outcome.strategy == "feature_focused") is takes_draw
    assert memory.explore_steps == (1 if takes_draw else 0)
    assert ("Thompson exploration" in outcome.reason) is takes_draw


def test_a_draw_that_agrees_with_the_plan_costs_nothing() -> None:
    engine, memory = plan_engine(), EngineMemory()
    values = {Schedule("adaptive_integration"): 0.6, Schedule("feature_focused"): 0.5}
    planning = FakePlanning(everything_known(), values, drawn=dict(values))
    outcome = engine.decide(diag(), context(10, "adaptive_integration", planning=planning), memory)
    assert outcome.strategy == "adaptive_integration" and memory.explore_steps == 0


@pytest.mark.parametrize(
    ("left", "draws"), [(2 * REVERSAL_WINDOW - 1, False), (2 * REVERSAL_WINDOW, True), (None, True)]
)
def test_no_posterior_draw_when_the_trial_could_not_be_used(left: int | None, draws: bool) -> None:
    """A trial of four steps is drawn only when as many steps follow it to use what it taught."""
    engine, memory = plan_engine(margin=0.125, explore=0.25), EngineMemory()
    incumbent = Schedule("adaptive_integration")
    values = {incumbent: 0.60, Schedule("feature_focused"): 0.55}
    drawn = {incumbent: 0.25, Schedule("feature_focused"): 0.625}
    planning = FakePlanning(everything_known(), values, drawn, left=left)
    outcome = engine.decide(diag(), context(10, "adaptive_integration", planning=planning), memory)
    assert [draw for _, draw in planning.calls] == ([False, True] if draws else [False])
    # The plan announces the draw exactly when one follows (so both are made at once).
    assert planning.announced[0] is draws
    assert (outcome.strategy == "feature_focused") is draws
    assert memory.explore_steps == (1 if draws else 0)


def test_a_posterior_draw_never_returns_to_the_strategy_just_left() -> None:
    """A trial is not a return: within the reversal window the strategy just left is not
    tried again, however much a draw prefers it; after the window it may be."""
    engine = plan_engine(margin=0.125, explore=0.25)
    incumbent = Schedule("adaptive_integration")
    values = {incumbent: 0.60, Schedule("feature_focused"): 0.55}
    drawn = {incumbent: 0.25, Schedule("feature_focused"): 0.875}
    for since, takes_draw in [(1, False), (REVERSAL_WINDOW - 1, False), (REVERSAL_WINDOW, True)]:
        memory = EngineMemory(last_switch_step=10 - since, left_strategy="feature_focused")
        planning = FakePlanning(everything_known(), values, drawn)
        outcome = engine.decide(
            diag(), context(10, "adaptive_integration", planning=planning), memory
        )
        assert (outcome.strategy == "feature_focused") is takes_draw, since


def test_exploration_does_not_go_straight_back_to_the_strategy_just_left() -> None:
    """After an override pulled the loop off an unknown strategy, exploring waits out the
    reversal window for it (another unknown strategy may be explored meanwhile)."""
    engine = plan_engine()
    known = everything_known() | {"feature_focused": 0.0}
    for since, explores in [(1, False), (REVERSAL_WINDOW, True)]:
        memory = EngineMemory(last_switch_step=10 - since, left_strategy="feature_focused")
        planning = FakePlanning(known, {Schedule("security_focused"): 0.6})
        outcome = engine.decide(diag(), context(10, "security_focused", planning=planning), memory)
        assert (outcome.strategy == "feature_focused") is explores, since
    both = known | {"efficiency_focused": 0.0}
    memory = EngineMemory(last_switch_step=9, left_strategy="feature_focused")
    planning = FakePlanning(both, {Schedule("security_focused"): 0.6})
    outcome = engine.decide(diag(), context(10, "security_focused", planning=planning), memory)
    assert outcome.strategy == "efficiency_focused"


def test_no_posterior_draws_once_the_budget_is_spent() -> None:
    engine = plan_engine(explore=0.25)
    values = {Schedule("adaptive_integration"): 0.6}
    drawn = {Schedule("feature_focused"): 0.9, Schedule("adaptive_integration"): 0.1}
    planning = FakePlanning(everything_known(), values, drawn, length=40.0)
    memory = EngineMemory(explore_steps=10)  # 0.25 x 40: spent
    outcome = engine.decide(diag(), context(10, "adaptive_integration", planning=planning), memory)
    assert outcome.strategy == "adaptive_integration"
    assert [draw for _, draw in planning.calls] == [False]
    assert planning.announced == [False]
    assert memory.explore_steps == 10


def test_bounded_exploration_over_a_long_run() -> None:
    """Draws that always disagree still switch at most budget times (no endless thrash)."""
    engine, memory = plan_engine(margin=0.0, explore=0.1), EngineMemory()
    strategy, switches = "adaptive_integration", 0
    for step in range(6, 206):
        other = "feature_focused" if strategy == "adaptive_integration" else "adaptive_integration"
        values = {Schedule(strategy): 0.6, Schedule(other): 0.5}
        drawn = {Schedule(strategy): 0.1, Schedule(other): 0.9}
        planning = FakePlanning(everything_known(), values, drawn, length=100.0)
        outcome = engine.decide(diag(), context(step, strategy, planning=planning), memory)
        switches += outcome.strategy != strategy
        strategy = outcome.strategy
    assert switches == memory.explore_steps == 10  # 0.1 x 100


def test_a_switch_to_rule_forgets_the_plan_and_a_plan_leaves_sequential() -> None:
    policy = make_policy([SEVERITY_RULE, PLAN_RULE], switching={"min_dwell": 0})
    engine = PolicyEngine(policy)
    memory = EngineMemory(plan_first="feature_focused", plan_switch_after=2, plan_second="x")
    engine.decide(diag(severity__value=0.9), context(10, "feature_focused"), memory)
    assert (memory.plan_first, memory.plan_switch_after, memory.plan_second) == (None, None, None)
    memory = EngineMemory(
        sequential_active=True, sequential_rule="plan", sequential_order=["security"]
    )
    planning = FakePlanning(everything_known(), {Schedule("security_focused"): 0.5})
    engine.decide(diag(), context(11, "security_focused", planning=planning), memory)
    assert not memory.sequential_active


def test_a_plan_switch_respects_min_dwell() -> None:
    engine = PolicyEngine(make_policy([PLAN_RULE], switching={"min_dwell": 3}))
    memory = EngineMemory(last_switch_step=9)
    values = {Schedule("adaptive_integration"): 0.5, Schedule("feature_focused"): 0.9}
    planning = FakePlanning(everything_known(), values)
    outcome = engine.decide(diag(), context(10, "adaptive_integration", planning=planning), memory)
    assert outcome.strategy == "adaptive_integration"
    assert "switch to feature_focused deferred: dwell needs 2 more step(s)" in outcome.reason


# -- best_predicted ----------------------------------------------------------------------


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
    nothing = FakePlanning(dict.fromkeys(NAMES, 0.0))
    exploring = engine.decide(diag(), context(6, "adaptive_integration", planning=nothing), memory)
    assert exploring.strategy == "adaptive_integration"
    assert "exploring adaptive_integration" in exploring.reason
    equilibria: dict[str, NDArray[np.float64] | None] = {
        "security_focused": np.array([0.9, 0.4, 0.5]),
        "efficiency_focused": np.array([0.3, 0.9, 0.5]),
        "feature_focused": np.array([0.0, 0.5, 1.2]),
        "adaptive_integration": np.array([0.6, 0.65, 0.7]),
    }
    one_known = FakePlanning(dict.fromkeys(NAMES, 0.0) | {"adaptive_integration": float(KNOWN)})
    untried = engine.decide(diag(), context(7, "adaptive_integration", planning=one_known), memory)
    assert (untried.strategy, untried.reason.split("; ")[1]) == (
        "security_focused",
        "explore untried -> security_focused",
    )
    known = FakePlanning(everything_known(), equilibrium=equilibria)
    best = engine.decide(diag(), context(20, "feature_focused", planning=known), memory)
    assert best.strategy == "adaptive_integration"
    assert "predicted utility adaptive_integration = 0.6 vs feature_focused = 0" in best.reason
