"""Slots: the per-scorer bound on running and abandoned calls."""

from __future__ import annotations

import asyncio
import threading
import time

from steerloop.scoring._slots import Slots, start_daemon


def test_admission_full_then_stuck_and_release_exactly_once() -> None:
    slots = Slots(limit=2, max_abandoned=1)
    assert [slots.try_acquire(), slots.try_acquire(), slots.try_acquire()] == ["ok", "ok", "full"]
    first, second = slots.call(), slots.call()
    assert first.abandon() is True  # timed out: slot back, counted abandoned
    assert (slots.running, slots.abandoned) == (1, 1)
    assert slots.try_acquire() == "stuck"  # max_abandoned reached: nothing new starts
    first.finish()  # the abandoned call ends at last
    second.finish()
    second.finish()  # a second finish changes nothing
    assert (slots.running, slots.abandoned) == (0, 0)
    assert second.abandon() is False  # already returned: its result is used


def test_acquire_waits_for_a_release_and_gives_up_at_the_deadline() -> None:
    slots = Slots(limit=1, max_abandoned=4)
    assert slots.try_acquire() == "ok"
    holder = slots.call()
    started = time.monotonic()
    assert slots.acquire(started + 0.1) == "full"
    assert time.monotonic() - started >= 0.09
    threading.Timer(0.05, holder.finish).start()
    assert slots.acquire(time.monotonic() + 5) == "ok"


async def test_aacquire_waits_without_blocking_the_loop() -> None:
    slots = Slots(limit=1, max_abandoned=4)
    assert slots.try_acquire() == "ok"
    holder = slots.call()
    assert await slots.aacquire(time.monotonic() + 0.05) == "full"
    waiting = asyncio.ensure_future(slots.aacquire(time.monotonic() + 5))
    await asyncio.sleep(0.02)
    assert not waiting.done()  # the loop kept running meanwhile
    threading.Timer(0.01, holder.finish).start()
    assert await waiting == "ok"


def test_start_daemon_reports_result_error_and_calls_on_end() -> None:
    ended = threading.Event()
    assert start_daemon(lambda: 3, ended.set).result(timeout=5) == 3
    assert ended.wait(5)
    failing = start_daemon(lambda: 1 / 0)
    assert isinstance(failing.exception(timeout=5), ZeroDivisionError)
