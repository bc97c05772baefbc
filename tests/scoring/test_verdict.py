"""The parent's side of the verdict: only a valid, nonce-tagged, consistent record counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from steerloop.errors import ScorerError
from steerloop.scoring._verdict import VERDICT_MAX, Outcome, outcome, parse

NONCE = "ab" * 16


def decide(record: dict[str, Any] | None, problem: str = "", **kwargs: Any) -> Outcome:
    options: dict[str, Any] = {"total": 3, "timing": False, "timed_out": False}
    options.update(kwargs)
    return outcome(record, problem, output_tail=b"", **options)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "no verdict"),
        (b"x" * (VERDICT_MAX + 1), "too large"),
        (b'{"nonce": "%s"}\n{"nonce": "%s"}\n' % (NONCE.encode(), NONCE.encode()), "extra"),
        (b"{nope", "not valid JSON"),
        (b"[1]", "not a record"),
        (b'{"nonce": "' + b"0" * 32 + b'"}', "nonce mismatch"),
    ],
)
def test_invalid_records_are_rejected(raw: bytes, why: str) -> None:
    record, problem = parse(raw, NONCE)
    assert record is None and why in problem
    assert decide(record, problem) == Outcome("crashed", problem)


def test_a_valid_record_counts() -> None:
    raw = json.dumps({"nonce": NONCE, "status": "ok", "passed": 2, "total": 3}).encode()
    record, _ = parse(raw, NONCE)
    assert decide(record) == Outcome("ok", "ok", passed=2)


@pytest.mark.parametrize(
    "fields",
    [
        {"passed": 4, "total": 3},
        {"passed": -1, "total": 3},
        {"passed": 2, "total": 2},
        {"passed": 2.0, "total": 3},
        {"passed": True, "total": 3},
    ],
)
def test_counts_that_do_not_match_the_job_are_a_crash(fields: dict[str, Any]) -> None:
    result = decide({"status": "ok", **fields})
    assert (result.status, result.passed) == ("crashed", 0)


def test_statuses() -> None:
    assert decide({"status": "candidate_crashed", "error": "exited"}).status == "crashed"
    assert decide({"status": "candidate_error", "error": "SystemExit"}) == Outcome(
        "ok", "candidate_error", error="SystemExit"
    )
    assert decide({"status": "harness_error"}).status == "crashed"
    assert decide(None, "whatever", timed_out=True).status == "timeout"
    with pytest.raises(ScorerError) as info:
        decide({"status": "sandbox_error", "error": "boom"})
    assert info.value.reason == "unavailable"
    timing = decide({"status": "ok", "passed": 3, "total": 3, "candidate": [1.0]}, timing=True)
    assert (timing.status, timing.detail) == ("crashed", "verdict lacks timings")
