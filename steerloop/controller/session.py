"""One steered loop's state and step, and the Controller that keeps sessions.

One call of :meth:`Session.update` runs DESIGN.md "One step":

1. clean the scores into y_t (invalid entries are *missing*) and Kalman-update: x̂_t, P_t;
2. learn the transition x̂_{t−1} → x̂_t under the strategy that produced it (RLS drift, its
   residual covariance and R²) and the increment's interference;
3. severity s_t (default 1 − min_i x̂_i) feeds the severity SDE estimator;
4. the spectrum of A_π gives rate and regime; −A_π⁻¹b_π the predicted equilibrium;
5. the diagnostics go through the policy engine, which picks the next strategy;
6. the Kalman prior for t+1 is predicted with the next strategy's drift (random walk before
   its model is warm).

Nothing here logs, measures or does I/O: listeners registered on the :class:`Controller`
(telemetry, recorders) receive each :class:`Decision` after the step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from steerloop.controller import _linalg
from steerloop.controller.diagnostics import DiagnosticValue, LazyDiagnostics
from steerloop.controller.drift import DriftModel
from steerloop.controller.interference import InterferenceTracker
from steerloop.controller.kalman import ObjectiveFilter
from steerloop.controller.severity import SeverityModel
from steerloop.controller.spectrum import SpectrumSummary, summarize_spectrum
from steerloop.controller.state import SessionState
from steerloop.errors import (
    NotReadyError,
    NumericalError,
    PolicyError,
    ScorerError,
    SteerloopError,
)
from steerloop.policies.engine import Alert, EngineContext, EngineMemory, PolicyEngine
from steerloop.policies.schema import Policy, validate_policy
from steerloop.stores import codec
from steerloop.stores.sync import StoredCopy, read_modify_write, sync

if TYPE_CHECKING:
    from steerloop.scoring.base import CompositeScorer, Scorer
    from steerloop.stores.base import StateStore

__all__ = ["Controller", "Decision", "Session"]

FloatArray = NDArray[np.float64]
Listener = Callable[["Session", "Decision"], None]
#: ``hook(session)`` runs just before a step; the callable it returns (if any) runs right after.
StepHook = Callable[["Session"], Callable[[], None] | None]
#: ``listener(old_policy, new_policy)`` runs after :meth:`Controller.reload_policy` swapped them.
ReloadListener = Callable[[Policy, Policy], None]


@dataclass(frozen=True)
class Decision:
    """What the controller decided after one response.

    Attributes
    ----------
    strategy : str
        Strategy to use for the next call.
    prompt : str
        Its rendered prompt (inject it as the system/steering prompt).
    changed : bool
        Whether ``strategy`` differs from the strategy of the step just observed.
    rule : str | None
        Name of the rule that acted (or matched during dwell), ``None`` when none did.
    reason : str
        One human-readable line with the numbers behind the decision.
    mode : str
        ``"direct"`` or ``"sequential"``.
    focus : str | None
        Objective in focus in sequential mode.
    diagnostics : Mapping[str, float | str | None]
        The step's snapshot in the namespace rule conditions read (DESIGN.md "Public API").
    previous_strategy : str
        Strategy that produced the observed response.
    step : int
        Number of updates this session has seen, this one included.
    missing : tuple[str, ...]
        Objectives whose score was missing or invalid this step.
    alerts : tuple[Alert, ...]
        ``alert`` actions that fired.
    error : str | None
        Set when the controller failed open on this step (the strategy was held).
    """

    strategy: str
    prompt: str
    changed: bool
    rule: str | None
    reason: str
    mode: str
    focus: str | None
    diagnostics: Mapping[str, DiagnosticValue]
    previous_strategy: str
    step: int
    missing: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    error: str | None = None


@dataclass
class _Estimators:
    """Runtime estimators of one session, built from the policy's estimation settings."""

    kalman: ObjectiveFilter
    drift: dict[str, DriftModel]
    interference: InterferenceTracker
    severity: SeverityModel
    memory: EngineMemory = field(default_factory=EngineMemory)


class Session:
    """State and step of one steered loop. Get one with :meth:`Controller.session`.

    Sessions are not thread-safe on their own: one session serves one loop at a time (the
    controller serializes calls on the same session with a per-session lock).
    """

    def __init__(self, controller: Controller, session_id: str) -> None:
        self._controller = controller
        self._id = session_id
        self._lock = threading.RLock()
        self._generation = controller._generation
        policy = controller.policy
        self._objectives: list[str] = list(policy.objectives)
        self._dim = len(self._objectives)
        self._step = 0
        self._strategy = policy.initial
        self._strategy_steps = 0
        self._previous: FloatArray | None = None
        self._last_scores: dict[str, float | None] = dict.fromkeys(self._objectives)
        self._scorer_errors = 0
        self._rule_errors = 0
        self._last_decision: Decision | None = None
        self._stored = StoredCopy()  # which stored value this copy matches (stores only)
        self._est = self._fresh_estimators(policy)

    # -- construction -------------------------------------------------------------------

    def _fresh_estimators(self, policy: Policy) -> _Estimators:
        est = policy.estimation
        return _Estimators(
            kalman=ObjectiveFilter(self._dim, measurement_noise=est.measurement_noise),
            drift={},
            interference=InterferenceTracker(
                self._objectives, forgetting=est.forgetting, warmup=est.warmup
            ),
            severity=self._new_severity(policy),
        )

    def _new_drift(self) -> DriftModel:
        est = self._controller.policy.estimation
        return DriftModel(
            self._dim,
            forgetting=est.forgetting,
            dt=est.dt,
            warmup=est.warmup,
            initial_covariance=est.initial_covariance,
            max_trace=est.max_covariance_trace,
        )

    @staticmethod
    def _new_severity(policy: Policy) -> SeverityModel:
        est = policy.estimation
        return SeverityModel(
            forgetting=est.forgetting,
            dt=est.dt,
            warmup=est.warmup,
            phase_margin=policy.severity.phase_margin,
            phase_z=policy.severity.phase_z,
            initial_covariance=est.initial_covariance,
            max_trace=est.max_covariance_trace,
        )

    # -- read-only views ----------------------------------------------------------------

    @property
    def id(self) -> str:
        """Session id."""
        return self._id

    @property
    def controller(self) -> Controller:
        """The controller this session belongs to."""
        return self._controller

    @property
    def strategy(self) -> str:
        """Strategy for the next call."""
        self._sync_policy()
        return self._strategy

    @property
    def prompt(self) -> str:
        """The current strategy's rendered prompt."""
        self._sync_policy()
        return self._render(self._strategy, self._focus())

    @property
    def step(self) -> int:
        """Number of updates seen."""
        return self._step

    @property
    def last_decision(self) -> Decision | None:
        """The most recent decision, if any."""
        return self._last_decision

    @property
    def filtered(self) -> FloatArray:
        """Filtered objective state x̂_t (a copy)."""
        return self._est.kalman.mean

    def _focus(self) -> str | None:
        memory = self._est.memory
        if memory.sequential_active and memory.sequential_index < len(memory.sequential_order):
            return memory.sequential_order[memory.sequential_index]
        return None

    def _render(self, strategy: str, focus: str | None) -> str:
        policy = self._controller.policy
        return policy.strategies[strategy].render(self._objectives, focus)

    # -- the step -----------------------------------------------------------------------

    def update(
        self,
        scores: Mapping[str, object],
        *,
        severity: float | None = None,
        scorer_errors: int = 0,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Feed one response's scores and get the decision for the next call.

        Parameters
        ----------
        scores : Mapping[str, object]
            Score per objective in [0, 1]. Absent, ``None``, NaN, infinite, out-of-range or
            non-numeric values count as *missing* for this step; unknown keys are ignored.
        severity : float | None
            A severity measurement in [0, 1] that overrides the policy's severity source.
        scorer_errors : int
            Scorer failures behind these scores (added to ``errors.scorer``).
        idempotency_key : str | None
            With a store: apply this update at most once. A call with a key that was applied
            already (an earlier call whose reply was lost, in any worker) applies nothing
            and returns the decision stored with it. Without a store it is ignored.

        Returns
        -------
        Decision
            Never raises on bad input or a controller fault unless the controller is strict;
            a fault holds the current strategy and sets ``Decision.error``.

        Raises
        ------
        StoreError
            With a store only, strict or not: the store failed, conflicts outlasted the
            retries (:class:`~steerloop.errors.StoreConflictError`) or the stored session
            vanished (:class:`~steerloop.errors.SessionVanishedError`); the update was not
            applied. :class:`~steerloop.errors.StoreInDoubtError`: it may have been; call
            again with its ``idempotency_key`` (see :mod:`steerloop.stores.sync`).
        """
        with self._lock:
            finish = self._controller._start_step(self) if self._controller._step_hooks else ()
            self._sync_policy()
            store = self._controller._store
            replayed: list[Decision] = []
            if store is None:
                decision = self._guarded_step(scores, severity, scorer_errors)
            else:  # read-modify-write through the store (steerloop.stores.sync)

                def replay(data: bytes) -> Decision:
                    replayed.append(_load_decision(data))
                    return replayed[-1]

                decision = read_modify_write(
                    store,
                    self._id,
                    self._stored,
                    load=self._load_wire,
                    fresh=self._reset,
                    step=lambda: self._guarded_step(scores, severity, scorer_errors),
                    dump=self._dump_wire,
                    dump_result=_dump_decision,
                    load_result=replay,
                    idempotency_key=idempotency_key,
                )
            self._last_decision = decision
            for done in finish:
                self._controller._call_safely(done)
        if not replayed:  # a replayed decision was reported when it was made
            self._controller._notify(self, decision)
        return decision

    def _guarded_step(
        self, scores: Mapping[str, object], severity: float | None, scorer_errors: int
    ) -> Decision:
        """:meth:`_step_once`, failing open (holding the strategy) unless strict."""
        try:
            return self._step_once(scores, severity, scorer_errors)
        except SteerloopError as error:
            if self._controller.strict:
                raise
            return self._hold_on_error(error)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as error:
            if self._controller.strict:
                raise
            return self._hold_on_error(error)

    def observe(self, response: object, context: Mapping[str, Any] | None = None) -> Decision:
        """Score ``response`` with the policy's scorers, then :meth:`update`."""
        scorer = self._controller.scorer
        if scorer is None:
            raise ScorerError(
                "<none>",
                "no_scorers",
                "the policy lists no scorers; pass scores to session.update(...) instead",
            )
        result = scorer.score(response, context or {})
        return self.update(result.scores, scorer_errors=len(result.failures))

    async def aobserve(
        self, response: object, context: Mapping[str, Any] | None = None
    ) -> Decision:
        """Async twin of :meth:`observe` (scorers run concurrently; the step in a thread)."""
        scorer = self._controller.scorer
        if scorer is None:
            raise ScorerError(
                "<none>",
                "no_scorers",
                "the policy lists no scorers; pass scores to session.update(...) instead",
            )
        result = await scorer.ascore(response, context or {})
        return await asyncio.to_thread(
            self.update, result.scores, scorer_errors=len(result.failures)
        )

    async def aupdate(self, scores: Mapping[str, object], **kwargs: Any) -> Decision:
        """Async twin of :meth:`update` (runs the step in a worker thread)."""
        return await asyncio.to_thread(self.update, scores, **kwargs)

    def _hold_on_error(self, error: Exception) -> Decision:
        message = f"{type(error).__name__}: {error}"
        return Decision(
            strategy=self._strategy,
            prompt=self._render(self._strategy, self._focus()),
            changed=False,
            rule=None,
            reason="controller fault; holding the current strategy",
            mode="sequential" if self._est.memory.sequential_active else "direct",
            focus=self._focus(),
            diagnostics={"step": float(self._step), "strategy": self._strategy},
            previous_strategy=self._strategy,
            step=self._step,
            error=message,
        )

    def _step_once(
        self, scores: Mapping[str, object], severity_override: float | None, scorer_errors: int
    ) -> Decision:
        policy = self._controller.policy
        engine = self._controller.engine
        est = self._est
        objectives = self._objectives
        kalman = est.kalman
        # The filter cleans the scores (clean_measurement) and reports the components it used
        # (none when the update failed); the cleaned values are read back, not recomputed.
        used = kalman.update([scores.get(name) for name in objectives])
        values = kalman._measurement
        self._scorer_errors += scorer_errors
        flags = used.tolist()
        missing: tuple[str, ...]
        if flags and False not in flags:  # the common case: every score used
            self._last_scores = dict(zip(objectives, values.tolist(), strict=True))
            missing = ()
            any_used = True
        else:
            self._last_scores = dict(
                zip(
                    objectives,
                    [v if ok else None for v, ok in zip(values.tolist(), flags, strict=True)],
                    strict=True,
                )
            )
            missing = tuple(name for name, ok in zip(objectives, flags, strict=True) if not ok)
            any_used = True in flags
        self._step += 1
        self._strategy_steps += 1
        strategy = self._strategy

        # Regression input: the filtered state (default) or the raw scores when complete.
        filtered = kalman.mean  # a copy, never modified: shared with _previous below
        filtered.flags.writeable = False
        if policy.estimation.input == "filtered":
            current: FloatArray | None = filtered if any_used else None
        else:
            current = values.copy() if False not in flags else None
        drift = est.drift.get(strategy)
        if drift is None:
            drift = est.drift[strategy] = self._new_drift()
        if current is not None:
            if self._previous is not None:
                drift.update(self._previous, current)
                est.interference.update(current - self._previous, strategy)
            self._previous = current

        filtered_list: list[float] = filtered.tolist()
        severity_value = self._severity(filtered_list, severity_override)
        if severity_value is not None:
            est.severity.update(severity_value)

        spectrum, equilibrium = self._spectrum(drift)
        interference_rows = est.interference.matrix_rows() if est.interference.ready() else None
        diagnostic_values, lazy = self._diagnostics(
            filtered_list,
            drift,
            spectrum,
            equilibrium,
            interference_rows,
            severity_value,
            strategy,
        )
        diagnostics = LazyDiagnostics(diagnostic_values, lazy)
        equilibria: dict[str, FloatArray | None] = {}
        estimated: set[str] = set()
        if engine.reads_drift_models:  # only best_predicted reads every strategy's model
            for name, model in est.drift.items():
                if model.ready:
                    estimated.add(name)
                    equilibria[name] = (
                        equilibrium if model is drift else model._equilibrium_shared()
                    )
        outcome = engine.decide(
            diagnostics,
            EngineContext(
                step=self._step,
                strategy=strategy,
                warmed_up=self._step >= policy.estimation.warmup,
                filtered=filtered,
                equilibria=equilibria,
                estimated=frozenset(estimated),
                interference=interference_rows,
            ),
            est.memory,
        )
        self._rule_errors += outcome.rule_errors
        diagnostic_values["errors.rule"] = float(self._rule_errors)
        changed = outcome.strategy != strategy
        if changed:
            self._strategy = outcome.strategy
            self._strategy_steps = 0
            drift.park()  # only the running strategy's model and stream are kept unpacked
            est.interference.park(strategy)
        self._predict_prior(None if changed else spectrum)
        return Decision(
            strategy=self._strategy,
            prompt=engine.render(self._strategy, outcome.focus),
            changed=changed,
            rule=outcome.rule,
            reason=outcome.reason,
            mode=outcome.mode,
            focus=outcome.focus,
            diagnostics=diagnostics,
            previous_strategy=strategy,
            step=self._step,
            missing=missing,
            alerts=outcome.alerts,
        )

    def _severity(self, filtered: list[float], override: float | None) -> float | None:
        """Severity s_t ∈ [0, 1] from the configured source (DESIGN.md "Severity").

        ``filtered`` is x̂_t as a list (finite: the Kalman guard keeps it so).
        """
        if override is not None:
            value = float(override)
        else:
            source = self._controller.policy.severity.source
            if source is None:
                value = 1.0 - min(filtered)
            elif source.objective is not None:
                level = filtered[self._objectives.index(source.objective)]
                value = 1.0 - level if source.invert else level
            else:
                score = self._last_scores.get(source.score or "")
                if score is None:
                    return None
                value = 1.0 - score if source.invert else score
        if not math.isfinite(value):
            return None
        return min(1.0, max(0.0, value))

    def _spectrum(self, drift: DriftModel) -> tuple[SpectrumSummary | None, FloatArray | None]:
        """Spectrum summary of the running strategy's A and its equilibrium (read-only array)."""
        if not drift.ready:
            return None, None
        matrix = drift._drift_matrix()
        equilibrium = drift._equilibrium_shared(matrix)
        report = summarize_spectrum(
            matrix, dt=self._controller.policy.estimation.dt, equilibrium=equilibrium
        )
        return report, equilibrium

    def _diagnostics(
        self,
        filtered: list[float],
        drift: DriftModel,
        spectrum: SpectrumSummary | None,
        equilibrium: FloatArray | None,
        interference_rows: list[list[float]] | None,
        severity_value: float | None,
        strategy: str,
    ) -> tuple[dict[str, DiagnosticValue], dict[str, Callable[[], DiagnosticValue]]]:
        """The step's diagnostics; the first-passage time (a quadrature) is computed lazily."""
        est = self._est
        policy = self._controller.policy
        names = _diagnostic_names(tuple(self._objectives))
        diag: dict[str, DiagnosticValue] = {
            "step": float(self._step),
            "strategy": strategy,
            "mode": "sequential" if est.memory.sequential_active else "direct",
        }
        scores = self._last_scores
        for objective_key, score_key, name, value in zip(
            names.objective, names.score, self._objectives, filtered, strict=True
        ):
            diag[objective_key] = value
            diag[score_key] = scores[name]
        if spectrum is not None:  # rate and max_real are Python floats
            rate, max_real = spectrum.rate, spectrum.max_real
            diag["drift.rate"] = rate if math.isfinite(rate) else None
            diag["drift.max_real"] = max_real if math.isfinite(max_real) else None
            diag["drift.regime"] = spectrum.regime
        else:
            diag["drift.rate"] = diag["drift.max_real"] = None
            diag["drift.regime"] = "unknown"
        diag["drift.r2"] = _finite_or_none(drift.r2) if drift.ready else None
        if equilibrium is not None:  # finite: the drift model reports None otherwise
            diag.update(zip(names.equilibrium, equilibrium.tolist(), strict=True))
        else:
            diag.update(dict.fromkeys(names.equilibrium))
        if interference_rows is not None:
            # Entries are in [−1, 1] or NaN. interference.min is the smallest non-NaN entry
            # above the diagonal, the first in row-major order on ties (off_diagonal_minimum).
            rows = interference_rows
            lowest: float | None = None
            entries: list[float | None] = []
            for i, j, upper in names.pairs:
                value = rows[i][j]
                if value != value:  # NaN
                    entries.append(None)
                    continue
                entries.append(value)
                if upper and (lowest is None or value < lowest):
                    lowest = value
            diag["interference.min"] = lowest
            diag.update(zip(names.interference, entries, strict=True))
        else:
            diag["interference.min"] = None
            diag.update(dict.fromkeys(names.interference))
        severity = est.severity
        diag["severity.value"] = severity_value
        lazy: dict[str, Callable[[], DiagnosticValue]] = {}
        if severity.ready:
            # α̂, β̂, γ̂ read once (the properties each re-check readiness); margin = α̂ − β̂
            # exactly as SeverityModel.margin computes it.
            alpha, beta, gamma = severity._theta()
            margin = alpha - beta
            isfinite = math.isfinite
            diag["severity.alpha"] = alpha if isfinite(alpha) else None
            diag["severity.beta"] = beta if isfinite(beta) else None
            diag["severity.gamma"] = gamma if isfinite(gamma) else None
            diag["severity.margin"] = margin if isfinite(margin) else None
            diag["severity.phase"] = severity.phase
            lazy["severity.first_passage"] = _first_passage_thunk(
                severity, policy.severity.threshold
            )
        else:
            for key in ("alpha", "beta", "gamma", "margin", "first_passage"):
                diag[f"severity.{key}"] = None
            diag["severity.phase"] = "unknown"
        diag["errors.scorer"] = float(self._scorer_errors)
        return diag, lazy

    def _predict_prior(self, spectrum: SpectrumSummary | None) -> None:
        """Kalman prior for the next step under the next strategy's drift (DESIGN.md).

        ``spectrum`` is the next strategy's spectrum when already computed this step. The
        learnt transition is used only while its discrete map is contracting (spectral radius
        of I + AΔt below 1); otherwise, and before warm-up, a random walk.
        """
        est = self._est
        policy = self._controller.policy
        model = est.drift.get(self._strategy)
        if model is not None and model.ready:
            F, offset, Q = model.transition()
            if spectrum is None:
                spectral_radius = float(np.max(np.abs(_linalg.eigvals(F))))
            else:
                spectral_radius = spectrum.spectral_radius
            if spectral_radius < 1.0:
                floor = policy.estimation.process_noise * 1e-3
                try:
                    est.kalman.predict(F, offset, Q + _scaled_identity(self._dim, floor))
                    return
                except NumericalError:
                    pass
        est.kalman.predict_random_walk(policy.estimation.process_noise)

    # -- policy reload and snapshots ----------------------------------------------------

    def _sync_policy(self) -> None:
        """Rebuild estimators from a snapshot when the controller's policy changed."""
        if self._generation == self._controller._generation:
            return
        with self._lock:
            if self._generation == self._controller._generation:
                return
            state = self._snapshot_unlocked()
            self._generation = self._controller._generation
            self._load(state)
            if self._strategy not in self._controller.policy.strategies:
                self._strategy = self._controller.policy.initial
                self._strategy_steps = 0
                self._est.memory.leave_sequential()

    def snapshot(self) -> SessionState:
        """Serializable state; :meth:`Controller.restore` continues it bit-identically."""
        with self._lock:
            self._sync_policy()
            return self._snapshot_unlocked()

    def _snapshot_unlocked(self) -> SessionState:
        est = self._est
        return SessionState(
            session_id=self._id,
            policy_objectives=list(self._objectives),
            step=self._step,
            strategy=self._strategy,
            strategy_steps=self._strategy_steps,
            kalman=est.kalman.to_state(),
            previous_state=None if self._previous is None else self._previous.tolist(),
            last_scores=dict(self._last_scores),
            drift={name: model.to_state() for name, model in est.drift.items()},
            interference=est.interference.to_state(),
            severity=est.severity.to_state(),
            engine=est.memory.to_state(),
            scorer_errors=self._scorer_errors,
            rule_errors=self._rule_errors,
        )

    # -- the stored form (steerloop.stores.sync callbacks) -----------------------------------

    def _dump_wire(self) -> bytes:
        """The bytes a store keeps: the snapshot's Python tree in the stores' binary codec
        (exact; ~3x cheaper to write and ~6x cheaper to read than its JSON)."""
        return codec.encode(self._snapshot_unlocked().model_dump())

    def _load_wire(self, value: bytes) -> None:
        """Replace this copy's state by stored bytes (``ValueError`` when they do not fit)."""
        state = SessionState.model_validate(codec.decode(value))
        if state.session_id != self._id:
            raise ValueError(
                f"the stored state belongs to session {state.session_id!r}; two ids map to "
                "one key or the key was written by another application"
            )
        self._load(state)
        policy = self._controller.policy
        if self._strategy not in policy.strategies:  # written under an older policy
            self._strategy = policy.initial
            self._strategy_steps = 0
            self._est.memory.leave_sequential()

    def _reset(self) -> None:
        """Start afresh (the stored session vanished)."""
        self._load(Session(self._controller, self._id)._snapshot_unlocked())

    def _load(self, state: SessionState) -> None:
        policy = self._controller.policy
        if list(state.policy_objectives) != self._objectives:
            raise PolicyError.single(
                f"snapshot objectives {state.policy_objectives} differ from the policy's "
                f"{self._objectives}; restore it into a controller with the same objectives",
                field="objectives",
            )
        est = policy.estimation
        self._step = state.step
        self._strategy = state.strategy
        self._strategy_steps = state.strategy_steps
        self._previous = (
            None if state.previous_state is None else np.asarray(state.previous_state, np.float64)
        )
        self._last_scores = dict(state.last_scores)
        self._scorer_errors = state.scorer_errors
        self._rule_errors = state.rule_errors
        self._est = _Estimators(
            kalman=ObjectiveFilter.from_state(
                state.kalman, measurement_noise=est.measurement_noise
            ),
            drift={
                name: DriftModel.from_state(
                    drift_state,
                    forgetting=est.forgetting,
                    dt=est.dt,
                    warmup=est.warmup,
                    initial_covariance=est.initial_covariance,
                    max_trace=est.max_covariance_trace,
                )
                for name, drift_state in state.drift.items()
            },
            interference=InterferenceTracker.from_state(
                state.interference,
                objectives=self._objectives,
                forgetting=est.forgetting,
                warmup=est.warmup,
            ),
            severity=SeverityModel.from_state(
                state.severity,
                forgetting=est.forgetting,
                dt=est.dt,
                warmup=est.warmup,
                phase_margin=policy.severity.phase_margin,
                phase_z=policy.severity.phase_z,
                initial_covariance=est.initial_covariance,
                max_trace=est.max_covariance_trace,
            ),
            memory=EngineMemory.from_state(state.engine),
        )
        for name, model in self._est.drift.items():
            if name != self._strategy:
                model.park()  # only the running strategy's model and stream are kept unpacked
        for name in self._est.interference.strategies:
            if name != self._strategy:
                self._est.interference.park(name)


def _dump_decision(decision: Decision) -> bytes:
    """A decision as JSON bytes (stored with an idempotency key)."""
    document = {f.name: getattr(decision, f.name) for f in dataclasses.fields(decision)}
    document["diagnostics"] = dict(decision.diagnostics)
    document["alerts"] = [dataclasses.asdict(alert) for alert in decision.alerts]
    return json.dumps(document, allow_nan=True, separators=(",", ":")).encode()


def _load_decision(data: bytes) -> Decision:
    """The decision :func:`_dump_decision` wrote."""
    document = json.loads(data)
    document["missing"] = tuple(document["missing"])
    document["alerts"] = tuple(Alert(**alert) for alert in document["alerts"])
    return Decision(**document)


def _first_passage_thunk(model: SeverityModel, threshold: float) -> Callable[[], float | None]:
    """Capture the severity estimates now; compute the expected steps to ``threshold`` later."""
    try:
        deferred = model.deferred_first_passage(threshold)
    except NotReadyError:
        return lambda: None

    def compute() -> float | None:
        try:
            passage = deferred()
        except (NumericalError, ArithmeticError, ValueError):
            return None
        return None if math.isnan(passage) else passage

    return compute


@functools.lru_cache(maxsize=64)
def _scaled_identity(dim: int, scale: float) -> FloatArray:
    """``scale * np.eye(dim)``, built once per (dim, scale) (read-only)."""
    matrix = scale * np.eye(dim)
    matrix.flags.writeable = False
    return matrix


class _DiagnosticNames(NamedTuple):
    """Diagnostics keys of one objective list, built once (not per step)."""

    objective: tuple[str, ...]
    score: tuple[str, ...]
    equilibrium: tuple[str, ...]
    interference: tuple[str, ...]  # interference.<a>.<b>, row-major, a ≠ b
    pairs: tuple[tuple[int, int, bool], ...]  # (i, j, j > i) of each interference key


@functools.lru_cache(maxsize=64)
def _diagnostic_names(objectives: tuple[str, ...]) -> _DiagnosticNames:
    pairs = [(i, j) for i in range(len(objectives)) for j in range(len(objectives)) if i != j]
    return _DiagnosticNames(
        objective=tuple(f"objective.{name}" for name in objectives),
        score=tuple(f"score.{name}" for name in objectives),
        equilibrium=tuple(f"drift.equilibrium.{name}" for name in objectives),
        interference=tuple(f"interference.{objectives[i]}.{objectives[j]}" for i, j in pairs),
        pairs=tuple((i, j, j > i) for i, j in pairs),
    )


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class Controller:
    """Holds a policy and the sessions it steers.

    Parameters
    ----------
    policy : Policy | None
        The switching policy; mutually exclusive with ``preset``.
    preset : str | None
        Name of a packaged preset (``"paper"``, ``"predictive"``).
    strict : bool
        Re-raise controller and scorer faults instead of failing open.
    scorers : Sequence[Scorer] | None
        Scorers for :meth:`Session.observe`; default: the policy's ``scorers`` entries.
    store : StateStore | None
        Keep sessions in a shared store (:class:`~steerloop.stores.MemoryStore`,
        :class:`~steerloop.stores.RedisStore`): :meth:`session` gets or creates through it and
        :meth:`Session.update` becomes a compare-and-set read–modify–write. ``None``
        (default): sessions live in this controller only.

    Examples
    --------
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> session = controller.session("user-42")
    >>> decision = session.update({"security": 0.8, "efficiency": 0.6, "functionality": 0.7})
    >>> decision.strategy, decision.step
    ('adaptive_integration', 1)
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        preset: str | None = None,
        strict: bool = False,
        scorers: list[Scorer] | None = None,
        store: StateStore | None = None,
    ) -> None:
        if (policy is None) == (preset is None):
            raise ValueError("give exactly one of policy or preset")
        if policy is None:
            from steerloop.policies.loader import load_preset

            assert preset is not None
            policy = load_preset(preset)
        self._strict = strict
        self._explicit_scorers = scorers
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._listener_errors = 0
        self._step_hooks: list[StepHook] = []
        self._reload_listeners: list[ReloadListener] = []
        self._generation = 0
        self._policy = validate_policy(policy)
        self._engine = PolicyEngine(self._policy)
        self._scorer = self._build_scorer(self._policy)
        self._store = store

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Controller:
        """Load a policy file (see :func:`steerloop.load_policy`) and build a controller."""
        from steerloop.policies.loader import load_policy

        return cls(load_policy(path), **kwargs)

    def _build_scorer(self, policy: Policy) -> CompositeScorer | None:
        if self._explicit_scorers is None and not policy.scorers:
            return None
        from steerloop.scoring.base import CompositeScorer

        if self._explicit_scorers is not None:
            return CompositeScorer(
                self._explicit_scorers, objectives=policy.objectives, strict=self._strict
            )
        return CompositeScorer.from_specs(
            policy.scorers, objectives=policy.objectives, strict=self._strict
        )

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._policy

    @property
    def engine(self) -> PolicyEngine:
        """The compiled policy."""
        return self._engine

    @property
    def strict(self) -> bool:
        """Whether faults are re-raised."""
        return self._strict

    @property
    def scorer(self) -> CompositeScorer | None:
        """The composite scorer used by :meth:`Session.observe`, if any."""
        return self._scorer

    @property
    def listener_errors(self) -> int:
        """How many times a listener raised (each was swallowed)."""
        return self._listener_errors

    @property
    def store(self) -> StateStore | None:
        """The shared session store, if any (``store.stats()`` for telemetry)."""
        return self._store

    def session(self, session_id: str) -> Session:
        """Get or create the session with this id (with a store: brought up to date from it)."""
        with self._sessions_lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = Session(self, session_id)
        if self._store is not None:
            with session._lock:
                sync(
                    self._store,
                    session_id,
                    session._stored,
                    load=session._load_wire,
                    fresh=session._reset,
                )
        return session

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        with self._sessions_lock:
            return iter(list(self._sessions.values()))

    def drop(self, session_id: str) -> None:
        """Forget a session (no error if absent)."""
        with self._sessions_lock:
            self._sessions.pop(session_id, None)

    def restore(self, state: SessionState | str | bytes) -> Session:
        """Recreate a session from :meth:`Session.snapshot` (model or its JSON)."""
        if not isinstance(state, SessionState):
            state = SessionState.model_validate_json(state)
        session = Session(self, state.session_id)
        session._load(state)
        with self._sessions_lock:
            self._sessions[state.session_id] = session
        return session

    def reload_policy(self, policy: Policy) -> None:
        """Swap the policy for new decisions; sessions keep their estimates.

        The new policy must have the same objectives. A session whose strategy no longer
        exists falls back to ``initial``; estimator settings take effect from the next step.
        """
        policy = validate_policy(policy)
        if list(policy.objectives) != list(self._policy.objectives):
            raise PolicyError.single(
                f"a reloaded policy must keep the objectives {self._policy.objectives}, "
                f"got {policy.objectives}",
                field="objectives",
            )
        engine = PolicyEngine(policy)
        scorer = self._build_scorer(policy)
        # Sessions notice the new generation on their next access and rebuild their
        # estimators from their own snapshot under the new estimation settings.
        old = self._policy
        self._policy, self._engine, self._scorer = policy, engine, scorer
        self._generation += 1
        for listener in list(self._reload_listeners):
            self._call_safely(listener, old, policy)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(session, decision)`` after every step (telemetry, recorders)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def add_step_hook(self, hook: StepHook) -> None:
        """Call ``hook(session)`` before every step and the callable it returns after it.

        For timing from outside (the controller reads no clock); failures count as listeners'.
        """
        self._step_hooks.append(hook)

    def remove_step_hook(self, hook: StepHook) -> None:
        """Stop calling ``hook``."""
        self._step_hooks.remove(hook)

    def add_reload_listener(self, listener: ReloadListener) -> None:
        """Call ``listener(old_policy, new_policy)`` after every :meth:`reload_policy`."""
        self._reload_listeners.append(listener)

    def remove_reload_listener(self, listener: ReloadListener) -> None:
        """Stop calling ``listener``."""
        self._reload_listeners.remove(listener)

    def _start_step(self, session: Session) -> list[Callable[[], None]]:
        finish = [self._call_safely(hook, session) for hook in list(self._step_hooks)]
        return [done for done in finish if done is not None]

    def _call_safely(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, counting (and, unless strict, swallowing) an exception."""
        try:
            return fn(*args)
        except Exception:
            self._listener_errors += 1
            if self._strict:
                raise
            return None

    def _notify(self, session: Session, decision: Decision) -> None:
        for listener in self._listeners:
            try:
                listener(session, decision)
            except Exception:
                self._listener_errors += 1
                if self._strict:
                    raise
