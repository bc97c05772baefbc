"""No lost updates under contention: 16 processes on Redis, 32 threads on the memory store."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis_worker import hammer
from store_helpers import PATIENCE, STORE_TIMEOUT, elapsed, small_controller, small_scores

from steerloop import SessionState
from steerloop.stores import MemoryStore, RedisStore, StateStore, codec

PROCESSES = 16
THREADS = 32
UPDATES = 500  # per process (benchmarks/stores.py measures the hot key's throughput)
THREAD_UPDATES = 200  # per thread


def stored(store: StateStore, session_id: str) -> tuple[int, SessionState]:
    read = store.read(session_id)
    assert read.token is not None and read.value is not None
    return read.token.version, SessionState.model_validate(codec.decode(read.value))


def _hammer_and_report(url: str, namespace: str, session_id: str, worker: int) -> None:
    """Forked worker: run the hammer and push its report (a failure exits non-zero)."""
    report = hammer(url, namespace, session_id, UPDATES, worker)
    client = redis.Redis.from_url(url, socket_timeout=STORE_TIMEOUT)
    client.rpush(f"{namespace}:reports", json.dumps(report))
    client.close()


@pytest.mark.integration
@pytest.mark.slow
def test_sixteen_processes_lose_no_update(
    redis_url: str, namespace: str, make_redis_store: Callable[..., RedisStore]
) -> None:
    """16 worker processes x 500 updates of one session through Redis: none is lost.

    The workers are forked from this (already warm) process so that 16 interpreter start-ups
    do not dominate the test; each builds its own controller, store and connections.
    """
    session_id = "shared:session/1"
    small_controller().session("warm-up").update(small_scores(0))  # import lazily-loaded parts
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_hammer_and_report, args=(redis_url, namespace, session_id, i))
        for i in range(PROCESSES)
    ]
    client = redis.Redis.from_url(redis_url, socket_timeout=STORE_TIMEOUT)
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + PATIENCE * 2
        while client.llen(f"{namespace}:ready") < PROCESSES:
            assert time.monotonic() < deadline, "workers did not reach the start barrier"
            assert all(w.exitcode is None for w in workers), "a worker died before the start"
            time.sleep(0.02)
        with elapsed() as wall:
            client.rpush(f"{namespace}:go", *range(PROCESSES))
            for worker in workers:
                worker.join(timeout=PATIENCE * 10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    reports = [json.loads(item) for item in client.lrange(f"{namespace}:reports", 0, -1)]
    assert len(reports) == PROCESSES
    version, state = stored(make_redis_store(), session_id)
    total = PROCESSES * UPDATES
    assert version == total
    assert state.step == total
    assert state.scorer_errors == total  # every update passed scorer_errors=1
    conflicts = sum(r["conflicts"] for r in reports)
    waits = sum(r["lease_waits"] for r in reports)
    print(
        f"\n{PROCESSES} processes x {UPDATES} updates: {wall[0]:.1f} s wall, "
        f"{total / wall[0]:.0f} updates/s, {waits} waits for a turn, {conflicts} conflicts"
    )


@pytest.mark.slow
def test_thirty_two_threads_lose_no_update_on_the_memory_store() -> None:
    store = MemoryStore()
    session_id = "shared"
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(index: int) -> None:
        try:
            controller = small_controller(store=store)  # one "worker" per thread
            start.wait()
            session = controller.session(session_id)
            for i in range(THREAD_UPDATES):
                session.update(small_scores(index * THREAD_UPDATES + i), scorer_errors=1)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    with elapsed() as wall:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors[0]
    version, state = stored(store, session_id)
    total = THREADS * THREAD_UPDATES
    assert version == total
    assert state.step == total
    assert state.scorer_errors == total
    print(
        f"\n{THREADS} threads x {THREAD_UPDATES} updates: {wall[0]:.1f} s, "
        f"{store.stats().conflicts} conflicts retried"
    )


def test_threads_sharing_one_controller_serialize_on_the_session_lock() -> None:
    store = MemoryStore()
    controller = small_controller(store=store)
    session = controller.session("one")
    per_thread = 50

    def work() -> None:
        for i in range(per_thread):
            session.update(small_scores(i))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stored(store, "one")[0] == 8 * per_thread
    assert store.stats().conflicts == 0  # one controller: the session lock serializes
