"""The diagnostics namespace: the metric names a session reports and policy conditions read.

Every decision carries ``diagnostics``, a flat mapping from these names to a float, a string
or ``None`` (missing or not estimated yet; a comparison on a missing metric is never true).
Policies are validated against :func:`metric_kinds`, so a typo in a rule is a load-time
error, not a silent no-op. The names are defined here, in the policies layer, because rules
are written against them; the controller fills them in (it imports this module, never the
other way round).

Names (``<a>``, ``<b>`` are objective names; see ``docs/architecture.md`` for what each
estimate is):

* numbers: ``step``, ``objective.<a>`` (filtered), ``score.<a>`` (last raw), ``drift.rate``,
  ``drift.max_real``, ``drift.r2``, ``drift.equilibrium.<a>``, ``interference.min``,
  ``interference.<a>.<b>``, ``severity.value``, ``severity.alpha``, ``severity.beta``,
  ``severity.gamma``, ``severity.margin``, ``severity.first_passage``, ``errors.scorer``,
  ``errors.rule``;
* categories: ``strategy`` (a strategy name), ``mode``, ``drift.regime``,
  ``severity.phase`` (values in :data:`CATEGORICAL_VALUES`).

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
    "DiagnosticValue",
    "Diagnostics",
    "MetricKind",
    "metric_kinds",
]

DiagnosticValue = float | str | None
Diagnostics = Mapping[str, DiagnosticValue]
MetricKind = Literal["number", "category"]

#: Allowed values of the categorical metrics (``None`` aside). ``strategy`` takes strategy names.
CATEGORICAL_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "drift.regime": ("exponential", "oscillatory", "boundary-seeking", "unstable", "unknown"),
    "severity.phase": ("subcritical", "supercritical", "unknown"),
    "mode": ("direct", "sequential"),
}

#: Numeric metrics that exist whatever the objectives are.
NUMERIC_METRICS: Final[tuple[str, ...]] = (
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

#: Prefixes of the numeric metrics that exist once per objective (``objective.security``).
OBJECTIVE_METRICS: Final[tuple[str, ...]] = ("objective", "score", "drift.equilibrium")


def metric_kinds(objectives: Sequence[str]) -> dict[str, MetricKind]:
    """Every diagnostics name for these objectives, with its kind.

    Parameters
    ----------
    objectives
        The policy's objective names, in vector order.

    Returns
    -------
    dict
        Metric name -> ``"number"`` or ``"category"``; pairwise ``interference.<a>.<b>``
        names exist for every ordered pair of distinct objectives.

    Examples
    --------
    >>> kinds = metric_kinds(["security", "efficiency"])
    >>> kinds["objective.security"], kinds["drift.regime"]
    ('number', 'category')
    >>> "interference.efficiency.security" in kinds
    True
    """
    kinds: dict[str, MetricKind] = dict.fromkeys(NUMERIC_METRICS, "number")
    kinds["strategy"] = "category"
    for name in CATEGORICAL_VALUES:
        kinds[name] = "category"
    for name in objectives:
        for prefix in OBJECTIVE_METRICS:
            kinds[f"{prefix}.{name}"] = "number"
    for first in objectives:
        for second in objectives:
            if first != second:
                kinds[f"interference.{first}.{second}"] = "number"
    return kinds
