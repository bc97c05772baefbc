"""CompositeScorer under concurrent callers: no score lost, hung scorers hold bounded threads.

Issue 19 measured, with one call in flight per scorer: 8 threads with a 20 ms scorer lost
382 of 400 calls; one slow response in 20 lost 186 of 200. Here the same loads lose none.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from steerloop.scoring import CallableScorer, CompositeScorer, ScoreResult

OBJECTIVES = ["security", "efficiency", "functionality"]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets hung scorers finish at teardown (their threads are abandoned, not killed)."""
    event = threading.Event()
    yield event
    event.set()


class PeakThreads:
    """Samples ``threading.active_count()`` in the background; keeps the peak."""

    def __init__(self) -> None:
        self.before = threading.active_count()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, threading.active_count())
            time.sleep(0.002)

    def __enter__(self) -> PeakThreads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        """Peak threads above the count before, the sampler itself excluded."""
        return self.peak - self.before - 1


def test_eight_threads_times_fifty_calls_of_a_20ms_scorer_lose_no_score() -> None:
    def slow(response: object) -> float:
        time.sleep(0.02)
        return 0.5

    composite = CompositeScorer(
        [CallableScorer(slow, "security", name="slow")], objectives=OBJECTIVES
    )

    def fifty(_: int) -> list[ScoreResult]:
        return [composite.score(f"r{i}") for i in range(50)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [result for batch in pool.map(fifty, range(8)) for result in batch]
    assert len(results) == 400
    assert [r.scores for r in results] == [{"security": 0.5}] * 400
    assert composite.failure_counts == {}


def test_one_slow_response_in_twenty_does_not_cost_the_others() -> None:
    calls = iter(range(10**6))
    lock = threading.Lock()

    def sometimes_slow(response: object) -> float:
        with lock:
            index = next(calls)
        time.sleep(0.5 if index % 20 == 3 else 0.005)
        return 0.5

    composite = CompositeScorer(
        [CallableScorer(sometimes_slow, "security", name="s")], objectives=OBJECTIVES, timeout=5
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: composite.score(f"r{i}"), range(200)))
    assert sum("security" in r.scores for r in results) == 200


def test_the_bound_holds_and_calls_wait_for_a_slot_instead_of_failing() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def counted(response: object) -> float:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        return 0.5

    composite = CompositeScorer(
        [CallableScorer(counted, "security", name="c")],
        objectives=OBJECTIVES,
        concurrency=2,
        timeout=10,
    )
    assert composite.concurrency_for("c") == 2
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: composite.score(f"r{i}"), range(80)))
    assert all(r.scores == {"security": 0.5} for r in results)
    assert state["peak"] == 2


def test_failures_under_concurrency_stay_missing_and_counted(release: threading.Event) -> None:
    composite = CompositeScorer(
        [
            CallableScorer(lambda r: 0.75, "security", name="good"),
            CallableScorer(lambda r: 1 / 0, "efficiency", name="raise"),
            CallableScorer(lambda r: math.nan, "functionality", name="nan"),
            CallableScorer(lambda r: release.wait(30) and 0.5, "functionality", name="hang"),
        ],
        objectives=OBJECTIVES,
        timeout={"hang": 0.05},
        max_abandoned=4,
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: composite.score(f"r{i}"), range(64)))
    for result in results:
        assert result.scores == {"security": 0.75}  # never 0, never NaN
    counts = composite.failure_counts
    assert counts[("raise", "raised")] == counts[("nan", "non_finite")] == 64
    assert counts[("hang", "timeout")] + counts[("hang", "busy")] == 64
    assert composite.abandoned_calls <= 8 + 4


async def test_two_hundred_aobserve_calls_with_a_hung_scorer_hold_bounded_threads(
    release: threading.Event,
) -> None:
    """``Session.aobserve`` awaits ``ascore`` and then runs the step with to_thread."""

    def hang(response: object) -> float:
        release.wait(60)
        return 0.5

    async def good(response: object) -> float:
        await asyncio.sleep(0.001)
        return 0.75

    concurrency, max_abandoned = 8, 4
    composite = CompositeScorer(
        [
            CallableScorer(good, "security", name="good"),
            CallableScorer(hang, "efficiency", name="hang"),
        ],
        objectives=OBJECTIVES,
        timeout={"hang": 0.2, "good": 5},
        concurrency=concurrency,
        max_abandoned=max_abandoned,
    )
    steps: list[Any] = []

    async def aobserve(index: int) -> ScoreResult:
        result = await composite.ascore(f"response {index}")
        await asyncio.to_thread(steps.append, result.scores)
        return result

    with PeakThreads() as threads:
        started = time.monotonic()
        results = await asyncio.gather(*(aobserve(i) for i in range(200)))
        elapsed = time.monotonic() - started
    # asyncio.to_thread's default executor may add up to min(32, cpus + 4) threads.
    executor_workers = min(32, (os.cpu_count() or 1) + 4)
    hung_bound = concurrency + max_abandoned  # threads the hung scorer may ever hold
    assert threads.growth <= hung_bound + executor_workers, threads.growth
    assert composite.abandoned_calls <= hung_bound
    assert len(steps) == 200
    assert all(r.scores == {"security": 0.75} for r in results)
    counts = composite.failure_counts
    assert counts[("hang", "timeout")] + counts[("hang", "busy")] == 200
    assert counts[("hang", "timeout")] <= hung_bound
    assert elapsed < 10.0
