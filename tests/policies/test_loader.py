"""Policy loading: the bad-input corpus, positions, limits and the happy path."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steerloop.errors import PolicyError
from steerloop.policies import (
    Policy,
    available_presets,
    load_policy,
    load_preset,
    parse_policy,
)
from steerloop.policies.loader import MAX_BYTES, MAX_DEPTH, MAX_NODES

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
DESIGN_EXAMPLE = HERE / "data" / "design_example.yaml"
ISSUE_LINE = re.compile(r"^.+:\d+:\d+: (\S+: )?.+$")

# file -> (line, column, fragment of the field path, fragment of the message) of the first
# issue. Line and column are 1-based; a field of "" means the problem is not about a field.
EXPECTED: dict[str, tuple[int, int, str, str]] = {
    "alias_bomb.yaml": (5, 8, "", "billion laughs"),
    "alias_recursive.yaml": (1, 48, "", "recursive alias"),
    "bad_scorer_path.yaml": (11, 10, "scorers.0.use", "dotted import path"),
    "between_reversed.yaml": (12, 11, "rules.0.when", "low <= high"),
    "boolean_objective_names.yaml": (1, 36, "objectives.2", "as booleans"),
    "category_above.yaml": (12, 20, "rules.0.when.metric", "is a category"),
    "category_unknown_value.yaml": (12, 44, "rules.0.when.equals", "never 'critical'"),
    "comments_only.yaml": (1, 1, "", "empty"),
    "complex_key.yaml": (6, 5, "strategies", "keys must be plain names"),
    "control_character.yaml": (7, 26, "", "U+0007"),
    "deep_nesting_block.yaml": (42, 65, "", f"deeper than {MAX_DEPTH}"),
    "deep_nesting_flow.yaml": (10, 38, "", f"deeper than {MAX_DEPTH}"),
    "duplicate_key_nested.yaml": (8, 5, "strategies.fast.prompt", "duplicate key 'prompt'"),
    "duplicate_key_top.yaml": (14, 1, "initial", "first at line 9"),
    "duplicate_rule_names.yaml": (14, 11, "rules.1.name", "duplicate rule name"),
    "empty.yaml": (1, 1, "", "empty"),
    "huge_integer_literal.yaml": (12, 15, "rules.0.priority", "too large"),
    "integer_out_of_range.yaml": (10, 22, "estimation.warmup", "<= 100000"),
    "invalid_template.yaml": (7, 13, "strategies.fast.prompt", "not a valid template"),
    "list_document.yaml": (1, 1, "", "not a list"),
    "merge_not_mapping.yaml": (7, 10, "strategies.fast", "merging"),
    "missing_initial.yaml": (1, 1, "initial", "missing required field 'initial'"),
    "missing_rule_then.yaml": (11, 5, "rules.0.then", "missing required field 'then'"),
    "multiple_documents.yaml": (14, 1, "", "one YAML document"),
    "nan_threshold.yaml": (12, 39, "rules.0.when.below", "finite"),
    "negative_emphasis.yaml": (8, 28, "strategies.fast.emphasis.efficiency", ">= 0"),
    "no_comparator.yaml": (12, 11, "rules.0.when", "got none"),
    "non_utf8.yaml": (7, 28, "", "UTF-8"),
    "not_a_number_between.yaml": (12, 41, "rules.0.when.between", "two numbers"),
    "number_equals_string.yaml": (12, 40, "rules.0.when.equals", "is a number"),
    "python_name_tag.yaml": (9, 10, "initial", "!!python/name:os.system is not allowed"),
    "python_object_tag.yaml": (7, 13, "strategies.fast.prompt", "!!python/object/apply"),
    "scalar_document.yaml": (1, 1, "", "not a single value"),
    "sequential_unknown_objective.yaml": (
        13,
        43,
        "rules.0.then.sequential.order.1",
        "unknown objective 'speed'",
    ),
    "severity_unknown_objective.yaml": (11, 21, "severity.from.objective", "'safety'"),
    "tabs.yaml": (7, 1, "", "tabs"),
    "two_actions.yaml": (13, 11, "rules.0.then", "switch_to and hold"),
    "two_comparators.yaml": (12, 11, "rules.0.when", "above and below"),
    "unclosed_flow.yaml": (2, 11, "", "expected ',' or ']'"),
    "undefined_alias.yaml": (9, 10, "", "undefined alias"),
    "unknown_field.yaml": (7, 5, "strategies.fast.promt", "did you mean 'prompt'"),
    "unknown_metric.yaml": (12, 20, "rules.0.when.metric", "did you mean 'drift.rate'"),
    "unknown_objective_emphasis.yaml": (
        8,
        33,
        "strategies.fast.emphasis.speed",
        "unknown objective 'speed'",
    ),
    "unknown_placeholder.yaml": (7, 13, "strategies.fast.prompt", "['user']"),
    "unknown_strategy_initial.yaml": (9, 10, "initial", "unknown strategy 'secured'"),
    "unknown_strategy_switch_to.yaml": (13, 23, "rules.0.then.switch_to", "'faster'"),
    "unknown_top_level_field.yaml": (10, 1, "rule", "did you mean 'rules'"),
    "utf16.yaml": (1, 1, "", "UTF-16"),
    "wrong_type_prompt.yaml": (7, 13, "strategies.fast.prompt", "expected a string"),
    "wrong_type_rules.yaml": (11, 3, "rules", "expected a list"),
    "wrong_type_threshold.yaml": (12, 39, "rules.0.when.below", "expected a number"),
}

VALID = """\
objectives: [security, efficiency]
strategies:
  secure:
    prompt: Fix every security issue first.
    emphasis: {security: 1.0}
  fast:
    prompt: Make the code faster.
    emphasis: {efficiency: 1.0}
initial: secure
rules:
  - name: slow
    when: {metric: drift.rate, below: 0.1}
    then: {switch_to: fast}
"""


def _load_error(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return caught.value


def test_corpus_is_complete() -> None:
    files = sorted(path.name for path in CORPUS.iterdir() if path.suffix == ".yaml")
    assert len(files) >= 25
    assert files == sorted(EXPECTED), "every corpus file needs an expectation, and vice versa"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_gives_a_positioned_policy_error(name: str, parser: str) -> None:
    line, column, field, message = EXPECTED[name]
    error = _load_error(CORPUS / name)
    assert type(error) is PolicyError
    assert (error.line, error.column) == (line, column), str(error)
    assert field in error.field, str(error)
    if not field:
        assert error.field == ""
    assert message in error.detail, str(error)
    assert error.file == str(CORPUS / name)
    for issue in error.issues:
        assert issue.line is not None and issue.column is not None, str(issue)
    for text in str(error).splitlines():
        assert text.startswith(f"{CORPUS / name}:{error.issues[0].line}") or ISSUE_LINE.match(
            text
        ), text
        assert "Traceback" not in text


def test_two_mebibyte_file_is_rejected_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    filler = "# " + "x" * 98 + "\n"
    path.write_text(VALID + filler * (2 * MAX_BYTES // len(filler)), encoding="utf-8")
    assert path.stat().st_size > 2 * MAX_BYTES - 200
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert (caught.value.line, caught.value.column) == (1, 1)
    assert "larger than 1024 KiB" in caught.value.detail
    with pytest.raises(PolicyError, match="larger than"):
        parse_policy(path.read_text(encoding="utf-8"))
    with pytest.raises(PolicyError, match="larger than"):
        parse_policy("é" * (MAX_BYTES // 2 + 1))  # 2 bytes per character in UTF-8


def test_size_limit_counts_bytes_not_characters() -> None:
    assert MAX_BYTES == 1 << 20
    text = VALID + "#" * (MAX_BYTES - len(VALID) - 1) + "\n"
    assert len(text.encode()) == MAX_BYTES
    assert parse_policy(text).initial == "secure"  # exactly at the limit is fine


def test_wide_alias_fan_out_is_rejected_without_expansion(parser: str) -> None:
    text = VALID + "name: &n x\n" + "x: &a [" + ", ".join(["*n"] * 10) + "]\n"
    for level in range(1, 12):
        text += f"x{level}: &a{level} [" + ", ".join([f"*a{level - 1}" if level > 1 else "*a"] * 10)
        text += "]\n"
    with pytest.raises(PolicyError, match=f"more than {MAX_NODES} values through aliases"):
        parse_policy(text)


def test_aliases_nesting_deeper_than_the_limit_are_rejected(parser: str) -> None:
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 40))
    with pytest.raises(PolicyError, match="aliases nest"):
        parse_policy(text)


def test_python_tags_are_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = VALID.replace(
        "initial: secure\n", f"initial: !!python/object/apply:os.mkdir ['{marker}']\n"
    )
    with pytest.raises(PolicyError, match="is not allowed") as caught:
        parse_policy(text)
    assert not marker.exists()
    assert caught.value.field == "initial"


def test_design_example_loads() -> None:
    policy = load_policy(DESIGN_EXAMPLE)
    assert isinstance(policy, Policy)
    assert policy.objectives == ["security", "efficiency", "functionality"]
    assert set(policy.strategies) == {
        "efficiency_focused",
        "security_focused",
        "feature_focused",
        "adaptive_integration",
    }
    assert policy.initial == "adaptive_integration"
    assert [rule.name for rule in policy.rules_by_priority] == [
        "runaway-severity",
        "strong-interference",
        "overshoot",
    ]
    assert policy.severity.source is not None and policy.severity.source.invert
    assert policy.scorers[0].use == "steerloop.scoring.code.SecurityScorer"
    assert "security, efficiency, functionality" in policy.strategies[
        "adaptive_integration"
    ].render(list(policy.objectives), None)


def test_load_policy_accepts_str_and_pathlike() -> None:
    assert load_policy(str(DESIGN_EXAMPLE)) == load_policy(DESIGN_EXAMPLE)


def test_every_problem_is_listed_in_file_order() -> None:
    text = VALID.replace("initial: secure", "initial: nope").replace(
        "switch_to: fast", "switch_to: faster"
    )
    text += "  - name: other\n    when: {metric: no.such, above: 1}\n    then: {hold: true}\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, file="policy.yaml")
    error = caught.value
    assert [(issue.line, issue.field) for issue in error.issues] == [
        (9, "initial"),
        (13, "rules.0.then.switch_to"),
        (15, "rules.1.when.metric"),
    ]
    lines = str(error).splitlines()
    assert lines[0] == (
        "policy.yaml:9:10: initial: unknown strategy 'nope'; defined: ['fast', 'secure']"
    )
    assert all(ISSUE_LINE.match(line) for line in lines)
    assert (error.file, error.line, error.column, error.field) == (
        "policy.yaml",
        9,
        10,
        "initial",
    )


def test_schema_errors_and_duplicate_keys_are_reported_together() -> None:
    text = VALID.replace("initial: secure\n", "initial: secure\ninitial: fast\n")
    text = text.replace("below: 0.1", "below: low")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    messages = [issue.message for issue in caught.value.issues]
    assert len(messages) == 2
    assert "duplicate key 'initial'" in messages[0]
    assert "expected a number" in messages[1]


def test_union_errors_are_merged_into_one_message() -> None:
    text = VALID.replace("below: 0.1", "equals: [1, 2]")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert len(caught.value.issues) == 1
    assert caught.value.detail == (
        "expected a number, a string or a boolean (true/false), got a list of 2 item(s)"
    )
    text = VALID.replace("switch_to: fast", "sequential: {order: [security, 7]}")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert [(issue.field, issue.message) for issue in caught.value.issues] == [
        ("rules.0.then.sequential.order.1", "expected a string, got 7")
    ]


def test_mapping_keys_are_spelt_as_written() -> None:
    text = VALID.replace("  fast:\n", "  on:\n").replace("switch_to: fast", "switch_to: secure")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.field == "strategies.on"
    assert "YAML reads yes/no/on/off" in caught.value.detail


def test_anchors_merge_keys_and_scalar_aliases_are_allowed() -> None:
    text = """\
objectives: [security, efficiency]
base: &base
  emphasis: {security: 1.0}
"""
    with pytest.raises(PolicyError, match="unknown field 'base'"):
        parse_policy(text)  # anchors must live inside known fields
    text = """\
objectives: [security, efficiency]
strategies:
  secure: &secure
    prompt: &fix Fix every security issue first.
    emphasis: {security: 1.0}
  careful:
    <<: *secure
    emphasis: {security: 1.0, efficiency: 0.5}
  again:
    prompt: *fix
initial: careful
"""
    policy = parse_policy(text)
    assert policy.strategies["careful"].prompt == "Fix every security issue first."
    assert policy.strategies["careful"].emphasis == {"security": 1.0, "efficiency": 0.5}
    assert policy.strategies["again"].prompt == policy.strategies["secure"].prompt


def test_reused_mapping_with_merge_reports_nothing_twice() -> None:
    text = """\
objectives: [security]
strategies:
  a: &a {<<: {prompt: p, emphasis: {security: 1}}, prompt: q, bad: 1}
  b: *a
initial: a
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert [issue.field for issue in caught.value.issues] == [
        "strategies.a.bad",
        "strategies.b.bad",
    ]


def test_unreadable_scalars_are_reported() -> None:
    with pytest.raises(PolicyError, match="cannot read 'abc' as !!int"):
        parse_policy(VALID.replace("below: 0.1", "below: !!int abc"))
    with pytest.raises(PolicyError, match="tag !custom is not allowed"):
        parse_policy(VALID.replace("below: 0.1", "below: !custom 1"))


@pytest.mark.parametrize(
    ("data", "position"),
    [
        (b"objectives: [s\xc3]\n", (1, 15)),
        (b"name: \xe2\x82\xac\xe2\x82\xac \xff\n", (1, 10)),  # columns count characters
        (b"# \xe9\n", (1, 3)),
    ],
)
def test_non_utf8_position_points_at_the_bad_byte(data: bytes, position: tuple[int, int]) -> None:
    with pytest.raises(PolicyError, match="not valid UTF-8") as caught:
        parse_policy(data, file="x.yaml")
    assert (caught.value.line, caught.value.column) == position


def test_utf8_bom_is_accepted() -> None:
    assert parse_policy(b"\xef\xbb\xbf" + VALID.encode()).initial == "secure"


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file") as caught:
        load_policy(tmp_path / "missing.yaml")
    assert caught.value.line is None
    assert caught.value.file == str(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path)


def test_unknown_preset_lists_the_available_ones() -> None:
    with pytest.raises(PolicyError, match="available presets: paper, predictive"):
        load_preset("papers")
    with pytest.raises(PolicyError, match="unknown preset"):
        load_preset("../loader")
    assert available_presets() == ["paper", "predictive"]


def test_loader_never_uses_unsafe_yaml_entry_points() -> None:
    source = (Path(__file__).parents[2] / "steerloop" / "policies" / "loader.py").read_text()
    for forbidden in ("yaml.load(", "yaml.unsafe_load", "FullLoader", "UnsafeLoader", "eval("):
        assert forbidden not in source
    assert "yaml.Loader" not in source.replace("yaml.SafeLoader", "")


_FUZZ_BASE = VALID + "estimation: {warmup: 5, forgetting: 0.9}\nseverity: {threshold: 0.6}\n"


@pytest.mark.timeout(60)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(_FUZZ_BASE)),
    length=st.integers(0, 8),
    insert=st.text(alphabet=" \t\n:-[]{}&*!|>'\"#%@`,?\x00\x85é0123456789.ab", max_size=6),
)
def test_mutated_policies_raise_only_policy_errors(cut: int, length: int, insert: str) -> None:
    text = _FUZZ_BASE[:cut] + insert + _FUZZ_BASE[cut + length :]
    try:
        policy = parse_policy(text)
    except PolicyError as error:
        assert error.issues
        for issue in error.issues:
            assert issue.message
            assert "\n" not in str(issue) or "Traceback" not in str(issue)
    else:
        assert isinstance(policy, Policy)


@pytest.mark.timeout(30)
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_policy_errors(data: bytes) -> None:
    try:
        parse_policy(data)
    except PolicyError as error:
        assert error.issues


def test_os_pathlike_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(VALID, encoding="utf-8")

    class Wrapped(os.PathLike[str]):
        def __fspath__(self) -> str:
            return str(path)

    assert load_policy(Wrapped()).initial == "secure"
