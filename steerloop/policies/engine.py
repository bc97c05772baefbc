"""The rule engine: from one step's diagnostics to the next strategy.

Semantics (DESIGN.md "Policy file", paper 1 appendix B.3):

* Before warm-up ends the current strategy is held.
* Rules are tried by descending ``priority`` (ties in file order); a rule whose cooldown has
  not elapsed is skipped. The first rule whose condition holds acts, except ``alert``,
  which records an alert and lets evaluation continue (an alert never consumes the decision).
* A switch needs ``switching.min_dwell`` steps since the previous switch; a rule that
  matches during dwell is reported but does not switch and does not start its cooldown.
* ``sequential`` enters a mode that focuses one objective at a time with the strategy that
  emphasises it most. The focus advances when the filtered objective reaches ``target`` or
  has not improved (by more than :data:`IMPROVEMENT_EPSILON`) for ``patience`` steps; the mode
  ends when the schedule completes or ``interference.min`` recovers above ``exit_above``
  (hysteresis: entering needs the rule's condition, leaving needs the recovery). While the
  mode runs, rules of higher priority than the one that started it may preempt it (that ends
  the mode); rules of lower priority wait.
* ``best_predicted`` first tries every strategy whose drift model is not yet estimated
  (holding a strategy under exploration until its model is ready), then picks the strategy
  whose predicted equilibrium x*_π = −A_π⁻¹b_π (clipped to [0, 1]) maximises the utility
  (``min`` over objectives by default, or ``mean``/``weighted``).

Rule evaluation never raises into the loop: an exception inside a rule is counted in
:attr:`EngineOutcome.rule_errors` and the rule is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.diagnostics import Diagnostics, LazyDiagnostics
from steerloop.controller.interference import interference_order
from steerloop.controller.state import EngineState
from steerloop.policies.conditions import CompiledCondition, compile_condition
from steerloop.policies.schema import BestPredictedAction, Policy, Rule, SequentialAction

__all__ = [
    "IMPROVEMENT_EPSILON",
    "Alert",
    "EngineContext",
    "EngineMemory",
    "EngineOutcome",
    "PolicyEngine",
]

#: Smallest rise of the focused objective that counts as improvement in sequential mode.
IMPROVEMENT_EPSILON = 1e-3

Mode = Literal["direct", "sequential"]


@dataclass(frozen=True)
class Alert:
    """An ``alert`` action that fired."""

    rule: str
    message: str
    severity: str
    reason: str


@dataclass(frozen=True)
class EngineContext:
    """What the engine needs beyond the flat diagnostics.

    Attributes
    ----------
    step : int
        Number of updates the session has seen (after this one).
    strategy : str
        Strategy in effect for the step just observed.
    warmed_up : bool
        Whether ``estimation.warmup`` updates have arrived.
    filtered : numpy.ndarray
        Filtered objective state x̂_t, shape (d,).
    equilibria : Mapping[str, numpy.ndarray | None]
        Predicted equilibrium per strategy; ``None`` when not estimable. Read only by
        ``best_predicted``: empty when no rule of the policy has that action
        (:attr:`PolicyEngine.reads_drift_models`).
    estimated : frozenset[str]
        Strategies whose drift model has finished warm-up (empty as ``equilibria``).
    interference : numpy.ndarray | list[list[float]] | None
        Pooled interference matrix (an array or its rows), or ``None`` before it is ready.
    """

    step: int
    strategy: str
    warmed_up: bool
    filtered: NDArray[np.float64]
    equilibria: Mapping[str, NDArray[np.float64] | None]
    estimated: frozenset[str]
    interference: NDArray[np.float64] | list[list[float]] | None


@dataclass(frozen=True)
class EngineOutcome:
    """The engine's verdict for one step."""

    strategy: str
    rule: str | None
    reason: str
    mode: Mode
    focus: str | None
    alerts: tuple[Alert, ...] = ()
    rule_errors: int = 0


@dataclass
class EngineMemory:
    """Mutable per-session bookkeeping of the engine (serialized as :class:`EngineState`)."""

    last_switch_step: int | None = None
    rule_last_fired: dict[str, int] = field(default_factory=dict)
    sequential_active: bool = False
    sequential_rule: str | None = None
    sequential_order: list[str] = field(default_factory=list)
    sequential_index: int = 0
    sequential_best: float | None = None
    sequential_stall: int = 0

    def to_state(self) -> EngineState:
        """Serializable copy."""
        return EngineState(
            last_switch_step=self.last_switch_step,
            rule_last_fired=dict(self.rule_last_fired),
            sequential_active=self.sequential_active,
            sequential_rule=self.sequential_rule,
            sequential_order=list(self.sequential_order),
            sequential_index=self.sequential_index,
            sequential_best=self.sequential_best,
            sequential_stall=self.sequential_stall,
        )

    @classmethod
    def from_state(cls, state: EngineState) -> EngineMemory:
        """Rebuild from :meth:`to_state` output."""
        return cls(
            last_switch_step=state.last_switch_step,
            rule_last_fired=dict(state.rule_last_fired),
            sequential_active=state.sequential_active,
            sequential_rule=state.sequential_rule,
            sequential_order=list(state.sequential_order),
            sequential_index=state.sequential_index,
            sequential_best=state.sequential_best,
            sequential_stall=state.sequential_stall,
        )

    def leave_sequential(self) -> None:
        """End sequential mode and forget its schedule."""
        self.sequential_active = False
        self.sequential_rule = None
        self.sequential_order = []
        self.sequential_index = 0
        self.sequential_best = None
        self.sequential_stall = 0


@dataclass(frozen=True)
class _CompiledRule:
    rule: Rule
    condition: CompiledCondition
    cooldown: int
    rank: int
    name: str = ""


class PolicyEngine:
    """Compiled, stateless view of a :class:`Policy`; per-session state is an EngineMemory.

    One engine serves every session of a controller; it is rebuilt on policy reload.
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._objectives = list(policy.objectives)
        ordered = policy.rules_by_priority
        self._rules = [
            _CompiledRule(
                rule=rule,
                condition=compile_condition(rule.when),
                cooldown=rule.cooldown if rule.cooldown is not None else policy.switching.cooldown,
                rank=rank,
                name=rule.name,
            )
            for rank, rule in enumerate(ordered)
        ]
        self._rank = {compiled.rule.name: compiled.rank for compiled in self._rules}
        self._by_name = {compiled.rule.name: compiled for compiled in self._rules}
        self._focus_strategy = {name: self._strategy_for(name) for name in self._objectives}
        self._prompts: dict[tuple[str, str | None], str] = {}
        self._reads_drift_models = any(
            rule.then.best_predicted is not None for rule in policy.rules
        )

    @property
    def policy(self) -> Policy:
        """The policy this engine evaluates."""
        return self._policy

    @property
    def reads_drift_models(self) -> bool:
        """Whether a rule reads :attr:`EngineContext.equilibria`/``estimated`` (``best_predicted``).

        When none does, the session passes them empty instead of collecting every
        strategy's model each step.
        """
        return self._reads_drift_models

    def _strategy_for(self, objective: str) -> str | None:
        best_name: str | None = None
        best_share = 0.0
        for name, strategy in self._policy.strategies.items():
            total = sum(strategy.emphasis.values())
            share = strategy.emphasis.get(objective, 0.0) / total if total > 0 else 0.0
            if share > best_share:
                best_name, best_share = name, share
        return best_name

    def render(self, strategy: str, focus: str | None) -> str:
        """The prompt of ``strategy`` with its placeholders filled (cached per focus).

        Same text as ``policy.strategies[strategy].render(policy.objectives, focus)``.
        """
        key = (strategy, focus)
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = self._policy.strategies[strategy].render(self._objectives, focus)
            if len(self._prompts) < 4096:  # focus is an objective name or None: bounded
                self._prompts[key] = prompt
        return prompt

    def focus_strategy(self, objective: str) -> str | None:
        """The strategy sequential mode uses to focus ``objective`` (largest emphasis share)."""
        return self._focus_strategy.get(objective)

    def decide(
        self, diagnostics: Diagnostics, context: EngineContext, memory: EngineMemory
    ) -> EngineOutcome:
        """Choose the strategy for the next step and update ``memory`` in place."""
        current = context.strategy
        if current not in self._policy.strategies:
            memory.leave_sequential()
            return self._finish(
                memory,
                context,
                self._policy.initial,
                None,
                f"strategy {current!r} is not in the policy; back to initial",
                "direct",
                None,
                (),
                0,
            )
        if not context.warmed_up:
            mode: Mode = "sequential" if memory.sequential_active else "direct"
            return EngineOutcome(
                strategy=current,
                rule=None,
                reason="warm-up: holding the current strategy",
                mode=mode,
                focus=self._current_focus(memory),
                alerts=(),
                rule_errors=0,
            )
        if memory.sequential_active and memory.sequential_rule not in self._rank:
            memory.leave_sequential()

        alerts: list[Alert] = []
        errors = 0
        sequential_rank = self._rank.get(memory.sequential_rule or "", None)
        # Conditions that read no pending lazy entry are evaluated on the computed entries (a
        # plain dict: the same values, without the lazy mapping's Python-level lookups).
        computed: Diagnostics = diagnostics
        pending: Collection[str] = ()
        if type(diagnostics) is LazyDiagnostics:
            computed, pending = diagnostics.computed, diagnostics.pending
        fired = memory.rule_last_fired
        step = context.step
        for compiled in self._rules:
            rule = compiled.rule
            waiting = sequential_rank is not None and compiled.rank > sequential_rank
            if memory.sequential_active and waiting:
                break  # lower-priority rules wait while sequential mode runs
            if compiled.cooldown > 0:  # _cooling, inline
                last = fired.get(compiled.name)
                if last is not None and step - last < compiled.cooldown:
                    continue
            condition = compiled.condition
            source = (
                computed if not pending or condition.metrics.isdisjoint(pending) else diagnostics
            )
            try:
                matched = condition.evaluate(source)
            except Exception:
                errors += 1
                continue
            if not matched:
                continue
            try:
                reason = condition.explain(source)
            except Exception:
                errors += 1
                reason = "condition held"
            action = rule.then
            if action.alert is not None:
                memory.rule_last_fired[rule.name] = context.step
                alerts.append(Alert(rule.name, action.alert.message, action.alert.severity, reason))
                continue
            if action.hold is not None:
                return self._finish(
                    memory,
                    context,
                    current,
                    rule.name,
                    f"hold: {reason}",
                    self._mode(memory),
                    self._current_focus(memory),
                    tuple(alerts),
                    errors,
                )
            if action.switch_to is not None:
                if memory.sequential_active:
                    memory.leave_sequential()
                return self._switch(
                    memory, context, compiled, action.switch_to, reason, tuple(alerts), errors
                )
            if action.sequential is not None:
                return self._sequential(
                    memory,
                    context,
                    diagnostics,
                    compiled,
                    action.sequential,
                    reason,
                    tuple(alerts),
                    errors,
                )
            if action.best_predicted is not None:
                return self._best_predicted(
                    memory, context, compiled, action.best_predicted, reason, tuple(alerts), errors
                )
        if memory.sequential_active:
            return self._continue_sequential(memory, context, diagnostics, tuple(alerts), errors)
        return EngineOutcome(
            strategy=current,
            rule=None,
            reason="no rule matched",
            mode="direct",
            focus=None,
            alerts=tuple(alerts),
            rule_errors=errors,
        )

    # -- helpers -------------------------------------------------------------------------

    def _cooling(self, compiled: _CompiledRule, memory: EngineMemory, step: int) -> bool:
        last = memory.rule_last_fired.get(compiled.rule.name)
        return last is not None and compiled.cooldown > 0 and step - last < compiled.cooldown

    def _dwelling(self, memory: EngineMemory, step: int) -> int:
        """Steps of dwell still to wait (0 when a switch is allowed)."""
        if memory.last_switch_step is None:
            return 0
        return max(0, self._policy.switching.min_dwell - (step - memory.last_switch_step))

    @staticmethod
    def _mode(memory: EngineMemory) -> Mode:
        return "sequential" if memory.sequential_active else "direct"

    @staticmethod
    def _current_focus(memory: EngineMemory) -> str | None:
        if memory.sequential_active and memory.sequential_index < len(memory.sequential_order):
            return memory.sequential_order[memory.sequential_index]
        return None

    def _finish(
        self,
        memory: EngineMemory,
        context: EngineContext,
        target: str,
        rule: str | None,
        reason: str,
        mode: Mode,
        focus: str | None,
        alerts: tuple[Alert, ...],
        errors: int,
    ) -> EngineOutcome:
        if target != context.strategy:
            memory.last_switch_step = context.step
        if rule is not None:
            memory.rule_last_fired[rule] = context.step
        return EngineOutcome(target, rule, reason, mode, focus, alerts, errors)

    def _switch(
        self,
        memory: EngineMemory,
        context: EngineContext,
        compiled: _CompiledRule,
        target: str,
        reason: str,
        alerts: tuple[Alert, ...],
        errors: int,
        *,
        mode: Mode = "direct",
        focus: str | None = None,
    ) -> EngineOutcome:
        name = compiled.rule.name
        if target == context.strategy:
            return EngineOutcome(
                target, name, f"{reason}; already on {target}", mode, focus, alerts, errors
            )
        wait = self._dwelling(memory, context.step)
        if wait:
            return EngineOutcome(
                context.strategy,
                name,
                f"{reason}; switch to {target} deferred: dwell needs {wait} more step(s)",
                mode,
                focus,
                alerts,
                errors,
            )
        return self._finish(
            memory, context, target, name, f"{reason} -> {target}", mode, focus, alerts, errors
        )

    def _sequential(
        self,
        memory: EngineMemory,
        context: EngineContext,
        diagnostics: Diagnostics,
        compiled: _CompiledRule,
        action: SequentialAction,
        reason: str,
        alerts: tuple[Alert, ...],
        errors: int,
    ) -> EngineOutcome:
        if not memory.sequential_active:
            if action.order != "auto":
                order = list(action.order)
            elif context.interference is None:
                order = list(self._objectives)
            else:
                order = interference_order(context.interference, self._objectives)
            order = [name for name in order if self._focus_strategy.get(name) is not None]
            if not order:
                return EngineOutcome(
                    context.strategy,
                    compiled.rule.name,
                    f"{reason}; no objective has a focus strategy",
                    "direct",
                    None,
                    alerts,
                    errors,
                )
            memory.sequential_active = True
            memory.sequential_rule = compiled.rule.name
            memory.sequential_order = order
            memory.sequential_index = 0
            memory.sequential_best = None
            memory.sequential_stall = 0
            reason = f"{reason}; sequential order {order}"
        return self._continue_sequential(memory, context, diagnostics, alerts, errors, reason)

    def _continue_sequential(
        self,
        memory: EngineMemory,
        context: EngineContext,
        diagnostics: Diagnostics,
        alerts: tuple[Alert, ...],
        errors: int,
        reason: str = "",
    ) -> EngineOutcome:
        rule_name = memory.sequential_rule
        compiled = self._by_name.get(rule_name or "")
        if compiled is None or compiled.rule.then.sequential is None:
            memory.leave_sequential()
            return EngineOutcome(
                context.strategy,
                None,
                "sequential rule gone; leaving sequential mode",
                "direct",
                None,
                alerts,
                errors,
            )
        action = compiled.rule.then.sequential
        notes = [reason] if reason else []
        interference_min = diagnostics.get("interference.min")
        if (
            isinstance(interference_min, float)
            and math.isfinite(interference_min)
            and interference_min > action.exit_above
            and not reason  # never leave on the step the rule (re)matched
        ):
            memory.leave_sequential()
            return self._after_sequential(
                memory,
                context,
                compiled,
                f"interference.min = {interference_min:.3g} > {action.exit_above:g}: "
                "interference recovered, leaving sequential mode",
                alerts,
                errors,
            )
        # Advance the focus while the focused objective is done (target met or stalled).
        while memory.sequential_index < len(memory.sequential_order):
            focus = memory.sequential_order[memory.sequential_index]
            value = diagnostics.get(f"objective.{focus}")
            level = value if isinstance(value, float) and math.isfinite(value) else None
            on_focus = context.strategy == self._focus_strategy.get(focus)
            if level is not None and on_focus:
                if (
                    memory.sequential_best is None
                    or level > memory.sequential_best + IMPROVEMENT_EPSILON
                ):
                    memory.sequential_best = level
                    memory.sequential_stall = 0
                else:
                    memory.sequential_stall += 1
            if level is not None and level >= action.target:
                notes.append(f"objective.{focus} = {level:.3g} >= target {action.target:g}")
            elif on_focus and memory.sequential_stall >= action.patience:
                notes.append(f"objective.{focus} stalled for {memory.sequential_stall} steps")
            else:
                break
            memory.sequential_index += 1
            memory.sequential_best = None
            memory.sequential_stall = 0
        if memory.sequential_index >= len(memory.sequential_order):
            memory.leave_sequential()
            notes.append("sequential schedule complete")
            return self._after_sequential(
                memory, context, compiled, "; ".join(notes), alerts, errors
            )
        focus = memory.sequential_order[memory.sequential_index]
        target = self._focus_strategy[focus]
        assert target is not None  # order only holds objectives with a focus strategy
        notes.append(f"focus {focus}")
        return self._switch(
            memory,
            context,
            compiled,
            target,
            "; ".join(notes),
            alerts,
            errors,
            mode="sequential",
            focus=focus,
        )

    def _after_sequential(
        self,
        memory: EngineMemory,
        context: EngineContext,
        compiled: _CompiledRule,
        reason: str,
        alerts: tuple[Alert, ...],
        errors: int,
    ) -> EngineOutcome:
        """Leaving sequential mode returns to the policy's initial strategy."""
        return self._switch(memory, context, compiled, self._policy.initial, reason, alerts, errors)

    def _best_predicted(
        self,
        memory: EngineMemory,
        context: EngineContext,
        compiled: _CompiledRule,
        action: BestPredictedAction,
        reason: str,
        alerts: tuple[Alert, ...],
        errors: int,
    ) -> EngineOutcome:
        strategies = list(self._policy.strategies)
        if context.strategy not in context.estimated:
            return EngineOutcome(
                context.strategy,
                compiled.rule.name,
                f"{reason}; exploring {context.strategy} until its drift model is estimated",
                "direct",
                None,
                alerts,
                errors,
            )
        untried = [name for name in strategies if name not in context.estimated]
        if untried:
            return self._switch(
                memory, context, compiled, untried[0], f"{reason}; explore untried", alerts, errors
            )
        scored: list[tuple[float, int, str]] = []
        for index, name in enumerate(strategies):
            equilibrium = context.equilibria.get(name)
            value = -math.inf if equilibrium is None else self._utility(equilibrium, action)
            scored.append((value, -index, name))
        best_value, _, best = max(scored)
        if not math.isfinite(best_value):
            return EngineOutcome(
                context.strategy,
                compiled.rule.name,
                f"{reason}; no strategy has a predicted equilibrium",
                "direct",
                None,
                alerts,
                errors,
            )
        current_value = next(value for value, _, name in scored if name == context.strategy)
        detail = f"{reason}; predicted utility {best} = {best_value:.3g}"
        if best != context.strategy:
            detail += f" vs {context.strategy} = {current_value:.3g}"
        return self._switch(memory, context, compiled, best, detail, alerts, errors)

    def _utility(self, equilibrium: NDArray[np.float64], action: BestPredictedAction) -> float:
        clipped = np.clip(equilibrium, 0.0, 1.0)
        if action.utility == "min":
            return float(clipped.min())
        if action.utility == "mean":
            return float(clipped.mean())
        weights = np.array([action.weights.get(name, 0.0) for name in self._objectives])
        total = weights.sum()
        return float(weights @ clipped / total) if total > 0 else float(clipped.mean())
