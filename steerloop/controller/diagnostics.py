"""The diagnostics namespace: the names a session reports and policy conditions read.

A session's :class:`~steerloop.controller.session.Decision` carries ``diagnostics``, a flat
mapping from these names to a float or a string. Missing or not-yet-estimated values are
``None`` (a condition on a ``None`` metric is false). Policies are validated against
:func:`metric_kinds`, so a typo in a rule is a load-time error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = [
    "CATEGORICAL_VALUES",
    "DiagnosticValue",
    "Diagnostics",
    "MetricKind",
    "metric_kinds",
]

DiagnosticValue = float | str | None
Diagnostics = Mapping[str, DiagnosticValue]
MetricKind = Literal["number", "category"]

#: Allowed values of the categorical metrics (``None`` aside). ``strategy`` takes strategy names.
CATEGORICAL_VALUES: dict[str, tuple[str, ...]] = {
    "drift.regime": ("exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"),
    "severity.phase": ("subcritical", "supercritical", "unknown"),
    "mode": ("direct", "sequential"),
}

_NUMERIC_GLOBAL = (
    "step",
    "drift.rate",
    "drift.max_real",
    "drift.r2",
    "interference.min",
    "severity.value",
    "severity.alpha",
    "severity.beta",
    "severity.gamma",
    "severity.margin",
    "severity.first_passage",
    "errors.scorer",
    "errors.rule",
)


def metric_kinds(objectives: Sequence[str]) -> dict[str, MetricKind]:
    """Every diagnostics name for these objectives, with its kind.

    Examples
    --------
    >>> kinds = metric_kinds(["security", "efficiency"])
    >>> kinds["objective.security"], kinds["drift.regime"]
    ('number', 'category')
    >>> "interference.efficiency.security" in kinds
    True
    """
    kinds: dict[str, MetricKind] = dict.fromkeys(_NUMERIC_GLOBAL, "number")
    kinds["strategy"] = "category"
    for name in CATEGORICAL_VALUES:
        kinds[name] = "category"
    for name in objectives:
        kinds[f"objective.{name}"] = "number"
        kinds[f"score.{name}"] = "number"
        kinds[f"drift.equilibrium.{name}"] = "number"
    for first in objectives:
        for second in objectives:
            if first != second:
                kinds[f"interference.{first}.{second}"] = "number"
    return kinds
