"""Redis session state store: one hash per session, compare-and-set in a Lua script.

Layout: the session ``user-42`` lives at ``<namespace>:session:{user-42}`` as a hash with
the fields ``version`` (decimal integer) and ``state`` (the :class:`~steerloop.SessionState`
JSON). Session ids are percent-encoded (``quote(id, safe="")``, so ``:``, braces or spaces in
an id cannot reach another key) and replaced by ``sha256:<hex>`` when the encoding is longer
than 200 characters. Every save renews the key's time to live (``PEXPIRE``). Two helper keys
share the braces (one Redis Cluster slot): ``...:lock`` (the turn-taking lease, ``PX``
``lease`` ms) and ``...:wake`` (a one-element list that wakes the next waiter).

Turn-taking: :meth:`RedisStore.exclusive` takes the lease with ``SET NX PX`` and waits for it
with ``BLPOP`` on the wake list (woken by the holder's release, or by the lease's expiry if
the holder died). The release is folded into the compare-and-set script, so an uncontended
update costs three round trips (lease, load-if-changed, save). The lease is advisory: an
expired or skipped lease costs wasted work, never a lost update.

Atomicity: a save is one ``EVALSHA`` of a script that compares the version and writes both
fields and the TTL, so Redis applies it entirely or not at all; a client that dies or times
out mid-way leaves either the old or the new state, never a mix. redis-py's own retries are
switched off: a save retried after a timeout could apply one update twice.

Failure modes (``timeout`` seconds, default 1.0):

* server refuses the connection -> :class:`~steerloop.errors.StoreError` at once;
* server accepts but never answers, or stops answering mid-operation -> ``StoreError`` after
  ``timeout`` (+ ``connect_timeout`` for a connection that is still being opened). A timed-out
  save is *ambiguous*: it may or may not have landed (never partially); the session re-reads
  the store on its next call, so the local copy never runs ahead of the server unnoticed.
* ``fallback="memory"`` (fail-open, opt-in): instead of raising, serve the operation from a
  local :class:`~steerloop.stores.MemoryStore` and skip the server for ``fallback_probe``
  seconds. A session continues from the copy this process last saw; its updates are kept
  locally. When the server answers again, each degraded session is written back if nobody
  changed it on the server meanwhile (``StoreStats.fallback_reconciled``), else the server's
  state wins and the local updates are dropped (``StoreStats.fallback_discarded``). Every
  operation served locally counts in ``StoreStats.fallback_operations``. ``delete`` never
  degrades (a delete that silently did not happen would resurrect the session).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from steerloop.errors import StoreError
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
from steerloop.stores.memory import MemoryStore

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore"]

_T = TypeVar("_T")

#: Keys longer than this (after percent-encoding) are replaced by their SHA-256.
_MAX_ENCODED_ID = 200

# KEYS[1] = hash; ARGV[1] = known version. Returns {version} when unchanged or absent
# (version 0), {version, state} otherwise.
_LOAD_IF_CHANGED = """
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return {0} end
if v == ARGV[1] then return {tonumber(v)} end
return {tonumber(v), redis.call('HGET', KEYS[1], 'state')}
"""

# KEYS = hash, lease, wake list; ARGV = expected version, state, new version, ttl in ms,
# lease token ('' = none held), lease in ms. Returns {1, new version} after writing (and
# releasing the lease if this token holds it), {0, current version} on a conflict (no write).
_COMPARE_AND_SET = """
local cur = redis.call('HGET', KEYS[1], 'version')
cur = cur and tonumber(cur) or 0
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'state', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) == ARGV[5] then
  redis.call('DEL', KEYS[2])
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
return {1, tonumber(ARGV[3])}
"""

# KEYS = lease, wake list; ARGV = token, lease in ms. Releases the lease if the token holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "RedisStore needs redis-py; install it with: pip install 'steerloop[redis]'"
        ) from error
    return redis


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


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


class RedisStore:
    """:class:`~steerloop.stores.StateStore` on Redis (extra ``redis``: redis-py).

    Parameters
    ----------
    url : str
        ``redis://[[user]:[password]@]host:port/db`` (``rediss://`` for TLS, ``unix://``).
    namespace : str
        Prefix of every key (``<namespace>:session:<encoded id>``).
    ttl : float
        Seconds a session lives after its last save (default one day).
    timeout : float
        Socket timeout of every command, in seconds: a hung server raises
        :class:`~steerloop.errors.StoreError` after this long.
    connect_timeout : float | None
        Timeout of opening a connection (default: ``timeout``).
    retries, backoff : int, float
        Conflict retries of one session update and the base of their jittered back-off.
    lease : float
        Seconds a worker's turn on a session lasts at most (a dead worker's turn expires).
    lease_wait : float
        Seconds to wait for another worker's turn before going ahead optimistically.
    fallback : "memory" | None
        ``"memory"`` degrades to a local in-memory store while Redis fails instead of
        raising (see the module docstring); ``None`` (default) raises ``StoreError``.
    fallback_probe : float
        Seconds to serve locally after a failure before trying Redis again.
    client : redis.Redis | None
        A ready client to use instead of ``url`` (its timeouts and retries are then yours:
        keep redis-py's retries off, a retried save after a timeout can apply twice).
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
        lease: float = 2.0,
        lease_wait: float = DEFAULT_LEASE_WAIT,
        fallback: Literal["memory"] | None = None,
        fallback_probe: float = 5.0,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_store_settings(ttl, retries, backoff, lease_wait)
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if fallback not in (None, "memory"):
            raise ValueError(f"fallback must be None or 'memory', got {fallback!r}")
        if not namespace:
            raise ValueError("namespace must be a non-empty string")
        redis_module = _import_redis()
        self.ttl = float(ttl)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.lease = float(lease)
        self.lease_wait = float(lease_wait)
        self.namespace = namespace
        self.timeout = float(timeout)
        self.fallback = fallback
        self.fallback_probe = float(fallback_probe)
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
        self._load_script = client.register_script(_LOAD_IF_CHANGED)
        self._cas_script = client.register_script(_COMPARE_AND_SET)
        self._release_script = client.register_script(_RELEASE)
        self._held = threading.local()  # this thread's lease tokens: {session id: token}
        self._clock = clock
        self._down_until = float("-inf")
        self._counters = _Counters()
        # Fallback: the local copies of sessions updated while Redis failed, and the Redis
        # version each one started from (to write it back on recovery).
        self._local = MemoryStore(ttl=ttl, retries=retries, backoff=backoff)
        self._bases: dict[str, int] = {}
        self._bases_lock = threading.Lock()

    # -- keys -----------------------------------------------------------------------------

    def key_for(self, session_id: str) -> str:
        """The Redis key holding ``session_id``."""
        encoded = quote(session_id, safe="")
        if len(encoded) > _MAX_ENCODED_ID:
            encoded = "sha256:" + hashlib.sha256(session_id.encode("utf-8")).hexdigest()
        return f"{self.namespace}:session:{{{encoded}}}"

    @property
    def client(self) -> redis.Redis:
        """The redis-py client."""
        return self._client

    @property
    def degraded(self) -> bool:
        """Whether operations are being served locally (``fallback="memory"``)."""
        return self.fallback is not None and self._clock() < self._down_until

    # -- protocol -------------------------------------------------------------------------

    def load(self, key: str) -> tuple[str, int] | None:
        """``(state_json, version)`` of ``key``, or ``None`` when absent."""

        def remote() -> tuple[str, int] | None:
            self._reconcile(key)
            version, state = self._client.hmget(self.key_for(key), ["version", "state"])
            if version is None or state is None:
                return None
            return _text(state), int(version)

        return self._run(key, "load", remote, lambda: self._local.load(key))

    def load_if_changed(self, key: str, known_version: int) -> tuple[str | None, int]:
        """The state when its version differs from ``known_version``, else ``(None, known)``.

        After degraded updates were dropped on recovery, the state is returned even when the
        version numbers happen to match (the caller's copy is not the server's).
        """

        def remote() -> tuple[str | None, int]:
            outcome = self._reconcile(key)
            known = -1 if outcome == "discarded" else known_version
            reply = self._load_script(keys=[self.key_for(key)], args=[str(known)])
            version = int(reply[0])
            if len(reply) == 1:
                return None, version
            return _text(reply[1]), version

        def local() -> tuple[str | None, int]:
            with self._bases_lock:
                has_local = key in self._bases
            if has_local:
                return self._local.load_if_changed(key, known_version)
            if known_version < 0:
                raise StoreError(
                    self.name,
                    key,
                    f"unavailable: {self._where} does not answer and this session's local "
                    "copy is not known to be current (a previous write failed), so the "
                    "memory fallback cannot continue it; retry when the server is back",
                )
            return None, known_version  # continue from the copy this process has

        return self._run(key, "load", remote, local)

    def save(self, key: str, state_json: str, expected_version: int) -> int:
        """Compare-and-set; returns ``expected_version + 1`` or raises a conflict."""

        def remote() -> int:
            if self._reconcile(key) == "discarded":
                self._counters.add("conflicts")
                raise StoreConflictError(self.name, key, expected_version, None)
            return self._compare_and_set(key, state_json, expected_version, expected_version + 1)

        def local() -> int:
            with self._bases_lock:
                if key not in self._bases:
                    if expected_version < 0:
                        raise StoreConflictError(self.name, key, expected_version, None)
                    self._bases[key] = expected_version
                    created = True
                else:
                    created = False
            try:
                if created:
                    return self._local._save(key, state_json, 0, expected_version + 1)
                return self._local.save(key, state_json, expected_version)
            except StoreConflictError:
                self._counters.add("conflicts")
                raise

        return self._run(key, "save", remote, local)

    def delete(self, key: str) -> None:
        """Remove ``key`` (also any local fallback copy). Never degrades: raises on failure."""
        with self._bases_lock:
            self._bases.pop(key, None)
            self._local.delete(key)
        try:
            self._client.delete(self.key_for(key))
        except self._errors as error:
            self._counters.add("errors")
            raise self._store_error(key, "delete", error) from error

    @contextlib.contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        """This worker's turn on ``key``: a Redis lease (see the module docstring)."""
        tokens = self._tokens()
        outer = tokens.pop(key, None)  # a nested turn (same thread) must not release it
        token = self._acquire(key)
        if token is not None:
            tokens[key] = token
        try:
            yield
        except StoreError as error:
            if isinstance(error.__cause__, self._unreachable):
                token = None  # the server is failing: let the lease expire, do not wait again
            raise
        finally:
            held = tokens.pop(key, None)
            if outer is not None:
                tokens[key] = outer
            if token is not None and held == token:
                with contextlib.suppress(*self._errors):  # else it expires after `lease`
                    self._release_script(
                        keys=[self.key_for(key) + ":lock", self.key_for(key) + ":wake"],
                        args=[token, self._lease_ms()],
                    )

    def stats(self) -> StoreStats:
        """Counters since the store was created (fallback counters included)."""
        return self._counters.snapshot()

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, namespace={self.namespace!r}, ttl={self.ttl!r})"

    # -- machinery ------------------------------------------------------------------------

    def _tokens(self) -> dict[str, str]:
        tokens: dict[str, str] | None = getattr(self._held, "tokens", None)
        if tokens is None:
            tokens = self._held.tokens = {}
        return tokens

    def _lease_ms(self) -> int:
        return max(1, round(self.lease * 1000))

    def _acquire(self, key: str) -> str | None:
        """Take the lease of ``key``; ``None`` when degraded or after ``lease_wait``."""
        if self.fallback is not None and self._clock() < self._down_until:
            return None
        base = self.key_for(key)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lease_wait
        waited = False
        try:
            while True:
                if self._client.set(base + ":lock", token, nx=True, px=self._lease_ms()):
                    return token
                if not waited:
                    waited = True
                    self._counters.add("lease_waits")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._counters.add("lease_timeouts")
                    return None
                # Block until the holder releases (or its lease expires); stay well inside
                # the socket timeout so a live but busy server is never taken for a dead one.
                wait = max(0.01, min(remaining, self.lease, self.timeout / 2))
                self._client.blpop([base + ":wake"], timeout=wait)
        except self._unreachable as error:
            if self.fallback is None:
                self._counters.add("errors")
                raise self._store_error(key, "lease", error) from error
            self._down_until = self._clock() + self.fallback_probe
            self._counters.add("fallback_operations")
            return None
        except self._errors as error:
            self._counters.add("errors")
            raise self._store_error(key, "lease", error) from error

    def _compare_and_set(
        self, key: str, state_json: str, expected: int, new: int, *, release: bool = True
    ) -> int:
        ms = max(1, round(self.ttl * 1000))
        base = self.key_for(key)
        token = self._tokens().get(key, "") if release else ""
        reply = self._cas_script(
            keys=[base, base + ":lock", base + ":wake"],
            args=[str(expected), state_json, str(new), str(ms), token, str(self._lease_ms())],
        )
        if int(reply[0]) != 1:
            self._counters.add("conflicts")
            raise StoreConflictError(self.name, key, expected, int(reply[1]))
        if token:
            self._tokens().pop(key, None)  # released by the script
        self._counters.add("saves")
        return new

    def _reconcile(self, key: str) -> Literal["none", "reconciled", "discarded"]:
        """Write back a session updated locally while Redis failed (Redis is reachable)."""
        if not self._bases:
            return "none"
        with self._bases_lock:
            base = self._bases.pop(key, None)
            if base is None:
                return "none"
            entry = self._local.load(key)
            self._local.delete(key)
        if entry is None:  # the local copy expired
            return "none"
        state_json, version = entry
        try:
            self._compare_and_set(key, state_json, base, version, release=False)
        except StoreConflictError:
            self._counters.add("fallback_discarded")
            return "discarded"
        except BaseException:
            with self._bases_lock:  # still down: keep the local copy for later
                self._bases[key] = base
                self._local._save(key, state_json, 0, version)
            raise
        self._counters.add("fallback_reconciled")
        return "reconciled"

    def _run(self, key: str, op: str, remote: Callable[[], _T], local: Callable[[], _T]) -> _T:
        if self.fallback is not None and self._clock() < self._down_until:
            self._counters.add("fallback_operations")
            return local()
        try:
            result = remote()
        except StoreError:
            raise
        except self._unreachable as error:
            if self.fallback is None:
                self._counters.add("errors")
                raise self._store_error(key, op, error) from error
            self._down_until = self._clock() + self.fallback_probe
            self._counters.add("fallback_operations")
            return local()
        except self._errors as error:
            self._counters.add("errors")
            raise self._store_error(key, op, error) from error
        if op == "load":
            self._counters.add("loads")
        return result

    def _store_error(self, key: str, op: str, error: BaseException) -> StoreError:
        if isinstance(error, self._timeout_error):
            landed = (
                " The write may or may not have landed (never partially); the session "
                "re-reads the store on its next call."
                if op == "save"
                else ""
            )
            reason = (
                f"timeout: {self._where} did not answer {op} within {self.timeout:g} s.{landed} "
                "Check the server (or raise timeout=); RedisStore(fallback='memory') keeps "
                "serving from local memory instead of raising"
            )
        elif isinstance(error, self._unreachable):
            reason = (
                f"unavailable: cannot reach {self._where} for {op} ({error}). Start or fix the "
                "server, check the URL; RedisStore(fallback='memory') keeps serving from "
                "local memory instead of raising"
            )
        else:
            reason = f"error: {op} failed on {self._where}: {type(error).__name__}: {error}"
        return StoreError(self.name, key, reason)
