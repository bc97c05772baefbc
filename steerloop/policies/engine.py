"""The rule engine: from one step's diagnostics to the next strategy.

Semantics (docs/architecture.md, "Policy file"):

* Before warm-up ends the current strategy is held.
* Rules are tried by descending ``priority`` (ties in file order); a rule whose cooldown has
  not elapsed is skipped. The first rule whose condition holds acts, except ``alert``, which
  records an alert and lets evaluation continue.
* A switch needs ``switching.min_dwell`` steps since the previous switch; a rule that matches
  during dwell is reported but does not switch and does not start its cooldown.
* ``sequential`` runs :mod:`steerloop.policies.sequential`; while the mode runs, rules of
  higher priority than the one that started it may preempt it, lower ones wait.
* ``plan`` and ``best_predicted`` run :mod:`steerloop.policies.planning`.

Rule evaluation never raises into the loop: an exception inside a rule is counted in
:attr:`EngineOutcome.rule_errors` and the rule is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from steerloop.policies.conditions import CompiledCondition, compile_condition
from steerloop.policies.memory import EngineMemory
from steerloop.policies.metrics import Diagnostics
from steerloop.policies.outcome import Alert, EngineOutcome, Mode, Verdict
from steerloop.policies.planning import PlanningContext, best_predicted, plan_action
from steerloop.policies.schema import Policy, Rule
from steerloop.policies.sequential import SequentialMode

__all__ = ["Alert", "EngineContext", "EngineMemory", "EngineOutcome", "PolicyEngine"]


@dataclass(frozen=True)
class EngineContext:
    """What the engine needs beyond the flat diagnostics.

    Attributes
    ----------
    step : int
        Updates the session has seen (this one included).
    strategy : str
        Strategy in effect for the step just observed.
    warmed_up : bool
        Whether ``estimation.warmup`` updates have arrived.
    interference : ndarray or None
        Pooled interference matrix, or ``None`` before it is reported.
    planning : PlanningContext or None
        Models for ``plan`` and ``best_predicted`` (``None`` when no rule uses them).
    """

    step: int
    strategy: str
    warmed_up: bool
    interference: NDArray[np.float64] | None = None
    planning: PlanningContext | None = None


@dataclass(frozen=True)
class _CompiledRule:
    rule: Rule
    condition: CompiledCondition
    cooldown: int
    rank: int


class PolicyEngine:
    """Compiled, stateless view of a :class:`Policy`; per-session state is an EngineMemory.

    One engine serves every session of a controller; it is rebuilt on policy reload.
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._objectives = list(policy.objectives)
        self._strategies = list(policy.strategies)
        self._rules = [
            _CompiledRule(
                rule,
                compile_condition(rule.when),
                rule.cooldown if rule.cooldown is not None else policy.switching.cooldown,
                rank,
            )
            for rank, rule in enumerate(policy.rules_by_priority)
        ]
        self._rank = {compiled.rule.name: compiled.rank for compiled in self._rules}
        self._focus_strategy = {name: self._strategy_for(name) for name in self._objectives}
        self._sequential = SequentialMode(self._objectives, self._focus_strategy, policy.initial)

    @property
    def policy(self) -> Policy:
        """The policy this engine evaluates."""
        return self._policy

    @property
    def uses_models(self) -> bool:
        """Whether a rule reads every strategy's model (``plan`` or ``best_predicted``)."""
        return any(
            compiled.rule.then.plan is not None or compiled.rule.then.best_predicted is not None
            for compiled in self._rules
        )

    def _strategy_for(self, objective: str) -> str | None:
        best_name: str | None = None
        best_share = 0.0
        for name, strategy in self._policy.strategies.items():
            total = sum(strategy.emphasis.values())
            share = strategy.emphasis.get(objective, 0.0) / total if total > 0 else 0.0
            if share > best_share:
                best_name, best_share = name, share
        return best_name

    def focus_strategy(self, objective: str) -> str | None:
        """The strategy sequential mode uses to focus ``objective`` (largest emphasis share)."""
        return self._focus_strategy.get(objective)

    def render(self, strategy: str, focus: str | None) -> str:
        """The prompt of ``strategy`` with its placeholders filled."""
        return self._policy.strategies[strategy].render(self._objectives, focus)

    def decide(
        self, diagnostics: Diagnostics, context: EngineContext, memory: EngineMemory
    ) -> EngineOutcome:
        """Choose the strategy for the next step and update ``memory`` in place."""
        current = context.strategy
        if current not in self._policy.strategies:
            memory.leave_sequential()
            memory.forget_plan()
            verdict = Verdict(self._policy.initial, f"strategy {current!r} is not in the policy")
            return self._finish(memory, context, verdict, None, (), 0)
        mode: Mode = "sequential" if memory.sequential_active else "direct"
        if not context.warmed_up:
            reason = "warm-up: holding the current strategy"
            return EngineOutcome(current, None, reason, mode, memory.focus)
        if memory.sequential_active and memory.sequential_rule not in self._rank:
            memory.leave_sequential()
        alerts: list[Alert] = []
        errors = 0
        sequential_rank = self._rank.get(memory.sequential_rule or "")
        for compiled in self._rules:
            rule = compiled.rule
            waiting = sequential_rank is not None and compiled.rank > sequential_rank
            if memory.sequential_active and waiting:
                break  # lower-priority rules wait while sequential mode runs
            if self._cooling(compiled, memory, context.step):
                continue
            try:
                matched = compiled.condition.evaluate(diagnostics)
                reason = compiled.condition.explain(diagnostics) if matched else ""
            except Exception:  # a rule never breaks the loop: counted, skipped
                errors += 1
                continue
            if not matched:
                continue
            if rule.then.alert is not None:
                memory.rule_last_fired[rule.name] = context.step
                alert = rule.then.alert
                alerts.append(Alert(rule.name, alert.message, alert.severity, reason))
                continue
            try:
                verdict = self._act(rule, reason, diagnostics, context, memory)
            except Exception:
                errors += 1
                continue
            return self._finish(memory, context, verdict, rule.name, tuple(alerts), errors)
        if memory.sequential_active:
            verdict = self._continue_sequential(memory, diagnostics, context, just_matched=False)
            return self._finish(
                memory, context, verdict, memory.sequential_rule, tuple(alerts), errors
            )
        return EngineOutcome(
            current, None, "no rule matched", "direct", None, tuple(alerts), errors
        )

    def _act(
        self,
        rule: Rule,
        reason: str,
        diagnostics: Diagnostics,
        context: EngineContext,
        memory: EngineMemory,
    ) -> Verdict:
        """The verdict of a matched rule's action (everything but ``alert``)."""
        action = rule.then
        if action.hold is not None:
            memory.rule_last_fired[rule.name] = context.step
            return Verdict(None, f"hold: {reason}", *self._mode(memory))
        if action.switch_to is not None:
            memory.leave_sequential()
            memory.forget_plan()
            return Verdict(action.switch_to, reason)
        if action.sequential is not None:
            note = ""
            if not memory.sequential_active:
                started = self._sequential.start(
                    memory, rule.name, action.sequential, context.interference
                )
                if started is None:
                    return Verdict(None, f"{reason}; no objective has a focus strategy")
                note = f"; {started}"
            verdict = self._continue_sequential(memory, diagnostics, context, just_matched=True)
            return Verdict(
                verdict.target, f"{reason}{note}; {verdict.reason}", verdict.mode, verdict.focus
            )
        planning = context.planning
        if planning is None:
            return Verdict(None, f"{reason}; no model context")
        # A strategy counts as known after the warm-up and two transitions per parameter of
        # a row of Θ (steerloop.controller.settings.ModelSettings.known_after).
        warmup = max(self._policy.estimation.warmup, 2 * (len(self._objectives) + 1))
        if action.plan is not None:
            memory.leave_sequential()
            verdict = plan_action(
                action.plan,
                memory,
                planning,
                self._strategies,
                context.strategy,
                warmup,
                context.step,
            )
        else:
            assert action.best_predicted is not None  # validated: exactly one action
            verdict = best_predicted(
                action.best_predicted,
                planning,
                self._strategies,
                context.strategy,
                warmup,
                self._objectives,
            )
        return Verdict(verdict.target, f"{reason}; {verdict.reason}")

    def _continue_sequential(
        self,
        memory: EngineMemory,
        diagnostics: Diagnostics,
        context: EngineContext,
        *,
        just_matched: bool,
    ) -> Verdict:
        rule_name = memory.sequential_rule or ""
        compiled = next((c for c in self._rules if c.rule.name == rule_name), None)
        action = None if compiled is None else compiled.rule.then.sequential
        if action is None:
            memory.leave_sequential()
            return Verdict(None, "sequential rule gone; leaving sequential mode")
        return self._sequential.proceed(
            memory, action, diagnostics, context.strategy, just_matched=just_matched
        )

    @staticmethod
    def _mode(memory: EngineMemory) -> tuple[Mode, str | None]:
        return ("sequential" if memory.sequential_active else "direct"), memory.focus

    @staticmethod
    def _cooling(compiled: _CompiledRule, memory: EngineMemory, step: int) -> bool:
        last = memory.rule_last_fired.get(compiled.rule.name)
        return compiled.cooldown > 0 and last is not None and step - last < compiled.cooldown

    def _dwelling(self, memory: EngineMemory, step: int) -> int:
        """Steps of dwell still to wait (0 when a switch is allowed)."""
        if memory.last_switch_step is None:
            return 0
        return max(0, self._policy.switching.min_dwell - (step - memory.last_switch_step))

    def _finish(
        self,
        memory: EngineMemory,
        context: EngineContext,
        verdict: Verdict,
        rule: str | None,
        alerts: tuple[Alert, ...],
        errors: int,
    ) -> EngineOutcome:
        """Apply dwell and bookkeeping to a verdict."""
        current = context.strategy
        target = verdict.target
        if target is None or target == current:
            suffix = f"; already on {current}" if target == current else ""
            return EngineOutcome(
                current, rule, verdict.reason + suffix, verdict.mode, verdict.focus, alerts, errors
            )
        wait = self._dwelling(memory, context.step)
        if wait and current in self._policy.strategies:
            reason = (
                f"{verdict.reason}; switch to {target} deferred: dwell needs {wait} more step(s)"
            )
            return EngineOutcome(current, rule, reason, verdict.mode, verdict.focus, alerts, errors)
        memory.last_switch_step = context.step
        memory.left_strategy = current
        if rule is not None:
            memory.rule_last_fired[rule] = context.step
        reason = f"{verdict.reason} -> {target}"
        return EngineOutcome(target, rule, reason, verdict.mode, verdict.focus, alerts, errors)
