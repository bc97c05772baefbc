"""Per-session bookkeeping shared by the metrics and the events layer (private).

Both layers listen to :class:`~steerloop.controller.session.Controller` steps and need a few
facts about each session's *previous* step (its regime, phase, mode, cumulative error counts)
to turn cumulative diagnostics into per-step increments and transitions. They keep one small
:class:`SessionRecord` per session id, never the session's estimator state.

A session dropped with :meth:`Controller.drop` sends no notification; :class:`SessionTable`
notices it with a bounded amount of work per call of :meth:`SessionTable.prune` (a full
prune when it holds more ids than the controller, else a round-robin sweep of at most
:data:`SWEEP` ids), so maintenance never costs more than O(:data:`SWEEP`) per call beyond an
occasional O(n) list copy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from steerloop.controller.session import Decision
    from steerloop.scoring.base import CompositeScorer

__all__ = [
    "OTHER",
    "SWEEP",
    "FailureDelta",
    "SessionRecord",
    "SessionTable",
    "finite",
    "label_set",
    "pick",
]

#: Label value that every value outside a label's fixed set collapses into.
OTHER = "other"
#: Most session ids :meth:`SessionTable.prune` checks per call in a round-robin sweep.
SWEEP = 1024
_MAX_LABEL_LENGTH = 100


class _Membership(Sized, Protocol):
    def __contains__(self, session_id: object) -> bool: ...


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
    """The configured names usable as label values (strings of sane length)."""
    return frozenset(
        value for value in values if isinstance(value, str) and 0 < len(value) <= _MAX_LABEL_LENGTH
    )


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else ``None``."""
    if type(value) is float:  # the common case, decided without the checks below
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(slots=True)
class SessionRecord:
    """What a telemetry layer remembers of one session's previous step."""

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
        scorer = finite(diagnostics.get("errors.scorer"))
        rule = finite(diagnostics.get("errors.rule"))
        scorer_delta = rule_delta = 0
        fresh = decision.step <= 1
        if scorer is not None:
            previous = self.scorer_errors if not first_seen else (0.0 if fresh else scorer)
            self.scorer_errors = scorer
            if scorer != previous:  # round(0.0) is 0: skip it in the common case
                scorer_delta = max(0, round(scorer - previous))
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
