"""The generic read-modify-write (steerloop.stores.sync) on a toy value, with faults on demand."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from store_helpers import Ledger, stored_ledger

from steerloop.errors import (
    SessionVanishedError,
    StoreConflictError,
    StoreError,
    StoreInDoubtError,
    StoreUnavailableError,
)
from steerloop.stores import MemoryStore, StateStore, Token
from steerloop.testing import FaultyStore


def faulty() -> FaultyStore:
    return FaultyStore(MemoryStore(backoff=0.0))


def round_trips(store: StateStore) -> int:
    return store.stats().round_trips


# -- the common cases ------------------------------------------------------------------------


def test_one_worker_applies_every_update_in_one_round_trip_each(store: StateStore) -> None:
    worker = Ledger(store)
    worker.update("u0")  # creates the key
    before = round_trips(store)
    for i in range(1, 10):
        assert worker.update(f"u{i}") == i + 1
    assert round_trips(store) - before == 9
    assert stored_ledger(store) == [f"u{i}" for i in range(10)]
    assert worker.steps == 10  # no step wasted


def test_two_workers_taking_turns_see_each_other(store: StateStore) -> None:
    workers = [Ledger(store), Ledger(store)]
    for i in range(12):
        assert workers[i % 2].update(f"u{i}") == i + 1
    assert stored_ledger(store) == [f"u{i}" for i in range(12)]
    # after the first refusal each worker knows the key is shared and takes its turn first:
    # two round trips per update (begin + write), no step wasted after that
    before = round_trips(store)
    for i in range(12, 16):
        workers[i % 2].update(f"u{i}")
    assert round_trips(store) - before == 2 * 4
    assert sum(w.steps for w in workers) <= 16 + 2


def test_sync_follows_other_workers_without_a_turn(store: StateStore) -> None:
    mine, theirs = Ledger(store), Ledger(store)
    mine.update("a")
    theirs.update("b")
    mine.sync()
    assert mine.applied == ["a", "b"] and mine.copy.token == store.read("ledger").token


def test_a_never_stored_copy_loses_to_a_stored_value() -> None:
    store = MemoryStore()
    Ledger(store).update("theirs")
    restored = Ledger(store, initial=["restored"])
    assert restored.update("mine") == 2
    assert stored_ledger(store) == ["theirs", "mine"]


# -- conflicts -------------------------------------------------------------------------------


def test_a_conflict_is_recomputed_on_the_other_workers_value() -> None:
    store = faulty()
    mine, theirs = Ledger(store), Ledger(store)
    mine.update("m0")
    store.before("write", lambda _key: theirs.update("t0"))  # lands between step and write
    assert mine.update("m1") == 3
    assert stored_ledger(store) == ["m0", "t0", "m1"]
    assert store.stats().conflicts == 2 and mine.copy.contended  # theirs (never stored) + mine


def test_exhausted_retries_raise_and_apply_nothing() -> None:
    """Conflicts outlast the retries only when turns lapse (steps slower than the lease)."""
    now = [0.0]
    store = FaultyStore(MemoryStore(backoff=0.0, retries=2, lease=1.0, clock=lambda: now[0]))
    mine, theirs = Ledger(store), Ledger(store)
    mine.update("m0")
    n = iter(range(100))

    def slow_step_then_another_writer(_key: str) -> None:
        now[0] += 2.0  # mine's turn (if any) lapsed during its step
        theirs.update(f"t{next(n)}")

    store.before("write", slow_step_then_another_writer, times=3)
    with pytest.raises(StoreConflictError) as info:
        mine.update("m1")
    assert info.value.attempts == 3 and "NOT applied" in str(info.value)
    assert "m1" not in (stored_ledger(store) or [])
    assert mine.update("m2") == 5  # recovers: reloads and applies on top
    assert stored_ledger(store) == ["m0", "t0", "t1", "t2", "m2"]


# -- lost replies and refusals: exactly once ---------------------------------------------------


def test_a_lost_write_reply_is_resolved_in_the_same_call() -> None:
    store = faulty()
    worker = Ledger(store)
    worker.update("u0")
    store.fail("write", "drop_reply")
    assert worker.update("u1") == 2  # landed: its result, not a second application
    assert stored_ledger(store) == ["u0", "u1"]
    assert worker.update("u2") == 3
    assert stored_ledger(store) == ["u0", "u1", "u2"]


def test_a_write_that_did_not_land_is_retried_in_the_same_call() -> None:
    store = faulty()
    worker = Ledger(store)
    worker.update("u0")
    store.fail("write", "timeout")  # in doubt for the caller, but not applied
    assert worker.update("u1") == 2
    assert stored_ledger(store) == ["u0", "u1"]
    assert worker.steps == 3  # the step ran again on the reloaded value


@pytest.mark.parametrize("fault", ["drop_reply", "timeout"])
def test_an_unresolved_doubt_raises_with_the_key_that_applies_it_once(fault: str) -> None:
    store = faulty()
    worker = Ledger(store)
    worker.update("u0")
    store.fail("write", fault)  # type: ignore[arg-type]
    store.fail("begin", "refuse")  # and the store cannot be asked again
    with pytest.raises(StoreInDoubtError) as info:
        worker.update("u1", idempotency_key="request-1")
    assert info.value.idempotency_key == "request-1" and "request-1" in str(info.value)
    assert worker.update("u1", idempotency_key="request-1") == 2  # applied exactly once
    assert worker.update("u1", idempotency_key="request-1") == 2  # and never again
    assert stored_ledger(store) == ["u0", "u1"]


def test_an_automatic_key_is_not_offered_for_a_retry() -> None:
    store = faulty()
    worker = Ledger(store)
    store.fail("write", "drop_reply")
    store.fail("begin", "refuse")
    with pytest.raises(StoreInDoubtError) as info:
        worker.update("u0")
    assert info.value.idempotency_key is None
    assert "Give updates an idempotency_key=" in str(info.value)


def test_a_callers_key_returns_the_stored_result_in_any_worker() -> None:
    store = MemoryStore()
    first, second = Ledger(store), Ledger(store)
    assert first.update("u0", idempotency_key="request-1") == 1
    first.update("u1")
    assert second.update("u0", idempotency_key="request-1") == 1  # the first call's result
    assert stored_ledger(store) == ["u0", "u1"]
    assert second.update("u2") == 3  # its copy was never stepped on stale data


def test_a_refused_operation_applies_nothing_and_the_copy_carries_on() -> None:
    store = faulty()
    worker = Ledger(store)
    worker.update("u0")
    store.fail("write", "refuse")
    with pytest.raises(StoreUnavailableError):
        worker.update("u1")
    assert worker.copy.dirty  # the step was not written: reload before the next one
    assert worker.update("u2") == 2
    assert stored_ledger(store) == ["u0", "u2"]
    store.fail("read", "refuse")
    with pytest.raises(StoreUnavailableError):
        worker.sync()


def test_a_failed_first_write_restores_the_copy_it_started_from() -> None:
    store = faulty()
    worker = Ledger(store, initial=["restored"])
    store.fail("write", "refuse")
    with pytest.raises(StoreUnavailableError):
        worker.update("u1")
    assert worker.update("u2") == 2
    assert stored_ledger(store) == ["restored", "u2"]


def test_a_step_that_raises_writes_nothing_and_ends_the_turn() -> None:
    store = MemoryStore(lease_wait=0.0)
    worker, other = Ledger(store), Ledger(store)
    worker.update("u0")
    worker.copy.contended = True  # take the turn first
    worker.fail_next_step = ArithmeticError("injected")
    with pytest.raises(ArithmeticError):
        worker.update("u1")
    assert worker.applied == ["u0", "u1"] and worker.copy.dirty  # half-stepped copy
    assert other.update("o1") == 2  # the turn was released (lease_wait=0 would raise busy)
    assert worker.update("u2") == 3  # reloaded first
    assert stored_ledger(store) == ["u0", "o1", "u2"]


def test_a_value_that_cannot_be_read_raises_invalid_state() -> None:
    store = MemoryStore()
    store.write("ledger", json.dumps({"not": "a ledger"}).encode(), None)
    with pytest.raises(StoreError, match="invalid_state: not a ledger") as info:
        Ledger(store).update("u")
    assert info.value.key == "ledger"


# -- vanished values -----------------------------------------------------------------------------


def test_a_deleted_value_is_reported_once_then_starts_afresh() -> None:
    store = MemoryStore()
    worker = Ledger(store)
    for i in range(3):
        worker.update(f"u{i}")
    held = worker.copy.token
    store.delete("ledger")
    with pytest.raises(SessionVanishedError) as info:
        worker.update("u3")
    assert info.value.held == held and info.value.found is None
    assert "NOT applied" in str(info.value)
    assert worker.applied == []  # follows the store: nothing
    assert worker.update("u4") == 1
    assert stored_ledger(store) == ["u4"]


def test_a_value_created_anew_elsewhere_is_never_overwritten_by_a_stale_copy() -> None:
    """The issue's ABA: versions restart, generations do not."""
    store = MemoryStore()
    a, b = Ledger(store), Ledger(store)
    for i in range(5):
        a.update(f"a{i}")
    store.delete("ledger")
    for i in range(5):
        b.update(f"b{i}")  # same version (5) as a's copy, another generation
    with pytest.raises(SessionVanishedError) as info:
        a.update("a5")
    assert isinstance(info.value.found, Token) and info.value.found.version == 5
    assert a.applied == [f"b{i}" for i in range(5)]  # a follows the new value
    assert a.update("a6") == 6
    assert stored_ledger(store) == [*(f"b{i}" for i in range(5)), "a6"]


def test_a_value_that_went_back_is_reported() -> None:
    store = MemoryStore()
    worker = Ledger(store)
    for i in range(3):
        worker.update(f"u{i}")
    token = worker.copy.token
    assert token is not None
    store.put("ledger", b'["u0"]', Token(token.generation, 1))  # a fail-over lost 2 writes
    with pytest.raises(SessionVanishedError, match="went back"):
        worker.update("u3")
    assert worker.applied == ["u0"]
    assert worker.update("u4") == 2


def test_a_vanished_value_is_reported_by_sync_too() -> None:
    store = MemoryStore()
    worker = Ledger(store)
    worker.update("u0")
    store.delete("ledger")
    with pytest.raises(SessionVanishedError):
        worker.sync()
    worker.sync()  # reported once


# -- chaos: every update applied exactly once --------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_faults_never_lose_or_duplicate_an_update(seed: int) -> None:
    # a dropped begin reply leaves a turn nobody knows it holds: it lapses after the lease
    store = FaultyStore(MemoryStore(backoff=0.0, lease=0.02))
    store.chaos(0.3, faults=("refuse", "drop_reply", "timeout"), operations=("begin", "write"),
                seed=seed)  # fmt: skip
    workers = [Ledger(store) for _ in range(3)]
    returned: Counter[str] = Counter()
    for i in range(60):
        update_id = f"u{i}"
        worker = workers[(i * 7 + seed) % 3]
        for _ in range(1000):
            try:
                worker.update(update_id, idempotency_key=update_id)
                returned[update_id] += 1
                break
            except StoreUnavailableError:
                pass  # not applied, or in doubt: retry with the same key
    store.clear()
    ledger = stored_ledger(store)
    assert ledger is not None
    assert Counter(ledger) == returned  # every update that returned, applied exactly once
    assert sorted(returned) == sorted(f"u{i}" for i in range(60))
    assert sum(store.injected.values()) > 10
