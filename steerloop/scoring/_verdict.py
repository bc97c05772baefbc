"""The verdict record from the parent's side: validate it and turn it into an outcome.

The supervisor writes one JSON record, tagged with the run's nonce, to a file only it holds
a descriptor of (the candidate process never has it). The parent accepts the record only
when it is a single line of valid JSON with the nonce, and its counts match the job it
sent; anything else is a crash (0 passed), never a pass.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from steerloop.errors import ScorerError

VERDICT_MAX = 64 * 1024

Status = Literal["ok", "timeout", "crashed"]


@dataclass(frozen=True)
class Outcome:
    """What a run ended with (the fields of a ``SandboxResult`` the verdict decides)."""

    status: Status
    detail: str
    passed: int = 0
    error: str | None = None
    timings: dict[str, tuple[float, ...]] = field(default_factory=dict)


def parse(raw: bytes, nonce: str) -> tuple[dict[str, Any] | None, str]:
    """The record in ``raw`` if it is valid and carries ``nonce``; else why not."""
    if not raw:
        return None, "no verdict (the process exited or was killed before the tests ended)"
    if len(raw) > VERDICT_MAX:
        return None, "verdict too large (tampered)"
    lines = [line for line in raw.split(b"\n") if line.strip()]
    if len(lines) != 1:
        return None, "verdict has extra records (tampered)"
    try:
        record = json.loads(lines[0])
    except ValueError:
        return None, "verdict is not valid JSON (tampered)"
    if not isinstance(record, dict):
        return None, "verdict is not a record (tampered)"
    tag = record.get("nonce")
    if not isinstance(tag, str) or not hmac.compare_digest(tag.encode(), nonce.encode()):
        return None, "verdict nonce mismatch (tampered)"
    return record, ""


def outcome(
    record: dict[str, Any] | None,
    problem: str,
    *,
    total: int,
    timing: bool,
    timed_out: bool,
    output_tail: bytes,
) -> Outcome:
    """Map a parsed record (or its absence) to an :class:`Outcome`.

    Raises
    ------
    ScorerError
        Reason ``"unavailable"`` when the sandbox itself failed (``sandbox_error``).
    """
    if record is not None and record.get("status") == "sandbox_error":
        raise ScorerError(
            "sandbox",
            "unavailable",
            f"sandbox setup failed ({record.get('error')}); output: "
            f"{output_tail[-300:].decode('utf-8', 'replace').strip()}",
        )
    if timed_out:
        return Outcome("timeout", "wall-clock timeout")
    if record is None:
        return Outcome("crashed", problem)
    status = str(record.get("status"))
    error = record.get("error")
    error_name = str(error) if isinstance(error, str) else None
    if status in ("candidate_error", "reference_error", "task_error"):
        return Outcome("ok", status, error=error_name)
    if status == "candidate_crashed":
        return Outcome("crashed", f"the candidate process ended early ({error_name})")
    if status != "ok":
        return Outcome("crashed", status, error=error_name)
    passed = record.get("passed")
    if (
        type(passed) is not int
        or record.get("total") != total
        or type(record.get("total")) is not int
        or not 0 <= passed <= total
    ):
        return Outcome("crashed", "verdict counts do not match the job")
    timings: dict[str, tuple[float, ...]] = {}
    if timing:
        for key in ("candidate", "reference"):
            values = record.get(key)
            if not isinstance(values, list) or not values:
                return Outcome("crashed", "verdict lacks timings")
            timings[key] = tuple(float(v) for v in values)
    return Outcome("ok", "ok", passed=passed, error=error_name, timings=timings)
