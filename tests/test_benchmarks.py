"""Smoke test of the benchmarks: a quick run completes and reports every key (no timings)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _lookup(document: Any, key: str) -> Any:
    value = document
    for part in key.split("."):
        assert isinstance(value, dict) and part in value, f"missing key {key!r}"
        value = value[part]
    return value


def test_quick_run_reports_every_key() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.run import EXPECTED_KEYS, GOALS
    finally:
        sys.path.remove(str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    for key in EXPECTED_KEYS:
        _lookup(document, key)
    assert document["mode"] == "quick"
    reported = {goal["key"] for goal in document["goals"]}
    assert reported == {goal.key for goal in GOALS}
    for goal in document["goals"]:
        assert set(goal) >= {"name", "key", "value", "goal", "met"}
    # Every measured goal is a number (the demo may legitimately be "not available").
    for key in ("step.d3.ratio", "flatness.ratio", "langchain.ratio", "throughput.ratio"):
        assert isinstance(_lookup(document, key), float)
    assert isinstance(_lookup(document, "snapshot.bytes"), int)
    assert document["snapshot"]["round_trip_exact"] is True


def _recording_runners(names: list[str], sequence: list[str]) -> dict[str, Any]:
    def runner(name: str) -> Any:
        def run(n: int) -> float:
            sequence.append(name)
            return float(n)

        return run

    return {name: runner(name) for name in names}


def test_interleave_order_is_balanced() -> None:
    """Each repetition runs every variant once; no variant ever runs two blocks in a row."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.run import interleave
    finally:
        sys.path.remove(str(ROOT))
    for names in (["a", "b"], ["floor", "session", "plain", "minimal"]):
        sequence: list[str] = []
        times = interleave(_recording_runners(names, sequence), reps=400, block=5)
        assert all(len(values) == 400 and set(values) == {1.0} for values in times.values())
        reps = [sequence[k : k + len(names)] for k in range(0, len(sequence), len(names))]
        assert all(sorted(rep) == sorted(names) for rep in reps)
        assert all(first != second for first, second in itertools.pairwise(sequence))
        # Every variant is preceded by each other variant about equally often.
        for name in names:
            before = [sequence[k - 1] for k in range(1, len(sequence)) if sequence[k] == name]
            counts = [before.count(other) for other in names if other != name]
            assert min(counts) > 0.6 * max(counts), (name, counts)
        first: list[str] = []
        interleave(_recording_runners(names, first), reps=50, block=1)
        again: list[str] = []
        interleave(_recording_runners(names, again), reps=50, block=1)
        assert first == again  # seeded: the same order every run
