"""Scorers: turn an LLM response into objective scores in [0, 1].

* :mod:`steerloop.scoring.base` — the :class:`Scorer` protocol, :class:`CallableScorer` and
  the fail-open :class:`CompositeScorer` (per-scorer timeouts; failures become *missing*
  values plus counted :class:`ScorerFailure` records);
* :mod:`steerloop.scoring.text` — response text and code extraction;
* :mod:`steerloop.scoring.code` — ``SecurityScorer`` (bandit), ``FunctionalityScorer``
  (sandboxed tests), ``EfficiencyScorer`` (measured runtime or a static proxy); extra
  ``code``;
* :mod:`steerloop.scoring.sandbox` — the confined process the code scorers run code in;
* :mod:`steerloop.scoring.tasks` — ``CodeTask`` (HumanEval records or assert lists);
* :mod:`steerloop.scoring.judge` — ``JudgeScorer``, an LLM judge over any chat model.

Nothing in this package logs; the telemetry layer reports failures.
"""

from steerloop.scoring.base import (
    AsyncScorer,
    CallableScorer,
    CompositeScorer,
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
