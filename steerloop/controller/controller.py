"""The Controller: a policy, the sessions it steers, their fleet pool and listeners."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerloop.controller.decision import Decision
from steerloop.controller.events import SteerloopEvents
from steerloop.controller.pools import FleetPool, StoredPool
from steerloop.controller.session import Session
from steerloop.controller.settings import ModelSettings
from steerloop.controller.state import SessionState
from steerloop.errors import PolicyError
from steerloop.policies.engine import PolicyEngine
from steerloop.policies.references import validate_policy
from steerloop.policies.schema import Policy
from steerloop.stores.sync import sync

if TYPE_CHECKING:
    from steerloop.scoring.base import CompositeScorer, Scorer
    from steerloop.stores.base import StateStore

__all__ = ["Controller"]

Listener = Callable[[Session, Decision], None]
#: ``hook(session)`` runs just before a step; the callable it returns (if any) runs right after.
StepHook = Callable[[Session], Callable[[], None] | None]
#: ``listener(old_policy, new_policy)`` runs after :meth:`Controller.reload_policy` swapped them.
ReloadListener = Callable[[Policy, Policy], None]
PolicyLike = Policy | str | Path


def _resolve_policy(policy: PolicyLike | None, preset: str | None) -> Policy:
    """A Policy from a Policy, a preset name, a path, or ``preset=``."""
    from steerloop.policies.loader import available_presets, load_policy, load_preset

    if (policy is None) == (preset is None):
        raise TypeError(
            "give exactly one of a policy (a Policy, a preset name such as 'paper', or a path to "
            "a policy file) or preset='name'"
        )
    if preset is not None:
        return load_preset(preset)
    if isinstance(policy, Policy):
        return policy
    presets = available_presets()
    if isinstance(policy, str) and policy in presets:
        return load_preset(policy)
    if isinstance(policy, str | Path):
        if Path(policy).is_file():
            return load_policy(policy)
        raise TypeError(
            f"{str(policy)!r} is neither a preset ({', '.join(presets)}) nor an "
            "existing policy file; pass Controller(preset='paper'), a path, or a Policy"
        )
    raise TypeError(
        f"policy must be a Policy, a preset name or a path, got {type(policy).__name__}"
    )


class Controller:
    """Holds a policy and the sessions it steers.

    Parameters
    ----------
    policy : Policy | str | Path | None
        The switching policy: a :class:`Policy`, a preset name (``"paper"``,
        ``"predictive"``) or the path of a policy file; or use ``preset=``.
    preset : str | None
        Name of a packaged preset.
    strict : bool
        Re-raise controller and scorer faults, and invalid scores, instead of failing open.
    scorers : list[Scorer] | None
        Scorers for :meth:`Session.observe`; default: the policy's ``scorers`` entries.
    store : StateStore | None
        Keep sessions in a shared store (:class:`~steerloop.stores.MemoryStore`,
        :class:`~steerloop.stores.RedisStore`); ``None``: sessions live in this controller.
    pool : FleetPool | None
        The fleet pool sessions share (default: a new one per the policy's ``fleet`` block,
        none when ``fleet.pool`` is false). Pass one pool to several controllers to share it.
    history : int
        Keep the last ``history`` decisions of each session (:attr:`Session.history`).
    events : bool
        Log decision events through ``structlog.get_logger("steerloop")`` (default; see
        :mod:`steerloop.controller.events`); ``False`` logs none. :attr:`events` holds the
        emitter (``None`` when off).

    Examples
    --------
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> session = controller.session("user-42")
    >>> decision = session.update({"security": 0.8, "efficiency": 0.6, "functionality": 0.7})
    >>> decision.strategy, decision.step
    ('adaptive_integration', 1)
    >>> controller
    Controller(policy='paper', sessions=1, store=None)
    """

    def __init__(
        self,
        policy: PolicyLike | None = None,
        *,
        preset: str | None = None,
        strict: bool = False,
        scorers: list[Scorer] | None = None,
        store: StateStore | None = None,
        pool: FleetPool | None = None,
        history: int = 0,
        events: bool = True,
    ) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise TypeError(f"history must be an int >= 0, got {history!r}")
        self._strict = strict
        self._explicit_scorers = scorers
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._listener_errors = 0
        self._step_hooks: list[StepHook] = []
        self._reload_listeners: list[ReloadListener] = []
        self._generation = 0
        self._history = history
        resolved = validate_policy(_resolve_policy(policy, preset))
        self._policy = resolved
        self._settings = ModelSettings.from_policy(resolved)
        self._engine = PolicyEngine(resolved)
        self._scorer = self._build_scorer(resolved)
        self._store = store
        self._pool = pool if pool is not None else _default_pool(resolved)
        self._stored_pool: StoredPool | None = None
        if store is not None and self._pool is not None:
            key = resolved.fleet.key or resolved.name or "default"
            self._stored_pool = StoredPool(
                self._pool, store, f"pool:{key}", every=resolved.fleet.sync_every
            )
        self.events: SteerloopEvents | None = None
        if events:
            SteerloopEvents().bind(self)  # sets self.events

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Controller:
        """Load a policy file (see :func:`steerloop.load_policy`) and build a controller."""
        from steerloop.policies.loader import load_policy

        return cls(load_policy(path), **kwargs)

    def __repr__(self) -> str:
        store = None if self._store is None else getattr(self._store, "name", "store")
        return (
            f"Controller(policy={self._policy.name or '<unnamed>'!r}, "
            f"sessions={len(self._sessions)}, store={store!r})"
        )

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

    # -- read-only views ----------------------------------------------------------------

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
    def store(self) -> StateStore | None:
        """The shared session store, if any."""
        return self._store

    @property
    def pool(self) -> FleetPool | None:
        """The fleet pool sessions share, if any (this worker's copy, with a store)."""
        return self._pool

    @property
    def step_pool(self) -> FleetPool | StoredPool | None:
        """What a step reads and adds to: the pool, or its store-backed wrapper."""
        return self._stored_pool if self._stored_pool is not None else self._pool

    @property
    def history_size(self) -> int:
        """Decisions each session keeps in :attr:`Session.history`."""
        return self._history

    @property
    def listener_errors(self) -> int:
        """How many times a listener raised (each was swallowed)."""
        return self._listener_errors

    # -- sessions -----------------------------------------------------------------------

    def session(self, session_id: str) -> Session:
        """Get or create the session with this id (with a store: brought up to date from it).

        Raises
        ------
        TypeError, ValueError
            When ``session_id`` is not a non-empty string.
        """
        if not isinstance(session_id, str):
            raise TypeError(f"session_id must be a non-empty str, got {type(session_id).__name__}")
        if not session_id or len(session_id) > 1024:
            raise ValueError("session_id must be a non-empty str of at most 1024 characters")
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

    def sessions(self) -> list[str]:
        """Ids of the sessions this controller holds (in creation order)."""
        with self._sessions_lock:
            return list(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        with self._sessions_lock:
            return iter(list(self._sessions.values()))

    def drop(self, session_id: str) -> None:
        """Forget a session held here (no error if absent; a store keeps its copy)."""
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

    def reload_policy(self, policy: PolicyLike) -> None:
        """Swap the policy for new decisions; sessions keep their estimates.

        The new policy must have the same objectives. A session whose strategy no longer
        exists falls back to ``initial``; estimator settings take effect from the next step.
        """
        new = validate_policy(_resolve_policy(policy, None))
        if list(new.objectives) != list(self._policy.objectives):
            raise PolicyError.single(
                f"a reloaded policy must keep the objectives {self._policy.objectives}, "
                f"got {new.objectives}",
                field="objectives",
            )
        engine = PolicyEngine(new)
        scorer = self._build_scorer(new)
        old = self._policy
        self._policy, self._engine, self._scorer = new, engine, scorer
        self._settings = ModelSettings.from_policy(new)
        self._generation += 1
        for listener in list(self._reload_listeners):
            self._call_safely(listener, old, new)

    # -- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(session, decision)`` after every step (telemetry, recorders)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def add_step_hook(self, hook: StepHook) -> None:
        """Call ``hook(session)`` before every step and the callable it returns after it."""
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
        for listener in list(self._listeners):
            self._call_safely(listener, session, decision)


def _default_pool(policy: Policy) -> FleetPool | None:
    fleet = policy.fleet
    if not fleet.pool:
        return None
    return FleetPool(len(policy.objectives), memory=fleet.memory, prior_weight=fleet.prior_weight)
