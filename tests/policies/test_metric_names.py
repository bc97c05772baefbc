"""The diagnostics namespace lives in the policies layer; the controller fills it in."""

from __future__ import annotations

import steerloop.controller.diagnostics as controller_diagnostics
from steerloop.policies import metrics


def test_the_controller_uses_the_policies_value_type() -> None:
    assert controller_diagnostics.DiagnosticValue is metrics.DiagnosticValue


def test_names_per_objective_and_pair() -> None:
    kinds = metrics.metric_kinds(["a", "b", "c"])
    per_objective = {name for name in kinds if name.rsplit(".", 1)[-1] in "abc"}
    pairs = {name for name in kinds if name.startswith("interference.") and name.count(".") == 2}
    assert len(pairs) == 6 and "interference.a.a" not in kinds
    assert len(per_objective - pairs) == 3 * len(metrics.OBJECTIVE_METRICS)
    categorical = set(metrics.CATEGORICAL_VALUES) | set(metrics.STRATEGY_METRICS)
    assert set(metrics.NUMERIC_METRICS) | categorical == set(metrics.metric_kinds([]))
    assert {kinds[name] for name in categorical} == {"category"}
    assert {kinds[name] for name in metrics.NUMERIC_METRICS} == {"number"}
