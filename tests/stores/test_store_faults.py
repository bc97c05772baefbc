"""Faults against a real redis-server: every update that returned was applied, once.

Workers (threads, each with its own RedisStore and connections) apply updates to one shared
value through the generic read–modify–write, each update with its own idempotency key, and
retry an update until it returns (a failed call may be in doubt: the retry with the same key
applies it at most once). Mid-run a fault strikes. The value is a ledger of update ids
(:class:`store_helpers.Ledger`), so the check is exact: every id the store holds returned
exactly once, and every id that returned is in the store — except, when the server *lost*
the value (restart, delete, TTL), the ids a worker applied before it was told
(:class:`~steerloop.errors.SessionVanishedError`): they were lost with the value, and none of
them came back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from store_helpers import PATIENCE, FaultProxy, Ledger, RedisServer, small_controller, small_scores

from steerloop.errors import SessionVanishedError, StoreError
from steerloop.stores import RedisStore
from steerloop.testing import FaultyStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The store timeout under test: shorter than the faults (a 3 s pause) and than the lease.
FAULT_TIMEOUT = 0.4
LEASE = 1.0
WORKERS = 4
UPDATES = 40  # per worker
STRIKE_AFTER = 40  # updates returned (all workers) before the fault (≤ WORKERS × UPDATES / 2)


@dataclass
class Run:
    """What the workers did."""

    returned: list[tuple[str, int]] = field(default_factory=list)  # (id, vanish notices)
    vanished: Counter[int] = field(default_factory=Counter)  # notices per worker
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    paused: threading.Event = field(default_factory=threading.Event)
    striking: threading.Event = field(default_factory=threading.Event)
    crashes: list[BaseException] = field(default_factory=list)

    def count(self) -> int:
        with self.lock:
            return len(self.returned)


def work(run: Run, index: int, store: Any) -> None:
    try:
        apply_all(run, index, store)
    except BaseException as error:
        run.crashes.append(error)


def apply_all(run: Run, index: int, store: Any) -> None:
    ledger = Ledger(store)
    spans = run.latencies.setdefault(index, [])
    for n in range(UPDATES):
        if n == UPDATES // 2:
            # Every worker still has updates to make when the fault strikes: a worker that
            # finished before it (threads start unevenly under load) could not be told of it.
            assert run.striking.wait(PATIENCE), "the fault never struck"
        update_id = f"w{index}-u{n}"
        deadline = time.monotonic() + PATIENCE * 2
        while True:
            assert time.monotonic() < deadline, f"{update_id} never returned"
            while run.paused.is_set():
                time.sleep(0.01)
            started = time.monotonic()
            try:
                ledger.update(update_id, idempotency_key=update_id)
            except SessionVanishedError:
                with run.lock:
                    run.vanished[index] += 1
                continue  # not applied: apply it to what the store holds now
            except StoreError as error:
                with run.lock:
                    run.errors[type(error).__name__] += 1
                time.sleep(0.02)
                continue  # not applied, or in doubt: again with the same key
            spans.append((started, time.monotonic()))
            with run.lock:
                run.returned.append((update_id, run.vanished[index]))
            break


def run_workers(stores: list[Any], strike: Callable[[Run], None]) -> Run:
    run = Run()
    threads = [
        threading.Thread(target=work, args=(run, i, store), daemon=True)
        for i, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + PATIENCE
    while run.count() < STRIKE_AFTER:
        assert time.monotonic() < deadline and not run.crashes, run.crashes or "no progress"
        time.sleep(0.005)
    run.striking.set()
    strike(run)
    for thread in threads:
        thread.join(timeout=PATIENCE * 3)
        assert not thread.is_alive(), "a worker hung"
    if run.crashes:
        raise run.crashes[0]
    return run


def check(run: Run, final: list[str] | None, *, lost: bool) -> None:
    """The store holds exactly the updates that returned (after any loss was reported)."""
    ids = [update_id for update_id, _ in run.returned]
    assert len(ids) == WORKERS * UPDATES == len(set(ids))  # each returned exactly once
    assert final is not None
    assert len(final) == len(set(final)), "an update was applied twice"
    if not lost:
        assert sorted(final) == sorted(ids)
        assert not run.vanished
        return
    notices = {index: count for index, count in run.vanished.items()}
    assert notices, "the loss was never reported"
    after = {
        update_id
        for update_id, seen in run.returned
        if seen == notices.get(int(update_id[1 : update_id.index("-")]), 0)
    }
    assert set(final) == after  # returned after the report <=> held by the store now
    assert len(final) < len(ids)  # the ones before it went with the lost value


def stores_for(url: str, namespace: str, **kwargs: Any) -> list[RedisStore]:
    kwargs.setdefault("timeout", FAULT_TIMEOUT)
    kwargs.setdefault("lease", LEASE)
    return [RedisStore(url, namespace=namespace, **kwargs) for _ in range(WORKERS)]


@pytest.fixture
def server(own_redis_server: RedisServer) -> Iterator[RedisServer]:
    yield own_redis_server


def final_ledger(url: str, namespace: str) -> list[str] | None:
    from store_helpers import stored_ledger

    store = RedisStore(url, namespace=namespace, timeout=PATIENCE / 4)
    try:
        return stored_ledger(store)
    finally:
        store.close()


# -- the faults ------------------------------------------------------------------------------


def test_redis_paused_for_three_seconds_mid_run(server: RedisServer, namespace: str) -> None:
    def pause(_run: Run) -> None:
        server.pause()
        time.sleep(3.0)
        server.resume()

    run = run_workers(stores_for(server.url, namespace), pause)
    assert run.errors  # the pause was felt (timeouts, lost replies)
    check(run, final_ledger(server.url, namespace), lost=False)


def test_redis_killed_and_restarted_empty_mid_run(server: RedisServer, namespace: str) -> None:
    run = run_workers(stores_for(server.url, namespace), lambda _run: server.restart())
    check(run, final_ledger(server.url, namespace), lost=True)


def test_the_value_deleted_mid_run(server: RedisServer, namespace: str) -> None:
    other = RedisStore(server.url, namespace=namespace, timeout=PATIENCE / 4)
    run = run_workers(stores_for(server.url, namespace), lambda _run: other.delete("ledger"))
    check(run, final_ledger(server.url, namespace), lost=True)


def test_the_value_expired_mid_run(server: RedisServer, namespace: str) -> None:
    def idle_past_the_ttl(run: Run) -> None:
        run.paused.set()
        time.sleep(1.0 + 0.6)
        run.paused.clear()

    run = run_workers(stores_for(server.url, namespace, ttl=1.0), idle_past_the_ttl)
    check(run, final_ledger(server.url, namespace), lost=True)


def test_one_worker_cut_off_for_longer_than_its_timeout_holds_nobody_up(
    server: RedisServer, namespace: str
) -> None:
    proxy = FaultProxy(server.port)
    try:
        stores = stores_for(server.url, namespace)
        stores[0] = RedisStore(proxy.url, namespace=namespace, timeout=FAULT_TIMEOUT, lease=LEASE)
        cut: list[float] = []

        def cut_off(_run: Run) -> None:
            proxy.set_mode("drop_replies")  # commands still run; their replies are lost
            cut.append(time.monotonic())
            time.sleep(2 * LEASE)
            proxy.set_mode("pass")
            cut.append(time.monotonic())

        run = run_workers(stores, cut_off)
    finally:
        proxy.close()
    check(run, final_ledger(server.url, namespace), lost=False)
    assert run.errors
    # the others kept going: none waited for the cut-off worker longer than its lease
    others = [
        end - start
        for index in range(1, WORKERS)
        for start, end in run.latencies[index]
        if cut[0] <= start <= cut[1]
    ]
    assert others, "the other workers were idle during the cut"
    assert max(others) < LEASE + PATIENCE / 20, max(others)


@pytest.mark.parametrize("seed", range(2))
def test_random_lost_replies_and_refusals(server: RedisServer, namespace: str, seed: int) -> None:
    # a lost begin reply leaves a turn nobody knows it holds: it lapses after the lease
    stores = [FaultyStore(store) for store in stores_for(server.url, namespace, lease=0.2)]
    for i, store in enumerate(stores):
        store.chaos(0.15, faults=("drop_reply", "refuse"), seed=seed * 100 + i)
    run = run_workers(stores, lambda _run: None)
    assert sum(sum(store.injected.values()) for store in stores) > 10
    check(run, final_ledger(server.url, namespace), lost=False)


def test_sessions_through_a_pause_return_every_step_once(
    server: RedisServer, namespace: str
) -> None:
    """The same with real sessions: the returned decisions' steps are exactly 1..N."""
    steps: list[int] = []
    lock = threading.Lock()
    started = threading.Event()

    def session_worker(index: int) -> None:
        store = RedisStore(server.url, namespace=namespace, timeout=FAULT_TIMEOUT, lease=LEASE)
        controller = small_controller(store=store)
        for n in range(30):
            key = f"w{index}-u{n}"
            deadline = time.monotonic() + PATIENCE * 2
            while True:
                assert time.monotonic() < deadline
                try:
                    decision = controller.session("s").update(small_scores(n), idempotency_key=key)
                except StoreError:
                    time.sleep(0.02)
                    continue
                with lock:
                    steps.append(decision.step)
                started.set()
                break

    threads = [threading.Thread(target=session_worker, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    assert started.wait(PATIENCE)
    time.sleep(0.2)
    server.pause()
    time.sleep(3.0)
    server.resume()
    for thread in threads:
        thread.join(timeout=PATIENCE * 3)
    assert sorted(steps) == list(range(1, 91))  # 90 updates returned, 90 applied, none twice
