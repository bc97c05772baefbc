"""The diagnostics namespace: the names a session reports and policy conditions read.

A session's :class:`~steerloop.Decision` carries ``diagnostics``, a flat mapping from these
names to a float or a string. A value that is missing or not yet estimated is ``None`` (a
condition on a ``None`` metric is false). Policies are validated against :func:`metric_kinds`,
so a typo in a rule is a load-time error, not a silent no-op.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = [
    "CATEGORICAL_VALUES",
    "DiagnosticValue",
    "Diagnostics",
    "MetricKind",
    "STRATEGY_METRICS",
    "metric_kinds",
]

DiagnosticValue = float | str | None
Diagnostics = Mapping[str, DiagnosticValue]
MetricKind = Literal["number", "category"]

#: Allowed values of the categorical metrics (``None`` aside); see :data:`STRATEGY_METRICS`.
CATEGORICAL_VALUES: dict[str, tuple[str, ...]] = {
    "drift.regime": ("exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"),
    "severity.phase": ("subcritical", "supercritical", "unknown"),
    "mode": ("direct", "sequential"),
}

#: Categorical metrics whose values are the policy's strategy names.
STRATEGY_METRICS = ("strategy", "plan.strategy")

_NUMERIC_GLOBAL = (
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
    kinds: dict[str, MetricKind] = dict.fromkeys(_NUMERIC_GLOBAL, "number")
    for name in (*STRATEGY_METRICS, *CATEGORICAL_VALUES):
        kinds[name] = "category"
    for name in objectives:
        for prefix in ("objective", "score", "noise", "drift.equilibrium"):
            kinds[f"{prefix}.{name}"] = "number"
    for first in objectives:
        for second in objectives:
            if first != second:
                kinds[f"interference.{first}.{second}"] = "number"
    return kinds
