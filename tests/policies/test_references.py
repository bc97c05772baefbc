"""Cross-references, reported with schema problems in one pass, on the parts that are valid."""

from __future__ import annotations

import pytest
from texts import HEAD

from steerloop.errors import PolicyError
from steerloop.policies import parse_policy, validate_policy
from steerloop.policies.references import PolicyParts, parts_problems, reference_problems
from steerloop.policies.schema import Policy, Rule


def _issues(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, file="p.yaml")
    return [(issue.line, issue.field, issue.message) for issue in caught.value.issues]


def test_schema_and_reference_problems_come_in_one_pass_sorted_by_line() -> None:
    text = HEAD.replace("initial: secure", "initial: nope") + (
        "estimation: {forgetting: 2}\n"
        "rules:\n"
        "  - {name: a, when: {metric: drift.rat, above: 1}, then: {switch_to: faster}}\n"
        "  - {name: b, when: {metric: step, above: x}, then: {switch_to: missing}}\n"
    )
    issues = _issues(text)
    assert [(line, field) for line, field, _ in issues] == [
        (5, "initial"),
        (6, "estimation.forgetting"),
        (8, "rules.0.when.metric"),
        (8, "rules.0.then.switch_to"),
        (9, "rules.1.when.above"),
    ]
    # rule b is invalid, so its switch_to is not checked: no guess about a broken rule
    assert "did you mean 'drift.rate'" in issues[2][2]


def test_a_strategy_with_an_invalid_body_is_still_a_known_name() -> None:
    text = HEAD.replace("Make the code faster.", "'{nope}'") + (
        "rules:\n  - {name: a, when: {metric: strategy, equals: fast}, then: {switch_to: fast}}\n"
    )
    assert [field for _, field, _ in _issues(text)] == ["strategies.fast.prompt"]


def test_invalid_objectives_switch_off_the_checks_that_need_them() -> None:
    text = HEAD.replace("[security, efficiency]", "[security, 7]") + (
        "rules:\n  - {name: a, when: {metric: objective.speed, above: 1}, then: {hold: true}}\n"
    )
    assert [field for _, field, _ in _issues(text)] == ["objectives.1"]


def test_duplicate_keys_and_reference_problems_together() -> None:
    text = (
        HEAD
        + "initial: fast\nrules:\n  - {name: a, when: {metric: x, above: 1}, then: {hold: true}}\n"
    )
    messages = [message for _, _, message in _issues(text)]
    assert len(messages) == 2
    assert "duplicate key 'initial'" in messages[0]
    assert "unknown metric 'x'" in messages[1]


def test_rendered_prompt_size_is_checked_against_the_objectives() -> None:
    names = [f"objective_{index:02d}_" + "n" * 80 for index in range(40)]  # 3,798 joined

    def policy(placeholders: int) -> str:
        prompt = "{focus}" * placeholders
        strategies = f"strategies: {{s: {{prompt: '{prompt}'}}}}\n"
        return f"objectives: [{', '.join(names)}]\n{strategies}initial: s\n"

    assert len(parse_policy(policy(13)).strategies["s"].render(names, None)) == 13 * 3798
    issues = _issues(policy(14))  # 53,172 characters
    assert issues == [
        (
            2,
            "strategies.s.prompt",
            "the prompt renders to up to 53172 characters with these objectives, more than "
            "50000; shorten it or use fewer placeholders",
        )
    ]


def test_sequential_reports_every_unfocusable_objective_once() -> None:
    text = "objectives: [a, b, c]\nstrategies: {s: {prompt: p, emphasis: {a: 1}}}\ninitial: s\n"
    text += "rules:\n  - {name: r, when: {metric: step, above: 1}, then: {sequential: {}}}\n"
    assert _issues(text) == [
        (
            5,
            "rules.0.then.sequential",
            "no strategy emphasises objectives 'b', 'c', so sequential mode cannot focus them",
        )
    ]


def test_only_the_first_unknown_metrics_get_suggestions() -> None:
    rule = "  - {{name: r{0}, when: {{metric: drift.rat{0}, above: 1}}, then: {{hold: true}}}}\n"
    text = HEAD + "rules:\n" + "".join(rule.format(index) for index in range(8))
    messages = [message for _, _, message in _issues(text)]
    assert len(messages) == 8
    assert sum("did you mean" in message for message in messages) == 5


def test_interference_suggestions_use_the_objective_names() -> None:
    text = HEAD + (
        "rules:\n  - {name: r, when: {metric: interference.securty.efficency, below: 0}, "
        "then: {hold: true}}\n"
    )
    assert "did you mean 'interference.security.efficiency'?" in _issues(text)[0][2]


def test_validate_policy_lists_problems_of_a_policy_built_in_python() -> None:
    policy = parse_policy(HEAD)
    rule = Rule.model_validate(
        {"name": "r", "when": {"metric": "severity.phase", "above": 1}, "then": {"switch_to": "x"}}
    )
    broken = policy.model_copy(update={"rules": [rule, rule]})
    with pytest.raises(PolicyError) as caught:
        validate_policy(broken, file="built")
    assert [issue.field for issue in caught.value.issues] == [
        "rules.0.then.switch_to",
        "rules.1.name",
        "rules.1.then.switch_to",
        "rules.0.when.metric",
        "rules.1.when.metric",
    ]
    assert all(issue.line is None for issue in caught.value.issues)
    assert validate_policy(policy) is policy
    assert reference_problems(policy) == []


def test_parts_of_a_valid_policy_give_the_same_problems() -> None:
    policy = Policy.model_validate(
        {
            "objectives": ["a"],
            "strategies": {"s": {"prompt": "p"}},
            "initial": "t",
            "severity": {"from": {"objective": "b"}},
        }
    )
    problems = parts_problems(PolicyParts.of(policy))
    assert problems == reference_problems(policy)
    assert [loc for loc, _ in problems] == [("initial",), ("severity", "from", "objective")]
