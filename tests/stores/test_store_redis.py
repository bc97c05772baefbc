"""RedisStore on a real redis-server: keys, failure modes, killed workers, memory fallback."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from store_helpers import (
    FaultProxy,
    SilentServer,
    elapsed,
    free_port,
    run_worker,
    small_controller,
    small_scores,
)

from steerloop import SessionState, StoreError
from steerloop.stores import RedisStore
from steerloop.stores.sync import inject_before_save

pytestmark = pytest.mark.integration

TIMEOUT = 0.5
BUDGET = TIMEOUT + 1.0  # the issue: a typed error within the configured timeout + 1 s

MakeStore = Callable[..., RedisStore]


def stored(client: redis.Redis, store: RedisStore, session_id: str) -> tuple[int, SessionState]:
    """(version, state) read straight from Redis, checking the hash is whole."""
    version, state = client.hmget(store.key_for(session_id), ["version", "state"])
    assert version is not None and state is not None
    parsed = SessionState.model_validate_json(state)
    assert parsed.step == int(version)  # every update is one save: never half-written
    return int(version), parsed


@pytest.fixture
def direct(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def proxy(redis_server: Any) -> Iterator[FaultProxy]:
    fault = FaultProxy(redis_server.port)
    yield fault
    fault.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


# -- keys ----------------------------------------------------------------------------------


def test_keys_are_namespaced_escaped_and_hashed_when_long(
    make_redis_store: MakeStore, direct: redis.Redis, namespace: str
) -> None:
    store = make_redis_store()
    assert store.key_for("user-42") == f"{namespace}:session:{{user-42}}"
    assert store.key_for("a:b}{*") == f"{namespace}:session:{{a%3Ab%7D%7B%2A}}"
    long_key = store.key_for("x" * 500)
    assert long_key.startswith(f"{namespace}:session:{{sha256:") and len(long_key) < 120
    for session_id in ("user-42", "a:b}{*", "x" * 500):
        store.save(session_id, "{}", 0)
    keys = sorted(k.decode() for k in direct.scan_iter(match="*"))
    ours = [k for k in keys if k.startswith(f"{namespace}:")]
    assert len(ours) == 3
    assert all(direct.type(k) == b"hash" for k in ours)
    other = make_redis_store(namespace=namespace + "-other")
    assert other.load("user-42") is None  # namespaces do not see each other


def test_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install 'steerloop\[redis\]'"):
        RedisStore()


def test_password_is_redacted_from_errors() -> None:
    store = RedisStore(f"redis://user:s3cret@127.0.0.1:{free_port()}/0", timeout=TIMEOUT)
    with pytest.raises(StoreError) as info:
        store.load("s")
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


# -- failure modes -------------------------------------------------------------------------


def test_refused_connection_raises_at_once() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=TIMEOUT)
    controller = small_controller(store=store)
    with elapsed() as took, pytest.raises(StoreError) as info:
        controller.session("s")
    assert took[0] < BUDGET
    assert info.value.store == "redis" and info.value.key == "s"
    assert info.value.reason.startswith("unavailable")
    assert "fallback='memory'" in info.value.reason
    with elapsed() as took, pytest.raises(StoreError):
        small_controller(store=store).session("s").update(small_scores(0))
    assert took[0] < BUDGET
    assert store.stats().errors == 2


def test_server_that_accepts_but_never_answers_times_out(silent: SilentServer) -> None:
    store = RedisStore(silent.url, timeout=TIMEOUT)
    for operation in (
        lambda: store.load("s"),
        lambda: store.save("s", "{}", 0),
        lambda: small_controller(store=store).session("s"),
    ):
        with elapsed() as took, pytest.raises(StoreError) as info:
            operation()
        assert TIMEOUT * 0.9 < took[0] < BUDGET, took[0]
        assert info.value.reason.startswith("timeout")


def test_timeout_mid_transaction_leaves_the_old_state(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    store = make_redis_store(url=proxy.url, timeout=TIMEOUT, lease=0.5)
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    started: list[float] = []

    def cut(_key: str, _expected: int) -> None:  # between the read and the write
        started.append(time.perf_counter())
        proxy.set_mode("drop_requests")

    inject_before_save(cut)
    with pytest.raises(StoreError) as info:
        session.update(small_scores(3))
    took = time.perf_counter() - started[0]
    inject_before_save(None)
    assert took < BUDGET, took
    assert took < TIMEOUT * 1.8, took  # one timeout, not a second one releasing the lease
    assert info.value.reason.startswith("timeout")
    assert "may or may not have landed" in info.value.reason
    assert stored(direct, store, "s")[0] == 3  # the save never reached Redis: old state
    proxy.set_mode("pass")
    assert session.update(small_scores(3)).step == 4  # reloads, applies once
    assert stored(direct, store, "s")[0] == 4


def test_timeout_after_the_write_landed_leaves_the_new_state_and_no_double_update(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    store = make_redis_store(url=proxy.url, timeout=TIMEOUT, lease=0.5)
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    inject_before_save(lambda _key, _expected: proxy.set_mode("drop_replies"))
    with elapsed() as took, pytest.raises(StoreError, match="timeout"):
        session.update(small_scores(3))
    inject_before_save(None)
    assert took[0] < BUDGET
    version, state = stored(direct, store, "s")
    assert version == 4 and state.step == 4  # the write landed, whole
    proxy.set_mode("pass")
    assert session.update(small_scores(4)).step == 5  # reloaded, not re-applied on stale
    assert stored(direct, store, "s")[0] == 5


@pytest.mark.parametrize(("mode", "expected"), [("kill-before-save", 5), ("kill-after-save", 6)])
def test_worker_killed_between_read_and_write_leaves_old_or_new_state(
    redis_url: str,
    namespace: str,
    make_redis_store: MakeStore,
    direct: redis.Redis,
    mode: str,
    expected: int,
) -> None:
    result = run_worker(mode, redis_url, namespace, "s", "5", timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    store = make_redis_store(lease=2.0)
    version, state = stored(direct, store, "s")
    assert version == expected == state.step
    # another worker carries on (after the dead worker's lease expires at the latest)
    with elapsed() as took:
        decision = small_controller(store=store).session("s").update(small_scores(9))
    assert decision.step == expected + 1
    assert took[0] < 2.0 + 1.0


# -- fallback="memory" -----------------------------------------------------------------------


def test_fallback_memory_keeps_serving_when_redis_is_down() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=TIMEOUT, fallback="memory")
    reference = small_controller().session("s")
    session = small_controller(store=store).session("s")
    for i in range(5):
        assert session.update(small_scores(i)).step == reference.update(small_scores(i)).step
    assert store.degraded
    stats = store.stats()
    assert stats.fallback_operations >= 10 and stats.errors == 0
    with pytest.raises(StoreError, match="unavailable"):
        store.delete("s")  # never degrades


def test_fallback_on_a_hung_server_costs_one_timeout(silent: SilentServer) -> None:
    store = RedisStore(silent.url, timeout=TIMEOUT, fallback="memory", fallback_probe=60)
    session = small_controller(store=store).session("s")  # times out once, then local
    with elapsed() as took:
        for i in range(10):
            session.update(small_scores(i))
    assert took[0] < TIMEOUT  # served locally without waiting again
    assert session.step == 10


def fake_clock() -> tuple[list[float], Callable[[], float]]:
    now = [0.0]
    return now, lambda: now[0]


def test_fallback_writes_degraded_updates_back_when_nobody_else_wrote(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    now, clock = fake_clock()
    store = make_redis_store(
        url=proxy.url, timeout=TIMEOUT, fallback="memory", fallback_probe=10, clock=clock
    )
    reference = small_controller().session("s")
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
        reference.update(small_scores(i))
    proxy.set_mode("refuse")
    for i in range(3, 5):  # served locally
        assert session.update(small_scores(i)).step == reference.update(small_scores(i)).step
    assert store.degraded and stored(direct, store, "s")[0] == 3
    proxy.set_mode("pass")
    now[0] = 11.0  # the probe interval passed: try Redis again
    decision = session.update(small_scores(5))
    assert decision.step == reference.update(small_scores(5)).step == 6
    assert store.stats().fallback_reconciled == 1
    version, state = stored(direct, store, "s")
    assert version == 6
    assert state.model_dump_json() == reference.snapshot().model_dump_json()


def test_fallback_drops_degraded_updates_when_another_worker_wrote(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    now, clock = fake_clock()
    store = make_redis_store(
        url=proxy.url, timeout=TIMEOUT, fallback="memory", fallback_probe=10, clock=clock
    )
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    proxy.set_mode("refuse")
    session.update(small_scores(3))
    session.update(small_scores(4))  # local lineage: steps 4, 5
    other = small_controller(store=make_redis_store())  # reaches Redis directly
    other.session("s").update(small_scores(100))  # Redis lineage: step 4
    proxy.set_mode("pass")
    now[0] = 11.0
    assert session.update(small_scores(5)).step == 5  # Redis's state won, then applied
    assert store.stats().fallback_discarded == 1
    assert stored(direct, store, "s")[0] == 5
