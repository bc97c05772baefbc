"""One session's state and its step: learn → diagnose → decide → predict.

:class:`SessionCore` is everything a session remembers, and :meth:`SessionCore.step` runs one
update on already-checked scores (docs/architecture.md, "One step, as data flows"):

1. the estimators learn (:class:`~steerloop.controller.models.SessionModels`), and a learnt
   transition also goes to the fleet pool;
2. the diagnostics are built from what they learnt (:mod:`steerloop.controller.diagnostics`);
3. the policy engine decides the next strategy, reading the diagnostics and, for ``plan`` and
   ``best_predicted``, every strategy's model (:mod:`steerloop.controller.planning`);
4. the filter's prior for the next step is predicted under the chosen strategy.

No locks, clocks or I/O here: :class:`~steerloop.controller.session.Session` serialises calls
and talks to stores; listeners receive the decision afterwards.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.decision import Decision
from steerloop.controller.diagnostics import (
    LazyDiagnostics,
    drift_diagnostics,
    interference_diagnostics,
)
from steerloop.controller.models import Learned, ModelsState, SessionModels
from steerloop.controller.planning import StepPlanning
from steerloop.controller.settings import ModelSettings
from steerloop.controller.state import SessionState
from steerloop.controller.tree import from_tree, to_tree
from steerloop.errors import NotReadyError, NumericalError, PolicyError
from steerloop.estimators.rls import LeastSquaresStats
from steerloop.policies.engine import EngineContext, PolicyEngine
from steerloop.policies.memory import EngineMemory, EngineState
from steerloop.policies.metrics import DiagnosticValue
from steerloop.policies.planning import REVERSAL_WINDOW
from steerloop.policies.schema import PlanAction, Policy

if TYPE_CHECKING:
    from steerloop.controller.pools import FleetPool, StoredPool

__all__ = ["IMPROVEMENT", "PendingTransition", "SessionCore", "StepInput"]

FloatArray = NDArray[np.float64]

#: A rise of objective.min by more than this resets ``progress.stall``.
IMPROVEMENT = 1e-3


@dataclass(frozen=True)
class PendingTransition:
    """A learnt transition waiting to be added to the fleet pool."""

    strategy: str
    previous: FloatArray
    current: FloatArray
    dt: float
    first: bool

    def add_to(self, pool: FleetPool | StoredPool) -> None:
        """Add it to ``pool``."""
        pool.add(self.strategy, self.previous, self.current, self.dt, first=self.first)


@dataclass(frozen=True)
class StepInput:
    """One update's checked inputs."""

    values: FloatArray
    missing: tuple[str, ...]
    unknown: int
    severity: float | None
    scorer_errors: int
    steps_left: int | None


class SessionCore:
    """The state of one session and its step (module docstring)."""

    def __init__(
        self,
        session_id: str,
        policy: Policy,
        settings: ModelSettings,
        models: SessionModels | None = None,
    ) -> None:
        self.session_id = session_id
        self.step_count = 0
        self.strategy = policy.initial
        self.strategy_steps = 0
        self.last_scores: dict[str, float | None] = dict.fromkeys(policy.objectives)
        self.best_worst: float | None = None
        self.stall = 0
        self.contributed = False
        self.scorer_errors = 0
        self.rule_errors = 0
        self.unknown_scores = 0
        self.models = SessionModels(settings) if models is None else models
        self.memory = EngineMemory()
        self.seed = int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "little")
        # The transition the last step learnt, for the fleet pool: added by the session once
        # the step is final (with a store, after its write landed; not part of the state).
        self.pending: PendingTransition | None = None

    # -- the step -----------------------------------------------------------------------

    def step(
        self, data: StepInput, engine: PolicyEngine, pool: FleetPool | StoredPool | None
    ) -> Decision:
        """Run one update (module docstring) and return its decision."""
        policy = engine.policy
        prior = _prior_source(pool)
        strategy = self.strategy
        learned = self.models.learn(data.values, strategy, severity=data.severity, prior=prior)
        self.step_count += 1
        self.strategy_steps += 1
        self.scorer_errors += data.scorer_errors
        self.unknown_scores += data.unknown
        objectives = policy.objectives
        self.last_scores = {
            name: (None if math.isnan(v) else v)
            for name, v in zip(objectives, data.values.tolist(), strict=True)
        }
        self._track_progress(learned)
        steps_left = _steps_left(data.steps_left, policy.horizon, self.step_count)
        planning = None
        if engine.uses_models:
            planning = StepPlanning(
                self.models,
                prior,
                list(policy.strategies),
                step=self.step_count,
                steps_left=steps_left,
                seed=self.seed,
                min_phase=max(REVERSAL_WINDOW, policy.switching.min_dwell),
            )
        tracker = self.models.interference
        interference = tracker.matrix() if tracker.ready() else None
        values, lazy = self._diagnostics(learned, policy, strategy, pool, planning, interference)
        diagnostics = LazyDiagnostics(values, lazy)
        context = EngineContext(
            step=self.step_count,
            strategy=strategy,
            warmed_up=self.step_count >= policy.estimation.warmup,
            interference=interference,
            planning=planning,
        )
        outcome = engine.decide(diagnostics, context, self.memory)
        self.rule_errors += outcome.rule_errors
        values["errors.rule"] = float(self.rule_errors)
        changed = outcome.strategy != strategy
        if changed:
            self.strategy = outcome.strategy
            self.strategy_steps = 0
        self.models.predict(self.strategy, prior)
        if learned.transition is not None and pool is not None:  # last: the step's fits are done
            previous, current = learned.transition
            self.pending = PendingTransition(
                strategy, previous, current, policy.estimation.dt, not self.contributed
            )
            self.contributed = True
        return Decision(
            strategy=self.strategy,
            prompt=engine.render(self.strategy, outcome.focus),
            changed=changed,
            rule=outcome.rule,
            reason=outcome.reason,
            mode=outcome.mode,
            focus=outcome.focus,
            diagnostics=diagnostics,
            previous_strategy=strategy,
            step=self.step_count,
            missing=data.missing,
            alerts=outcome.alerts,
            session_id=self.session_id,
        )

    def _track_progress(self, learned: Learned) -> None:
        worst = float(learned.filtered.min())
        if self.best_worst is None or worst > self.best_worst + IMPROVEMENT:
            self.best_worst = worst
            self.stall = 0
        else:
            self.stall += 1

    def _diagnostics(
        self,
        learned: Learned,
        policy: Policy,
        strategy: str,
        pool: FleetPool | StoredPool | None,
        planning: StepPlanning | None,
        interference: FloatArray | None,
    ) -> tuple[dict[str, DiagnosticValue], dict[str, Callable[[], DiagnosticValue]]]:
        objectives = tuple(policy.objectives)
        settings = self.models.settings
        values: dict[str, DiagnosticValue] = {
            "step": float(self.step_count),
            "strategy": strategy,
            "mode": "sequential" if self.memory.sequential_active else "direct",
            "objective.min": float(learned.filtered.min()),
            "progress.stall": float(self.stall),
        }
        for index, name in enumerate(objectives):
            values[f"objective.{name}"] = float(learned.filtered[index])
            values[f"score.{name}"] = self.last_scores[name]
            values[f"noise.{name}"] = float(learned.noise[index])
        values.update(drift_diagnostics(learned.fit, objectives, settings.min_effective))
        values.update(interference_diagnostics(interference, objectives))
        lazy = self._severity_diagnostics(values, learned, policy)
        values["pool.sessions"] = None if pool is None else float(pool.sessions)
        values["pool.transitions"] = None if pool is None else pool.transitions(strategy)
        values["errors.scorer"] = float(self.scorer_errors)
        values["errors.rule"] = float(self.rule_errors)
        values["scores.unknown"] = float(self.unknown_scores)
        action = next((rule.then.plan for rule in policy.rules_by_priority if rule.then.plan), None)
        if planning is not None and action is not None:
            lazy.update(_plan_diagnostics(planning, action, strategy))
        else:
            values.update(dict.fromkeys(("plan.strategy", "plan.value", "plan.margin")))
            values["plan.horizon"] = None
        return values, lazy

    def _severity_diagnostics(
        self, values: dict[str, DiagnosticValue], learned: Learned, policy: Policy
    ) -> dict[str, Callable[[], DiagnosticValue]]:
        severity = self.models.severity
        values["severity.value"] = learned.severity
        keys = ("alpha", "beta", "gamma", "margin", "margin_se")
        if not severity.ready:
            values.update({f"severity.{key}": None for key in keys})
            values["severity.phase"] = "unknown"
            values["severity.first_passage"] = None
            return {}
        alpha, beta, gamma = severity.parameters()
        numbers = (alpha, beta, gamma, alpha - beta, severity.margin_stderr)
        values.update(
            {
                f"severity.{k}": (v if math.isfinite(v) else None)
                for k, v in zip(keys, numbers, strict=True)
            }
        )
        values["severity.phase"] = severity.phase
        try:
            deferred = severity.deferred_first_passage(policy.severity.threshold)
        except NotReadyError:
            values["severity.first_passage"] = None
            return {}

        def first_passage() -> DiagnosticValue:
            try:
                passage = deferred()
            except (NumericalError, ArithmeticError, ValueError):
                return None
            return None if math.isnan(passage) else passage

        return {"severity.first_passage": first_passage}

    # -- snapshots ----------------------------------------------------------------------

    def to_state(self, *, arrays: Literal["base64", "raw"] = "base64") -> SessionState:
        """The session's snapshot (``arrays="raw"`` keeps numpy arrays, for a binary codec)."""
        return SessionState(
            session_id=self.session_id,
            objectives=list(self.models.settings.objectives),
            step=self.step_count,
            strategy=self.strategy,
            strategy_steps=self.strategy_steps,
            last_scores=dict(self.last_scores),
            best_worst=self.best_worst,
            stall=self.stall,
            contributed=self.contributed,
            scorer_errors=self.scorer_errors,
            rule_errors=self.rule_errors,
            unknown_scores=self.unknown_scores,
            models=to_tree(self.models.to_state(), arrays=arrays),
            engine=to_tree(self.memory.to_state(), arrays=arrays),
        )

    @classmethod
    def from_state(
        cls, state: SessionState, policy: Policy, settings: ModelSettings
    ) -> SessionCore:
        """Rebuild from :meth:`to_state` output under ``policy``.

        Raises
        ------
        PolicyError
            If the snapshot's objectives differ from the policy's.
        """
        if list(state.objectives) != list(policy.objectives):
            raise PolicyError.single(
                f"snapshot objectives {state.objectives} differ from the policy's "
                f"{policy.objectives}; restore it into a controller with the same objectives",
                field="objectives",
            )
        models = SessionModels.from_state(from_tree(ModelsState, state.models), settings)
        core = cls(state.session_id, policy, settings, models)
        core.step_count = state.step
        core.strategy = state.strategy
        core.strategy_steps = state.strategy_steps
        core.last_scores = dict(state.last_scores)
        core.best_worst = state.best_worst
        core.stall = state.stall
        core.contributed = state.contributed
        core.scorer_errors = state.scorer_errors
        core.rule_errors = state.rule_errors
        core.unknown_scores = state.unknown_scores
        core.memory = EngineMemory.from_state(from_tree(EngineState, state.engine))
        if core.strategy not in policy.strategies:  # written under another policy
            core.strategy = policy.initial
            core.strategy_steps = 0
            core.memory.leave_sequential()
            core.memory.forget_plan()
        return core


def _prior_source(
    pool: FleetPool | StoredPool | None,
) -> Callable[[str], LeastSquaresStats | None]:
    if pool is None:
        return lambda _strategy: None
    return pool.prior


def _steps_left(told: int | None, horizon: int | None, step: int) -> int | None:
    """Steps left after this one: told by the caller, else from the policy's horizon.

    Past the policy's horizon nothing is left (0, not negative); a loop told it has 0 steps
    left plans one step ahead, as told (on the value benchmark's tuning environments this
    did better than treating the rest of an overrunning loop as untold).
    """
    if told is not None:
        return max(0, told)
    if horizon is not None:
        return max(0, horizon - step)
    return None


def _plan_diagnostics(
    planning: StepPlanning, action: PlanAction, strategy: str
) -> dict[str, Callable[[], DiagnosticValue]]:
    """Lazy ``plan.*`` entries: the plan of the policy's first ``plan`` action."""

    def result() -> tuple[str | None, float | None, float | None]:
        plan = planning.latest(action)
        if plan is None or not math.isfinite(plan.value):
            return None, None, None
        hold = plan.hold_value(strategy)
        margin = None if hold is None else plan.value - hold
        return plan.schedule.first, plan.value, margin

    horizon = planning.steps_left
    return {
        "plan.strategy": lambda: result()[0],
        "plan.value": lambda: result()[1],
        "plan.margin": lambda: result()[2],
        "plan.horizon": lambda: None if horizon is None else float(horizon),
    }
