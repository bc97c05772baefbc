"""Redis store: compare-and-set and turns in Lua scripts, one or two round trips per update.

Layout (see :mod:`steerloop.stores._redis_scripts`): the key ``user-42`` lives at
``<namespace>:session:{user-42}`` — a hash of generation ``g``, version ``v`` and value
``s`` — with helper keys under the same braces (one Redis Cluster slot): ``:results`` and
``:ids`` (idempotency results, bounded), ``:lock`` (the turn), ``:queue`` and ``:waiters``
(who waits for it) and ``:wake:<token>`` (one waiter's wake-up). Ids are percent-encoded
(``quote(id, safe="")``: ``:``, braces or spaces cannot reach another key) and replaced by
``sha256:<hex>`` when longer than 200 characters. Every write renews the TTL (``PEXPIRE``).

Round trips. An update whose copy is current costs **one** ``EVALSHA`` (the write: compare,
write value, TTL and idempotency result). Under contention it costs two: ``begin`` (take the
turn and read, one script) and the write, which also ends the turn.

Hand-off. A worker that finds the turn taken queues (first come, first served) and blocks
on its own wake list. Ending a turn (the write, or ``release``) hands it to the first waiter
that is still there — the lock is set to that waiter's token — and pushes the current value
to it, so the next worker starts its step without another round trip. A waiter registers a
deadline (its block time plus a grace) and renews it each time its block times out; a waiter
past its deadline is gone (killed, cut off) and is skipped. Blocks last at most the time left
on the current turn, so when the holder is gone waiters take the turn as soon as its lease
lapses: **nobody waits longer than** ``lease`` **for a holder that is gone**. Blocks also
stay within half the socket ``timeout``, so a slow server is never taken for a dead one.

Atomicity: every script runs whole or not at all. redis-py's own retries are switched off:
a write retried after a timeout could apply twice. A write whose reply is lost raises
:class:`~steerloop.errors.StoreInDoubtError` (it may have landed; retry with its
idempotency key); anything else that fails to reach the server raises
:class:`~steerloop.errors.StoreUnavailableError` (nothing was written) within ``timeout``
(+ ``connect_timeout`` for a connection that is still being opened).

``fallback="memory"`` (opt-in) serves operations from local memory while the server fails
and writes them back when it answers again: :mod:`steerloop.stores.fallback`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from steerloop.errors import StoreError, StoreInDoubtError, StoreUnavailableError
from steerloop.stores import _redis_scripts as scripts
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
from steerloop.stores.fallback import LocalFallback
from steerloop.stores.memory import MemoryStore

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore"]

_T = TypeVar("_T")

#: Keys longer than this (after percent-encoding) are replaced by their SHA-256.
_MAX_ENCODED_ID = 200
_SUFFIXES = ("", ":results", ":ids", ":lock", ":queue", ":waiters")
_OUTCOMES = {1: WRITTEN, 2: APPLIED, 3: BUSY, 4: CONFLICT}


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "RedisStore needs redis-py; install it with: pip install 'steerloop[redis]'"
        ) from error
    return redis


def _redact(url: str) -> str:
    """``url`` without its password (for error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<redis url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _token(generation: bytes | None, version: bytes | int | None) -> Token | None:
    if generation is None or version is None:
        return None
    return Token(generation.decode("ascii"), int(version))


class RedisStore(SharedSettings):
    """:class:`~steerloop.stores.StateStore` on Redis ≥ 6.2 (extra ``redis``: redis-py).

    Parameters
    ----------
    url : str
        ``redis://[[user]:[password]@]host:port/db`` (``rediss://`` for TLS, ``unix://``).
    namespace : str
        Prefix of every key (``<namespace>:session:<encoded id>``).
    ttl : float
        Seconds a key lives after its last write (default one day).
    timeout : float
        Socket timeout of every command, in seconds: a hung server raises
        :class:`~steerloop.errors.StoreError` after this long.
    connect_timeout : float | None
        Timeout of opening a connection (default: ``timeout``).
    retries, backoff : int, float
        Conflict retries of one read–modify–write and the base of their jittered back-off.
    lease : float
        Longest turn in seconds: a turn whose holder is gone lapses after this long.
    lease_wait : float
        Seconds :meth:`begin` waits for a turn before a ``busy`` StoreError.
    keep_results, keep_results_for : int, float
        Idempotency results kept per key: the last ``keep_results``, and any younger than
        ``keep_results_for`` seconds (see :mod:`steerloop.stores.base`).
    fallback : "memory" | None
        ``"memory"`` serves operations locally while Redis fails instead of raising
        (:mod:`steerloop.stores.fallback`); ``None`` (default) raises ``StoreError``.
    fallback_probe : float
        Seconds to serve locally after a failure before trying Redis again.
    client : redis.Redis | None
        A ready client to use instead of ``url`` (its timeouts and retries are then yours:
        keep redis-py's retries off, a write retried after a timeout can apply twice; keep
        its socket timeout above ``timeout / 2``, the longest block of a waiter).
    clock : Callable[[], float]
        Monotonic clock for the fallback probe interval (tests pass a fake one).

    Examples
    --------
    Not run here (it needs a server)::

        from steerloop import Controller
        from steerloop.stores import RedisStore

        store = RedisStore("redis://127.0.0.1:6379/0", namespace="myapp", ttl=3600)
        controller = Controller(preset="paper", store=store)
        decision = controller.session("user-42").update({"security": 0.8})
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "steerloop",
        ttl: float = DEFAULT_TTL,
        timeout: float = 1.0,
        connect_timeout: float | None = None,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        lease: float = DEFAULT_LEASE,
        lease_wait: float = DEFAULT_LEASE_WAIT,
        keep_results: int = DEFAULT_KEEP_RESULTS,
        keep_results_for: float = DEFAULT_KEEP_RESULTS_FOR,
        fallback: Literal["memory"] | None = None,
        fallback_probe: float = 5.0,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._set_shared_settings(
            ttl, retries, backoff, lease, lease_wait, keep_results, keep_results_for
        )
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if fallback not in (None, "memory"):
            raise ValueError(f"fallback must be None or 'memory', got {fallback!r}")
        if not namespace:
            raise ValueError("namespace must be a non-empty string")
        redis_module = _import_redis()
        self.namespace = namespace
        self.timeout = float(timeout)
        self.fallback = fallback
        self._where = _redact(url) if client is None else repr(client)
        self._errors: tuple[type[BaseException], ...] = (redis_module.RedisError,)
        self._unreachable: tuple[type[BaseException], ...] = (
            redis_module.ConnectionError,
            redis_module.TimeoutError,
        )
        self._timeout_error: type[BaseException] = redis_module.TimeoutError
        if client is None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis_module.Redis.from_url(
                url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout if connect_timeout is None else connect_timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=False,
            )
        self._client: redis.Redis = client
        self._read_script = client.register_script(scripts.READ)
        self._begin_script = client.register_script(scripts.BEGIN)
        self._write_script = client.register_script(scripts.WRITE)
        self._release_script = client.register_script(scripts.RELEASE)
        self._counters = _Counters()
        self._fallback: LocalFallback | None = None
        if fallback is not None:
            local = MemoryStore(
                ttl=ttl,
                retries=retries,
                lease=lease,
                lease_wait=lease_wait,
                keep_results=keep_results,
                keep_results_for=keep_results_for,
                clock=clock,
            )
            self._fallback = LocalFallback(
                self.name, local, probe=fallback_probe, clock=clock, counters=self._counters
            )

    # -- keys -----------------------------------------------------------------------------

    def key_for(self, key: str) -> str:
        """The Redis key holding ``key``'s value (the helper keys add suffixes to it)."""
        encoded = quote(key, safe="")
        if len(encoded) > _MAX_ENCODED_ID:
            encoded = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"{self.namespace}:session:{{{encoded}}}"

    def _keys(self, key: str) -> list[str]:
        base = self.key_for(key)
        return [base + suffix for suffix in _SUFFIXES]

    @property
    def client(self) -> redis.Redis:
        """The redis-py client."""
        return self._client

    @property
    def degraded(self) -> bool:
        """Whether operations are being served locally (``fallback="memory"``)."""
        return self._fallback is not None and self._fallback.active

    # -- protocol -------------------------------------------------------------------------

    def read(
        self, key: str, known: Token | None = None, *, idempotency_key: str | None = None
    ) -> Read:
        """What Redis holds for ``key`` (the value only when it is not ``known``)."""
        fallback = self._fallback

        def remote() -> Read:
            server_known = known if fallback is None else fallback.known_for_server(key, known)
            reply = self._call(key, "read", self._read_script, _args(server_known, idempotency_key))
            return self._state(key, reply)

        def local() -> Read:
            assert fallback is not None
            return fallback.read(key, known, idempotency_key)

        return self._run(key, "read", remote, local)

    def begin(
        self,
        key: str,
        known: Token | None = None,
        *,
        idempotency_key: str | None = None,
        resume: Turn | None = None,
    ) -> Turn:
        """Wait for this worker's turn on ``key`` (see the module docstring), then read."""
        fallback = self._fallback

        def remote() -> Turn:
            server_known = known if fallback is None else fallback.known_for_server(key, known)
            return self._begin(key, server_known, idempotency_key, resume)

        def local() -> Turn:
            assert fallback is not None
            return fallback.begin(key, known, idempotency_key, resume)

        return self._run(key, "begin", remote, local)

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
        """Compare-and-set ``value`` in one script (see :mod:`steerloop.stores.base`)."""
        holder = turn.holder if turn is not None and turn.holder else None

        def remote() -> Written:
            written = self._write(key, value, expected, holder, idempotency_key, result)
            self._counters.add_outcome(written)
            return written

        def local() -> Written:
            assert self._fallback is not None
            return self._fallback.write(key, value, expected, turn, idempotency_key, result)

        return self._run(key, "write", remote, local, idempotency_key)

    def release(self, turn: Turn) -> None:
        """End ``turn`` without writing, handing it to the next waiter (best effort)."""
        if turn.holder is None:
            return
        if self._fallback is not None and self._fallback.active:
            self._fallback.release(turn)
            return
        try:
            self._call(turn.key, "release", self._release_script, [turn.holder, self._lease_ms()])
        except self._errors as error:  # the turn lapses after its lease anyway
            raise self._store_error(turn.key, "release", error) from error

    def delete(self, key: str) -> None:
        """Remove ``key`` and its results (and any local fallback copy). Never degrades."""
        if self._fallback is not None:
            self._fallback.forget(key)
        keys = self._keys(key)
        try:
            self._counters.add("round_trips")
            self._client.delete(keys[0], keys[1], keys[2])
        except self._errors as error:
            raise self._store_error(key, "delete", error) from error

    def stats(self) -> StoreStats:
        """Counters since the store was created (fallback counters included)."""
        return self._counters.snapshot()

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, namespace={self.namespace!r}, ttl={self.ttl!r})"

    # -- machinery ------------------------------------------------------------------------

    def _lease_ms(self) -> int:
        return max(1, round(self.lease * 1000))

    def _begin(
        self, key: str, known: Token | None, idempotency_key: str | None, resume: Turn | None
    ) -> Turn:
        holder = turn_holder(resume)
        args = [
            *_args(known, idempotency_key),
            holder,
            self._lease_ms(),
            max(1, round(self.timeout * 500)),  # a block stays within half the socket timeout
            max(1, round(self.timeout * 1000)),  # grace to come back after a block
        ]
        wake = self.key_for(key) + ":wake:" + holder
        give_up = time.monotonic() + self.lease_wait
        waited = False
        while True:
            reply = self._call(key, "begin", self._begin_script, args)
            if int(reply[0]) != 0:
                read = self._state(key, reply[1])
                return Turn(key, holder if int(reply[0]) == 1 else None, read)
            if not waited:
                waited = True
                self._counters.add("lease_waits")
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return self._give_up(key, holder)
            block = max(0.001, min(int(reply[1]) / 1000, remaining))
            self._counters.add("round_trips")
            item = self._client.blpop([wake], timeout=block)
            if item is not None:  # handed the turn, with the current state
                data = item[1]
                data = data if isinstance(data, bytes) else data.encode("utf-8")
                return Turn(key, holder, self._handed(data, known))

    def _give_up(self, key: str, holder: str) -> Turn:
        # withdraw from the queue (or end the turn if it was handed over just now)
        self._call(key, "release", self._release_script, [holder, self._lease_ms()])
        self._counters.add("lease_timeouts")
        raise StoreError(
            self.name,
            key,
            f"busy: other workers kept the turn on this key for more than lease_wait="
            f"{self.lease_wait:g} s (long turns, or many workers queue for one key); the "
            "update was NOT applied. Retry, or raise lease_wait=",
        )

    def _handed(self, data: bytes, known: Token | None) -> Read:
        self._counters.add("loads")
        if not data:
            return Read()
        generation, version, value = data.split(b":", 2)
        token = _token(generation, version)
        return Read(token, None if token == known else value)

    def _write(
        self,
        key: str,
        value: bytes,
        expected: Token | None,
        holder: str | None,
        idempotency_key: str | None,
        result: bytes,
        version: int | None = None,
        generation: str | None = None,
    ) -> Written:
        args: list[str | bytes | int] = [
            holder or "",
            "" if expected is None else expected.generation,
            "" if expected is None else expected.version,
            value,
            max(1, round(self.ttl * 1000)),
            idempotency_key or "",
            result,
            self.keep_results,
            self._lease_ms(),
            generation or new_generation(),
            "" if version is None else version,
            RESULTS_CAP * self.keep_results,
            max(0, round(self.keep_results_for * 1000)),
        ]
        reply = self._call(key, "write", self._write_script, args)
        code = int(reply[0])
        if code == -1:
            raise self._foreign(key)
        outcome = _OUTCOMES[code]
        if outcome == BUSY:
            return Written(BUSY, Read(), wait=max(0, int(reply[1])) / 1000)
        token = _token(*reply[1:3]) if len(reply) >= 3 else None
        if outcome == APPLIED:
            return Written(APPLIED, Read(token, None, reply[3]))
        if outcome == CONFLICT:
            return Written(CONFLICT, Read(token, reply[3] if len(reply) > 3 else None))
        return Written(WRITTEN, Read(token))

    def _write_back(self, key: str, value: bytes, expected: Token | None, token: Token) -> bool:
        """Reconcile a key updated locally while degraded (the fallback's write-back)."""
        written = self._write(
            key, value, expected, None, None, b"", token.version, token.generation
        )
        return written.outcome == WRITTEN

    def _state(self, key: str, reply: Sequence[Any]) -> Read:
        self._counters.add("loads")
        code = int(reply[0])
        if code == -1:
            raise self._foreign(key)
        if code == 0:
            return Read()
        if reply[4] is not None:
            self._counters.add("replays")
        return Read(_token(reply[1], reply[2]), reply[3], reply[4])

    def _call(self, key: str, op: str, script: Any, args: list[Any]) -> Any:
        self._counters.add("round_trips")
        return script(keys=self._keys(key), args=args)

    def _run(
        self,
        key: str,
        op: str,
        remote: Callable[[], _T],
        local: Callable[[], _T],
        idempotency_key: str | None = None,
    ) -> _T:
        fallback = self._fallback
        if fallback is not None and fallback.active:
            return local()
        try:
            if fallback is not None and fallback.pending(key):
                fallback.reconcile(key, self._write_back)
            return remote()
        except StoreError:
            self._counters.add("errors")
            raise
        except self._unreachable as error:
            doubtful = op == "write" and not _refused(error)
            if fallback is not None:
                fallback.trip()  # a write in doubt is never served locally: it may have landed
            if fallback is None or doubtful:
                raise self._store_error(key, op, error, idempotency_key) from error
            return local()
        except self._errors as error:
            raise self._store_error(key, op, error) from error

    def _foreign(self, key: str) -> StoreError:
        return StoreError(
            self.name,
            key,
            f"invalid_state: {self.key_for(key)} is a hash steerloop did not write (or an "
            "older release's layout); delete it, or use another namespace",
        )

    def _store_error(
        self, key: str, op: str, error: BaseException, idempotency_key: str | None = None
    ) -> StoreError:
        self._counters.add("errors")
        if op == "write" and isinstance(error, self._unreachable) and not _refused(error):
            self._counters.add("in_doubt")
            return StoreInDoubtError(
                self.name,
                key,
                f"in_doubt: the write was sent to {self._where} but its reply was lost "
                f"({type(error).__name__}: {error}); it was applied entirely or not at all.",
                idempotency_key,
            )
        if isinstance(error, self._timeout_error):
            return StoreUnavailableError(
                self.name,
                key,
                f"timeout: {self._where} did not answer {op} within {self.timeout:g} s; nothing "
                "was written. Check the server (or raise timeout=); "
                "RedisStore(fallback='memory') keeps serving from local memory instead",
            )
        if isinstance(error, self._unreachable):
            return StoreUnavailableError(
                self.name,
                key,
                f"unavailable: cannot reach {self._where} for {op} ({error}); nothing was "
                "written. Start or fix the server, check the URL; "
                "RedisStore(fallback='memory') keeps serving from local memory instead",
            )
        return StoreError(
            self.name, key, f"error: {op} failed on {self._where}: {type(error).__name__}: {error}"
        )


def _args(known: Token | None, idempotency_key: str | None) -> list[str | int]:
    if known is None:
        return ["", "", idempotency_key or ""]
    return [known.generation, known.version, idempotency_key or ""]


def _refused(error: BaseException) -> bool:
    """Whether the connection was never made (so nothing was sent)."""
    return "connecting to" in str(error)
