"""One contract for every StateStore (MemoryStore and RedisStore on a real redis-server)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from store_helpers import small_controller, small_scores

from steerloop import Controller, Decision, SessionState, StoreError
from steerloop.stores import MemoryStore, RedisStore, StateStore, StoreConflictError
from steerloop.stores.sync import inject_before_save

ODD_IDS = [
    "plain",
    "with:colons:session:x",
    "a/b c?d&e=f%20g",
    "{braces}*[glob]?",
    "ünïcødé ✓",
    "",
    "x" * 1000,
]


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


# -- the protocol ------------------------------------------------------------------------


def test_store_satisfies_the_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)
    assert store.ttl > 0 and store.retries >= 0 and store.backoff >= 0


def test_absent_key(store: StateStore) -> None:
    assert store.load("missing") is None
    assert store.load_if_changed("missing", 0) == (None, 0)
    assert store.load_if_changed("missing", 7) == (None, 0)
    store.delete("missing")  # no error


def test_versions_count_saves_exactly(store: StateStore) -> None:
    version = 0
    for i in range(5):
        version = store.save("k", json.dumps({"i": i}), version)
        assert version == i + 1
    assert store.load("k") == ('{"i": 4}', 5)


def test_compare_and_set_refuses_a_stale_version_and_writes_nothing(store: StateStore) -> None:
    store.save("k", "first", 0)
    store.save("k", "second", 1)
    for stale in (0, 1, 3):
        with pytest.raises(StoreConflictError) as info:
            store.save("k", "stale", stale)
        assert info.value.expected == stale
        assert info.value.actual == 2
        assert info.value.store == store.name and info.value.key == "k"
        assert isinstance(info.value, StoreError)
    assert store.load("k") == ("second", 2)
    assert store.stats().conflicts == 3


def test_load_if_changed_skips_an_unchanged_state(store: StateStore) -> None:
    store.save("k", "one", 0)
    assert store.load_if_changed("k", 1) == (None, 1)
    assert store.load_if_changed("k", 0) == ("one", 1)
    assert store.load_if_changed("k", -1) == ("one", 1)
    store.save("k", "two", 1)
    assert store.load_if_changed("k", 1) == ("two", 2)


def test_delete_then_recreate(store: StateStore) -> None:
    store.save("k", "one", 0)
    store.delete("k")
    assert store.load("k") is None
    assert store.save("k", "again", 0) == 1


@pytest.mark.parametrize("session_id", ODD_IDS, ids=range(len(ODD_IDS)))
def test_any_session_id_round_trips_in_its_own_key(store: StateStore, session_id: str) -> None:
    store.save(session_id, "mine", 0)
    assert store.load(session_id) == ("mine", 1)
    for other in ODD_IDS:
        if other != session_id:
            assert store.load(other) is None


def test_every_key_has_a_ttl_renewed_by_each_save() -> None:
    now = [0.0]
    store = MemoryStore(ttl=10.0, clock=lambda: now[0])
    store.save("k", "one", 0)
    assert store.expires_in("k") == pytest.approx(10.0)
    now[0] = 8.0
    store.save("k", "two", 1)
    assert store.expires_in("k") == pytest.approx(10.0)
    now[0] = 17.9
    assert store.load("k") == ("two", 2)
    now[0] = 18.0
    assert store.load("k") is None
    assert "k" not in store and len(store) == 0


def test_redis_keys_have_a_ttl(make_redis_store: Any) -> None:
    store: RedisStore = make_redis_store(ttl=30.0)
    store.save("k", "one", 0)
    pttl = store.client.pttl(store.key_for("k"))
    assert 29_000 < pttl <= 30_000
    short: RedisStore = make_redis_store(ttl=0.2)
    short.save("gone", "x", 0)
    time.sleep(0.4)
    assert short.load("gone") is None


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="ttl"):
        MemoryStore(ttl=0)
    with pytest.raises(ValueError, match="retries"):
        MemoryStore(retries=-1)
    with pytest.raises(ValueError, match="fallback"):
        RedisStore(fallback="disk")  # type: ignore[arg-type]


# -- through the controller ----------------------------------------------------------------


def test_two_controllers_sharing_a_store_decide_like_one_without(store: StateStore) -> None:
    reference = small_controller().session("s")
    workers = [small_controller(store=store), small_controller(store=store)]
    for i in range(40):
        expected = reference.update(small_scores(i))
        got = workers[i % 2].session("s").update(small_scores(i))
        assert comparable(got) == comparable(expected)
    loaded = store.load("s")
    assert loaded is not None
    assert loaded[1] == 40
    assert loaded[0] == reference.snapshot().model_dump_json()


def test_session_is_created_through_the_store_and_sees_other_workers(store: StateStore) -> None:
    first, second = small_controller(store=store), small_controller(store=store)
    assert first.store is store
    first.session("s").update(small_scores(0))
    assert store.load("s") is not None
    assert second.session("s").step == 1  # loaded, not created afresh
    second.session("s").update(small_scores(1))
    assert first.session("s").step == 2  # refreshed on access


def test_stored_state_is_json_with_a_schema_version(store: StateStore) -> None:
    controller = small_controller(store=store)
    controller.session("s").update(small_scores(0))
    loaded = store.load("s")
    assert loaded is not None
    document = json.loads(loaded[0])
    assert document["schema_version"] == 2
    assert SessionState.model_validate_json(loaded[0]).step == 1


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
    assert loads == []  # nobody else wrote: no parse, no rebuild
    other = small_controller(store=store)
    other.session("s").update(small_scores(5))  # loads once (a new object)
    session.update(small_scores(6))
    assert loads == [5, 6]  # `other` loaded step 5, `session` reloaded step 6


def test_a_conflict_is_retried_and_nothing_is_lost(store: StateStore) -> None:
    mine, theirs = small_controller(store=store), small_controller(store=store)
    mine.session("s").update(small_scores(0))
    interfered: list[int] = []

    def interfere(key: str, expected: int) -> None:
        if not interfered:
            interfered.append(expected)
            inject_before_save(None)
            try:
                theirs.session(key).update(small_scores(100))  # lands between my read and write
            finally:
                inject_before_save(interfere)

    # the other "worker" runs inside this one's turn (same thread): it waits 50 ms for the
    # turn, then goes ahead optimistically, which is what makes the conflict
    assert isinstance(store, MemoryStore | RedisStore)
    store.lease_wait = 0.05
    inject_before_save(interfere)
    seen: list[Decision] = []
    mine.add_listener(lambda _session, decision: seen.append(decision))
    decision = mine.session("s").update(small_scores(1))
    inject_before_save(None)
    assert interfered == [1]
    assert decision.step == 3  # recomputed on top of the other worker's update
    assert len(seen) == 1  # listeners hear the committed decision only
    loaded = store.load("s")
    assert loaded is not None and loaded[1] == 3
    assert SessionState.model_validate_json(loaded[0]).step == 3
    assert store.stats().conflicts >= 1


@pytest.mark.parametrize("strict", [False, True])
def test_exhausted_retries_raise_even_when_not_strict(store: StateStore, strict: bool) -> None:
    store.retries = 2
    store.backoff = 0.0
    mine = Controller(small_controller().policy, store=store, strict=strict)
    theirs = small_controller(store=store)
    mine.session("s").update(small_scores(0))
    assert isinstance(store, MemoryStore | RedisStore)
    store.lease_wait = 0.0

    def always_interfere(key: str, expected: int) -> None:
        inject_before_save(None)
        try:
            theirs.session(key).update(small_scores(expected))
        finally:
            inject_before_save(always_interfere)

    inject_before_save(always_interfere)
    with pytest.raises(StoreConflictError) as info:
        mine.session("s").update(small_scores(1))
    inject_before_save(None)
    assert info.value.attempts == 3
    assert "NOT applied" in str(info.value)
    loaded = store.load("s")
    assert loaded is not None
    assert loaded[1] == 4  # 1 (mine) + 3 (theirs); my failed update is not in it
    assert SessionState.model_validate_json(loaded[0]).step == 4
    # the session recovers: the next update reloads and applies on top
    assert mine.session("s").update(small_scores(2)).step == 5


def test_a_deleted_session_starts_afresh(store: StateStore) -> None:
    controller = small_controller(store=store)
    session = controller.session("s")
    for i in range(3):
        session.update(small_scores(i))
    store.delete("s")
    assert session.update(small_scores(3)).step == 1
    assert store.load("s") is not None
    assert store.load("s")[1] == 1  # type: ignore[index]


def test_a_foreign_value_raises_a_typed_error(store: StateStore) -> None:
    store.save("s", '{"not": "a session"}', 0)
    controller = small_controller(store=store)
    with pytest.raises(StoreError, match="invalid_state") as info:
        controller.session("s")
    assert info.value.key == "s"
    store.save("t", small_controller().session("other").snapshot().model_dump_json(), 0)
    with pytest.raises(StoreError, match="belongs to session 'other'"):
        controller.session("t")


def test_a_state_of_other_objectives_is_rejected(store: StateStore) -> None:
    Controller(preset="paper", store=store).session("s").update({"security": 0.5})
    with pytest.raises(StoreError, match="incompatible_state"):
        small_controller(store=store).session("s")


def test_a_strict_step_fault_is_not_saved_and_the_session_reloads(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = Controller(small_controller().policy, store=store, strict=True)
    session = controller.session("s")
    session.update(small_scores(0))

    def boom(*_: object) -> None:
        raise ArithmeticError("injected")

    with monkeypatch.context() as patch:
        patch.setattr(type(session), "_step_once", boom)
        with pytest.raises(ArithmeticError):
            session.update(small_scores(1))
    assert store.load("s")[1] == 1  # type: ignore[index]
    assert session.update(small_scores(1)).step == 2


def test_restore_writes_through_on_the_next_update(store: StateStore) -> None:
    source = small_controller().session("s")
    for i in range(4):
        source.update(small_scores(i))
    controller = small_controller(store=store)
    restored = controller.restore(source.snapshot())
    assert restored.update(small_scores(4)).step == 5
    assert store.load("s")[1] == 1  # type: ignore[index]


def test_without_a_store_nothing_changes() -> None:
    controller = small_controller()
    assert controller.store is None
    assert controller.session("s").update(small_scores(0)).step == 1


def test_import_stays_light() -> None:
    code = (
        "import sys, steerloop, steerloop.stores; "
        "assert 'redis' not in sys.modules, 'redis imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
