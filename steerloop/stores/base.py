"""The :class:`StateStore` protocol shared by every session state store.

A store keeps one JSON document per session id together with an integer *version*:

* ``load(key)`` returns ``(state_json, version)`` or ``None`` when the key is absent;
* ``load_if_changed(key, known_version)`` returns ``(state_json, version)`` when the stored
  version differs from ``known_version``, and ``(None, known_version)`` when it does not —
  one round trip either way, so a session that another worker did not touch is not parsed
  and rebuilt again (an absent key is ``(None, 0)``);
* ``save(key, state_json, expected_version)`` is a compare-and-set: it writes only when the
  stored version equals ``expected_version`` (``0`` = the key must be absent) and returns
  the new version ``expected_version + 1``; otherwise it writes nothing and raises
  :class:`StoreConflictError`;
* ``delete(key)`` removes the key (no error when absent);
* ``exclusive(key)`` is a context manager giving *advisory* mutual exclusion of one
  read–modify–write, so contending workers take turns instead of wasting steps on writes the
  compare-and-set refuses. It gives up silently after ``lease_wait`` seconds (or when the
  lock cannot be taken at all) and the update proceeds optimistically: correctness rests on
  ``save`` alone. A store without locking returns :func:`contextlib.nullcontext`.

Versions start at 1 and grow by one per successful save, so after *n* saves of a new key its
version is exactly *n*. Every key carries a time to live of ``ttl`` seconds, renewed by each
save. The value is always the JSON of :class:`steerloop.SessionState` (with its
``schema_version``), never pickle: a shared store must not be able to run code in a worker.

Failures other than a conflict raise :class:`steerloop.errors.StoreError` with the store's
``name``, the session id as ``key`` and a ``reason`` saying what happened and how to fix it.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

from steerloop.errors import StoreError

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_LEASE_WAIT",
    "DEFAULT_RETRIES",
    "DEFAULT_TTL",
    "StateStore",
    "StoreConflictError",
    "StoreStats",
]

#: Default time to live of a stored session, in seconds (renewed by every save): 1 day.
DEFAULT_TTL = 86_400.0
#: Default number of retries after a version conflict before :class:`StoreConflictError`.
DEFAULT_RETRIES = 16
#: Default base of the jittered exponential back-off between conflict retries, in seconds.
DEFAULT_BACKOFF = 0.001
#: Default seconds to wait for another worker's turn on a session before going optimistic.
DEFAULT_LEASE_WAIT = 10.0


class StoreConflictError(StoreError):
    """A compare-and-set found another version than expected (nothing was written).

    Raised by ``StateStore.save`` for one conflict, and by :meth:`steerloop.Session.update`
    when the retries were used up (``attempts`` > 1): the update was **not** applied, retry
    it or lower the contention on this session.
    """

    def __init__(
        self, store: str, key: str, expected: int, actual: int | None, attempts: int = 1
    ) -> None:
        self.expected = expected
        self.actual = actual
        self.attempts = attempts
        found = "another version" if actual is None else f"version {actual}"
        if attempts > 1:
            reason = (
                f"conflict: {attempts} attempts each found the session changed by another "
                "worker before the write; the update was NOT applied. Retry it, route a "
                "session's calls to one worker, or raise the store's retries="
            )
        else:
            reason = f"conflict: expected version {expected}, found {found}; nothing written"
        super().__init__(store, key, reason)


@dataclass(frozen=True)
class StoreStats:
    """Counters of one store since it was created (read them from telemetry).

    Attributes
    ----------
    loads : int
        Reads (``load`` and ``load_if_changed``) served.
    saves : int
        Successful compare-and-set writes.
    conflicts : int
        Writes refused because the version had moved on (each is retried by the session).
    lease_waits : int
        Read–modify–writes that had to wait for another worker's turn on the session.
    lease_timeouts : int
        Waits that gave up after ``lease_wait`` and went ahead optimistically.
    errors : int
        Operations that failed with a :class:`~steerloop.errors.StoreError` other than a
        conflict (server refused, timed out, invalid data).
    fallback_operations : int
        Operations served by the local memory fallback because the server failed
        (``RedisStore(fallback="memory")`` only).
    fallback_reconciled : int
        Sessions whose updates made while degraded were written back to the server on
        recovery (nobody else had written the session meanwhile).
    fallback_discarded : int
        Sessions whose updates made while degraded were dropped on recovery because another
        worker had written the session on the server meanwhile (the server's state wins).
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


class _Counters:
    """Thread-safe counters behind :class:`StoreStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in fields(StoreStats)), 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> StoreStats:
        with self._lock:
            return StoreStats(**self._values)


@runtime_checkable
class StateStore(Protocol):
    """Where sessions keep their state when several workers (or restarts) share them.

    Attributes
    ----------
    name : str
        Short store name used in errors and telemetry (``"memory"``, ``"redis"``).
    ttl : float
        Seconds a key lives after its last save.
    retries : int
        Conflict retries of one :meth:`steerloop.Session.update` before it raises
        :class:`StoreConflictError`.
    backoff : float
        Base, in seconds, of the full-jitter exponential back-off between those retries.
    """

    name: str
    ttl: float
    retries: int
    backoff: float

    def load(self, key: str) -> tuple[str, int] | None:
        """``(state_json, version)`` of ``key``, or ``None`` when absent."""
        ...

    def load_if_changed(self, key: str, known_version: int) -> tuple[str | None, int]:
        """``(state_json, version)`` if the version differs from ``known_version``.

        ``(None, known_version)`` when unchanged; ``(None, 0)`` when the key is absent.
        """
        ...

    def save(self, key: str, state_json: str, expected_version: int) -> int:
        """Compare-and-set; returns ``expected_version + 1`` or raises a conflict."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        ...

    def exclusive(self, key: str) -> AbstractContextManager[object]:
        """Advisory lock around one read–modify–write of ``key`` (see the module doc)."""
        ...

    def stats(self) -> StoreStats:
        """Counters since the store was created."""
        ...


def check_store_settings(
    ttl: float, retries: int, backoff: float, lease_wait: float = DEFAULT_LEASE_WAIT
) -> None:
    """Validate the settings every store shares (raises ``ValueError``)."""
    if lease_wait < 0:
        raise ValueError(f"lease_wait must be >= 0 seconds, got {lease_wait!r}")
    if not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries!r}")
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
