"""EfficiencyScorer: measured runtime against a reference (with its noise), or a static proxy."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from steerloop.errors import ScorerError
from steerloop.scoring.code import EfficiencyScorer, static_efficiency
from steerloop.scoring.sandbox import Sandbox, SandboxLimits
from steerloop.scoring.tasks import CodeTask

REFERENCE = "def total(n):\n    return sum(range(n))\n"
LOOP = "def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"
QUADRATIC = (
    "def total(n):\n    s = 0\n    for i in range(n):\n"
    "        for _ in range(i % 50):\n            pass\n        s += i\n    return s\n"
)
TASK = CodeTask(
    tests=("assert total(1000) == 499500", "assert total(3000) == 4498500"), reference=REFERENCE
)
NOISE_REPEATS = 5
NOISE_STDEV_BOUND = 0.1  # measured: stdev 0.01-0.03 quiet, up to ~0.07 under competing load


@pytest.fixture(scope="module")
def scorer() -> EfficiencyScorer:
    return EfficiencyScorer(TASK, sandbox=Sandbox(SandboxLimits(timeout=5.0)))


def test_reference_against_itself_scores_about_one(scorer: EfficiencyScorer) -> None:
    measurement = scorer.measure(REFERENCE, {})
    assert measurement.method == "runtime"
    assert measurement.score > 0.8


def test_slower_code_scores_lower(scorer: EfficiencyScorer) -> None:
    fast = scorer.score(REFERENCE, {})["efficiency"]
    loop = scorer.score(LOOP, {})["efficiency"]
    quadratic = scorer.score(QUADRATIC, {})["efficiency"]
    assert quadratic < loop < fast
    assert quadratic < 0.2


def test_noise_of_repeated_runtime_scores_is_bounded(
    scorer: EfficiencyScorer, record_property: Any
) -> None:
    """Noise report: spread of repeated scores of one candidate (a mid-range ratio)."""
    scores = [scorer.score(LOOP, {})["efficiency"] for _ in range(NOISE_REPEATS)]
    stdev = statistics.pstdev(scores)
    spread = max(scores) - min(scores)
    record_property("efficiency_noise_stdev", round(stdev, 4))
    print(
        f"\nEfficiencyScorer noise: {NOISE_REPEATS} runs, mean {statistics.mean(scores):.3f}, "
        f"stdev {stdev:.3f}, range {spread:.3f}"
    )
    assert stdev < NOISE_STDEV_BOUND
    assert spread < 3 * NOISE_STDEV_BOUND


def test_timeout_and_crash_score_zero() -> None:
    scorer = EfficiencyScorer(TASK, sandbox=Sandbox(SandboxLimits(timeout=1.0)))
    assert scorer.score("def total(n):\n    while True:\n        pass\n", {}) == {"efficiency": 0.0}
    assert scorer.score("raise SystemExit(0)\n", {}) == {"efficiency": 0.0}
    assert scorer.score("import os\nos._exit(0)\n", {}) == {"efficiency": 0.0}


def test_broken_reference_is_a_failure_not_a_score() -> None:
    task = CodeTask(tests=TASK.tests, reference="raise RuntimeError('broken reference')\n")
    with pytest.raises(ScorerError) as info:
        EfficiencyScorer(task).score(REFERENCE, {})
    assert info.value.reason == "invalid_input"


def test_without_reference_or_tests_the_static_proxy_is_used() -> None:
    scorer = EfficiencyScorer()
    measurement = scorer.measure(QUADRATIC, {"tests": ["assert total(3) == 3"]})
    assert measurement.method == "static"
    assert measurement.score == static_efficiency(QUADRATIC).score == 0.75
    assert scorer.score(LOOP, {}) == {"efficiency": 1.0}
    with pytest.raises(ScorerError):
        EfficiencyScorer(static_fallback=False).score(LOOP, {})


def test_reference_from_context_enables_runtime_mode() -> None:
    scorer = EfficiencyScorer()
    measurement = scorer.measure(LOOP, {"tests": list(TASK.tests), "reference": REFERENCE})
    assert measurement.method == "runtime"
    assert measurement.candidate_seconds is not None and measurement.reference_seconds is not None


def test_syntax_error_and_empty_code_are_failures() -> None:
    scorer = EfficiencyScorer()
    for response in ("def total(:\n", "   \n"):
        with pytest.raises(ScorerError) as info:
            scorer.score(response, {})
        assert info.value.reason == "invalid_input"


@pytest.mark.parametrize(
    ("code", "depth", "score"),
    [
        ("def f(xs):\n    return sum(xs)\n", 0, 1.0),
        ("def f(xs):\n    for x in xs:\n        print(x)\n", 1, 1.0),
        ("def f(xs):\n    for x in xs:\n        for y in xs:\n            print(x, y)\n", 2, 0.75),
        ("def f(xs):\n    return [(a, b, c) for a in xs for b in xs for c in xs]\n", 3, 0.5),
        (
            "def f(xs):\n    for x in xs:\n        def g():\n            for y in xs:\n"
            "                pass\n        g()\n",
            1,
            1.0,
        ),
        (
            "def f(xs):\n    while xs:\n        for x in xs:\n            for y in xs:\n"
            "                for z in xs:\n                    for w in xs:\n"
            "                        pass\n",
            5,
            0.0,
        ),
    ],
)
def test_static_proxy_formula(code: str, depth: int, score: float) -> None:
    static = static_efficiency(code)
    assert static.loop_depth == depth
    assert static.score == pytest.approx(score)


def test_static_proxy_penalizes_complexity_beyond_ten() -> None:
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(15))
    static = static_efficiency(f"def f(x):\n{branches}    return -1\n")
    assert static.complexity == 16
    assert static.score == pytest.approx(1.0 - 0.02 * 6)
