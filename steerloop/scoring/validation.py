"""The one rule for what counts as a score, used by every entry point.

A *score* is a real number in [0, 1]: an ``int``, ``float``, numpy integer or floating
scalar, ``fractions.Fraction`` or ``decimal.Decimal`` that is finite and lies in [0, 1]
(values within 1e-9 outside are rounding and are clipped). ``None`` (or an absent key) is a
*missing* score: the scorer had nothing to say. Everything else is *invalid*, with a reason:

* ``non_numeric`` — a string, a bool (``True`` is not a score), a list, an object …;
* ``non_finite`` — NaN or ±inf;
* ``out_of_range`` — a number outside [0, 1] (e.g. a 0–100 scale): never clipped, because it
  signals a broken scorer.

Sessions (:meth:`steerloop.Session.update`), the composite scorer and the adapters all call
:func:`check_score` / :func:`check_scores`, so a value is valid everywhere or nowhere. An
invalid or missing score never reaches the filter as a number: it is dropped for that step
and counted.

Examples
--------
>>> check_score(0.5), check_score(None), check_score(True), check_score(70)
((0.5, None), (None, None), (None, 'non_numeric'), (None, 'out_of_range'))
>>> result = check_scores({"security": 0.9, "speed": 1.2, "securty": 0.4}, ["security", "speed"])
>>> result.values.tolist(), result.invalid, result.unknown
([0.9, nan], {'speed': 'out_of_range'}, ('securty',))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["InvalidReason", "ScoreCheck", "check_score", "check_scores"]

InvalidReason = Literal["non_numeric", "non_finite", "out_of_range"]

#: Values this far outside [0, 1] are rounding and are clipped; further out they are invalid.
RANGE_TOLERANCE = 1e-9


def check_score(value: object) -> tuple[float | None, InvalidReason | None]:
    """``(score, None)`` if valid, ``(None, None)`` if missing, else ``(None, reason)``."""
    if value is None:
        return None, None
    if type(value) is float:
        number = value
    elif isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real | Decimal):
        return None, "non_numeric"
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError, ArithmeticError):
            return None, "non_numeric"
    if not math.isfinite(number):
        return None, "non_finite"
    if not -RANGE_TOLERANCE <= number <= 1.0 + RANGE_TOLERANCE:
        return None, "out_of_range"
    return min(1.0, max(0.0, number)), None


@dataclass(frozen=True)
class ScoreCheck:
    """The outcome of :func:`check_scores`.

    Attributes
    ----------
    values : ndarray (d,)
        Scores in objective order, NaN where missing or invalid.
    missing : tuple of str
        Objectives with no usable score (absent, ``None`` or invalid).
    invalid : dict
        Objective → reason, for the invalid values.
    unknown : tuple of str
        Keys that name no objective (typos such as ``"securty"``).
    """

    values: NDArray[np.float64]
    missing: tuple[str, ...]
    invalid: dict[str, InvalidReason]
    unknown: tuple[str, ...]


def check_scores(scores: Mapping[str, object], objectives: Sequence[str]) -> ScoreCheck:
    """Check a mapping of scores against the objectives (module docstring).

    Raises
    ------
    TypeError
        If ``scores`` is not a mapping (e.g. ``None`` or a list: objective order is never
        guessed).
    """
    if not isinstance(scores, Mapping):
        raise TypeError(
            "scores must be a mapping of objective name to a score in [0, 1], e.g. "
            f"{{{', '.join(repr(o) + ': 0.8' for o in list(objectives)[:2])}}}; "
            f"got {type(scores).__name__}"
        )
    values = np.full(len(objectives), math.nan)
    missing: list[str] = []
    invalid: dict[str, InvalidReason] = {}
    for index, name in enumerate(objectives):
        score, reason = check_score(scores.get(name))
        if score is None:
            missing.append(name)
            if reason is not None:
                invalid[name] = reason
        else:
            values[index] = score
    known = set(objectives)
    unknown = tuple(str(key) for key in scores if key not in known)
    return ScoreCheck(values, tuple(missing), invalid, unknown)
