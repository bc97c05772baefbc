"""steerloop.testing: the public test doubles do what they promise."""

from __future__ import annotations

import time

import pytest

from steerloop.errors import StoreInDoubtError, StoreUnavailableError
from steerloop.stores import MemoryStore, StateStore
from steerloop.stores.base import WRITTEN
from steerloop.testing import FaultyStore

# ---------------------------------------------------------------------------------- stores


def test_a_faulty_store_without_faults_is_its_inner_store() -> None:
    inner = MemoryStore(retries=3)
    store = FaultyStore(inner)
    assert isinstance(store, StateStore)
    assert store.name == "memory" and store.retries == 3 and store.ttl == inner.ttl
    written = store.write("k", b"v", None)
    assert written.outcome == WRITTEN
    assert store.read("k").value == b"v" and inner.read("k").value == b"v"
    store.retries = 5
    assert inner.retries == 5
    assert store.calls == {"write": 1, "read": 1} and not store.injected


def test_refuse_applies_nothing() -> None:
    store = FaultyStore()
    store.fail("write", "refuse")
    with pytest.raises(StoreUnavailableError) as info:
        store.write("k", b"v", None)
    assert not isinstance(info.value, StoreInDoubtError)
    assert store.read("k").token is None
    assert store.injected == {"write:refuse": 1}


def test_drop_reply_applies_then_raises_in_doubt_with_the_key() -> None:
    store = FaultyStore()
    store.fail("write", "drop_reply")
    with pytest.raises(StoreInDoubtError) as info:
        store.write("k", b"v", None, idempotency_key="request-1")
    assert info.value.idempotency_key == "request-1"
    assert store.read("k").value == b"v"


def test_timeout_waits_applies_nothing_and_looks_like_a_lost_reply() -> None:
    store = FaultyStore()
    store.fail("write", "timeout", delay=0.05)
    started = time.monotonic()
    with pytest.raises(StoreInDoubtError):
        store.write("k", b"v", None)
    assert time.monotonic() - started >= 0.05
    assert store.read("k").token is None


def test_faults_follow_their_schedule() -> None:
    store = FaultyStore()
    store.fail("read", "refuse", times=2, after=1)
    outcomes = []
    for _ in range(4):
        try:
            store.read("k")
            outcomes.append("ok")
        except StoreUnavailableError:
            outcomes.append("refused")
    assert outcomes == ["ok", "refused", "refused", "ok"]


def test_a_hook_runs_before_the_operation_and_its_own_calls_are_not_faulted() -> None:
    store = FaultyStore()
    seen: list[str] = []

    def other_worker(key: str) -> None:
        seen.append(key)
        store.write(key, b"theirs", None)  # not subject to the schedule

    store.before("write", other_worker)
    store.fail("write", "refuse", after=1)  # would hit the hook's write if it were counted
    written = store.write("k", b"mine", None)
    assert seen == ["k"] and written.outcome == "conflict" and written.read.value == b"theirs"
    with pytest.raises(StoreUnavailableError):
        store.write("k", b"mine", written.read.token)


def test_chaos_is_seeded_and_clear_removes_everything() -> None:
    def run(seed: int) -> list[bool]:
        store = FaultyStore()
        store.chaos(0.5, faults=("refuse",), operations=("read",), seed=seed)
        results = []
        for _ in range(40):
            try:
                store.read("k")
                results.append(True)
            except StoreUnavailableError:
                results.append(False)
        return results

    assert run(1) == run(1) and run(1) != run(2)
    assert 5 < run(1).count(False) < 35
    store = FaultyStore()
    store.chaos(1.0, operations=("read",))
    store.fail("write", "refuse")
    store.clear()
    store.read("k")
    store.write("k", b"v", None)


def test_bad_schedules_are_rejected() -> None:
    store = FaultyStore()
    with pytest.raises(ValueError, match="operation"):
        store.fail("load", "refuse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fault"):
        store.fail("read", "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        store.fail("read", "refuse", times=0)
    with pytest.raises(ValueError, match="rate"):
        store.chaos(1.5)
