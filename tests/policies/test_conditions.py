"""Condition compilation: comparison semantics, missing values, explanations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerloop.policies import Condition, compile_condition, load_preset
from steerloop.policies.conditions import CompiledCondition, format_value
from steerloop.policies.metrics import DiagnosticValue

NAN = float("nan")


def cond(data: dict[str, Any]) -> CompiledCondition:
    return compile_condition(Condition.model_validate(data))


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"above": 0.5}, 0.6, True),
        ({"above": 0.5}, 0.5, False),  # strictly greater
        ({"above": 0.5}, 0.4, False),
        ({"below": -0.15}, -0.21, True),
        ({"below": -0.15}, -0.15, False),  # strictly less
        ({"below": -0.15}, 0.0, False),
        ({"between": [0.2, 0.8]}, 0.2, True),  # inclusive
        ({"between": [0.2, 0.8]}, 0.8, True),
        ({"between": [0.2, 0.8]}, 0.5, True),
        ({"between": [0.2, 0.8]}, 0.81, False),
        ({"between": [0.2, 0.8]}, 0.19, False),
        ({"equals": 5}, 5.0, True),
        ({"equals": 5}, 5.5, False),
    ],
)
def test_numeric_comparisons(spec: dict[str, Any], value: float, expected: bool) -> None:
    compiled = cond({"metric": "drift.rate", **spec})
    assert compiled.evaluate({"drift.rate": value}) is expected
    assert compiled({"drift.rate": value}) is expected
    assert compiled.truth({"drift.rate": value}) is expected


def test_category_equality_is_exact() -> None:
    compiled = cond({"metric": "drift.regime", "equals": "oscillatory"})
    assert compiled.evaluate({"drift.regime": "oscillatory"}) is True
    assert compiled.evaluate({"drift.regime": "Oscillatory"}) is False
    assert compiled.evaluate({"drift.regime": "exponential"}) is False
    assert compiled.truth({"drift.regime": "exponential"}) is False
    assert compiled.truth({"drift.regime": None}) is None


@pytest.mark.parametrize("missing", [{}, {"drift.rate": None}, {"drift.rate": NAN}])
@pytest.mark.parametrize(
    "spec", [{"above": 1.5}, {"below": 1.5}, {"between": [0, 2]}, {"equals": 1.0}]
)
def test_missing_or_nan_values_are_unknown_and_never_fire(
    spec: dict[str, Any], missing: dict[str, DiagnosticValue]
) -> None:
    comparison = cond({"metric": "drift.rate", **spec})
    assert comparison.evaluate(missing) is False
    assert comparison.truth(missing) is None
    # Kleene logic: "not unknown" is still unknown, so a negated rule does not fire either.
    negated = cond({"not": {"metric": "drift.rate", **spec}})
    assert negated.evaluate(missing) is False
    assert negated.truth(missing) is None


def test_three_valued_combinators() -> None:
    known_true = {"metric": "severity.value", "above": 0.5}
    unknown = {"metric": "drift.rate", "above": 1.5}
    known_false = {"metric": "severity.value", "above": 0.9}
    values: dict[str, DiagnosticValue] = {"severity.value": 0.8, "drift.rate": None}
    assert cond({"any": [unknown, known_true]}).truth(values) is True
    assert cond({"any": [unknown, known_false]}).truth(values) is None
    assert cond({"all": [unknown, known_false]}).truth(values) is False
    assert cond({"all": [unknown, known_true]}).truth(values) is None
    assert cond({"not": {"all": [unknown, known_false]}}).evaluate(values) is True
    assert cond({"not": {"any": [unknown, known_true]}}).truth(values) is False


def test_numpy_values_give_python_bools() -> None:
    compiled = cond({"metric": "interference.min", "below": -0.15})
    result = compiled.evaluate({"interference.min": np.float64(-0.2)})
    assert result is True
    assert cond({"metric": "step", "between": [1, 9]}).evaluate({"step": np.float64(3)}) is True


def test_a_string_where_a_number_belongs_is_unknown_not_an_error() -> None:
    compiled = cond({"metric": "drift.rate", "above": 1.0})
    assert compiled.truth({"drift.rate": "fast"}) is None
    text = cond({"metric": "drift.regime", "equals": "oscillatory"})
    assert text.truth({"drift.regime": 1.0}) is None


def test_metrics_lists_every_metric_read() -> None:
    compiled = cond(
        {
            "any": [
                {"metric": "severity.phase", "equals": "supercritical"},
                {"all": [{"metric": "severity.value", "above": 0.7}]},
                {"not": {"metric": "drift.rate", "below": 1}},
            ]
        }
    )
    assert compiled.metrics == frozenset({"severity.phase", "severity.value", "drift.rate"})


@pytest.mark.parametrize(
    ("spec", "values", "text"),
    [
        (
            {"metric": "interference.min", "below": -0.15},
            {"interference.min": -0.21},
            "interference.min = -0.21 < -0.15",
        ),
        (
            {
                "any": [
                    {"metric": "severity.phase", "equals": "supercritical"},
                    {"metric": "severity.value", "above": 0.7},
                ]
            },
            {"severity.phase": "supercritical", "severity.value": 0.5},
            "severity.phase = supercritical",
        ),
        (
            {
                "any": [
                    {"metric": "severity.phase", "equals": "supercritical"},
                    {"metric": "severity.value", "above": 0.7},
                ]
            },
            {"severity.phase": "supercritical", "severity.value": 0.8123},
            "severity.phase = supercritical or severity.value = 0.8123 > 0.7",
        ),
        (
            {
                "all": [
                    {"metric": "drift.regime", "equals": "boundary-seeking"},
                    {"metric": "objective.security", "below": 0.4},
                ]
            },
            {"drift.regime": "boundary-seeking", "objective.security": 0.31},
            "drift.regime = boundary-seeking and objective.security = 0.31 < 0.4",
        ),
        (
            {"not": {"metric": "drift.rate", "above": 1.5}},
            {"drift.rate": 0.8},
            "drift.rate = 0.8, not > 1.5",
        ),
        (
            {"metric": "drift.r2", "between": [0.5, 1]},
            {"drift.r2": 0.74},
            "drift.r2 = 0.74 in [0.5, 1]",
        ),
        ({"metric": "step", "equals": 12}, {"step": 12.0}, "step = 12"),
        (
            {
                "all": [
                    {"metric": "step", "above": 3},
                    {"any": [{"metric": "a.b", "above": 1}, {"metric": "drift.rate", "above": 1}]},
                ]
            },
            {"step": 4, "drift.rate": 2.0},
            "step = 4 > 3 and drift.rate = 2 > 1",
        ),
        (
            {
                "all": [
                    {"metric": "step", "above": 3},
                    {
                        "any": [
                            {"metric": "drift.r2", "above": 1},
                            {"metric": "drift.rate", "above": 1},
                        ]
                    },
                ]
            },
            {"step": 4, "drift.rate": 2.0, "drift.r2": 3.0},
            "step = 4 > 3 and (drift.r2 = 3 > 1 or drift.rate = 2 > 1)",
        ),
    ],
)
def test_explanations_give_the_numbers_that_fired(
    spec: dict[str, Any], values: dict[str, DiagnosticValue], text: str
) -> None:
    compiled = cond(spec)
    assert compiled.evaluate(values) is True
    assert compiled.explain(values) == text


def test_explanations_of_conditions_that_do_not_hold() -> None:
    compiled = cond({"metric": "drift.rate", "above": 1.5})
    assert compiled.explain({"drift.rate": 0.8}) == "drift.rate = 0.8, not > 1.5"
    assert compiled.explain({}) == "drift.rate is missing"
    assert compiled.explain({"drift.rate": NAN}) == "drift.rate is NaN"
    phase = cond({"metric": "severity.phase", "equals": "supercritical"})
    assert phase.explain({"severity.phase": "subcritical"}) == (
        "severity.phase = subcritical, not supercritical"
    )
    both = cond({"all": [{"metric": "step", "above": 3}, {"metric": "drift.rate", "below": 1}]})
    assert both.explain({"step": 5, "drift.rate": 2}) == "drift.rate = 2, not < 1"


def test_format_value() -> None:
    assert format_value(-0.2134567) == "-0.2135"
    assert format_value(3.0) == "3"
    assert format_value(1e-7) == "1e-07"
    assert format_value(math.inf) == "inf"
    assert format_value(True) == "true"
    assert format_value(None) == "missing"


def test_every_preset_rule_compiles_and_stays_quiet_without_data() -> None:
    for name in ("paper", "predictive"):
        for rule in load_preset(name).rules:
            compiled = compile_condition(rule.when)
            assert compiled.evaluate({}) is False, rule.name
            assert compiled.explain({})


def test_repeated_evaluation_is_cheap_and_stable() -> None:
    compiled = cond(
        {
            "any": [
                {"metric": "severity.phase", "equals": "supercritical"},
                {"metric": "severity.value", "above": 0.7},
            ]
        }
    )
    evaluate = compiled.evaluate
    values: dict[str, DiagnosticValue] = {"severity.phase": "subcritical", "severity.value": 0.1}
    assert not any(evaluate(values) for _ in range(10_000))
    values["severity.value"] = 0.9
    assert all(evaluate(values) for _ in range(10_000))


# ----------------------------------------------------------------------------- property test

METRICS = ("drift.rate", "severity.value", "interference.min")
VALUES = st.one_of(st.none(), st.just(NAN), st.floats(-2, 2, allow_nan=False))


def _comparisons() -> st.SearchStrategy[dict[str, Any]]:
    threshold = st.floats(-2, 2, allow_nan=False)
    return st.builds(
        lambda metric, kind, a, b: {
            "metric": metric,
            kind: sorted([a, b]) if kind == "between" else a,
        },
        st.sampled_from(METRICS),
        st.sampled_from(["above", "below", "between", "equals"]),
        threshold,
        threshold,
    )


CONDITIONS = st.recursive(
    _comparisons(),
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=8,
)


def _reference(spec: dict[str, Any], values: dict[str, DiagnosticValue]) -> bool | None:
    """A slow, obviously correct three-valued (Kleene) interpreter."""
    if "metric" in spec:
        value = values.get(spec["metric"])
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        assert isinstance(value, float)
        if "above" in spec:
            return bool(value > spec["above"])
        if "below" in spec:
            return bool(value < spec["below"])
        if "between" in spec:
            return bool(spec["between"][0] <= value <= spec["between"][1])
        return bool(value == spec["equals"])
    if "not" in spec:
        inner = _reference(spec["not"], values)
        return None if inner is None else not inner
    results = [_reference(child, values) for child in spec.get("all", spec.get("any", []))]
    if "all" in spec:
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


@settings(max_examples=300, deadline=None)
@given(spec=CONDITIONS, a=VALUES, b=VALUES, c=VALUES)
def test_compiled_conditions_match_a_reference_interpreter(
    spec: dict[str, Any], a: float | None, b: float | None, c: float | None
) -> None:
    values: dict[str, DiagnosticValue] = dict(zip(METRICS, (a, b, c), strict=True))
    compiled = cond(spec)
    expected = _reference(spec, values)
    assert compiled.truth(values) is expected
    assert compiled.evaluate(values) is (expected is True)
    assert isinstance(compiled.explain(values), str)
