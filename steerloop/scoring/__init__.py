"""Scorers: turn an LLM response into objective scores in [0, 1].

* :mod:`steerloop.scoring.protocol` — the :class:`Scorer` protocol, :class:`ScoreResult`
  and :class:`ScorerFailure`;
* :mod:`steerloop.scoring.callables` — :class:`CallableScorer` (your own function);
* :mod:`steerloop.scoring.composite` — the fail-open :class:`CompositeScorer` (bounded
  concurrency, per-scorer timeouts; failures become *missing* values plus counted
  failures); :mod:`steerloop.scoring.base` re-exports these three;
* :mod:`steerloop.scoring.text` — response text and code extraction;
* :mod:`steerloop.scoring.code` — ``SecurityScorer`` (:mod:`.security`, bandit),
  ``FunctionalityScorer`` (:mod:`.functionality`, sandboxed tests), ``EfficiencyScorer``
  (:mod:`.efficiency`, measured runtime or a static proxy); extra ``code``;
* :mod:`steerloop.scoring.sandbox` — the confined processes the code scorers run code in,
  and the verdict the code cannot forge;
* :mod:`steerloop.scoring.tasks` — ``CodeTask`` (HumanEval records or assert lists);
* :mod:`steerloop.scoring.judge` — ``JudgeScorer``, an LLM judge over any chat model.

Nothing in this package logs; the telemetry layer reports failures.
"""

from steerloop.scoring import base as _base
from steerloop.scoring.base import *  # noqa: F403 - the package exports base's names

__all__ = list(_base.__all__)
