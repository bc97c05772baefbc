"""In-process session state store: a dict behind a lock, with versions and TTLs.

Use it to share sessions between several :class:`~steerloop.Controller` objects (threads)
of one process, or as the local fallback of :class:`~steerloop.stores.RedisStore`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from steerloop.stores.base import (
    DEFAULT_BACKOFF,
    DEFAULT_LEASE_WAIT,
    DEFAULT_RETRIES,
    DEFAULT_TTL,
    StoreConflictError,
    StoreStats,
    _Counters,
    check_store_settings,
)

__all__ = ["MemoryStore"]


@dataclass
class _Entry:
    state_json: str
    version: int
    expires_at: float


@dataclass
class _KeyLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


class MemoryStore:
    """Thread-safe in-memory :class:`~steerloop.stores.StateStore`.

    Parameters
    ----------
    ttl : float
        Seconds a key lives after its last save (default one day). Expired keys read as
        absent and are swept on later saves.
    retries, backoff : int, float
        Conflict retries of one session update and the base of their back-off (seconds).
    lease_wait : float
        Seconds :meth:`exclusive` waits for another thread's turn on a key.
    clock : Callable[[], float]
        Monotonic clock in seconds (tests pass a fake one).

    Examples
    --------
    >>> store = MemoryStore(ttl=60)
    >>> store.save("user-42", '{"step": 1}', 0)
    1
    >>> store.load("user-42")
    ('{"step": 1}', 1)
    >>> store.load_if_changed("user-42", 1)
    (None, 1)
    >>> store.save("user-42", '{"step": 2}', 0)
    Traceback (most recent call last):
    ...
    steerloop.stores.base.StoreConflictError: memory store, key 'user-42': conflict: expected version 0, found version 1; nothing written
    """  # noqa: E501

    name = "memory"

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        lease_wait: float = DEFAULT_LEASE_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_store_settings(ttl, retries, backoff, lease_wait)
        self.ttl = float(ttl)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.lease_wait = float(lease_wait)
        self._key_locks: dict[str, _KeyLock] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._next_sweep = clock() + self.ttl
        self._counters = _Counters()

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    def load(self, key: str) -> tuple[str, int] | None:
        """``(state_json, version)`` of ``key``, or ``None`` when absent or expired."""
        with self._lock:
            entry = self._live(key, self._clock())
        self._counters.add("loads")
        return None if entry is None else (entry.state_json, entry.version)

    def load_if_changed(self, key: str, known_version: int) -> tuple[str | None, int]:
        """The state when its version differs from ``known_version``, else ``(None, known)``."""
        with self._lock:
            entry = self._live(key, self._clock())
        self._counters.add("loads")
        if entry is None:
            return None, 0
        if entry.version == known_version:
            return None, known_version
        return entry.state_json, entry.version

    def save(self, key: str, state_json: str, expected_version: int) -> int:
        """Write if the stored version is ``expected_version``; returns the new version."""
        return self._save(key, state_json, expected_version, expected_version + 1)

    def _save(self, key: str, state_json: str, expected_version: int, new_version: int) -> int:
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            actual = 0 if entry is None else entry.version
            if actual != expected_version:
                conflict = True
            else:
                conflict = False
                self._entries[key] = _Entry(state_json, new_version, now + self.ttl)
                if now >= self._next_sweep:
                    self._sweep(now)
        if conflict:
            self._counters.add("conflicts")
            raise StoreConflictError(self.name, key, expected_version, actual)
        self._counters.add("saves")
        return new_version

    def _sweep(self, now: float) -> None:
        expired = [key for key, entry in self._entries.items() if entry.expires_at <= now]
        for key in expired:
            del self._entries[key]
        self._next_sweep = now + self.ttl

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        with self._lock:
            self._entries.pop(key, None)

    @contextlib.contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        """Per-key lock of one read–modify–write (waits at most ``lease_wait`` seconds)."""
        with self._lock:
            slot = self._key_locks.get(key)
            if slot is None:
                slot = self._key_locks[key] = _KeyLock()
            slot.users += 1
        acquired = slot.lock.acquire(blocking=False)
        if not acquired:
            self._counters.add("lease_waits")
            acquired = slot.lock.acquire(timeout=self.lease_wait)
            if not acquired:
                self._counters.add("lease_timeouts")
        try:
            yield
        finally:
            if acquired:
                slot.lock.release()
            with self._lock:
                slot.users -= 1
                if slot.users == 0:
                    del self._key_locks[key]

    def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires, ``None`` when absent."""
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            return None if entry is None else entry.expires_at - now

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            return self._live(key, self._clock()) is not None

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for entry in self._entries.values() if entry.expires_at > now)

    def stats(self) -> StoreStats:
        """Counters since the store was created."""
        return self._counters.snapshot()

    def __repr__(self) -> str:
        return f"MemoryStore(ttl={self.ttl!r}, keys={len(self)})"
