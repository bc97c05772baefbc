"""The :class:`StateStore` protocol: versioned bytes per key, compare-and-set, turns.

A store keeps, per key, one opaque value (bytes: the store never looks inside) with a
:class:`Token`:

* ``generation`` — a random id chosen when the key is **created** (first write, or first
  write after it was deleted, expired or lost). A key that disappears and comes back gets a
  new generation, so a worker's copy of the old value can never be taken for the new one
  (no ABA when versions restart);
* ``version`` — 1 for the first write of a generation, +1 for each later write.

Operations (each one round trip to a server store):

* ``read(key, known)`` -> :class:`Read`: the token, and the value unless it is the one
  ``known`` names (a worker whose copy is current is not sent the value again);
* ``begin(key, known)`` -> :class:`Turn`: waits for this worker's *turn* on the key (a
  lease that lasts at most ``lease`` seconds), then reads, in one round trip when nobody
  else holds the turn. While a worker holds the turn, writes from other workers are refused
  (:data:`BUSY`), so contending workers take turns instead of computing steps that a
  compare-and-set would refuse. A turn whose holder is gone (crashed, hung, cut off) ends
  when its lease does: nobody waits longer than ``lease`` for a holder that is gone;
* ``write(key, value, expected, turn=...)`` -> :class:`Written`: a compare-and-set. It
  writes only when the stored token equals ``expected`` (``None``: the key must be absent;
  the store then creates a new generation) and no other worker holds the turn. It ends the
  caller's turn when it writes. A refused write returns what the store holds
  (:data:`CONFLICT`, with the value, so the caller needs no extra read) or how long the
  other worker's turn still lasts (:data:`BUSY`);
* ``release(turn)`` ends a turn without writing (or withdraws from the queue);
* ``delete(key)``; ``stats()``.

**Exactly once.** ``read``, ``begin`` and ``write`` take an ``idempotency_key``. A write
stores ``result`` (bytes) under its key atomically with the value. When the key was applied
already, ``read``/``begin`` return its result (``Read.result``) and ``write`` writes nothing
and returns it (:data:`APPLIED`). Results are dropped with the key, and bounded: a result is
kept while it is one of the last ``keep_results`` of its key **or** younger than
``keep_results_for`` seconds, and never beyond ``RESULTS_CAP × keep_results`` results. So a
retry is applied exactly once if it comes within ``keep_results_for`` seconds of the first
attempt (unless the key took more than ``RESULTS_CAP × keep_results`` updates meanwhile), or
before ``keep_results`` later updates of the key.

Failures raise :class:`~steerloop.errors.StoreError` (``store``, ``key``, ``reason``):
:class:`~steerloop.errors.StoreUnavailableError` when the server refused, failed or did not
answer in time (nothing was written), :class:`~steerloop.errors.StoreInDoubtError` when a
write's reply was lost (it may have been applied; retry with its idempotency key).

:mod:`steerloop.stores.sync` builds the read–modify–write of one update on this protocol.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields
from typing import Final, Literal, Protocol, runtime_checkable

from steerloop.errors import StoreConflictError

__all__ = [
    "APPLIED",
    "BUSY",
    "CONFLICT",
    "DEFAULT_BACKOFF",
    "DEFAULT_KEEP_RESULTS",
    "DEFAULT_KEEP_RESULTS_FOR",
    "DEFAULT_LEASE",
    "DEFAULT_LEASE_WAIT",
    "DEFAULT_RETRIES",
    "DEFAULT_TTL",
    "RESULTS_CAP",
    "WRITTEN",
    "Read",
    "SharedSettings",
    "StateStore",
    "StoreConflictError",
    "StoreStats",
    "Token",
    "Turn",
    "Written",
    "new_generation",
    "turn_holder",
]

#: Default time to live of a stored key, in seconds (renewed by every write): 1 day.
DEFAULT_TTL = 86_400.0
#: Default number of retries after a conflict before :class:`StoreConflictError`.
DEFAULT_RETRIES = 16
#: Default base of the jittered exponential back-off between optimistic retries, in seconds.
DEFAULT_BACKOFF = 0.001
#: Default longest turn, in seconds: a holder that is gone keeps others waiting this long.
DEFAULT_LEASE = 2.0
#: Default seconds to wait for a turn before giving up with a ``busy`` StoreError.
DEFAULT_LEASE_WAIT = 10.0
#: Default number of idempotency results kept per key (the most recent ones), at least.
DEFAULT_KEEP_RESULTS = 64
#: Default seconds an idempotency result is kept at least (within the cap).
DEFAULT_KEEP_RESULTS_FOR = 60.0
#: Results of one key never exceed ``RESULTS_CAP × keep_results`` (whatever their age).
RESULTS_CAP = 16

Outcome = Literal["written", "applied", "conflict", "busy"]
#: ``write`` wrote the value (``Written.read.token`` is the new token).
WRITTEN: Final = "written"
#: The idempotency key had been applied already: nothing written, ``read.result`` is its result.
APPLIED: Final = "applied"
#: The stored token is not ``expected``: nothing written; ``read`` is what the store holds.
CONFLICT: Final = "conflict"
#: Another worker holds the turn: nothing written; ``wait`` is how long it may still last.
BUSY: Final = "busy"


@dataclass(frozen=True, slots=True)
class Token:
    """Which stored value: its key's generation (random, new on creation) and version.

    Examples
    --------
    >>> Token("3f2a", 7) == Token("3f2a", 7), str(Token("3f2a", 7))
    (True, 'generation 3f2a version 7')
    """

    generation: str
    version: int

    def __str__(self) -> str:
        return f"generation {self.generation} version {self.version}"


@dataclass(frozen=True, slots=True)
class Read:
    """What a store holds for one key.

    Attributes
    ----------
    token : Token | None
        The stored value's token; ``None`` when the key is absent.
    value : bytes | None
        The stored value; ``None`` when absent or when it is the value ``known`` named.
    result : bytes | None
        When the caller's idempotency key had been applied: the result stored with it.
    """

    token: Token | None = None
    value: bytes | None = None
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """A worker's turn on a key, from :meth:`StateStore.begin` to ``write``/``release``.

    ``holder`` is ``None`` when no turn is held: the idempotency key had been applied
    (``read.result`` is set) and ``begin`` returned at once.
    """

    key: str
    holder: str | None
    read: Read


@dataclass(frozen=True, slots=True)
class Written:
    """What a :meth:`StateStore.write` did: see :data:`WRITTEN`, :data:`APPLIED`,
    :data:`CONFLICT` and :data:`BUSY`."""

    outcome: Outcome
    read: Read
    wait: float = 0.0


@dataclass(frozen=True)
class StoreStats:
    """Counters of one store since it was created (read them from telemetry).

    Attributes
    ----------
    loads : int
        Reads served (``read``, and the read of each ``begin``).
    saves : int
        Writes that wrote.
    conflicts : int
        Writes refused because the stored token was not the expected one.
    lease_waits : int
        ``begin`` calls that had to wait for another worker's turn.
    lease_timeouts : int
        ``begin`` calls that gave up after ``lease_wait`` (a ``busy`` StoreError).
    errors : int
        Operations that raised a :class:`~steerloop.errors.StoreError` (server refused,
        timed out, invalid data).
    fallback_operations : int
        Operations served by the local memory fallback because the server failed
        (``RedisStore(fallback="memory")`` only).
    fallback_reconciled : int
        Keys whose updates made while degraded were written back to the server on recovery.
    fallback_discarded : int
        Keys whose updates made while degraded were dropped on recovery because another
        worker had written the key on the server meanwhile (the server's state wins).
    round_trips : int
        Requests sent to the server (a memory store counts each operation as one).
    replays : int
        Reads and writes that found their idempotency key applied already.
    in_doubt : int
        Writes whose reply was lost (:class:`~steerloop.errors.StoreInDoubtError`).
    busy : int
        Writes refused because another worker held the turn.
    """

    loads: int = 0
    saves: int = 0
    conflicts: int = 0
    lease_waits: int = 0
    lease_timeouts: int = 0
    errors: int = 0
    fallback_operations: int = 0
    fallback_reconciled: int = 0
    fallback_discarded: int = 0
    round_trips: int = 0
    replays: int = 0
    in_doubt: int = 0
    busy: int = 0


def new_generation() -> str:
    """A random generation id (64 bits, hex); also names a worker's turn."""
    return os.urandom(8).hex()


def turn_holder(resume: Turn | None) -> str:
    """Who asks for a turn: ``resume``'s holder when it held one, else a new random id."""
    return resume.holder if resume is not None and resume.holder else new_generation()


#: The :class:`StoreStats` counter each write outcome adds to.
_OUTCOME_COUNTERS: Final = {
    WRITTEN: "saves",
    APPLIED: "replays",
    CONFLICT: "conflicts",
    BUSY: "busy",
}


class _Counters:
    """Thread-safe counters behind :class:`StoreStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in fields(StoreStats)), 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def add_outcome(self, written: Written) -> None:
        """Count a write by its outcome (saves, replays, conflicts or busy)."""
        self.add(_OUTCOME_COUNTERS[written.outcome])

    def snapshot(self) -> StoreStats:
        with self._lock:
            return StoreStats(**self._values)


@runtime_checkable
class StateStore(Protocol):
    """Where workers keep shared values: versioned bytes, compare-and-set, turns.

    Attributes
    ----------
    name : str
        Short store name used in errors and telemetry (``"memory"``, ``"redis"``).
    ttl : float
        Seconds a key lives after its last write.
    retries : int
        Conflicts one read–modify–write retries before :class:`StoreConflictError`.
    backoff : float
        Base, in seconds, of the full-jitter exponential back-off between optimistic retries.
    """

    name: str
    ttl: float
    retries: int
    backoff: float

    def read(
        self, key: str, known: Token | None = None, *, idempotency_key: str | None = None
    ) -> Read:
        """What the store holds for ``key`` (the value only when it is not ``known``)."""
        ...

    def begin(
        self,
        key: str,
        known: Token | None = None,
        *,
        idempotency_key: str | None = None,
        resume: Turn | None = None,
    ) -> Turn:
        """Wait for this worker's turn on ``key`` (or take ``resume``'s again), then read."""
        ...

    def write(
        self,
        key: str,
        value: bytes,
        expected: Token | None,
        *,
        turn: Turn | None = None,
        idempotency_key: str | None = None,
        result: bytes = b"",
    ) -> Written:
        """Compare-and-set ``value`` (see the module docstring)."""
        ...

    def release(self, turn: Turn) -> None:
        """End ``turn`` without writing (no error when it already ended)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` and its idempotency results (no error when absent)."""
        ...

    def stats(self) -> StoreStats:
        """Counters since the store was created."""
        ...


class SharedSettings:
    """The settings every store shares, validated once and kept as plain attributes.

    :class:`~steerloop.stores.MemoryStore` and :class:`~steerloop.stores.RedisStore` call
    :meth:`_set_shared_settings` from their constructors (see :func:`check_store_settings`
    for the rules); :mod:`steerloop.stores.sync` reads ``ttl``, ``retries`` and ``backoff``.
    """

    ttl: float
    retries: int
    backoff: float
    lease: float
    lease_wait: float
    keep_results: int
    keep_results_for: float

    def _set_shared_settings(
        self,
        ttl: float,
        retries: int,
        backoff: float,
        lease: float,
        lease_wait: float,
        keep_results: int,
        keep_results_for: float,
    ) -> None:
        check_store_settings(
            ttl, retries, backoff, lease, lease_wait, keep_results, keep_results_for
        )
        self.ttl = float(ttl)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.lease = float(lease)
        self.lease_wait = float(lease_wait)
        self.keep_results = int(keep_results)
        self.keep_results_for = float(keep_results_for)


def check_store_settings(
    ttl: float,
    retries: int,
    backoff: float,
    lease: float = DEFAULT_LEASE,
    lease_wait: float = DEFAULT_LEASE_WAIT,
    keep_results: int = DEFAULT_KEEP_RESULTS,
    keep_results_for: float = DEFAULT_KEEP_RESULTS_FOR,
) -> None:
    """Validate the settings every store shares (raises ``ValueError``)."""
    if not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries!r}")
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
    if not lease > 0:
        raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
    if lease_wait < 0:
        raise ValueError(f"lease_wait must be >= 0 seconds, got {lease_wait!r}")
    if keep_results < 1:
        raise ValueError(f"keep_results must be >= 1, got {keep_results!r}")
    if keep_results_for < 0:
        raise ValueError(f"keep_results_for must be >= 0 seconds, got {keep_results_for!r}")
