"""A steered loop's session: the public calls, argument checks, locking and stores.

:class:`Session` wraps a :class:`~steerloop.controller.step.SessionCore` (the state and its
step). Every call is checked *before* anything changes: a bad call raises ``TypeError`` or
``ValueError`` naming the argument and leaves the session exactly as it was. Scores are checked
by the one rule of :mod:`steerloop.scoring.validation`; invalid values and unknown keys become
missing and are counted (``scores.unknown``), with one warning per session and key — or, with
``strict=True``, raise. With a store, the step runs as a compare-and-set read-modify-write
(:mod:`steerloop.stores.sync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import numbers
import threading
import warnings
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.decision import Decision
from steerloop.controller.state import SessionState
from steerloop.controller.step import SessionCore, StepInput
from steerloop.errors import ScorerError, ScoreWarning, SteerloopError, StoreError
from steerloop.policies.outcome import Alert
from steerloop.scoring.validation import check_score, check_scores
from steerloop.stores import codec
from steerloop.stores.sync import StoredCopy, read_modify_write, sync

if TYPE_CHECKING:
    from collections.abc import Callable, Sized

    from steerloop.controller.pools import FleetPool, StoredPool
    from steerloop.controller.settings import ModelSettings
    from steerloop.policies.engine import PolicyEngine
    from steerloop.policies.schema import Policy
    from steerloop.scoring.composite import CompositeScorer
    from steerloop.stores.base import StateStore

__all__ = ["Session", "SessionOwner"]


class SessionOwner(Protocol):
    """What a :class:`Session` uses of the :class:`~steerloop.controller.Controller` owning it.

    :class:`~steerloop.controller.Controller` is the one implementation; the protocol names
    the contract so that this module does not import the controller's (which imports this
    one). The underscored members are internal to the controller package.
    """

    @property
    def policy(self) -> Policy: ...
    @property
    def engine(self) -> PolicyEngine: ...
    @property
    def strict(self) -> bool: ...
    @property
    def scorer(self) -> CompositeScorer | None: ...
    @property
    def store(self) -> StateStore | None: ...
    @property
    def step_pool(self) -> FleetPool | StoredPool | None: ...
    @property
    def history_size(self) -> int: ...
    def session(self, session_id: str) -> Session: ...
    @property
    def _generation(self) -> int: ...
    @property
    def _settings(self) -> ModelSettings: ...
    @property
    def _stored_pool(self) -> StoredPool | None: ...
    @property
    def _step_hooks(self) -> Sized: ...
    def _start_step(self, session: Session) -> list[Callable[[], None]]: ...
    def _call_safely(self, fn: Callable[..., Any], *args: Any) -> Any: ...
    def _notify(self, session: Session, decision: Decision) -> None: ...


class Session:
    """State and step of one steered loop. Get one with :meth:`Controller.session`.

    Calls on one session are serialised by a lock; one session serves one loop at a time.
    """

    def __init__(self, controller: SessionOwner, session_id: str) -> None:
        self._controller = controller
        self._id = session_id
        self._lock = threading.RLock()
        self._generation = controller._generation
        self._core = SessionCore(session_id, controller.policy, controller._settings)
        self._last_decision: Decision | None = None
        size = controller.history_size
        self._history: deque[Decision] | None = deque(maxlen=size) if size else None
        self._warned: set[str] = set()
        self._stored = StoredCopy()  # which stored value this copy matches (stores only)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"Session(id={self._id!r}, step={core.step_count}, strategy={core.strategy!r}, "
            f"mode={'sequential' if core.memory.sequential_active else 'direct'!r})"
        )

    # -- read-only views ----------------------------------------------------------------

    @property
    def id(self) -> str:
        """Session id."""
        return self._id

    @property
    def controller(self) -> SessionOwner:
        """The :class:`~steerloop.controller.Controller` this session belongs to."""
        return self._controller

    @property
    def strategy(self) -> str:
        """Strategy for the next call."""
        self._sync_policy()
        return self._core.strategy

    @property
    def prompt(self) -> str:
        """The current strategy's rendered prompt."""
        self._sync_policy()
        return self._controller.engine.render(self._core.strategy, self._core.memory.focus)

    @property
    def step(self) -> int:
        """Number of updates seen."""
        return self._core.step_count

    @property
    def last_decision(self) -> Decision | None:
        """The most recent decision, if any."""
        return self._last_decision

    @property
    def history(self) -> tuple[Decision, ...]:
        """The last ``Controller(history=N)`` decisions, oldest first (empty when N = 0)."""
        return () if self._history is None else tuple(self._history)

    @property
    def filtered(self) -> NDArray[np.float64]:
        """Filtered objective state x̂_t (a copy)."""
        return self._core.models.kalman.mean

    # -- the step -----------------------------------------------------------------------

    def update(
        self,
        scores: Mapping[str, object],
        *,
        severity: float | None = None,
        scorer_errors: int = 0,
        steps_left: int | None = None,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Feed one response's scores and get the decision for the next call.

        Parameters
        ----------
        scores : Mapping[str, object]
            Score per objective in [0, 1] (:mod:`steerloop.scoring.validation`). Absent or
            ``None`` values are missing; invalid values (NaN, strings, out of range) are
            missing and counted; keys that name no objective are counted in
            ``scores.unknown``. With ``strict=True`` invalid values and unknown keys raise.
        severity : float | None
            A severity measurement in [0, 1] that overrides the policy's severity source.
        scorer_errors : int
            Scorer failures behind these scores (added to ``errors.scorer``).
        steps_left : int | None
            Iterations the loop will still run after this one (the planner's horizon);
            default: the policy's ``horizon`` minus the steps done, or unknown.
        idempotency_key : str | None
            With a store: apply this update at most once. A call with a key that was applied
            already (an earlier call whose reply was lost, in any worker) applies nothing and
            returns the decision stored with it. Without a store it is ignored.

        Returns
        -------
        Decision
            A controller fault holds the current strategy and sets ``Decision.error``
            (unless the controller is strict).

        Raises
        ------
        TypeError, ValueError
            On a bad argument, before anything changes.
        StoreError
            With a store only, strict or not: the store failed, conflicts outlasted the
            retries (:class:`~steerloop.errors.StoreConflictError`) or the stored session
            vanished (:class:`~steerloop.errors.SessionVanishedError`); the update was not
            applied. :class:`~steerloop.errors.StoreInDoubtError`: it may have been; call
            again with its ``idempotency_key`` (see :mod:`steerloop.stores.sync`).
        """
        if idempotency_key is not None and not isinstance(idempotency_key, str):
            raise TypeError(f"idempotency_key must be a str or None, got {idempotency_key!r}")
        data = self._check(scores, severity, scorer_errors, steps_left)
        controller = self._controller
        replayed = False
        with self._lock:
            finish = controller._start_step(self) if controller._step_hooks else []
            self._sync_policy()
            self._core.pending = None
            if controller.store is None:
                decision = self._guarded_step(data)
                self._commit_transition()
            else:
                decision, replayed = self._stored_step(data, idempotency_key)
            self._last_decision = decision
            if self._history is not None:
                self._history.append(decision)
            for done in finish:
                controller._call_safely(done)
        if not replayed:  # a replayed decision was reported when it was made
            controller._notify(self, decision)
        return decision

    def _stored_step(self, data: StepInput, idempotency_key: str | None) -> tuple[Decision, bool]:
        """The step as a read-modify-write through the store; the decision and if replayed."""
        store = self._controller.store
        assert store is not None
        replayed: list[Decision] = []
        stored_pool = self._controller._stored_pool
        if stored_pool is not None and not stored_pool.due():
            stored_pool = None  # not this update (fleet.sync_every)
        if stored_pool is not None:  # the fleet pool as the other workers left it
            stored_pool.refresh()

        def replay(stored: bytes) -> Decision:
            replayed.append(_load_decision(stored))
            return replayed[-1]

        decision = read_modify_write(
            store,
            self._id,
            self._stored,
            load=self._load_wire,
            fresh=self._reset,
            step=lambda: self._guarded_step(data),
            dump=self._dump_wire,
            dump_result=_dump_decision,
            load_result=replay,
            idempotency_key=idempotency_key,
        )
        if replayed and self._stored.dirty:  # this copy stepped, the store had not
            with contextlib.suppress(StoreError):  # else the next call reloads it
                sync(store, self._id, self._stored, load=self._load_wire, fresh=self._reset)
        if not replayed:
            self._commit_transition()
            if stored_pool is not None:
                stored_pool.flush()
        return decision, bool(replayed)

    def _commit_transition(self) -> None:
        """Add the final step's learnt transition to the fleet pool (once per update)."""
        pending, self._core.pending = self._core.pending, None
        pool = self._controller.step_pool
        if pending is not None and pool is not None:
            pending.add_to(pool)

    def _check(
        self,
        scores: Mapping[str, object],
        severity: object,
        scorer_errors: object,
        steps_left: object,
    ) -> StepInput:
        """Check every argument (module docstring); raise before anything changes."""
        objectives = self._controller.policy.objectives
        result = check_scores(scores, objectives)
        if severity is not None:
            value, reason = check_score(severity)
            if value is None:
                raise _bad("severity", "a number in [0, 1] or None", severity, reason)
        if isinstance(scorer_errors, bool) or not isinstance(scorer_errors, numbers.Integral):
            raise TypeError(f"scorer_errors must be an int >= 0, got {scorer_errors!r}")
        if scorer_errors < 0:
            raise ValueError(f"scorer_errors must be >= 0, got {scorer_errors}")
        if steps_left is not None and (
            isinstance(steps_left, bool) or not isinstance(steps_left, numbers.Integral)
        ):
            raise TypeError(f"steps_left must be an int >= 0 or None, got {steps_left!r}")
        if steps_left is not None and steps_left < 0:
            raise ValueError(f"steps_left must be >= 0, got {steps_left}")
        problems = [f"{name!r}: {reason}" for name, reason in result.invalid.items()]
        problems += [
            f"{key!r}: not an objective of the policy {objectives}" for key in result.unknown
        ]
        if problems and self._controller.strict:
            raise ValueError("invalid scores (strict mode): " + "; ".join(problems))
        for problem, key in zip(problems, [*result.invalid, *result.unknown], strict=True):
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"session {self._id!r}: score {problem}; it counts as missing "
                    "(warned once per session and key)",
                    ScoreWarning,
                    stacklevel=3,
                )
        return StepInput(
            values=result.values,
            missing=result.missing,
            unknown=len(result.unknown),
            severity=None if severity is None else check_score(severity)[0],
            scorer_errors=int(scorer_errors),
            steps_left=None if steps_left is None else int(steps_left),
        )

    def _guarded_step(self, data: StepInput) -> Decision:
        """The core's step, failing open (holding the strategy) unless strict."""
        controller = self._controller
        try:
            return self._core.step(data, controller.engine, controller.step_pool)
        except (SteerloopError, ArithmeticError, ValueError, np.linalg.LinAlgError) as error:
            if controller.strict:
                raise
            return self._hold_on_error(error)

    def observe(
        self, response: object, context: Mapping[str, Any] | None = None, **update: Any
    ) -> Decision:
        """Score ``response`` with the policy's scorers, then :meth:`update` (same keywords)."""
        scorer = self._scorer()
        result = scorer.score(response, context or {})
        return self.update(result.scores, scorer_errors=len(result.failures), **update)

    async def aobserve(
        self, response: object, context: Mapping[str, Any] | None = None, **update: Any
    ) -> Decision:
        """Async twin of :meth:`observe` (scorers run concurrently; the step in a thread)."""
        scorer = self._scorer()
        result = await scorer.ascore(response, context or {})
        return await asyncio.to_thread(
            self.update, result.scores, scorer_errors=len(result.failures), **update
        )

    async def aupdate(self, scores: Mapping[str, object], **kwargs: Any) -> Decision:
        """Async twin of :meth:`update` (runs the step in a worker thread)."""
        return await asyncio.to_thread(self.update, scores, **kwargs)

    def _scorer(self) -> Any:
        scorer = self._controller.scorer
        if scorer is None:
            raise ScorerError(
                "<none>",
                "no_scorers",
                "the policy lists no scorers; pass scores to session.update(...) instead",
            )
        return scorer

    def _hold_on_error(self, error: Exception) -> Decision:
        core = self._core
        memory = core.memory
        return Decision(
            strategy=core.strategy,
            prompt=self._controller.engine.render(core.strategy, memory.focus),
            changed=False,
            rule=None,
            reason="controller fault; holding the current strategy",
            mode="sequential" if memory.sequential_active else "direct",
            focus=memory.focus,
            diagnostics={"step": float(core.step_count), "strategy": core.strategy},
            previous_strategy=core.strategy,
            step=core.step_count,
            error=f"{type(error).__name__}: {error}",
            session_id=self._id,
        )

    # -- policy reload and snapshots ----------------------------------------------------

    def _sync_policy(self) -> None:
        """Rebuild the core from its snapshot when the controller's policy changed."""
        if self._generation == self._controller._generation:
            return
        with self._lock:
            if self._generation != self._controller._generation:
                state = self._core.to_state()
                self._generation = self._controller._generation
                self._load(state)

    def snapshot(self) -> SessionState:
        """Serializable state; :meth:`Controller.restore` continues it bit-identically."""
        with self._lock:
            self._sync_policy()
            return self._core.to_state()

    # -- the stored form (steerloop.stores.sync callbacks; the caller holds the lock) ---

    def _dump_wire(self) -> bytes:
        """The bytes a store keeps: the snapshot with raw float arrays, in the stores' codec.

        The snapshot's fields as they are (``dict(state)``): its trees are plain dicts, lists,
        numbers, strings and arrays already, so ``model_dump`` would only copy them.
        """
        return codec.encode(dict(self._core.to_state(arrays="raw")))

    def _load_wire(self, value: bytes) -> None:
        """Replace this copy's state by stored bytes (``ValueError`` when they do not fit)."""
        state = SessionState.model_validate(codec.decode(value))
        if state.session_id != self._id:
            raise ValueError(
                f"the stored state belongs to session {state.session_id!r}; two ids map to "
                "one key or the key was written by another application"
            )
        self._load(state)

    def _reset(self) -> None:
        """Start afresh (the stored session vanished or was never stored)."""
        controller = self._controller
        self._core = SessionCore(self._id, controller.policy, controller._settings)

    def _load(self, state: SessionState) -> None:
        controller = self._controller
        self._core = SessionCore.from_state(state, controller.policy, controller._settings)


def _bad(name: str, expected: str, value: object, reason: str | None) -> Exception:
    text = f"{name} must be {expected}, got {value!r}"
    if reason == "non_numeric":
        return TypeError(text)
    return ValueError(f"{text} ({reason})")


def _dump_decision(decision: Decision) -> bytes:
    """A decision as JSON bytes (stored with an idempotency key)."""
    document = decision.to_dict(prompt=True)
    return json.dumps(document, allow_nan=True, separators=(",", ":")).encode()


def _load_decision(data: bytes) -> Decision:
    """The decision :func:`_dump_decision` wrote."""
    document = json.loads(data)
    return Decision(
        strategy=document["strategy"],
        prompt=document["prompt"],
        changed=document["changed"],
        rule=document["rule"],
        reason=document["reason"],
        mode=document["mode"],
        focus=document["focus"],
        diagnostics=document["diagnostics"],
        previous_strategy=document["previous_strategy"],
        step=document["step"],
        missing=tuple(document["missing"]),
        alerts=tuple(Alert(**alert) for alert in document["alerts"]),
        error=document["error"],
        session_id=document["session_id"],
    )
