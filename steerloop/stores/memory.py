"""In-process store: a dict behind a lock, with generations, versions, TTLs and turns.

Use it to share sessions between several :class:`~steerloop.Controller` objects (threads)
of one process, as the local fallback of :class:`~steerloop.stores.RedisStore`, or as the
store behind the fault-injecting doubles of :mod:`steerloop.testing`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from steerloop.errors import StoreError
from steerloop.stores.base import (
    APPLIED,
    BUSY,
    CONFLICT,
    DEFAULT_BACKOFF,
    DEFAULT_KEEP_RESULTS,
    DEFAULT_KEEP_RESULTS_FOR,
    DEFAULT_LEASE,
    DEFAULT_LEASE_WAIT,
    DEFAULT_RETRIES,
    DEFAULT_TTL,
    RESULTS_CAP,
    WRITTEN,
    Read,
    SharedSettings,
    StoreStats,
    Token,
    Turn,
    Written,
    _Counters,
    new_generation,
    turn_holder,
)

__all__ = ["MemoryStore", "new_generation"]


class _Expiring(Protocol):
    expires_at: float


_E = TypeVar("_E", bound=_Expiring)


def _unexpired(table: dict[str, _E], key: str, now: float) -> _E | None:
    """``table[key]``; ``None`` when it is absent or expired (an expired one is dropped)."""
    item = table.get(key)
    if item is not None and item.expires_at <= now:
        del table[key]
        return None
    return item


def _drop_expired(table: dict[str, _E], now: float) -> None:
    """Drop every expired item of ``table``."""
    for key in [key for key, item in table.items() if item.expires_at <= now]:
        del table[key]


@dataclass
class _Entry:
    token: Token
    value: bytes
    expires_at: float
    results: OrderedDict[str, tuple[float, bytes]] = field(default_factory=OrderedDict)


@dataclass
class _Waiters:
    condition: threading.Condition
    count: int = 0


@dataclass
class _Lease:
    holder: str
    expires_at: float


class MemoryStore(SharedSettings):
    """Thread-safe in-memory :class:`~steerloop.stores.StateStore`.

    Parameters
    ----------
    ttl : float
        Seconds a key lives after its last write (default one day). Expired keys read as
        absent and are swept on later writes.
    retries, backoff : int, float
        Conflict retries of one read–modify–write and the base of their back-off (seconds).
    lease : float
        Longest turn in seconds (a turn that is not ended in time lapses).
    lease_wait : float
        Seconds :meth:`begin` waits for another thread's turn before a ``busy`` StoreError.
    keep_results, keep_results_for : int, float
        Idempotency results kept per key: the last ``keep_results``, and any younger than
        ``keep_results_for`` seconds (see :mod:`steerloop.stores.base`).
    clock : Callable[[], float]
        Monotonic clock in seconds for TTLs and leases (tests pass a fake one).

    Examples
    --------
    >>> store = MemoryStore(ttl=60)
    >>> first = store.write("user-42", b"one", None)
    >>> first.outcome, first.read.token.version
    ('written', 1)
    >>> store.read("user-42", first.read.token).value is None  # unchanged: not sent again
    True
    >>> stale = store.write("user-42", b"two", None)  # expected "absent": refused
    >>> stale.outcome, stale.read.value
    ('conflict', b'one')
    """

    name = "memory"

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        lease: float = DEFAULT_LEASE,
        lease_wait: float = DEFAULT_LEASE_WAIT,
        keep_results: int = DEFAULT_KEEP_RESULTS,
        keep_results_for: float = DEFAULT_KEEP_RESULTS_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._set_shared_settings(
            ttl, retries, backoff, lease, lease_wait, keep_results, keep_results_for
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiters] = {}  # per key: who waits for its turn
        self._entries: dict[str, _Entry] = {}
        self._leases: dict[str, _Lease] = {}
        self._next_sweep = clock() + self.ttl
        self._counters = _Counters()

    # -- protocol -------------------------------------------------------------------------

    def read(
        self, key: str, known: Token | None = None, *, idempotency_key: str | None = None
    ) -> Read:
        """What the store holds for ``key`` (the value only when it is not ``known``)."""
        self._counters.add("round_trips")
        with self._lock:
            return self._read(key, known, idempotency_key, self._clock())

    def begin(
        self,
        key: str,
        known: Token | None = None,
        *,
        idempotency_key: str | None = None,
        resume: Turn | None = None,
    ) -> Turn:
        """Wait for this thread's turn on ``key`` (at most ``lease_wait`` s), then read."""
        self._counters.add("round_trips")
        holder = turn_holder(resume)
        give_up = time.monotonic() + self.lease_wait
        waited = False
        with self._lock:
            while True:
                now = self._clock()
                read = self._read(key, known, idempotency_key, now)
                if read.result is not None:
                    return Turn(key, None, read)
                lease = self._live_lease(key, now)
                if lease is None or lease.holder == holder:
                    self._leases[key] = _Lease(holder, now + self.lease)
                    return Turn(key, holder, read)
                if not waited:
                    waited = True
                    self._counters.add("lease_waits")
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    self._counters.add("lease_timeouts")
                    self._counters.add("errors")
                    raise StoreError(self.name, key, self._busy_reason())
                self._wait_for_turn(key, min(remaining, max(lease.expires_at - now, 0.001)))

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
        """Compare-and-set ``value`` (see :mod:`steerloop.stores.base`)."""
        self._counters.add("round_trips")
        holder = turn.holder if turn is not None else None
        with self._lock:
            written = self._write(key, bytes(value), expected, holder, idempotency_key, result)
        self._counters.add_outcome(written)
        return written

    def release(self, turn: Turn) -> None:
        """End ``turn`` without writing (no error when it already ended)."""
        if turn.holder is None:
            return
        self._counters.add("round_trips")
        with self._lock:
            self._end_turn(turn.key, turn.holder)

    def delete(self, key: str) -> None:
        """Remove ``key`` and its idempotency results (no error when absent)."""
        self._counters.add("round_trips")
        with self._lock:
            self._entries.pop(key, None)

    def stats(self) -> StoreStats:
        """Counters since the store was created."""
        return self._counters.snapshot()

    # -- extras ---------------------------------------------------------------------------

    def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires, ``None`` when absent."""
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            return None if entry is None else entry.expires_at - now

    def put(self, key: str, value: bytes, token: Token) -> None:
        """Store ``value`` under ``token`` as is (no compare): for a fallback copy."""
        with self._lock:
            self._entries[key] = _Entry(token, bytes(value), self._clock() + self.ttl)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            return self._live(key, self._clock()) is not None

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for entry in self._entries.values() if entry.expires_at > now)

    def __repr__(self) -> str:
        return f"MemoryStore(ttl={self.ttl!r}, keys={len(self)})"

    # -- machinery (callers hold self._lock) ------------------------------------------------

    def _live(self, key: str, now: float) -> _Entry | None:
        return _unexpired(self._entries, key, now)

    def _live_lease(self, key: str, now: float) -> _Lease | None:
        return _unexpired(self._leases, key, now)

    def _read(self, key: str, known: Token | None, idempotency_key: str | None, now: float) -> Read:
        self._counters.add("loads")
        entry = self._live(key, now)
        if entry is None:
            return Read()
        kept = entry.results.get(idempotency_key) if idempotency_key else None
        result = None if kept is None else kept[1]
        if result is not None:
            self._counters.add("replays")
        value = None if entry.token == known else entry.value
        return Read(entry.token, value, result)

    def _write(
        self,
        key: str,
        value: bytes,
        expected: Token | None,
        holder: str | None,
        idempotency_key: str | None,
        result: bytes,
    ) -> Written:
        now = self._clock()
        entry = self._live(key, now)
        if idempotency_key and entry is not None and idempotency_key in entry.results:
            if holder is not None:
                self._end_turn(key, holder)
            return Written(APPLIED, Read(entry.token, None, entry.results[idempotency_key][1]))
        lease = self._live_lease(key, now)
        if lease is not None and lease.holder != holder:
            return Written(BUSY, Read(), wait=lease.expires_at - now)
        current = None if entry is None else entry.token
        if current != expected:
            return Written(CONFLICT, Read(current, None if entry is None else entry.value))
        if entry is None:
            entry = _Entry(Token(new_generation(), 1), value, now + self.ttl)
            self._entries[key] = entry
        else:
            entry.token = Token(entry.token.generation, entry.token.version + 1)
            entry.value = value
            entry.expires_at = now + self.ttl
        if idempotency_key:
            self._keep_result(entry, idempotency_key, bytes(result), now)
        if holder is not None:
            self._end_turn(key, holder)
        if now >= self._next_sweep:
            self._sweep(now)
        return Written(WRITTEN, Read(entry.token))

    def _keep_result(self, entry: _Entry, idempotency_key: str, result: bytes, now: float) -> None:
        results = entry.results
        results[idempotency_key] = (now, result)
        cap = RESULTS_CAP * self.keep_results
        while len(results) > self.keep_results:
            oldest = next(iter(results.values()))[0]
            if len(results) <= cap and now - oldest < self.keep_results_for:
                break
            results.popitem(last=False)

    def _end_turn(self, key: str, holder: str) -> None:
        lease = self._leases.get(key)
        if lease is not None and lease.holder == holder:
            del self._leases[key]
            waiters = self._waiting.get(key)
            if waiters is not None:
                waiters.condition.notify()  # hand over to one waiter (the others keep waiting)

    def _wait_for_turn(self, key: str, timeout: float) -> None:
        waiters = self._waiting.get(key)
        if waiters is None:
            waiters = self._waiting[key] = _Waiters(threading.Condition(self._lock))
        waiters.count += 1
        try:
            waiters.condition.wait(timeout)
        finally:
            waiters.count -= 1
            if waiters.count == 0:
                del self._waiting[key]

    def _sweep(self, now: float) -> None:
        _drop_expired(self._entries, now)
        _drop_expired(self._leases, now)
        self._next_sweep = now + self.ttl

    def _busy_reason(self) -> str:
        return (
            f"busy: another worker kept its turn on this key for more than lease_wait="
            f"{self.lease_wait:g} s (its turns are taking long, or many workers queue for "
            "one key); the update was NOT applied. Retry, or raise lease_wait="
        )
