"""CompositeScorer: every way a scorer fails becomes missing + counted; the loop keeps going."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from steerloop.errors import ScorerError
from steerloop.policies.schema import ScorerSpec
from steerloop.scoring import (
    AsyncScorer,
    CallableScorer,
    CompositeScorer,
    Scorer,
    ScoreResult,
    ScorerFailure,
)

OBJECTIVES = ["security", "efficiency", "functionality"]
SECRET = "RESPONSE_TEXT_MUST_NOT_LEAK"


def good(response: object) -> dict[str, float]:
    return {"security": 0.9}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets hung scorers finish at teardown (their threads are abandoned, not killed)."""
    event = threading.Event()
    yield event
    event.set()


def composite_with(
    bad: Any, *, objectives: Any = ("efficiency",), **kwargs: Any
) -> CompositeScorer:
    return CompositeScorer(
        [
            CallableScorer(good, "security", name="good"),
            CallableScorer(bad, objectives, name="bad"),
        ],
        objectives=OBJECTIVES,
        **kwargs,
    )


def reasons(result: ScoreResult) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(f.scorer, f.reason, f.objectives) for f in result.failures]


# ----------------------------------------------------------------------------- faults

FAULTS: dict[str, tuple[Any, str]] = {
    "raise": (lambda r: 1 / 0, "raised"),
    "nan": (lambda r: {"efficiency": math.nan}, "non_finite"),
    "inf": (lambda r: {"efficiency": -math.inf}, "non_finite"),
    "wrong_type_value": (lambda r: {"efficiency": "0.5"}, "non_numeric"),
    "wrong_type_return": (lambda r: ["efficiency", 0.5], "non_numeric"),
    "none": (lambda r: None, "non_numeric"),
    "bool": (lambda r: {"efficiency": True}, "non_numeric"),
    "above_range": (lambda r: {"efficiency": 1.5}, "out_of_range"),
    "below_range": (lambda r: {"efficiency": -0.01}, "out_of_range"),
    "missing_key": (lambda r: {}, "missing"),
    "system_exit": (lambda r: (_ for _ in ()).throw(SystemExit(3)), "raised"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_gives_missing_and_is_counted_and_next_call_works(fault: str) -> None:
    bad, reason = FAULTS[fault]
    composite = composite_with(bad)
    for call in range(1, 3):
        result = composite.score(f"response with {SECRET}")
        assert result.scores == {"security": 0.9}  # efficiency missing: absent, never 0/NaN
        assert reasons(result) == [("bad", reason, ("efficiency",))]
        assert composite.failure_counts[("bad", reason)] == call
        assert SECRET not in result.failures[0].message
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in result.scores.values())


def test_exception_message_is_withheld() -> None:
    def leaky(response: object) -> dict[str, float]:
        raise ValueError(f"cannot parse {response}")

    result = composite_with(leaky).score(SECRET)
    assert result.failures[0].reason == "raised"
    assert "ValueError" in result.failures[0].message
    assert SECRET not in result.failures[0].message


def test_hang_times_out_thread_is_abandoned_and_scorer_reports_busy(
    release: threading.Event,
) -> None:
    calls = []

    def hang(response: object) -> dict[str, float]:
        calls.append(response)
        release.wait(30)
        return {"efficiency": 0.5}

    composite = composite_with(hang, timeout={"bad": 0.2, "good": 5}, max_abandoned=1)
    started = time.monotonic()
    first = composite.score("r1")
    assert time.monotonic() - started < 2.0
    assert first.scores == {"security": 0.9}
    assert reasons(first) == [("bad", "timeout", ("efficiency",))]
    assert composite.abandoned_calls == composite.abandoned_threads == 1
    assert composite.running_calls == 0  # the hung call gave its slot back at its timeout
    # The loop keeps going: the next call works and does not pile up another hung thread.
    second = composite.score("r2")
    assert second.scores == {"security": 0.9}
    assert reasons(second) == [("bad", "busy", ("efficiency",))]
    assert len(calls) == 1
    assert composite.failure_counts == {("bad", "timeout"): 1, ("bad", "busy"): 1}
    # Once the hung call returns, the scorer runs again.
    release.set()
    deadline = time.monotonic() + 5
    while composite.abandoned_threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert composite.score("r3").scores == {"security": 0.9, "efficiency": 0.5}


def test_unknown_objective_keys_are_ignored_and_counted_once_per_call() -> None:
    composite = composite_with(
        lambda r: {"efficiency": 0.4, "readability": 0.7, "style": 0.1},
    )
    result = composite.score("r")
    assert result.scores == {"security": 0.9, "efficiency": 0.4}
    assert reasons(result) == [("bad", "unknown_objective", ("readability", "style"))]
    assert composite.failure_counts[("bad", "unknown_objective")] == 1


def test_partial_failures_keep_the_valid_values() -> None:
    composite = composite_with(
        lambda r: {"efficiency": math.nan, "functionality": 0.25},
        objectives=("efficiency", "functionality"),
    )
    result = composite.score("r")
    assert result.scores == {"security": 0.9, "functionality": 0.25}
    assert reasons(result) == [("bad", "non_finite", ("efficiency",))]
    assert result.missing(OBJECTIVES) == ("efficiency",)


def test_values_within_tolerance_of_the_range_are_clipped() -> None:
    result = composite_with(lambda r: {"efficiency": 1.0 + 1e-12}).score("r")
    assert result.scores["efficiency"] == 1.0 and result.ok


def test_several_scorers_on_one_objective_are_averaged() -> None:
    composite = CompositeScorer(
        [
            CallableScorer(lambda r: 0.2, "security", name="a"),
            CallableScorer(lambda r: 0.6, "security", name="b"),
        ],
        objectives=["security"],
    )
    assert composite.score("r").scores == {"security": pytest.approx(0.4)}


def test_strict_mode_raises_scorer_error_and_still_counts() -> None:
    composite = composite_with(lambda r: {"efficiency": math.inf}, strict=True)
    with pytest.raises(ScorerError) as info:
        composite.score("r")
    assert (info.value.scorer, info.value.reason) == ("bad", "non_finite")
    assert composite.failure_counts[("bad", "non_finite")] == 1


def test_strict_mode_raises_on_timeout(release: threading.Event) -> None:
    composite = composite_with(lambda r: release.wait(30), strict=True, timeout=0.1)
    with pytest.raises(ScorerError) as info:
        composite.score("r")
    assert info.value.reason == "timeout"


def test_scorer_error_reason_passes_through() -> None:
    def declines(response: object) -> dict[str, float]:
        raise ScorerError("bad", "invalid_input", "no code in the response")

    result = composite_with(declines).score("r")
    assert reasons(result) == [("bad", "invalid_input", ("efficiency",))]
    assert "no code" in result.failures[0].message


def test_context_reaches_scorers_and_defaults_to_empty() -> None:
    seen: list[Mapping[str, Any]] = []

    def spy(response: object, context: Mapping[str, Any]) -> float:
        seen.append(context)
        return 0.5

    composite = CompositeScorer([CallableScorer(spy, "security")], objectives=["security"])
    composite.score("r")
    composite.score("r", {"task": 1})
    assert seen == [{}, {"task": 1}]


def test_scorers_run_in_parallel() -> None:
    def slow(response: object) -> float:
        time.sleep(0.3)
        return 0.5

    composite = CompositeScorer(
        [CallableScorer(slow, objective, name=objective) for objective in OBJECTIVES],
        objectives=OBJECTIVES,
    )
    started = time.monotonic()
    assert len(composite.score("r").scores) == 3
    assert time.monotonic() - started < 0.8


# ----------------------------------------------------------------------------- construction


def test_configuration_errors() -> None:
    scorer = CallableScorer(good, "security", name="same")
    with pytest.raises(ScorerError, match="share this name"):
        CompositeScorer(
            [scorer, CallableScorer(good, "efficiency", name="same")], objectives=OBJECTIVES
        )
    with pytest.raises(ScorerError, match="none of the policy objectives"):
        CompositeScorer([CallableScorer(good, "other")], objectives=OBJECTIVES)
    with pytest.raises(ScorerError, match="protocol"):
        CompositeScorer([object()], objectives=OBJECTIVES)  # type: ignore[list-item]
    with pytest.raises(ScorerError, match="timeout"):
        CompositeScorer([scorer], objectives=OBJECTIVES, timeout=0)
    with pytest.raises(ScorerError, match="unique"):
        CompositeScorer([scorer], objectives=["a", "a"])
    with pytest.raises(ScorerError, match="concurrency"):
        CompositeScorer([scorer], objectives=OBJECTIVES, concurrency={"same": 0})
    with pytest.raises(ScorerError, match="max_abandoned"):
        CompositeScorer([scorer], objectives=OBJECTIVES, max_abandoned=0)


def test_protocol_is_runtime_checkable() -> None:
    scorer = CallableScorer(good, "security")
    assert isinstance(scorer, Scorer)
    assert isinstance(scorer, AsyncScorer)
    assert scorer.name == "good"
    failure = ScorerFailure("x", "timeout", ("security",), "m")
    with pytest.raises(AttributeError):
        failure.reason = "raised"  # type: ignore[misc]


class Factory:
    """A scorer class importable by path (used by from_specs)."""

    def __init__(self, objective: str = "security", value: float = 0.5) -> None:
        self.name = f"factory-{objective}"
        self.objectives = (objective,)
        self.value = value

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        return {self.objectives[0]: self.value}


def make_not_a_scorer() -> object:
    return object()


def spec(use: str, **kwargs: Any) -> ScorerSpec:
    return ScorerSpec.model_validate({"use": use, **kwargs})


def test_from_specs_imports_calls_with_options_and_sets_timeouts() -> None:
    composite = CompositeScorer.from_specs(
        [
            spec(
                f"{__name__}.Factory",
                **{"with": {"objective": "efficiency", "value": 0.7}},
                timeout=2.5,
            ),
            spec("steerloop.scoring.code.SecurityScorer"),
        ],
        objectives=OBJECTIVES,
    )
    assert [s.name for s in composite.scorers] == ["factory-efficiency", "security"]
    assert composite.timeout_for("factory-efficiency") == 2.5
    assert composite.timeout_for("security") == 30.0
    result = composite.score("def f():\n    return 1\n")
    assert result.scores == {"efficiency": 0.7, "security": 1.0}


@pytest.mark.parametrize(
    ("use", "options", "reason", "text"),
    [
        ("steerloop.scoring.nonexistent.Scorer", {}, "import", "scorers[0]"),
        ("nonexistent_package_xyz.Scorer", {}, "import", "full import path"),
        ("steerloop.scoring.code.NoSuchScorer", {}, "import", "no attribute"),
        (f"{__name__}.Factory", {"bogus": 1}, "config", "bogus"),
        (f"{__name__}.make_not_a_scorer", {}, "config", "not a Scorer"),
        (f"{__name__}.SECRET", {}, "import", "not a class or factory"),
    ],
)
def test_from_specs_errors_name_the_spec(
    use: str, options: dict[str, Any], reason: str, text: str
) -> None:
    with pytest.raises(ScorerError) as info:
        CompositeScorer.from_specs([spec(use, **{"with": options})], objectives=OBJECTIVES)
    assert info.value.reason == reason
    assert use in str(info.value)
    assert text in str(info.value)


# ----------------------------------------------------------------------------- async


class NativeAsync:
    def __init__(
        self, name: str, value: Any = 0.5, delay: float = 0.0, error: bool = False
    ) -> None:
        self.name = name
        self.objectives = ("efficiency",)
        self.value = value
        self.delay = delay
        self.error = error
        self.sync_calls = 0

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        self.sync_calls += 1
        return {"efficiency": 0.0}

    async def ascore(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        await asyncio.sleep(self.delay)
        if self.error:
            raise RuntimeError(str(response))
        return {"efficiency": self.value}


async def test_async_path_uses_native_ascore() -> None:
    native = NativeAsync("native", 0.25)
    composite = CompositeScorer(
        [CallableScorer(good, "security", name="good"), native], objectives=OBJECTIVES
    )
    result = await composite.ascore("r")
    assert result.scores == {"security": 0.9, "efficiency": 0.25}
    assert native.sync_calls == 0


@pytest.mark.parametrize(
    ("scorer", "reason"),
    [
        (NativeAsync("bad", delay=30), "timeout"),
        (NativeAsync("bad", error=True), "raised"),
        (NativeAsync("bad", value=math.nan), "non_finite"),
        (NativeAsync("bad", value="high"), "non_numeric"),
    ],
)
async def test_async_faults_give_missing_and_are_counted(scorer: NativeAsync, reason: str) -> None:
    composite = CompositeScorer(
        [CallableScorer(good, "security", name="good"), scorer],
        objectives=OBJECTIVES,
        timeout={"bad": 0.2},
    )
    result = await composite.ascore(SECRET)
    assert result.scores == {"security": 0.9}
    assert reasons(result) == [("bad", reason, ("efficiency",))]
    assert SECRET not in result.failures[0].message
    assert composite.failure_counts[("bad", reason)] == 1


async def test_async_path_runs_sync_scorers_in_threads_with_timeout(
    release: threading.Event,
) -> None:
    composite = composite_with(lambda r: release.wait(30), timeout={"bad": 0.2}, max_abandoned=1)
    started = time.monotonic()
    result = await composite.ascore("r")
    assert time.monotonic() - started < 2.0
    assert reasons(result) == [("bad", "timeout", ("efficiency",))]
    again = await composite.ascore("r")
    assert reasons(again) == [("bad", "busy", ("efficiency",))]
    assert again.scores == {"security": 0.9}


async def test_async_callable_scorer_and_sync_twin() -> None:
    async def coro(response: object) -> dict[str, float]:
        await asyncio.sleep(0)
        return {"efficiency": 0.75}

    scorer = CallableScorer(coro, "efficiency", name="coro")
    composite = CompositeScorer([scorer], objectives=OBJECTIVES)
    assert (await composite.ascore("r")).scores == {"efficiency": 0.75}
    # The sync path runs the coroutine function with asyncio.run in a worker thread.
    assert (await asyncio.to_thread(composite.score, "r")).scores == {"efficiency": 0.75}


async def test_swallowed_cancellation_cannot_hold_the_call() -> None:
    class Stubborn(NativeAsync):
        async def ascore(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
            for _ in range(8):
                try:
                    await asyncio.sleep(0.1)
                except asyncio.CancelledError:
                    continue
            return {"efficiency": 0.5}

    composite = CompositeScorer([Stubborn("bad")], objectives=OBJECTIVES, timeout=0.2)
    started = time.monotonic()
    result = await composite.ascore("r")
    assert time.monotonic() - started < 1.0
    assert reasons(result) == [("bad", "timeout", ("efficiency",))]
