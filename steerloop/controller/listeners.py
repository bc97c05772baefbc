"""What every telemetry listener of a :class:`~steerloop.controller.session.Controller` shares.

The structlog events (:mod:`steerloop.controller.events`) and the Prometheus metrics
(:mod:`steerloop.telemetry.metrics`) both attach to controllers through
:meth:`Controller.add_listener` and :meth:`Controller.add_reload_listener`, and both must
fail open: an exception inside telemetry never reaches the step, it is counted and the first
one is logged as ``steerloop.telemetry.error``. This module holds that machinery once:

* :class:`ListenerGroup` — one telemetry object bound to one or more controllers
  (``bind``/``unbind``, error counting);
* :class:`Binding` — its link to one controller: the fail-open listener wrappers and the
  per-session bookkeeping of each session's *previous* step (:class:`SessionTable`), seeded
  from sessions that stepped before binding;
* small helpers to turn cumulative diagnostics into per-step increments.

A session dropped with :meth:`Controller.drop` sends no notification; :class:`SessionTable`
notices it with a bounded amount of work per call of :meth:`SessionTable.prune` (a full
prune when it holds more ids than the controller, else a round-robin sweep of at most
:data:`SWEEP` ids), so maintenance never costs more than O(:data:`SWEEP`) per call beyond an
occasional O(n) list copy.

structlog is imported on first use only (``import steerloop`` stays light).
"""

from __future__ import annotations

import contextlib
import math
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from steerloop.controller.decision import Decision
    from steerloop.controller.session import Session
    from steerloop.policies.schema import Policy
    from steerloop.scoring.base import CompositeScorer
    from steerloop.stores.base import StateStore

__all__ = [
    "LOGGER_NAME",
    "OTHER",
    "SWEEP",
    "TELEMETRY_ERROR",
    "Binding",
    "FailureDelta",
    "ListenerGroup",
    "ObservedController",
    "SessionRecord",
    "SessionTable",
    "finite",
    "get_logger",
    "label_set",
    "log_telemetry_error",
    "pick",
]

#: Name passed to :func:`structlog.get_logger`.
LOGGER_NAME = "steerloop"
#: Event logged (once per telemetry object) when telemetry itself fails.
TELEMETRY_ERROR = "steerloop.telemetry.error"
#: Label value that every value outside a label's fixed set collapses into.
OTHER = "other"
#: Most session ids :meth:`SessionTable.prune` checks per call in a round-robin sweep.
SWEEP = 1024
_MAX_LABEL_LENGTH = 100


def get_logger() -> Any:
    """``structlog.get_logger("steerloop")`` (a lazy proxy: it follows later configuration)."""
    import structlog

    return structlog.get_logger(LOGGER_NAME)


def log_telemetry_error(
    where: str,
    error: BaseException,
    *,
    errors: int,
    layer: str,
    logger: Any = None,
    include_text: bool = False,
) -> None:
    """Log ``steerloop.telemetry.error`` (never raises)."""
    fields: dict[str, Any] = {
        "layer": layer,
        "where": where,
        "error_type": type(error).__name__,
        "errors": errors,
    }
    if include_text:
        fields["error"] = str(error)
    with contextlib.suppress(Exception):  # logging must not break the loop either
        (logger if logger is not None else get_logger()).error(TELEMETRY_ERROR, **fields)


class _Membership(Sized, Protocol):
    def __contains__(self, session_id: object) -> bool: ...


class ObservedController(_Membership, Protocol):
    """What telemetry uses of a :class:`~steerloop.controller.Controller` it is bound to.

    :class:`~steerloop.controller.Controller` is the implementation; the protocol lets this
    module (imported by the controller's) name it without importing it.
    """

    #: The controller's :class:`~steerloop.controller.events.SteerloopEvents` (or ``None``).
    events: Any

    @property
    def policy(self) -> Policy: ...
    @property
    def scorer(self) -> CompositeScorer | None: ...
    @property
    def store(self) -> StateStore | None: ...
    @property
    def listener_errors(self) -> int: ...
    def __iter__(self) -> Iterator[Session]: ...
    def add_listener(self, listener: Callable[[Session, Decision], None]) -> None: ...
    def remove_listener(self, listener: Callable[[Session, Decision], None]) -> None: ...
    def add_reload_listener(self, listener: Callable[[Policy, Policy], None]) -> None: ...
    def remove_reload_listener(self, listener: Callable[[Policy, Policy], None]) -> None: ...
    def add_step_hook(self, hook: Callable[[Session], Callable[[], None] | None]) -> None: ...
    def remove_step_hook(self, hook: Callable[[Session], Callable[[], None] | None]) -> None: ...


def pick(value: object, allowed: frozenset[str]) -> str:
    """``value`` when it is one of ``allowed``, else :data:`OTHER`.

    Examples
    --------
    >>> pick("fast", frozenset({"fast", "slow"})), pick('x"}\\n', frozenset({"fast"}))
    ('fast', 'other')
    """
    if isinstance(value, str) and value in allowed:
        return value
    return OTHER


def label_set(values: Iterable[object]) -> frozenset[str]:
    """The configured names usable as label values (strings of sane length).

    Examples
    --------
    >>> sorted(label_set(["fast", "", 3, "x" * 101]))
    ['fast']
    """
    return frozenset(
        value for value in values if isinstance(value, str) and 0 < len(value) <= _MAX_LABEL_LENGTH
    )


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else ``None``.

    Examples
    --------
    >>> finite(1), finite(float("nan")), finite(True), finite("0.5")
    (1.0, None, None, None)
    """
    if type(value) is float:  # the common case, decided without the checks below
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(slots=True)
class SessionRecord:
    """What a listener remembers of one session's previous step."""

    regime: str | None = None
    phase: str | None = None
    mode: str | None = None
    known_regime: str = "unknown"
    alarm: bool = False
    scorer_errors: float = 0.0
    rule_errors: float = 0.0

    def error_deltas(self, decision: Decision, first_seen: bool) -> tuple[int, int]:
        """New scorer and rule errors of this step, from the cumulative diagnostics.

        A session first seen after its first step (it existed before telemetry was bound, or
        was restored from a snapshot) gives a baseline, not an increment; a count that went
        down (a restore) re-baselines.
        """
        diagnostics = decision.diagnostics
        fresh = decision.step <= 1
        scorer_delta = rule_delta = 0
        scorer = finite(diagnostics.get("errors.scorer"))
        if scorer is not None:
            previous = self.scorer_errors if not first_seen else (0.0 if fresh else scorer)
            self.scorer_errors = scorer
            if scorer != previous:  # round(0.0) is 0: skip it in the common case
                scorer_delta = max(0, round(scorer - previous))
        rule = finite(diagnostics.get("errors.rule"))
        if rule is not None:
            previous = self.rule_errors if not first_seen else (0.0 if fresh else rule)
            self.rule_errors = rule
            if rule != previous:
                rule_delta = max(0, round(rule - previous))
        return scorer_delta, rule_delta


class SessionTable:
    """Session id -> :class:`SessionRecord`, with bounded-cost pruning of dropped sessions.

    Not thread-safe: callers hold their own lock.
    """

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}
        self._pending: list[str] = []

    def __len__(self) -> int:
        return len(self.records)

    def get(self, session_id: str) -> tuple[SessionRecord, bool]:
        """The record of ``session_id`` and whether it was just created."""
        record = self.records.get(session_id)
        if record is not None:
            return record, False
        record = self.records[session_id] = SessionRecord()
        return record, True

    def prune(self, controller: _Membership) -> list[SessionRecord]:
        """Forget sessions the controller no longer holds; returns the removed records."""
        removed: list[SessionRecord] = []
        if len(self.records) > len(controller):
            for session_id in [sid for sid in self.records if sid not in controller]:
                removed.append(self.records.pop(session_id))
            self._pending.clear()
            return removed
        if not self._pending:
            self._pending = list(self.records)
        for _ in range(min(SWEEP, len(self._pending))):
            session_id = self._pending.pop()
            if session_id not in controller:
                record = self.records.pop(session_id, None)
                if record is not None:
                    removed.append(record)
        return removed


class FailureDelta:
    """New entries of a composite scorer's cumulative ``failure_counts`` since the last call.

    A different composite (the controller rebuilds it on :meth:`Controller.reload_policy`)
    starts from zero; the composite present when telemetry is bound gives the baseline.
    """

    def __init__(self, composite: CompositeScorer | None) -> None:
        self._composite = composite
        self._base: Counter[tuple[str, str]] = (
            composite.failure_counts if composite is not None else Counter()
        )

    def take(self, composite: CompositeScorer | None) -> Counter[tuple[str, str]]:
        """Failures by ``(scorer, reason)`` added since the previous call."""
        if composite is None:
            return Counter()
        if composite is not self._composite:
            self._composite = composite
            self._base = Counter()
        counts = composite.failure_counts
        delta = counts - self._base
        self._base = counts
        return delta


_G = TypeVar("_G", bound="ListenerGroup[Any]")


class Binding(ABC, Generic[_G]):
    """The link between one :class:`ListenerGroup` and one controller.

    Subclasses implement :meth:`record` (one step), :meth:`reload` and :meth:`seed`; the wrappers
    :meth:`on_decision` and :meth:`on_reload` are what the controller calls, and they never
    raise. Sessions that stepped before binding are passed to :meth:`seed` with their last
    decision (their error counts become the baseline).
    """

    def __init__(self, owner: _G, controller: ObservedController) -> None:
        self.owner: _G = owner
        self.controller = controller
        self.lock = threading.Lock()
        self.table = SessionTable()
        self.failures = FailureDelta(controller.scorer)

    def seed_sessions(self) -> None:
        """Record the sessions that stepped before binding (call once, from ``__init__``)."""
        for session in self.controller:
            decision = session.last_decision
            if decision is not None:
                record, first = self.table.get(session.id)
                record.error_deltas(decision, first)
                self.seed(record, decision)

    @abstractmethod
    def seed(self, record: SessionRecord, decision: Decision) -> None:
        """Initialise ``record`` from a session's last decision before binding."""

    def attach(self) -> None:
        """Register the listeners on the controller."""
        self.controller.add_reload_listener(self.on_reload)
        self.controller.add_listener(self.on_decision)

    def detach(self) -> None:
        """Remove the listeners from the controller."""
        self.controller.remove_listener(self.on_decision)
        self.controller.remove_reload_listener(self.on_reload)

    def on_decision(self, session: Session, decision: Decision) -> None:
        """Controller listener: :meth:`record`, failing open."""
        try:
            self.record(session, decision)
        except Exception as error:
            self.owner.failed("step", error)

    def on_reload(self, old: Policy, new: Policy) -> None:
        """Controller reload listener: :meth:`reload`, failing open."""
        try:
            self.reload(old, new)
        except Exception as error:
            self.owner.failed("reload", error)

    @abstractmethod
    def record(self, session: Session, decision: Decision) -> None:
        """Handle one step."""

    @abstractmethod
    def reload(self, old: Policy, new: Policy) -> None:
        """Handle a policy reload."""


_B = TypeVar("_B", bound=Binding[Any])


class ListenerGroup(ABC, Generic[_B]):
    """One telemetry object bound to one or more controllers; it fails open.

    Subclasses implement :meth:`new_binding`, set :attr:`layer` (named in error events and
    messages) and may override :meth:`count_failure` and :attr:`error_logger`.
    """

    layer = "telemetry"
    include_text = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bindings: dict[int, _B] = {}
        self._errors = 0
        self._logged = False

    @property
    def errors(self) -> int:
        """Telemetry failures so far (each was swallowed)."""
        return self._errors

    @property
    def error_logger(self) -> Any:
        """Where ``steerloop.telemetry.error`` goes (``None``: the ``steerloop`` logger)."""
        return None

    @abstractmethod
    def new_binding(self, controller: ObservedController) -> _B:
        """The binding of this object to ``controller``."""

    def bind(self, controller: ObservedController) -> None:
        """Report ``controller``. Binding the same controller twice raises ``ValueError``."""
        with self._lock:
            if id(controller) in self._bindings:
                raise ValueError(f"this controller is already bound to these {self.layer}")
            binding = self.new_binding(controller)
            self._bindings[id(controller)] = binding
        binding.attach()

    def unbind(self, controller: ObservedController) -> None:
        """Stop reporting ``controller`` (``KeyError`` when it is not bound)."""
        with self._lock:
            binding = self._bindings.pop(id(controller))
        binding.detach()

    def is_bound(self, controller: object) -> bool:
        """Whether ``controller`` is bound to this object."""
        with self._lock:
            return id(controller) in self._bindings

    def bindings(self) -> Iterator[_B]:
        """The current bindings (a snapshot)."""
        with self._lock:
            return iter(list(self._bindings.values()))

    def count_failure(self) -> None:
        """Hook called on every failure (e.g. to increment a counter); must not raise."""

    def failed(self, where: str, error: BaseException) -> None:
        """Count a telemetry failure; log the first one (never raises)."""
        with self._lock:
            self._errors += 1
            errors = self._errors
            first = not self._logged
            self._logged = True
        with contextlib.suppress(Exception):  # the hook failing must not break a step
            self.count_failure()
        if first:
            log_telemetry_error(
                where,
                error,
                errors=errors,
                layer=self.layer,
                logger=self.error_logger,
                include_text=self.include_text,
            )
