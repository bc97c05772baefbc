"""Serve a failing server store's operations from local memory, and write them back later.

Opt-in (``RedisStore(fallback="memory")``): availability over consistency. While the server
fails, operations are served by a local :class:`~steerloop.stores.MemoryStore` for
``probe`` seconds at a time:

* a key this process already updated locally continues locally;
* otherwise a worker whose copy is current (it names a ``known`` token) continues from its
  own copy: the local store *adopts* the key at that token (it never had the value);
* a worker whose copy is not known to be current (a failed write, a step that raised)
  cannot continue: :class:`~steerloop.errors.StoreUnavailableError`.

When the server answers again, before any other operation on a key updated locally, the
local value is written back if the server still holds the token the local updates started
from (``fallback_reconciled``); else the server's value wins and the local updates are
dropped (``fallback_discarded``), and the next read of that key sends the full value even
to a caller that names a token (the local lineage may have reached the same version).
A write whose reply was lost is never served locally (it may have landed on the server).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from steerloop.errors import StoreUnavailableError
from steerloop.stores.base import WRITTEN, Read, Token, Turn, Written, _Counters
from steerloop.stores.memory import MemoryStore

__all__ = ["LocalFallback"]

#: Writes a local value back to the server: (key, value, expected, token) -> written?
WriteBack = Callable[[str, bytes, Token | None, Token], bool]


class LocalFallback:
    """The local side of a server store's memory fallback (see the module docstring)."""

    def __init__(
        self,
        store_name: str,
        local: MemoryStore,
        *,
        probe: float,
        clock: Callable[[], float],
        counters: _Counters,
    ) -> None:
        self.store_name = store_name
        self.local = local
        self.probe = float(probe)
        self._clock = clock
        self._counters = counters
        self._down_until = float("-inf")
        self._lock = threading.Lock()
        self._bases: dict[str, Token | None] = {}  # key -> server token its lineage started at
        self._resend: set[str] = set()  # keys whose local updates were dropped

    @property
    def active(self) -> bool:
        """Whether operations are being served locally."""
        return self._clock() < self._down_until

    def trip(self) -> None:
        """The server failed: serve locally for the next ``probe`` seconds."""
        self._down_until = self._clock() + self.probe

    # -- served locally -------------------------------------------------------------------

    def read(self, key: str, known: Token | None, idempotency_key: str | None) -> Read:
        self._counters.add("fallback_operations")
        if self._has(key):
            return self.local.read(key, known, idempotency_key=idempotency_key)
        return self._adopted(key, known)

    def begin(
        self, key: str, known: Token | None, idempotency_key: str | None, resume: Turn | None
    ) -> Turn:
        self._counters.add("fallback_operations")
        if self._has(key):
            return self.local.begin(key, known, idempotency_key=idempotency_key, resume=resume)
        return Turn(key, None, self._adopted(key, known))

    def write(
        self,
        key: str,
        value: bytes,
        expected: Token | None,
        turn: Turn | None,
        idempotency_key: str | None,
        result: bytes,
    ) -> Written:
        self._counters.add("fallback_operations")
        with self._lock:
            if key not in self._bases:
                self._bases[key] = expected
                if expected is not None:  # adopt the caller's copy at its token
                    token = Token(expected.generation, expected.version + 1)
                    self.local.put(key, value, token)
                    return Written(WRITTEN, Read(token))
        return self.local.write(
            key, value, expected, turn=turn, idempotency_key=idempotency_key, result=result
        )

    def release(self, turn: Turn) -> None:
        self.local.release(turn)

    # -- recovery -------------------------------------------------------------------------

    def reconcile(self, key: str, write_back: WriteBack) -> None:
        """Write ``key``'s local updates back (the server answers again; see module doc)."""
        with self._lock:
            if key not in self._bases:
                return
            base = self._bases.pop(key)
            read = self.local.read(key)
            self.local.delete(key)
        if read.token is None or read.value is None:  # the local copy expired
            return
        try:
            written = write_back(key, read.value, base, read.token)
        except BaseException:
            with self._lock:  # still failing: keep the local copy for later
                self._bases[key] = base
                self.local.put(key, read.value, read.token)
            raise
        if written:
            self._counters.add("fallback_reconciled")
        else:
            self._counters.add("fallback_discarded")
            with self._lock:
                self._resend.add(key)

    def pending(self, key: str) -> bool:
        """Whether ``key`` has local updates to write back."""
        return key in self._bases

    def known_for_server(self, key: str, known: Token | None) -> Token | None:
        """``known``, or ``None`` once after ``key``'s local updates were dropped."""
        if self._resend and key in self._resend:
            with self._lock:
                self._resend.discard(key)
            return None
        return known

    def forget(self, key: str) -> None:
        """Drop ``key``'s local copy (the key was deleted)."""
        with self._lock:
            self._bases.pop(key, None)
            self._resend.discard(key)
            self.local.delete(key)

    # -- machinery ------------------------------------------------------------------------

    def _has(self, key: str) -> bool:
        with self._lock:
            return key in self._bases

    def _adopted(self, key: str, known: Token | None) -> Read:
        """Continue from the caller's copy: nothing stored yet, or its current token."""
        if known is None:
            return Read()  # a copy that was never stored: it starts locally
        if known.version == 0:  # a copy to reload (steerloop.stores.sync.StoredCopy.known)
            raise StoreUnavailableError(
                self.store_name,
                key,
                "unavailable: the server does not answer and this worker's copy is not "
                "known to be current (a write failed or a step raised), so the memory "
                "fallback cannot continue it; retry when the server is back",
            )
        return Read(known)
