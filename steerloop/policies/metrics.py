"""The diagnostics namespace: the metric names a session reports and policy conditions read.

Every decision carries ``diagnostics``, a flat mapping from these names to a float, a string
or ``None`` (missing or not estimated yet; a comparison on a missing metric is never true).
Policies are validated against :func:`metric_kinds`, so a typo in a rule is a load-time
error, not a silent no-op. The names are defined here, in the policies layer, because rules
are written against them; the controller fills them in (it imports this module, never the
other way round). ``<o>``, ``<a>``, ``<b>`` are objective names; ``docs/architecture.md``
says what each estimate is.

=============================  ==========================================================
name                           meaning
=============================  ==========================================================
step, strategy, mode           updates seen, strategy of the observed step, direct/sequential
objective.<o>, objective.min   filtered objective state x̂_t, and its minimum
score.<o>                      last raw score (``None`` when missing)
noise.<o>                      measurement-noise variance the filter uses for ``o``
progress.stall                 steps since objective.min last rose by more than 0.001
drift.rate, drift.rate_se      per-step (Euler) rate −max Re λ(Â) and its standard error
drift.max_real, drift.regime   max Re λ(Â); exponential/oscillatory/boundary-seeking/...
drift.r2, drift.samples        in-sample one-step R²; effective transitions behind Â
drift.equilibrium.<o>          predicted equilibrium −Â⁻¹b̂
interference.min, .<a>.<b>     most negative / each increment correlation
severity.*                     value, phase, alpha, beta, gamma, margin, margin_se,
                               first_passage (expected steps to the threshold)
plan.*                         strategy, value, margin, horizon of the ``plan`` action
pool.sessions, .transitions    sessions and effective transitions in the fleet pool
errors.scorer, errors.rule     scorer failures and rule errors so far
scores.unknown                 score keys that named no objective, so far
=============================  ==========================================================

Examples
--------
>>> kinds = metric_kinds(["security", "efficiency"])
>>> kinds["drift.rate"], kinds["severity.phase"], kinds["interference.security.efficiency"]
('number', 'category', 'number')
>>> CATEGORICAL_VALUES["mode"]
('direct', 'sequential')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

__all__ = [
    "CATEGORICAL_VALUES",
    "NUMERIC_METRICS",
    "OBJECTIVE_METRICS",
    "STRATEGY_METRICS",
    "DiagnosticValue",
    "Diagnostics",
    "MetricKind",
    "metric_kinds",
]

DiagnosticValue = float | str | None
Diagnostics = Mapping[str, DiagnosticValue]
MetricKind = Literal["number", "category"]

#: Allowed values of the categorical metrics (``None`` aside); see :data:`STRATEGY_METRICS`.
CATEGORICAL_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "drift.regime": ("exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"),
    "severity.phase": ("subcritical", "supercritical", "unknown"),
    "mode": ("direct", "sequential"),
}

#: Categorical metrics whose values are the policy's strategy names.
STRATEGY_METRICS: Final[tuple[str, ...]] = ("strategy", "plan.strategy")

#: Numeric metrics that exist whatever the objectives are.
NUMERIC_METRICS: Final[tuple[str, ...]] = (
    "step",
    "objective.min",
    "progress.stall",
    "drift.rate",
    "drift.rate_se",
    "drift.max_real",
    "drift.r2",
    "drift.samples",
    "interference.min",
    "severity.value",
    "severity.alpha",
    "severity.beta",
    "severity.gamma",
    "severity.margin",
    "severity.margin_se",
    "severity.first_passage",
    "plan.value",
    "plan.margin",
    "plan.horizon",
    "pool.sessions",
    "pool.transitions",
    "errors.scorer",
    "errors.rule",
    "scores.unknown",
)

#: Prefixes of the numeric metrics that exist once per objective (``<prefix>.<objective>``).
OBJECTIVE_METRICS: Final[tuple[str, ...]] = ("objective", "score", "noise", "drift.equilibrium")


def metric_kinds(objectives: Sequence[str]) -> dict[str, MetricKind]:
    """Every diagnostics name for these objectives, with its kind.

    Examples
    --------
    >>> kinds = metric_kinds(["security", "efficiency"])
    >>> kinds["objective.security"], kinds["drift.regime"], kinds["plan.strategy"]
    ('number', 'category', 'category')
    >>> "interference.efficiency.security" in kinds
    True
    """
    kinds: dict[str, MetricKind] = dict.fromkeys(NUMERIC_METRICS, "number")
    for name in (*STRATEGY_METRICS, *CATEGORICAL_VALUES):
        kinds[name] = "category"
    for name in objectives:
        for prefix in OBJECTIVE_METRICS:
            kinds[f"{prefix}.{name}"] = "number"
    for first in objectives:
        for second in objectives:
            if first != second:
                kinds[f"interference.{first}.{second}"] = "number"
    return kinds
