"""One protocol contract for every StateStore (memory, Redis on a real server, FaultyStore)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from store_helpers import PATIENCE

from steerloop import StoreError
from steerloop.stores import MemoryStore, RedisStore, StateStore, Token
from steerloop.stores.base import APPLIED, BUSY, CONFLICT, RESULTS_CAP, WRITTEN

ODD_IDS = [
    "plain",
    "with:colons:session:x",
    "a/b c?d&e=f%20g",
    "{braces}*[glob]?",
    "ünïcødé ✓",
    "",
    "x" * 1000,
]


def create(store: StateStore, key: str, value: bytes = b"v1") -> Token:
    written = store.write(key, value, None)
    assert written.outcome == WRITTEN and written.read.token is not None
    return written.read.token


def lease_of(store: StateStore) -> float:
    inner: Any = getattr(store, "inner", store)
    return float(inner.lease)


def set_lease(store: StateStore, lease: float, lease_wait: float) -> None:
    inner: Any = getattr(store, "inner", store)
    inner.lease = lease
    inner.lease_wait = lease_wait


# -- values, tokens, generations -----------------------------------------------------------


def test_store_satisfies_the_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)
    assert store.ttl > 0 and store.retries >= 0 and store.backoff >= 0


def test_an_absent_key_reads_as_nothing(store: StateStore) -> None:
    read = store.read("missing", Token("g", 3), idempotency_key="k")
    assert read.token is None and read.value is None and read.result is None
    store.delete("missing")  # no error


def test_versions_count_writes_within_one_generation(store: StateStore) -> None:
    token = create(store, "k", b"0")
    assert token.version == 1 and len(token.generation) >= 16
    for i in range(1, 5):
        written = store.write("k", str(i).encode(), token)
        assert written.outcome == WRITTEN
        assert written.read.token == Token(token.generation, i + 1)
        token = written.read.token
    read = store.read("k")
    assert read.token == Token(token.generation, 5) and read.value == b"4"


def test_a_known_value_is_not_sent_again(store: StateStore) -> None:
    token = create(store, "k", b"state")
    assert store.read("k", token).value is None
    assert store.read("k", Token(token.generation, token.version + 1)).value == b"state"
    assert store.read("k", Token("other", token.version)).value == b"state"
    assert store.read("k", None).value == b"state"


def test_compare_and_set_refuses_a_stale_token_and_returns_the_stored_value(
    store: StateStore,
) -> None:
    first = create(store, "k", b"first")
    second = store.write("k", b"second", first).read.token
    assert second is not None
    for stale in (first, Token(first.generation, 7), Token("elsewhere", 2), None):
        refused = store.write("k", b"stale", stale)
        assert refused.outcome == CONFLICT
        assert refused.read.token == second and refused.read.value == b"second"
    assert store.read("k").value == b"second"
    assert store.stats().conflicts == 4


def test_a_write_expecting_a_value_that_is_gone_is_refused(store: StateStore) -> None:
    token = create(store, "k")
    store.delete("k")
    refused = store.write("k", b"x", token)
    assert refused.outcome == CONFLICT and refused.read.token is None
    assert store.read("k").token is None


def test_a_key_created_again_gets_a_new_generation(store: StateStore) -> None:
    old = create(store, "k")
    store.write("k", b"v2", old)
    store.delete("k")
    new = create(store, "k", b"again")
    assert new.version == 1 and new.generation != old.generation


@pytest.mark.parametrize("key", ODD_IDS, ids=range(len(ODD_IDS)))
def test_any_key_round_trips_on_its_own(store: StateStore, key: str) -> None:
    create(store, key, b"mine")
    assert store.read(key).value == b"mine"
    for other in ODD_IDS:
        if other != key:
            assert store.read(other).token is None


def test_values_are_bytes_of_any_content(store: StateStore) -> None:
    value = bytes(range(256)) * 20 + b":\n:\x00"
    token = create(store, "k", value)
    assert store.read("k").value == value
    assert store.read("k", Token(token.generation, 0)).value == value


# -- TTL -------------------------------------------------------------------------------------


def test_every_key_has_a_ttl_renewed_by_each_write() -> None:
    now = [0.0]
    store = MemoryStore(ttl=10.0, clock=lambda: now[0])
    token = create(store, "k")
    assert store.expires_in("k") == pytest.approx(10.0)
    now[0] = 8.0
    store.write("k", b"two", token)
    assert store.expires_in("k") == pytest.approx(10.0)
    now[0] = 17.9
    assert store.read("k").value == b"two"
    now[0] = 18.0
    assert store.read("k").token is None
    assert "k" not in store and len(store) == 0
    assert create(store, "k").generation != token.generation  # expired: a new generation


def test_redis_keys_have_a_ttl(make_redis_store: Any) -> None:
    store: RedisStore = make_redis_store(ttl=30.0)
    token = create(store, "k")
    store.write("k", b"v", token, idempotency_key="i")
    base = store.key_for("k")
    for suffix in ("", ":results", ":ids"):
        assert 29_000 < store.client.pttl(base + suffix) <= 30_000, suffix
    short: RedisStore = make_redis_store(ttl=0.2)
    create(short, "gone")
    time.sleep(0.4)
    assert short.read("gone").token is None


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="ttl"):
        MemoryStore(ttl=0)
    with pytest.raises(ValueError, match="retries"):
        MemoryStore(retries=-1)
    with pytest.raises(ValueError, match="lease"):
        MemoryStore(lease=0)
    with pytest.raises(ValueError, match="keep_results"):
        MemoryStore(keep_results=0)
    with pytest.raises(ValueError, match="fallback"):
        RedisStore(fallback="disk")  # type: ignore[arg-type]


# -- idempotency results ---------------------------------------------------------------------


def test_a_write_keeps_its_result_and_is_applied_once(store: StateStore) -> None:
    token = create(store, "k")
    written = store.write("k", b"v2", token, idempotency_key="u-1", result=b"r1")
    assert written.outcome == WRITTEN
    again = store.write("k", b"v2-again", written.read.token, idempotency_key="u-1", result=b"x")
    assert again.outcome == APPLIED and again.read.result == b"r1"
    assert store.read("k").value == b"v2"  # nothing written the second time
    assert store.read("k", idempotency_key="u-1").result == b"r1"
    assert store.read("k", idempotency_key="u-2").result is None
    assert store.stats().replays >= 2


def test_results_are_bounded_and_dropped_with_the_key() -> None:
    store = MemoryStore(keep_results=2, keep_results_for=0)
    token = create(store, "k")
    for i in range(3):
        token = store.write("k", b"v", token, idempotency_key=f"u-{i}", result=b"r").read.token
    assert store.read("k", idempotency_key="u-0").result is None  # the oldest was dropped
    assert store.read("k", idempotency_key="u-2").result == b"r"
    store.delete("k")
    create(store, "k")
    assert store.read("k", idempotency_key="u-2").result is None


def test_recent_results_are_kept_up_to_the_cap() -> None:
    now = [0.0]
    store = MemoryStore(keep_results=2, keep_results_for=10.0, clock=lambda: now[0])
    token = create(store, "k")
    for i in range(40):  # young: kept beyond keep_results, up to RESULTS_CAP * keep_results
        token = store.write("k", b"v", token, idempotency_key=f"u-{i}", result=b"r").read.token
    kept = [i for i in range(40) if store.read("k", idempotency_key=f"u-{i}").result]
    assert kept == list(range(40 - RESULTS_CAP * 2, 40))
    now[0] = 10.0  # all old now: the next write trims to keep_results
    store.write("k", b"v", token, idempotency_key="last", result=b"r")
    kept = [i for i in range(40) if store.read("k", idempotency_key=f"u-{i}").result]
    assert kept == [39]


def test_redis_results_are_bounded_by_count_and_age(make_redis_store: Any) -> None:
    young: RedisStore = make_redis_store(keep_results=2)
    token = create(young, "k")
    for i in range(40):
        token = young.write("k", b"v", token, idempotency_key=f"u-{i}", result=b"r").read.token
    assert young.client.llen(young.key_for("k") + ":ids") == RESULTS_CAP * 2
    assert young.read("k", idempotency_key=f"u-{40 - RESULTS_CAP * 2}").result == b"r"
    store: RedisStore = make_redis_store(
        keep_results=2, keep_results_for=0, namespace=young.namespace + "-old"
    )
    token = create(store, "k")
    for i in range(3):
        token = store.write("k", b"v", token, idempotency_key=f"u-{i}", result=b"r").read.token
    assert store.read("k", idempotency_key="u-0").result is None
    assert store.read("k", idempotency_key="u-1").result == b"r"
    assert store.client.llen(store.key_for("k") + ":ids") == 2


# -- turns -------------------------------------------------------------------------------------


def test_a_turn_reads_and_its_write_ends_it(store: StateStore) -> None:
    token = create(store, "k", b"v1")
    turn = store.begin("k", token)
    assert turn.holder is not None and turn.read.token == token and turn.read.value is None
    assert store.write("k", b"other", token).outcome == BUSY  # not this worker's turn
    written = store.write("k", b"v2", token, turn=turn)
    assert written.outcome == WRITTEN
    again = store.begin("k", None)  # free again
    assert again.read.value == b"v2"
    store.release(again)


def test_a_turn_survives_a_conflict_and_resume_takes_it_again(store: StateStore) -> None:
    token = create(store, "k")
    turn = store.begin("k")
    refused = store.write("k", b"x", Token(token.generation, 9), turn=turn)
    assert refused.outcome == CONFLICT  # still this worker's turn
    assert store.write("k", b"other", token).outcome == BUSY
    resumed = store.begin("k", token, resume=turn)
    assert resumed.holder == turn.holder
    assert store.write("k", b"mine", token, turn=resumed).outcome == WRITTEN


def test_begin_returns_at_once_when_the_key_was_applied(store: StateStore) -> None:
    token = create(store, "k")
    store.write("k", b"v2", token, idempotency_key="u", result=b"done")
    holder = store.begin("k")
    other = store.begin("k", idempotency_key="u")  # would wait for `holder` otherwise
    assert other.holder is None and other.read.result == b"done"
    store.release(holder)


def test_waiters_take_turns_and_a_write_hands_the_turn_on(store: StateStore) -> None:
    create(store, "k", b"0")
    set_lease(store, PATIENCE, PATIENCE)
    first = store.begin("k")
    order: list[str] = []
    errors: list[BaseException] = []

    def waiter(name: str) -> None:
        try:
            turn = store.begin("k")
            order.append(name)
            value = int(turn.read.value or b"0")
            written = store.write("k", str(value + 1).encode(), turn.read.token, turn=turn)
            assert written.outcome == WRITTEN
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=waiter, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # queue in order
    assert order == []  # all wait for `first`
    written = store.write("k", b"10", first.read.token, turn=first)
    assert written.outcome == WRITTEN
    for thread in threads:
        thread.join(timeout=PATIENCE)
    assert not errors, errors
    assert sorted(order) == ["w0", "w1", "w2"]
    assert store.read("k").value == b"13"  # each waiter saw its predecessor's value
    assert store.stats().lease_waits >= 3


def test_a_holder_that_is_gone_holds_nobody_up_longer_than_the_lease(store: StateStore) -> None:
    create(store, "k")
    set_lease(store, 0.5, PATIENCE)
    store.begin("k")  # and never ends it: the holder is gone
    started = time.monotonic()
    turn = store.begin("k")
    waited = time.monotonic() - started
    assert turn.holder is not None
    assert waited < lease_of(store) + PATIENCE / 10, waited
    store.release(turn)


def test_a_turn_that_does_not_come_within_lease_wait_raises_busy(store: StateStore) -> None:
    create(store, "k")
    set_lease(store, PATIENCE, 0.2)
    holder = store.begin("k")
    with pytest.raises(StoreError, match="busy") as info:
        store.begin("k")
    assert "NOT applied" in str(info.value)
    store.release(holder)
    turn = store.begin("k")  # the one that gave up is not queued any more
    assert turn.holder is not None
    store.release(turn)
    assert store.stats().lease_timeouts == 1


def test_release_hands_the_turn_on_with_the_value(store: StateStore) -> None:
    token = create(store, "k", b"v1")
    set_lease(store, PATIENCE, PATIENCE)
    first = store.begin("k")
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(store.begin("k", token)))
    waiter.start()
    time.sleep(0.1)
    store.release(first)
    waiter.join(timeout=PATIENCE)
    assert got and got[0].holder is not None and got[0].read.token == token
    store.release(got[0])
    store.release(got[0])  # a second release is harmless
