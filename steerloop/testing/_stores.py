"""Store doubles of :mod:`steerloop.testing` (:class:`FaultyStore`)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from steerloop.errors import StoreInDoubtError, StoreUnavailableError
from steerloop.stores.base import Read, StateStore, StoreStats, Token, Turn, Written
from steerloop.stores.memory import MemoryStore

__all__ = ["Fault", "FaultyStore", "Operation"]

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------- stores

#: An operation of the :class:`~steerloop.stores.StateStore` protocol.
Operation = Literal["read", "begin", "write", "release", "delete"]
#: ``"refuse"``: raise :class:`~steerloop.errors.StoreUnavailableError`, nothing applied.
#: ``"drop_reply"``: apply the operation, then lose its reply (a write raises
#: :class:`~steerloop.errors.StoreInDoubtError`, others ``StoreUnavailableError``).
#: ``"timeout"``: wait ``delay`` seconds, apply nothing, then fail as a lost reply would (the
#: caller cannot tell it from ``"drop_reply"``).
Fault = Literal["refuse", "drop_reply", "timeout"]
_OPERATIONS: tuple[str, ...] = get_args(Operation)
_FAULTS: tuple[str, ...] = get_args(Fault)


@dataclass
class _Plan:
    fault: Fault | None
    hook: Callable[[str], None] | None
    times: int
    skip: int
    delay: float


class FaultyStore:
    """A store that forwards to ``inner`` and fails on demand (thread-safe).

    Parameters
    ----------
    inner : StateStore | None
        The store that really keeps the values (default: a new
        :class:`~steerloop.stores.MemoryStore`).

    Attributes
    ----------
    calls : collections.Counter[str]
        Operations called, by name.
    injected : collections.Counter[str]
        Faults injected, by ``"<operation>:<fault>"``.

    Examples
    --------
    >>> from steerloop.errors import StoreInDoubtError
    >>> store = FaultyStore()
    >>> store.fail("write", "drop_reply")
    >>> try:
    ...     store.write("k", b"v", None)
    ... except StoreInDoubtError:
    ...     print("reply lost")
    reply lost
    >>> store.read("k").value  # ... but the write was applied
    b'v'
    """

    def __init__(self, inner: StateStore | None = None) -> None:
        self.inner: StateStore = inner if inner is not None else MemoryStore()
        self.name = self.inner.name
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._plans: dict[str, list[_Plan]] = {op: [] for op in _OPERATIONS}
        self._chaos: tuple[float, tuple[Fault, ...], frozenset[str], random.Random] | None = None
        self._lock = threading.Lock()
        self._in_hook = threading.local()  # operations a hook makes bypass the schedule

    # settings read by steerloop.stores.sync: the inner store's
    @property
    def ttl(self) -> float:
        return self.inner.ttl

    @ttl.setter
    def ttl(self, value: float) -> None:
        self.inner.ttl = value

    @property
    def retries(self) -> int:
        return self.inner.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.inner.retries = value

    @property
    def backoff(self) -> float:
        return self.inner.backoff

    @backoff.setter
    def backoff(self, value: float) -> None:
        self.inner.backoff = value

    # -- scheduling faults ----------------------------------------------------------------

    def fail(
        self,
        operation: Operation,
        fault: Fault,
        *,
        times: int = 1,
        after: int = 0,
        delay: float = 0.0,
    ) -> None:
        """Inject ``fault`` into the next ``times`` calls of ``operation`` (after ``after``)."""
        self._check(operation)
        if fault not in _FAULTS:
            raise ValueError(f"fault must be one of {_FAULTS}, got {fault!r}")
        self._plan(operation, _Plan(fault, None, times, after, delay))

    def before(
        self, operation: Operation, hook: Callable[[str], None], *, times: int = 1, after: int = 0
    ) -> None:
        """Run ``hook(key)`` before the next ``times`` calls of ``operation`` are forwarded.

        The hook runs outside the fault machinery: what it does to the store (another
        worker's update, a delete) is not itself subject to injected faults.
        """
        self._check(operation)
        self._plan(operation, _Plan(None, hook, times, after, 0.0))

    def chaos(
        self,
        rate: float,
        *,
        faults: Iterable[Fault] = ("refuse", "drop_reply"),
        operations: Iterable[Operation] = ("begin", "write"),
        seed: int = 0,
    ) -> None:
        """Inject one of ``faults`` at random into ``rate`` of ``operations`` (seeded)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        chosen = tuple(faults)
        if not chosen or any(f not in _FAULTS for f in chosen):
            raise ValueError(f"faults must be a non-empty subset of {_FAULTS}")
        ops = frozenset(operations)
        for op in ops:
            self._check(op)
        rng = random.Random(seed)  # noqa: S311 - fault schedule, not cryptography
        self._chaos = (rate, chosen, ops, rng) if rate > 0 else None

    def clear(self) -> None:
        """Remove every scheduled fault, hook and chaos."""
        with self._lock:
            for plans in self._plans.values():
                plans.clear()
            self._chaos = None

    # -- the protocol ---------------------------------------------------------------------

    def read(
        self, key: str, known: Token | None = None, *, idempotency_key: str | None = None
    ) -> Read:
        return self._forward(
            "read", key, lambda: self.inner.read(key, known, idempotency_key=idempotency_key)
        )

    def begin(
        self,
        key: str,
        known: Token | None = None,
        *,
        idempotency_key: str | None = None,
        resume: Turn | None = None,
    ) -> Turn:
        return self._forward(
            "begin",
            key,
            lambda: self.inner.begin(key, known, idempotency_key=idempotency_key, resume=resume),
        )

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
        return self._forward(
            "write",
            key,
            lambda: self.inner.write(
                key, value, expected, turn=turn, idempotency_key=idempotency_key, result=result
            ),
            idempotency_key,
        )

    def release(self, turn: Turn) -> None:
        self._forward("release", turn.key, lambda: self.inner.release(turn))

    def delete(self, key: str) -> None:
        self._forward("delete", key, lambda: self.inner.delete(key))

    def stats(self) -> StoreStats:
        return self.inner.stats()

    def __repr__(self) -> str:
        return f"FaultyStore({self.inner!r})"

    # -- machinery ------------------------------------------------------------------------

    @staticmethod
    def _check(operation: str) -> None:
        if operation not in _OPERATIONS:
            raise ValueError(f"operation must be one of {_OPERATIONS}, got {operation!r}")

    def _plan(self, operation: str, plan: _Plan) -> None:
        if plan.times < 1 or plan.skip < 0 or plan.delay < 0:
            raise ValueError("times must be >= 1, after and delay >= 0")
        with self._lock:
            self._plans[operation].append(plan)

    def _next(self, operation: str) -> tuple[Fault | None, Callable[[str], None] | None, float]:
        """The fault and hook for this call of ``operation`` (consuming the schedule).

        Every scheduled plan counts every call (``after`` skips that many calls); the first
        due fault and the first due hook apply.
        """
        fault: Fault | None = None
        hook: Callable[[str], None] | None = None
        delay = 0.0
        with self._lock:
            self.calls[operation] += 1
            plans = self._plans[operation]
            for plan in list(plans):
                if plan.skip:
                    plan.skip -= 1
                    continue
                if plan.fault is not None and fault is None:
                    fault, delay = plan.fault, plan.delay
                elif plan.hook is not None and hook is None:
                    hook = plan.hook
                else:
                    continue
                plan.times -= 1
                if plan.times == 0:
                    plans.remove(plan)
            if fault is None and self._chaos is not None:
                rate, faults, ops, rng = self._chaos
                if operation in ops and rng.random() < rate:
                    fault = rng.choice(faults)
        return fault, hook, delay

    def _forward(
        self, operation: str, key: str, call: Callable[[], _T], idempotency_key: str | None = None
    ) -> _T:
        if getattr(self._in_hook, "active", False):
            return call()
        fault, hook, delay = self._next(operation)
        if hook is not None:
            self._in_hook.active = True
            try:
                hook(key)
            finally:
                self._in_hook.active = False
        if fault is None:
            return call()
        self.injected[f"{operation}:{fault}"] += 1
        if fault == "refuse":
            raise StoreUnavailableError(
                self.name, key, f"unavailable: injected refusal of {operation}; nothing applied"
            )
        if fault == "drop_reply":
            call()
        else:
            time.sleep(delay)
        if operation == "write":
            raise StoreInDoubtError(
                self.name, key, f"in_doubt: injected {fault} on write.", idempotency_key
            )
        raise StoreUnavailableError(self.name, key, f"timeout: injected {fault} on {operation}")
