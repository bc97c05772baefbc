"""steerloop.testing: the public test doubles do what they promise."""

from __future__ import annotations

import math
import time

import pytest

from steerloop import Controller
from steerloop.errors import ScorerError, StoreInDoubtError, StoreUnavailableError
from steerloop.estimators.kalman import ObjectiveFilter
from steerloop.estimators.rls import RecursiveLeastSquares
from steerloop.scoring import CompositeScorer, Scorer
from steerloop.stores import MemoryStore, StateStore
from steerloop.stores.base import WRITTEN
from steerloop.testing import (
    FaultyStore,
    HangingScorer,
    NaNScorer,
    RaisingScorer,
    ScriptedScorer,
    check_estimator,
)

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


# --------------------------------------------------------------------------------- scorers

OBJECTIVES = ["security", "efficiency", "functionality"]


def test_a_scripted_scorer_returns_its_script_in_order_then_repeats_the_last_entry() -> None:
    scorer = ScriptedScorer([{"security": 0.1}, {"security": 0.2, "efficiency": 0.3}])
    assert isinstance(scorer, Scorer)
    assert scorer.objectives == ("security", "efficiency") and scorer.name == "scripted"
    seen = [scorer.score("r", {}) for _ in range(4)]
    assert seen == [
        {"security": 0.1},
        {"security": 0.2, "efficiency": 0.3},
        {"security": 0.2, "efficiency": 0.3},
        {"security": 0.2, "efficiency": 0.3},
    ]
    assert scorer.calls == 4
    seen[3]["security"] = 9.0  # a returned mapping is a copy: the script is unchanged
    assert scorer.score("r", {}) == {"security": 0.2, "efficiency": 0.3}
    assert ScriptedScorer([{"a": 1.0}], objectives="b").objectives == ("b",)
    with pytest.raises(ValueError, match="at least one scripted entry"):
        ScriptedScorer([])


def test_the_controller_counts_each_fake_failure_as_missing_and_keeps_going() -> None:
    scorers: list[Scorer] = [
        ScriptedScorer([{"security": 0.8}, {"security": math.nan}], name="script"),
        ScriptedScorer([{"efficiency": 0.6}], name="steady"),
        RaisingScorer("functionality", error=ScorerError("judge", "malformed", "bad JSON")),
    ]
    controller = Controller(preset="paper", scorers=scorers, events=False)
    session = controller.session("s")
    first = session.observe("response")
    second = session.observe("response")
    assert first.diagnostics["score.security"] == pytest.approx(0.8)
    assert first.diagnostics["score.efficiency"] == pytest.approx(0.6)
    assert first.diagnostics["score.functionality"] is None
    assert second.diagnostics["score.security"] is None
    assert first.diagnostics["errors.scorer"] == 1  # the raising one
    assert second.diagnostics["errors.scorer"] == 1 + 2  # ... and the NaN
    assert controller.scorer is not None
    counts = controller.scorer.failure_counts
    assert counts[("raising", "malformed")] == 2
    assert counts[("script", "non_finite")] == 1


def test_a_raising_scorer_raises_its_error_every_call() -> None:
    error = ValueError("boom")
    scorer = RaisingScorer(["security", "efficiency"], error=error)
    for _ in range(2):
        with pytest.raises(ValueError) as info:
            scorer.score("r", {})
        assert info.value is error
    assert scorer.calls == 2 and scorer.objectives == ("security", "efficiency")
    with pytest.raises(RuntimeError, match="scorer failed"):
        RaisingScorer("security").score("r", {})


def test_a_hanging_scorer_times_out_in_the_composite_and_returns_once_released() -> None:
    hanging = HangingScorer("security", scores={"security": 0.25})
    composite = CompositeScorer([hanging], objectives=["security"], timeout=0.1)
    started = time.monotonic()
    result = composite.score("r")
    assert time.monotonic() - started < 5.0
    assert result.scores == {} and [f.reason for f in result.failures] == ["timeout"]
    assert composite.abandoned_calls == 1
    hanging.release()
    deadline = time.monotonic() + 10.0
    while composite.abandoned_calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert composite.abandoned_calls == 0  # the blocked call returned
    assert composite.score("r").scores == {"security": 0.25}


def test_a_hanging_scorer_blocks_at_most_its_seconds() -> None:
    hanging = HangingScorer(["a", "b"], seconds=0.05)
    started = time.monotonic()
    assert hanging.score("r", {}) == {"a": 0.5, "b": 0.5}
    assert time.monotonic() - started >= 0.05


def test_a_nan_scorer_leaves_its_objectives_missing() -> None:
    scorer = NaNScorer(["security", "efficiency"])
    values = scorer.score("r", {})
    assert set(values) == {"security", "efficiency"}
    assert all(math.isnan(v) for v in values.values())
    composite = CompositeScorer([scorer], objectives=OBJECTIVES)
    result = composite.score("r")
    assert result.scores == {}
    assert sorted(f.reason for f in result.failures) == ["non_finite"]
    with pytest.raises(ValueError, match="at least one objective"):
        NaNScorer([])


# ------------------------------------------------------------------------------ estimators


@pytest.mark.parametrize("forgetting", [1.0, 0.98, 0.9])
@pytest.mark.parametrize("initial_covariance", [1.0, 1e4])
def test_check_estimator_passes_the_rls_of_every_usual_configuration(
    forgetting: float, initial_covariance: float
) -> None:
    result = check_estimator(
        "rls", forgetting=forgetting, initial_covariance=initial_covariance, steps=120
    )
    assert result.passed and result.reference == "weighted ridge regression"
    assert result.max_relative_error < 1e-12 and result.steps == 120


@pytest.mark.parametrize("noise", [1e-4, 0.01, 1.0])
def test_check_estimator_passes_the_kalman_filter(noise: float) -> None:
    result = check_estimator("kalman", measurement_noise=noise, initial_covariance=1.0, dim=4)
    assert result.passed and result.reference == "batch Gaussian posterior"
    assert result.max_relative_error < 1e-12


def test_check_estimator_catches_an_rls_that_forgets_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = RecursiveLeastSquares.__init__

    def wrong(self: RecursiveLeastSquares, *args: object, **kwargs: object) -> None:
        kwargs["forgetting"] = 0.999 * float(kwargs["forgetting"])  # type: ignore[arg-type]
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RecursiveLeastSquares, "__init__", wrong)
    report = check_estimator("rls", forgetting=0.98, check=False)
    assert not report.passed and report.max_relative_error > 1e-6
    with pytest.raises(AssertionError, match="weighted ridge regression"):
        check_estimator("rls", forgetting=0.98)


def test_check_estimator_catches_a_filter_that_skips_an_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = ObjectiveFilter.update
    calls = [0]

    def skipping(self: ObjectiveFilter, values: object, noise: object) -> object:
        calls[0] += 1
        if calls[0] == 3:
            return None
        return original(self, values, noise)  # type: ignore[arg-type]

    monkeypatch.setattr(ObjectiveFilter, "update", skipping)
    with pytest.raises(AssertionError, match="batch Gaussian posterior"):
        check_estimator("kalman", steps=20)


def test_check_estimator_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'rls' or 'kalman'"):
        check_estimator("drift")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 1"):
        check_estimator("rls", steps=0)
