"""What one scorer produced on one call, checked into valid values and counted failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from steerloop.errors import ScorerError
from steerloop.scoring.callables import is_real
from steerloop.scoring.protocol import FailureReason, Scorer, ScorerFailure
from steerloop.scoring.validation import check_score

# Reasons a scorer may report itself through ScorerError.reason.
_SELF_REPORTED: frozenset[str] = frozenset({"invalid_input", "malformed", "unavailable", "timeout"})
_REASON_TEXT: dict[FailureReason, str] = {
    "non_numeric": "value is not a real number",
    "non_finite": "value is NaN or infinite",
    "out_of_range": "value is outside [0, 1]",
}


@dataclass(frozen=True)
class Outcome:
    """What one scorer produced on one call: a value, an exception, a timeout or ``busy``."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    busy: str | None = None


def check(
    scorer: Scorer, outcome: Outcome, objectives: Sequence[str], timeout: float
) -> tuple[dict[str, float], list[ScorerFailure]]:
    """The valid values of ``outcome`` (clipped into [0, 1]) and its failures."""
    name = scorer.name
    covered = tuple(o for o in scorer.objectives if o in objectives)
    if outcome.busy is not None:
        return {}, [ScorerFailure(name, "busy", covered, outcome.busy)]
    if outcome.timed_out:
        return {}, [ScorerFailure(name, "timeout", covered, f"no result within {timeout:g} s")]
    if outcome.error is not None:
        return {}, [_failure_from_error(name, covered, outcome.error)]
    raw = outcome.value
    if is_real(raw) and len(scorer.objectives) == 1:
        raw = {scorer.objectives[0]: raw}
    if not isinstance(raw, Mapping):
        return {}, [
            ScorerFailure(
                name,
                "non_numeric",
                covered,
                f"returned a {type(raw).__name__}, expected a mapping objective -> float",
            )
        ]
    values: dict[str, float] = {}
    bad: dict[FailureReason, list[str]] = {}
    unknown: list[str] = []
    for key, value in raw.items():
        if key not in objectives:
            unknown.append(str(key)[:64])
            continue
        score, reason = check_score(value)  # the one rule (steerloop.scoring.validation)
        if score is not None:
            values[key] = score
        else:
            bad.setdefault(reason or "non_numeric", []).append(key)
    failures = [
        ScorerFailure(name, reason, tuple(keys), _REASON_TEXT[reason])
        for reason, keys in bad.items()
    ]
    if unknown:
        failures.append(
            ScorerFailure(
                name,
                "unknown_objective",
                tuple(unknown),
                f"returned keys that are not policy objectives {list(objectives)}; "
                "they were ignored",
            )
        )
    absent = tuple(o for o in covered if o not in raw)
    if absent:
        failures.append(
            ScorerFailure(name, "missing", absent, "declared objectives without a value")
        )
    return values, failures


def _failure_from_error(
    name: str, objectives: tuple[str, ...], error: BaseException
) -> ScorerFailure:
    if isinstance(error, ScorerError):
        reason = error.reason if error.reason in _SELF_REPORTED else "raised"
        # Messages of ScorerError are written by scorers to be safe to report.
        return ScorerFailure(name, cast(FailureReason, reason), objectives, str(error))
    return ScorerFailure(
        name,
        "raised",
        objectives,
        f"{type(error).__name__} raised by the scorer (message withheld: it may quote the "
        "response)",
    )
