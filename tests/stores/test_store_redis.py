"""RedisStore on a real redis-server: keys, failure modes, killed workers, memory fallback."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from store_helpers import (
    PATIENCE,
    FaultProxy,
    SilentServer,
    elapsed,
    free_port,
    run_worker,
    small_controller,
    small_scores,
)

from steerloop import SessionState, StoreError
from steerloop.errors import StoreInDoubtError, StoreUnavailableError
from steerloop.stores import RedisStore, codec
from steerloop.testing import FaultyStore

pytestmark = pytest.mark.integration

#: The store timeout under test (a fault: the server is made slower than this on purpose).
FAULT_TIMEOUT = 0.5
#: The issue's bound for a typed error: the configured timeout + 1 s (+ slack for load).
BUDGET = FAULT_TIMEOUT + 1.0 + PATIENCE / 20

MakeStore = Callable[..., RedisStore]


def stored(client: redis.Redis, store: RedisStore, session_id: str) -> tuple[int, SessionState]:
    """(version, state) read straight from Redis, checking the hash is whole."""
    version, value = client.hmget(store.key_for(session_id), ["v", "s"])
    assert version is not None and value is not None
    state = SessionState.model_validate(codec.decode(value))
    return int(version), state


@pytest.fixture
def direct(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=PATIENCE)
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
        store.write(session_id, b"{}", None, idempotency_key="i")
    ours = sorted(k.decode() for k in direct.scan_iter(match=f"{namespace}:*"))
    assert len(ours) == 3 * 3  # value, results, ids
    assert {direct.type(k) for k in ours} == {b"hash", b"list"}
    other = make_redis_store(namespace=namespace + "-other")
    assert other.read("user-42").token is None  # namespaces do not see each other


def test_a_hash_of_another_layout_is_refused(
    make_redis_store: MakeStore, direct: redis.Redis
) -> None:
    store = make_redis_store()
    direct.hset(store.key_for("old"), mapping={"version": 3, "state": "{}"})  # 0.1 layout
    with pytest.raises(StoreError, match="invalid_state"):
        store.read("old")
    with pytest.raises(StoreError, match="invalid_state"):
        store.write("old", b"x", None)


def test_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install 'steerloop\[redis\]'"):
        RedisStore()


def test_password_is_redacted_from_errors() -> None:
    store = RedisStore(f"redis://user:s3cret@127.0.0.1:{free_port()}/0", timeout=FAULT_TIMEOUT)
    with pytest.raises(StoreError) as info:
        store.read("s")
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


# -- failure modes -------------------------------------------------------------------------


def test_refused_connection_raises_at_once_and_writes_nothing() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=FAULT_TIMEOUT)
    controller = small_controller(store=store)
    with elapsed() as took, pytest.raises(StoreUnavailableError) as info:
        controller.session("s")
    assert took[0] < BUDGET
    assert info.value.store == "redis" and info.value.key == "s"
    assert info.value.reason.startswith("unavailable")
    assert "fallback='memory'" in info.value.reason
    with pytest.raises(StoreUnavailableError) as write_info:
        store.write("s", b"x", None)
    assert not isinstance(write_info.value, StoreInDoubtError)  # never sent: not in doubt
    assert store.stats().errors == 2


def test_server_that_accepts_but_never_answers_times_out(silent: SilentServer) -> None:
    store = RedisStore(silent.url, timeout=FAULT_TIMEOUT)
    for operation in (
        lambda: store.read("s"),
        lambda: store.begin("s"),
        lambda: small_controller(store=store).session("s"),
    ):
        with elapsed() as took, pytest.raises(StoreUnavailableError) as info:
            operation()
        assert FAULT_TIMEOUT * 0.9 < took[0] < BUDGET, took[0]
        assert info.value.reason.startswith("timeout")
    with pytest.raises(StoreInDoubtError, match="in_doubt"):
        store.write("s", b"x", None, idempotency_key="k")


def test_a_write_cut_before_redis_sees_it_is_retried_with_its_key(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    store = FaultyStore(make_redis_store(url=proxy.url, timeout=FAULT_TIMEOUT, lease=0.5))
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    store.before("write", lambda _key: proxy.set_mode("drop_requests"))
    with elapsed() as took, pytest.raises(StoreInDoubtError) as info:
        session.update(small_scores(3), idempotency_key="request-3")
    assert took[0] < 2 * BUDGET  # the write and the one question that resolves it
    assert info.value.idempotency_key == "request-3"
    assert stored(direct, store.inner, "s")[0] == 3  # the write never reached Redis
    proxy.set_mode("pass")
    assert session.update(small_scores(3), idempotency_key="request-3").step == 4
    assert stored(direct, store.inner, "s")[0] == 4  # applied once


def test_a_write_whose_reply_is_lost_is_never_applied_twice(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    store = FaultyStore(make_redis_store(url=proxy.url, timeout=FAULT_TIMEOUT, lease=0.5))
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    store.before("write", lambda _key: proxy.set_mode("drop_replies"))
    with pytest.raises(StoreInDoubtError):
        session.update(small_scores(3), idempotency_key="request-3")
    version, state = stored(direct, store.inner, "s")
    assert version == 4 and state.step == 4  # the write landed, whole
    proxy.set_mode("pass")
    assert session.update(small_scores(3), idempotency_key="request-3").step == 4  # replayed
    assert session.update(small_scores(4)).step == 5
    assert stored(direct, store.inner, "s")[0] == 5


def test_a_lost_reply_is_resolved_inside_the_call_when_redis_answers_again(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    store = FaultyStore(make_redis_store(url=proxy.url, timeout=FAULT_TIMEOUT, lease=0.5))
    session = small_controller(store=store).session("s")
    session.update(small_scores(0))

    def drop_this_reply(_key: str) -> None:
        proxy.set_mode("drop_replies")
        store.before("begin", lambda _key: proxy.set_mode("pass"))  # the question goes through

    store.before("write", drop_this_reply)
    assert session.update(small_scores(1)).step == 2  # landed: no error, no second apply
    assert stored(direct, store.inner, "s")[0] == 2


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("kill-before-save", 5), ("kill-after-save", 6), ("kill-in-turn", 6)],
)
def test_a_killed_worker_leaves_the_old_or_new_state_and_holds_nobody_up(
    redis_url: str,
    namespace: str,
    make_redis_store: MakeStore,
    direct: redis.Redis,
    mode: str,
    expected: int,
) -> None:
    result = run_worker(mode, redis_url, namespace, "s", "5")
    assert result.returncode == -signal.SIGKILL, result.stderr
    store = make_redis_store()
    version, state = stored(direct, store, "s")
    assert version == expected == state.step
    # another worker carries on, after the dead worker's turn lapses at the latest
    with elapsed() as took:
        decision = small_controller(store=store).session("s").update(small_scores(9))
    assert decision.step == expected + 1
    assert took[0] < store.lease + PATIENCE / 10


def test_round_trips_per_update(make_redis_store: MakeStore) -> None:
    store = make_redis_store()
    one, two = small_controller(store=store), small_controller(store=store)
    session = one.session("s")
    session.update(small_scores(0))
    before = store.stats().round_trips
    for i in range(1, 11):
        session.update(small_scores(i))
    assert store.stats().round_trips - before == 10  # one worker: the write only
    sessions = [session, two.session("s")]
    for i in range(11, 15):
        sessions[i % 2].update(small_scores(i))  # learn that the key is shared
    before = store.stats().round_trips
    for i in range(15, 25):
        sessions[i % 2].update(small_scores(i))
    assert store.stats().round_trips - before == 20  # taking turns: begin + write


# -- fallback="memory" -----------------------------------------------------------------------


def test_fallback_memory_keeps_serving_when_redis_is_down() -> None:
    store = RedisStore(
        f"redis://127.0.0.1:{free_port()}/0", timeout=FAULT_TIMEOUT, fallback="memory"
    )
    reference = small_controller().session("s")
    session = small_controller(store=store).session("s")
    for i in range(5):
        assert session.update(small_scores(i)).step == reference.update(small_scores(i)).step
    assert store.degraded
    stats = store.stats()
    assert stats.fallback_operations >= 5 and stats.errors == 0
    with pytest.raises(StoreError, match="unavailable"):
        store.delete("s")  # never degrades


def test_fallback_on_a_hung_server_costs_one_timeout(silent: SilentServer) -> None:
    store = RedisStore(silent.url, timeout=FAULT_TIMEOUT, fallback="memory", fallback_probe=60)
    session = small_controller(store=store).session("s")  # times out once, then local
    with elapsed() as took:
        for i in range(10):
            session.update(small_scores(i))
    assert took[0] < FAULT_TIMEOUT  # served locally without waiting again
    assert session.step == 10


def fake_clock() -> tuple[list[float], Callable[[], float]]:
    now = [0.0]
    return now, lambda: now[0]


def test_fallback_writes_degraded_updates_back_when_nobody_else_wrote(
    make_redis_store: MakeStore, proxy: FaultProxy, direct: redis.Redis
) -> None:
    now, clock = fake_clock()
    store = make_redis_store(
        url=proxy.url, timeout=FAULT_TIMEOUT, fallback="memory", fallback_probe=10, clock=clock
    )
    reference = small_controller().session("s")
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
        reference.update(small_scores(i))
    proxy.set_mode("refuse")
    # a write in flight when the connection drops is in doubt even with the fallback (it may
    # have landed); here the read of the next request finds the server gone first
    assert session.controller.session("s") is session
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
        url=proxy.url, timeout=FAULT_TIMEOUT, fallback="memory", fallback_probe=10, clock=clock
    )
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    proxy.set_mode("refuse")
    session.controller.session("s")  # the read finds the server gone: degraded
    session.update(small_scores(3))
    session.update(small_scores(4))  # local lineage: steps 4, 5
    other = small_controller(store=make_redis_store())  # reaches Redis directly
    other.session("s").update(small_scores(100))  # Redis lineage: step 4
    other.session("s").update(small_scores(101))  # ... and 5: the same version as local
    proxy.set_mode("pass")
    now[0] = 11.0
    assert session.update(small_scores(5)).step == 6  # Redis's state won, then applied
    assert store.stats().fallback_discarded == 1
    assert stored(direct, store, "s")[0] == 6
