"""Sessions through a store (Controller(store=...)): memory, Redis, FaultyStore."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from store_helpers import small_controller, small_scores

from steerloop import Controller, Decision, SessionState, StoreError
from steerloop.errors import SessionVanishedError, StoreConflictError, StoreInDoubtError
from steerloop.stores import MemoryStore, StateStore, codec
from steerloop.testing import FaultyStore

PAPER = ("security", "efficiency", "functionality")


def comparable(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.strategy,
        decision.prompt,
        decision.changed,
        decision.rule,
        decision.reason,
        decision.mode,
        decision.focus,
        dict(decision.diagnostics),
        decision.step,
    )


def stored_state(store: StateStore, session_id: str = "s") -> SessionState:
    value = store.read(session_id).value
    assert value is not None
    return SessionState.model_validate(codec.decode(value))


def test_two_controllers_sharing_a_store_decide_like_one_without(store: StateStore) -> None:
    reference = small_controller().session("s")
    workers = [small_controller(store=store), small_controller(store=store)]
    for i in range(40):
        expected = reference.update(small_scores(i))
        got = workers[i % 2].session("s").update(small_scores(i))
        assert comparable(got) == comparable(expected)
    read = store.read("s")
    assert read.token is not None and read.token.version == 40
    assert stored_state(store).model_dump_json() == reference.snapshot().model_dump_json()


def test_session_is_created_through_the_store_and_sees_other_workers(store: StateStore) -> None:
    first, second = small_controller(store=store), small_controller(store=store)
    assert first.store is store
    first.session("s").update(small_scores(0))
    assert store.read("s").token is not None
    assert second.session("s").step == 1  # loaded, not created afresh
    second.session("s").update(small_scores(1))
    assert first.session("s").step == 2  # refreshed on access


def test_the_stored_value_is_the_codec_tree_of_a_versioned_snapshot(store: StateStore) -> None:
    small_controller(store=store).session("s").update(small_scores(0))
    value = store.read("s").value
    assert value is not None and value.startswith(codec.HEADER)
    tree = codec.decode(value)
    assert tree["schema_version"] == 3 and tree["step"] == 1


def test_an_unchanged_session_is_not_reloaded(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = small_controller(store=store)
    session = controller.session("s")
    loads: list[int] = []
    original = type(session)._load

    def spy(self: Any, state: SessionState) -> None:
        loads.append(state.step)
        original(self, state)

    monkeypatch.setattr(type(session), "_load", spy)
    for i in range(5):
        session.update(small_scores(i))
    assert loads == []  # nobody else wrote: no decode, no rebuild
    other = small_controller(store=store)
    other.session("s").update(small_scores(5))  # loads once (a new object)
    session.update(small_scores(6))
    assert loads == [5, 6]  # `other` loaded step 5, `session` reloaded step 6


def test_one_worker_updates_in_one_round_trip(store: StateStore) -> None:
    session = small_controller(store=store).session("s")
    session.update(small_scores(0))
    before = store.stats().round_trips
    for i in range(1, 11):
        session.update(small_scores(i))
    assert store.stats().round_trips - before == 10


def test_a_conflict_is_retried_and_listeners_hear_the_committed_decision() -> None:
    store = FaultyStore(MemoryStore())
    mine, theirs = small_controller(store=store), small_controller(store=store)
    mine.session("s").update(small_scores(0))
    store.before("write", lambda key: theirs.session(key).update(small_scores(100)))
    seen: list[Decision] = []
    mine.add_listener(lambda _session, decision: seen.append(decision))
    decision = mine.session("s").update(small_scores(1))
    assert decision.step == 3  # recomputed on top of the other worker's update
    assert [d.step for d in seen] == [3]
    assert stored_state(store).step == 3


@pytest.mark.parametrize("strict", [False, True])
def test_exhausted_retries_raise_even_when_not_strict(strict: bool) -> None:
    now = [0.0]
    store = FaultyStore(MemoryStore(retries=2, backoff=0.0, lease=1.0, clock=lambda: now[0]))
    mine = Controller(small_controller().policy, store=store, strict=strict)
    theirs = small_controller(store=store)
    mine.session("s").update(small_scores(0))

    def slow_step_then_another_writer(key: str) -> None:
        now[0] += 2.0  # steps slower than the lease: turns lapse
        theirs.session(key).update(small_scores(7))

    store.before("write", slow_step_then_another_writer, times=3)
    with pytest.raises(StoreConflictError) as info:
        mine.session("s").update(small_scores(1))
    assert info.value.attempts == 3 and "NOT applied" in str(info.value)
    assert stored_state(store).step == 4  # 1 (mine) + 3 (theirs); the failed one is not in it
    assert mine.session("s").update(small_scores(2)).step == 5  # recovers


def test_the_issues_aba_reproducer_is_reported_and_loses_nothing(store: StateStore) -> None:
    first = Controller(preset="paper", store=store)
    second = Controller(preset="paper", store=store)
    low, high = ({o: v for o in PAPER} for v in (0.1, 0.9))
    for _ in range(5):
        first.session("m").update(low)
    store.delete("m")
    for _ in range(5):
        second.session("m").update(high)
    with pytest.raises(SessionVanishedError) as info:
        first.session("m")  # the sync on access sees the new generation
    assert info.value.key == "m"
    decision = first.session("m").update(high)
    assert decision.step == 6  # on top of the second worker's 5 updates
    assert decision.diagnostics["objective.security"] == pytest.approx(0.9, abs=0.05)


def test_a_deleted_session_is_reported_once_then_starts_afresh(store: StateStore) -> None:
    session = small_controller(store=store).session("s")
    for i in range(3):
        session.update(small_scores(i))
    store.delete("s")
    with pytest.raises(SessionVanishedError):
        session.update(small_scores(3))
    assert session.step == 0
    assert session.update(small_scores(4)).step == 1
    assert stored_state(store).step == 1


def test_a_foreign_value_raises_a_typed_error(store: StateStore) -> None:
    store.write("s", b'{"not": "a session"}', None)
    controller = small_controller(store=store)
    with pytest.raises(StoreError, match="invalid_state") as info:
        controller.session("s")
    assert info.value.key == "s"
    other = small_controller().session("other").snapshot().model_dump()
    store.write("t", codec.encode(other), None)
    with pytest.raises(StoreError, match="belongs to session 'other'"):
        controller.session("t")


def test_a_state_of_other_objectives_is_rejected(store: StateStore) -> None:
    Controller(preset="paper", store=store).session("s").update({"security": 0.5})
    with pytest.raises(StoreError, match=r"invalid_state.*objectives"):
        small_controller(store=store).session("s")


def test_a_strict_step_fault_is_not_saved_and_the_session_reloads(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = Controller(small_controller().policy, store=store, strict=True)
    session = controller.session("s")
    session.update(small_scores(0))

    def boom(*_: object, **__: object) -> None:
        raise ArithmeticError("injected")

    # The fault strikes late in the step, after the session's counters have moved on.
    with monkeypatch.context() as patch:
        patch.setattr(type(session._core.models), "predict", boom)
        with pytest.raises(ArithmeticError):
            session.update(small_scores(1))
    assert stored_state(store).step == 1
    assert session.update(small_scores(1)).step == 2


def test_restore_writes_through_on_the_next_update(store: StateStore) -> None:
    source = small_controller().session("s")
    for i in range(4):
        source.update(small_scores(i))
    controller = small_controller(store=store)
    restored = controller.restore(source.snapshot())
    assert restored.update(small_scores(4)).step == 5
    assert store.read("s").token.version == 1  # type: ignore[union-attr]


def test_an_idempotency_key_applies_an_update_once_and_returns_its_decision(
    store: StateStore,
) -> None:
    first, second = small_controller(store=store), small_controller(store=store)
    heard: list[int] = []
    second.add_listener(lambda _session, decision: heard.append(decision.step))
    decision = first.session("s").update(small_scores(0), idempotency_key="request-1")
    again = second.session("s").update(small_scores(0), idempotency_key="request-1")
    assert comparable(again) == comparable(decision)
    assert again.alerts == decision.alerts and again.missing == decision.missing
    assert stored_state(store).step == 1
    assert heard == []  # a replayed decision is not reported twice
    assert second.session("s").update(small_scores(1)).step == 2


def test_a_lost_reply_is_resolved_and_applied_once() -> None:
    store = FaultyStore(MemoryStore())
    session = small_controller(store=store).session("s")
    session.update(small_scores(0))
    store.fail("write", "drop_reply")
    assert session.update(small_scores(1)).step == 2
    assert session.update(small_scores(2)).step == 3
    store.fail("write", "drop_reply")
    store.fail("begin", "refuse")
    with pytest.raises(StoreInDoubtError):
        session.update(small_scores(3), idempotency_key="request-3")
    assert session.update(small_scores(3), idempotency_key="request-3").step == 4
    assert session.update(small_scores(4)).step == 5
    assert stored_state(store).step == 5


def test_without_a_store_nothing_changes() -> None:
    controller = small_controller()
    assert controller.store is None
    assert controller.session("s").update(small_scores(0), idempotency_key="x").step == 1


def test_import_stays_light() -> None:
    code = (
        "import sys, steerloop, steerloop.stores; "
        "assert 'redis' not in sys.modules, 'redis imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
