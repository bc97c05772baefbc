"""The diagnostics namespace lives in the policies layer; the controller re-exports it."""

from __future__ import annotations

import steerloop.controller.diagnostics as controller_diagnostics
from steerloop.policies import metrics


def test_controller_re_exports_the_same_objects() -> None:
    for name in ("CATEGORICAL_VALUES", "DiagnosticValue", "Diagnostics", "MetricKind"):
        assert getattr(controller_diagnostics, name) is getattr(metrics, name)
    assert controller_diagnostics.metric_kinds is metrics.metric_kinds


def test_names_per_objective_and_pair() -> None:
    kinds = metrics.metric_kinds(["a", "b", "c"])
    per_objective = {name for name in kinds if name.rsplit(".", 1)[-1] in "abc"}
    pairs = {name for name in kinds if name.startswith("interference.") and name.count(".") == 2}
    assert len(pairs) == 6 and "interference.a.a" not in kinds
    assert len(per_objective - pairs) == 3 * len(metrics.OBJECTIVE_METRICS)
    assert set(metrics.NUMERIC_METRICS) | set(metrics.CATEGORICAL_VALUES) | {"strategy"} == (
        set(metrics.metric_kinds([]))
    )
    assert {kinds[name] for name in metrics.CATEGORICAL_VALUES} == {"category"}
