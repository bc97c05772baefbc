"""The JSON Schema of ``steerloop schema`` rejects what ``steerloop validate`` rejects.

Every bad policy of two corpora (the files in ``corpus/`` and the inline cases below) goes
through both the loader and ``jsonschema``. The loader rejects all of them; the schema must
reject each one too, except for the problems JSON Schema cannot express, which are listed
(and checked to be accepted by the schema, so the list stays honest): cross-references
between fields, and problems of the YAML file itself rather than of its JSON data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from texts import HEAD

from steerloop.errors import PolicyError
from steerloop.policies import load_policy, parse_policy, policy_json_schema

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
PRESETS = HERE.parents[1] / "steerloop" / "policies" / "presets"

#: Problems of the YAML text, not of the JSON data it stands for (or not JSON at all).
YAML_LEVEL = {
    "complex_key.yaml": "a key that is a mapping",
    "control_character.yaml": "a character YAML forbids",
    "deep_nesting_block.yaml": "a reading limit (nesting depth)",
    "duplicate_key_nested.yaml": "duplicate keys",
    "duplicate_key_top.yaml": "duplicate keys",
    "huge_integer_literal.yaml": "a reading limit (integer digits)",
    "merge_not_mapping.yaml": "a YAML merge key",
    "multiple_documents.yaml": "two YAML documents",
    "nan_threshold.yaml": "NaN is not a JSON value",
    "non_utf8.yaml": "encoding",
    "python_name_tag.yaml": "a YAML tag",
    "python_object_tag.yaml": "a YAML tag",
    "tabs.yaml": "YAML syntax",
    "unclosed_flow.yaml": "YAML syntax",
    "undefined_alias.yaml": "YAML syntax",
    "utf16.yaml": "encoding",
}

#: Rules that span fields: JSON Schema cannot state them.
CROSS_REFERENCES = {
    "between_reversed.yaml": "between: [low, high] with low <= high",
    "category_above.yaml": "a metric's kind",
    "category_unknown_value.yaml": "a metric's values",
    "duplicate_rule_names.yaml": "unique rule names",
    "number_equals_string.yaml": "a metric's kind",
    "sequential_unknown_objective.yaml": "objective names",
    "severity_unknown_objective.yaml": "objective names",
    "unknown_metric.yaml": "metric names",
    "unknown_objective_emphasis.yaml": "objective names",
    "unknown_strategy_initial.yaml": "strategy names",
    "unknown_strategy_switch_to.yaml": "strategy names",
    "inline:prompt_too_long_rendered": "rendered size depends on the objectives",
    "inline:sequential_cannot_focus": "emphasis across strategies",
}


def _rule(when: str = "{metric: drift.rate, above: 1.5}", then: str = "{hold: true}") -> str:
    return f"rules:\n  - {{name: r, when: {when}, then: {then}}}\n"


#: name -> a bad policy (each breaks one rule).
INLINE: dict[str, str] = {
    "no_action": HEAD + _rule(then="{}"),
    "two_actions": HEAD + _rule(then="{switch_to: fast, alert: {message: m}}"),
    "hold_false": HEAD + _rule(then="{hold: false}"),
    "two_comparators": HEAD + _rule(when="{metric: drift.rate, above: 1, between: [0, 2]}"),
    "no_comparator": HEAD + _rule(when="{metric: drift.rate}"),
    "metric_and_combinator": HEAD
    + _rule(when="{metric: drift.rate, above: 1, not: {metric: step, above: 1}}"),
    "comparator_without_metric": HEAD + _rule(when="{above: 1}"),
    "two_combinators": HEAD
    + _rule(when="{all: [{metric: step, above: 1}], any: [{metric: step, above: 2}]}"),
    "empty_all": HEAD + _rule(when="{all: []}"),
    "empty_condition": HEAD + _rule(when="{}"),
    "between_three_numbers": HEAD + _rule(when="{metric: step, between: [1, 2, 3]}"),
    "severity_two_sources": HEAD + "severity: {from: {objective: security, score: s}}\n",
    "severity_no_source": HEAD + "severity: {from: {invert: true}}\n",
    "prompt_unknown_placeholder": HEAD.replace("Make the code faster.", "'{user} code'"),
    "prompt_format_spec": HEAD.replace("Make the code faster.", "'{objectives:>200000000}'"),
    "prompt_conversion": HEAD.replace("Make the code faster.", "'{focus!r}'"),
    "prompt_positional": HEAD.replace("Make the code faster.", "'{0}'"),
    "prompt_unbalanced": HEAD.replace("Make the code faster.", "'a } b'"),
    "prompt_empty": HEAD.replace("Make the code faster.", "''"),
    "duplicate_objectives": HEAD.replace("[security, efficiency]", "[security, security]"),
    "objective_name_space": HEAD.replace("[security, efficiency]", "[security, 'effi ciency']"),
    "no_objectives": HEAD.replace("[security, efficiency]", "[]"),
    "too_many_objectives": HEAD.replace(
        "[security, efficiency]",
        "[security, efficiency, " + ", ".join(f"o{i}" for i in range(63)) + "]",
    ),
    "no_strategies": "objectives: [a]\nstrategies: {}\ninitial: s\n",
    "bad_rule_name": HEAD + _rule().replace("name: r", "name: 'a rule'"),
    "huge_priority": HEAD + _rule().replace("name: r", "name: r, priority: 1000000000000"),
    "forgetting_above_one": HEAD + "estimation: {forgetting: 1.5}\n",
    "warmup_one": HEAD + "estimation: {warmup: 1}\n",
    "threshold_one": HEAD + "severity: {threshold: 1.0}\n",
    "version_two": "version: 2\n" + HEAD,
    "sequential_target_zero": HEAD + _rule(then="{sequential: {target: 0}}"),
    "alert_severity": HEAD + _rule(then="{alert: {severity: loud}}"),
    "best_predicted_utility": HEAD + _rule(then="{best_predicted: {utility: max}}"),
    "scorer_not_dotted": HEAD + "scorers: [{use: SecurityScorer}]\n",
    "name_too_long": HEAD.replace("initial: secure", "initial: secure\nname: " + "n" * 201),
    "prompt_too_long_rendered": "objectives: ["
    + ", ".join(f"objective_{i:02d}_" + "n" * 80 for i in range(64))
    + "]\nstrategies: {s: {prompt: '"
    + "{objectives}" * 1000
    + "'}}\ninitial: s\n",
    "sequential_cannot_focus": HEAD.replace("emphasis: {efficiency: 1.0}", "emphasis: {}")
    + _rule(then="{sequential: {}}"),
}

#: Valid policies, some at the edges of the rules above: both must accept them.
VALID_INLINE: dict[str, str] = {
    "null_counts_as_absent": HEAD
    + _rule(
        when="{metric: drift.rate, above: 1.5, below: null}", then="{switch_to: null, hold: true}"
    ),
    "combinator": HEAD + _rule(when="{not: {all: [{metric: step, above: 1}]}}"),
    "braces_and_placeholders": HEAD.replace(
        "Make the code faster.", "'Improve {focus} of {objectives}; use {{braces}}.'"
    ),
    "severity_score": HEAD + "severity: {from: {score: severity}}\n",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _corpus() -> list[tuple[str, str | bytes]]:
    files = [(path.name, path.read_bytes()) for path in sorted(CORPUS.glob("*.yaml"))]
    return [*files, *((f"inline:{name}", text) for name, text in INLINE.items())]


def test_the_lists_name_real_cases() -> None:
    names = {name for name, _ in _corpus()}
    assert set(YAML_LEVEL) <= names
    assert set(CROSS_REFERENCES) <= names
    assert not set(YAML_LEVEL) & set(CROSS_REFERENCES)


@pytest.mark.parametrize(("name", "text"), _corpus(), ids=[name for name, _ in _corpus()])
def test_schema_rejects_what_the_loader_rejects(
    validator: jsonschema.Draft202012Validator, name: str, text: str | bytes
) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text, file=name)
    if name in YAML_LEVEL:
        return
    data: Any = yaml.safe_load(text)
    if name in CROSS_REFERENCES:
        assert validator.is_valid(data), f"{name} is now caught by the schema: move it out"
    else:
        errors = [error.message for error in validator.iter_errors(data)]
        assert errors, f"the JSON Schema accepts {name}, which the loader rejects"


@pytest.mark.parametrize(
    "path",
    [PRESETS / "paper.yaml", PRESETS / "predictive.yaml", HERE / "data" / "design_example.yaml"],
    ids=lambda path: path.name,
)
def test_valid_files_pass_both(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    load_policy(path)
    validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", list(VALID_INLINE))
def test_valid_edge_cases_pass_both(validator: jsonschema.Draft202012Validator, name: str) -> None:
    text = VALID_INLINE[name]
    parse_policy(text)
    validator.validate(yaml.safe_load(text))
