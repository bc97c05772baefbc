"""The scoring API in one place: the protocol, the callable wrapper and the composite.

A stable import path that re-exports the names of three modules, each owning one concept:

* :mod:`steerloop.scoring.protocol` — :class:`Scorer`, :class:`AsyncScorer`,
  :class:`ScoreResult`, :class:`ScorerFailure` and the failure reasons;
* :mod:`steerloop.scoring.callables` — :class:`CallableScorer`;
* :mod:`steerloop.scoring.composite` — :class:`CompositeScorer` (concurrency, timeouts,
  fail-open validation).

Examples
--------
>>> from steerloop.scoring.base import CallableScorer, CompositeScorer
>>> composite = CompositeScorer([CallableScorer(lambda r: 0.25, "brevity")],
...                             objectives=["brevity"])
>>> composite.score("response").scores
{'brevity': 0.25}
"""

from steerloop.scoring.callables import CallableScorer
from steerloop.scoring.composite import CompositeScorer
from steerloop.scoring.protocol import (
    AsyncScorer,
    FailureReason,
    Scorer,
    ScoreResult,
    ScorerFailure,
)
from steerloop.scoring.text import extract_code, response_text

__all__ = [
    "AsyncScorer",
    "CallableScorer",
    "CompositeScorer",
    "FailureReason",
    "ScoreResult",
    "Scorer",
    "ScorerFailure",
    "extract_code",
    "response_text",
]
