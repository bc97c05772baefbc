"""Smoke test of the benchmarks: a quick run completes and reports every key (no timings)."""

from __future__ import annotations

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
