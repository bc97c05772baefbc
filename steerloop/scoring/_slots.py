"""Bounded concurrency of one scorer: slots for running calls, a cap on abandoned ones.

A call takes a *slot* before it starts and gives it back when it returns, or when it times
out: a hung call holds at most one slot, and only until its timeout. A Python thread cannot
be killed (nor can a coroutine that swallows its cancellation), so a call that times out
keeps running, *abandoned*; once ``max_abandoned`` abandoned calls of a scorer are still
running, no new call of that scorer starts (it is reported ``busy``) until one of them
ends. The calls of one scorer therefore never hold more than
``limit + max_abandoned`` threads, however many callers there are and however long the
scorer hangs.

A :class:`Call` resolves the race between a call returning and its caller timing out under
the slots' lock: whichever comes first decides whether the result is used or the call is
abandoned, and the slot is given back exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Literal, TypeVar

_T = TypeVar("_T")

Admission = Literal["ok", "full", "stuck"]


def start_daemon(fn: Callable[[], _T], on_end: Callable[[], None] | None = None) -> Future[_T]:
    """Run ``fn`` in a new daemon thread; the future completes with its result or error.

    Daemon threads, because a hung scorer must never block interpreter exit
    (``concurrent.futures`` worker threads are joined at exit). ``on_end`` runs after the
    future is complete.
    """
    future: Future[_T] = Future()

    def run() -> None:
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn()
            except BaseException as exc:  # reported to the waiting caller, never lost
                future.set_exception(exc)
            else:
                future.set_result(result)
        finally:
            if on_end is not None:
                on_end()

    threading.Thread(target=run, name="steerloop-scorer", daemon=True).start()
    return future


class Slots:
    """The concurrency bound of one scorer (see the module docstring).

    Parameters
    ----------
    limit
        Calls that may run at once.
    max_abandoned
        Timed-out calls still running beyond which no new call starts.
    """

    def __init__(self, limit: int, max_abandoned: int) -> None:
        self.limit = limit
        self.max_abandoned = max_abandoned
        self.running = 0
        self.abandoned = 0
        self._condition = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def _admit(self) -> Admission:
        if self.abandoned >= self.max_abandoned:
            return "stuck"
        if self.running >= self.limit:
            return "full"
        self.running += 1
        return "ok"

    def try_acquire(self) -> Admission:
        """Take a slot if one is free now."""
        with self._condition:
            return self._admit()

    def acquire(self, deadline: float) -> Admission:
        """Take a slot, waiting until ``deadline`` (``time.monotonic``) while all are taken."""
        with self._condition:
            while True:
                admission = self._admit()
                remaining = deadline - time.monotonic()
                if admission != "full" or remaining <= 0:
                    return admission
                self._condition.wait(remaining)

    async def aacquire(self, deadline: float) -> Admission:
        """:meth:`acquire` for coroutines (waits without blocking the event loop)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._condition:
                admission = self._admit()
                if admission != "full":
                    return admission
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, waiter))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._condition:
                    self._forget(waiter)
                return "full"
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                with self._condition:
                    self._forget(waiter)
                    return self._admit()

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        self._waiters = [(loop, w) for loop, w in self._waiters if w is not waiter]

    def _wake(self) -> None:
        """Wake every waiter (call with the lock held); each tries again."""
        self._condition.notify_all()
        for loop, waiter in self._waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop has no waiter left
                loop.call_soon_threadsafe(_set_if_pending, waiter)
        self._waiters.clear()

    def call(self) -> Call:
        """The bookkeeping of one admitted call (after an ``"ok"`` admission)."""
        return Call(self)


class Call:
    """One admitted call: it ends either by returning or by being abandoned, once."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._state: Literal["running", "done", "abandoned"] = "running"

    def finish(self) -> None:
        """The call returned (or raised): give its slot back, or end its abandonment."""
        slots = self._slots
        with slots._condition:
            if self._state == "running":
                self._state = "done"
                slots.running -= 1
            elif self._state == "abandoned":
                self._state = "done"
                slots.abandoned -= 1
            else:
                return
            slots._wake()

    def abandon(self) -> bool:
        """The caller timed out: give the slot back, count the call abandoned.

        Returns ``False`` when the call has already returned (its result may be used).
        """
        slots = self._slots
        with slots._condition:
            if self._state != "running":
                return False
            self._state = "abandoned"
            slots.running -= 1
            slots.abandoned += 1
            slots._wake()
            return True


def _set_if_pending(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
