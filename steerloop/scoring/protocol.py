"""The scorer protocol and the records a scoring call produces.

A *scorer* maps one LLM response to scores in [0, 1] for the objectives it covers
(:class:`Scorer`, optionally with a coroutine twin, :class:`AsyncScorer`). A call of the
:class:`~steerloop.scoring.composite.CompositeScorer` yields a :class:`ScoreResult`: the
valid scores, and one :class:`ScorerFailure` per way a scorer failed.

Failure reasons (:data:`FailureReason`)
---------------------------------------
``raised``
    the scorer raised an exception (only its type is recorded, never its message, which may
    quote the response);
``timeout``
    the scorer did not return within its timeout;
``busy``
    the scorer was not started: all its concurrency slots stayed taken for the whole
    timeout, or too many of its earlier calls are still running after their timeout;
``non_numeric``
    a value (or the whole return value) is not a real number or a mapping of them;
``non_finite``
    a value is NaN or infinite;
``out_of_range``
    a value is outside [0, 1] (values within ``1e-9`` of the range are clipped);
``missing``
    the scorer declares an objective of the policy but returned no value for it;
``unknown_objective``
    the scorer returned keys that are not objectives of the policy (ignored; counted once
    per call and scorer);
``invalid_input``, ``malformed``, ``unavailable``
    reasons a scorer reports itself by raising :class:`~steerloop.errors.ScorerError` (for
    example code that does not parse, judge output that is not valid JSON, a sandbox that
    cannot start).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["AsyncScorer", "FailureReason", "ScoreResult", "Scorer", "ScorerFailure"]

FailureReason = Literal[
    "raised",
    "timeout",
    "busy",
    "non_numeric",
    "non_finite",
    "out_of_range",
    "missing",
    "unknown_objective",
    "invalid_input",
    "malformed",
    "unavailable",
]


@runtime_checkable
class Scorer(Protocol):
    """Scores one response on the objectives it covers.

    Attributes
    ----------
    name
        A short identifier, unique within a composite (it keys timeouts and failure counts).
    objectives
        The objectives this scorer gives values for.

    Notes
    -----
    ``score`` returns a mapping ``objective -> value`` with values in [0, 1]. It may raise or
    return bad values: the :class:`CompositeScorer` turns that into missing values. A scorer
    may also define ``async def ascore(response, context)`` (see :class:`AsyncScorer`);
    without it the composite runs ``score`` in a worker thread on the async path.
    """

    name: str
    objectives: tuple[str, ...]

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Return scores in [0, 1] for (some of) :attr:`objectives`."""
        ...


@runtime_checkable
class AsyncScorer(Scorer, Protocol):
    """A :class:`Scorer` with a native coroutine twin of :meth:`score`."""

    async def ascore(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Asynchronous :meth:`Scorer.score`."""
        ...


@dataclass(frozen=True)
class ScorerFailure:
    """One way one scorer failed on one response.

    ``message`` says what went wrong and never contains the response text.
    """

    scorer: str
    reason: FailureReason
    objectives: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class ScoreResult:
    """Valid scores and the failures met while computing them.

    ``scores`` holds only finite values in [0, 1]; an objective with no valid value is absent
    (it is *missing*). When several scorers give a valid value for one objective, ``scores``
    holds their mean.
    """

    scores: dict[str, float]
    failures: tuple[ScorerFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """``True`` when no scorer failed."""
        return not self.failures

    def missing(self, objectives: Sequence[str]) -> tuple[str, ...]:
        """The objectives among ``objectives`` that have no valid score."""
        return tuple(name for name in objectives if name not in self.scores)
