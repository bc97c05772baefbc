"""The shipped presets and the JSON Schema of the policy format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from steerloop.policies import (
    Policy,
    available_presets,
    compile_condition,
    load_policy,
    load_preset,
    policy_json_schema,
)
from steerloop.policies.metrics import DiagnosticValue

PRESETS = Path(__file__).parents[2] / "steerloop" / "policies" / "presets"
SCHEMA_FILE = PRESETS / "policy.schema.json"
CORPUS = Path(__file__).parent / "corpus"
DESIGN_EXAMPLE = Path(__file__).parent / "data" / "design_example.yaml"
PAPER_STRATEGIES = {
    "efficiency_focused",
    "security_focused",
    "feature_focused",
    "adaptive_integration",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _raw(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _fire(policy: Policy, values: dict[str, DiagnosticValue]) -> str | None:
    """Name of the first rule (by priority) whose condition holds, as the engine picks it."""
    for rule in policy.rules_by_priority:
        if compile_condition(rule.when).evaluate(values):
            return rule.name
    return None


def test_available_presets() -> None:
    assert available_presets() == ["paper", "predictive"]


@pytest.mark.parametrize(("name", "dwell"), [("paper", 3), ("predictive", 1)])
def test_preset_loads_with_the_four_paper_strategies(name: str, dwell: int) -> None:
    policy = load_preset(name)
    assert policy.name == name
    assert policy.objectives == ["security", "efficiency", "functionality"]
    assert set(policy.strategies) == PAPER_STRATEGIES
    assert policy.initial == "adaptive_integration"
    assert policy.switching.min_dwell == dwell
    assert policy.severity.threshold == 0.7
    source = policy.severity.source
    assert source is not None and (source.objective, source.invert) == ("security", True)
    assert (policy.estimation.forgetting, policy.estimation.warmup) == (0.98, 5)
    for strategy_name, strategy in policy.strategies.items():
        text = strategy.render(list(policy.objectives), None)
        assert len(text.split()) > 40, f"{strategy_name}: a real prompt is a few sentences"
        assert text.startswith("You are")
        assert "{" not in text
    balanced = policy.strategies["adaptive_integration"]
    assert "security, efficiency, functionality" in balanced.render(list(policy.objectives), None)
    assert len(set(balanced.emphasis.values())) == 1 and len(balanced.emphasis) == 3
    for focused, objective in [
        ("security_focused", "security"),
        ("efficiency_focused", "efficiency"),
        ("feature_focused", "functionality"),
    ]:
        emphasis = policy.strategies[focused].emphasis
        assert max(emphasis, key=emphasis.__getitem__) == objective


def test_presets_are_fresh_objects_each_time() -> None:
    first, second = load_preset("paper"), load_preset("paper")
    assert first == second
    assert first is not second
    assert first.strategies is not second.strategies
    assert first.rules is not second.rules


@pytest.mark.parametrize("name", ["paper", "predictive"])
def test_preset_file_loads_by_path_and_has_the_schema_modeline(name: str) -> None:
    path = PRESETS / f"{name}.yaml"
    assert load_policy(path) == load_preset(name)
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=policy.schema.json"


def test_paper_rules_and_priorities() -> None:
    policy = load_preset("paper")
    rules = {rule.name: rule for rule in policy.rules}
    ordered = [rule.name for rule in policy.rules_by_priority]
    assert ordered[0] == "runaway-severity"
    assert rules["runaway-severity"].priority == max(rule.priority for rule in policy.rules)
    assert rules["runaway-severity"].then.switch_to == "security_focused"
    sequential = rules["strong-interference"].then.sequential
    assert sequential is not None
    assert (sequential.order, sequential.target, sequential.patience) == ("auto", 0.8, 4)
    assert rules["overshoot"].then.switch_to == "adaptive_integration"
    assert rules["oscillation"].then.switch_to == "adaptive_integration"
    assert rules["security-boundary"].then.switch_to == "security_focused"
    assert rules["functionality-boundary"].then.switch_to == "feature_focused"
    assert rules["efficiency-boundary"].then.switch_to == "efficiency_focused"


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"severity.phase": "supercritical"}, "runaway-severity"),
        ({"severity.value": 0.75, "interference.min": -0.3}, "runaway-severity"),
        (
            {
                "severity.value": 0.7,
                "interference.min": -0.21,
                "objective.min": 0.5,
                "progress.stall": 3.0,
            },
            "strong-interference",
        ),
        # Interference alone no longer starts sequential mode: the worst objective must be
        # below target and have stopped improving.
        ({"interference.min": -0.4, "objective.min": 0.5, "progress.stall": 0.0}, None),
        ({"interference.min": -0.4, "objective.min": 0.85, "progress.stall": 9.0}, None),
        ({"interference.min": -0.4}, None),
        ({"interference.min": -0.15, "drift.rate": 1.6}, "overshoot"),
        ({"drift.rate": 1.2, "drift.regime": "oscillatory"}, "oscillation"),
        ({"drift.equilibrium.security": 0.05}, "security-boundary"),
        (
            {"drift.regime": "boundary-seeking", "objective.functionality": 0.3},
            "functionality-boundary",
        ),
        ({"drift.equilibrium.efficiency": 0.1}, "efficiency-boundary"),
        (
            {
                "drift.equilibrium.efficiency": 0.1,
                "drift.equilibrium.security": 0.1,
            },
            "security-boundary",
        ),
        (
            {
                "severity.phase": "subcritical",
                "severity.value": 0.2,
                "interference.min": -0.05,
                "drift.rate": 0.6,
                "drift.regime": "exponential",
                "drift.equilibrium.security": 0.8,
                "drift.equilibrium.efficiency": 0.7,
                "drift.equilibrium.functionality": 0.9,
                "objective.security": 0.7,
            },
            None,
        ),
    ],
)
def test_paper_rules_fire_on_their_conditions(
    values: dict[str, DiagnosticValue], rule: str | None
) -> None:
    assert _fire(load_preset("paper"), values) == rule


def test_predictive_preset_prefers_severity_then_plan() -> None:
    policy = load_preset("predictive")
    names = [rule.name for rule in policy.rules_by_priority]
    assert names == ["runaway-severity", "secure-until-safe", "plan"]
    plan = policy.rules_by_priority[2].then.plan
    assert plan is not None and plan.utility == "min" and plan.margin == 0.01
    assert policy.fleet.pool
    assert _fire(policy, {"step": 6.0}) == "plan"
    supercritical: dict[str, DiagnosticValue] = {"step": 6.0, "severity.phase": "supercritical"}
    assert _fire(policy, supercritical | {"severity.value": 0.6}) == "runaway-severity"
    assert _fire(policy, {"step": 6.0, "severity.value": 0.75}) == "runaway-severity"
    # A supercritical estimate alone no longer pins a loop whose severity has fallen.
    assert _fire(policy, supercritical | {"severity.value": 0.3}) == "plan"
    assert _fire(policy, supercritical) == "plan"
    # Hysteresis: on security_focused the plan waits until severity is back under 0.6.
    secured: dict[str, DiagnosticValue] = {"step": 6.0, "strategy": "security_focused"}
    assert _fire(policy, secured | {"severity.value": 0.65}) == "secure-until-safe"
    assert _fire(policy, secured | {"severity.value": 0.55}) == "plan"
    assert _fire(policy, {"step": 6.0, "strategy": "feature_focused", "severity.value": 0.65}) == (
        "plan"
    )


@pytest.mark.parametrize(
    "path",
    [PRESETS / "paper.yaml", PRESETS / "predictive.yaml", DESIGN_EXAMPLE],
    ids=lambda path: path.name,
)
def test_json_schema_accepts_valid_policies(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    validator.validate(_raw(path))


@pytest.mark.parametrize(
    "name",
    [
        "unknown_field.yaml",
        "unknown_top_level_field.yaml",
        "wrong_type_prompt.yaml",
        "wrong_type_rules.yaml",
        "missing_initial.yaml",
        "missing_rule_then.yaml",
        "negative_emphasis.yaml",
        "integer_out_of_range.yaml",
    ],
)
def test_json_schema_rejects_structural_errors(
    validator: jsonschema.Draft202012Validator, name: str
) -> None:
    assert not validator.is_valid(_raw(CORPUS / name))


def test_json_schema_metadata() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:steerloop:policy:1"
    assert schema["title"] == "steerloop policy"
    assert schema["additionalProperties"] is False
    assert {"objectives", "strategies", "initial"} <= set(schema["required"])
    condition = schema["$defs"]["Condition"]["properties"]
    assert {"not", "all", "any", "metric"} <= set(condition)  # aliases, as written in YAML
    assert "from" in schema["$defs"]["SeverityConfig"]["properties"]


def test_committed_schema_file_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == policy_json_schema(), (
        "regenerate it: steerloop schema --output steerloop/policies/presets/policy.schema.json"
    )
