"""Prompt templates: two placeholders, no format machinery, a size cap checked before building."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steerloop.policies.schema import Strategy
from steerloop.policies.templates import (
    MAX_PROMPT_CHARS,
    MAX_TEMPLATE_CHARS,
    TEMPLATE_PATTERN,
    parse_template,
)

OBJECTIVES = ["security", "efficiency", "functionality"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{objectives:>200000000}", "format spec ':>200000000'"),
        ("{focus:{objectives}}", "format spec ':{objectives}'"),
        ("{focus!r}", "conversion '!r'"),
        ("{focus!s:>3}", "format spec ':>3'"),
        ("{objectives[0]}", "unknown placeholder(s) ['objectives[0]']"),
        ("{objectives.__class__}", "unknown placeholder(s) ['objectives.__class__']"),
        ("{0} and {}", "unknown placeholder(s) ['', '0']"),
        ("a } b", "not a valid template"),
        ("{focus", "not a valid template"),
        ("x" * (MAX_TEMPLATE_CHARS + 1), "too long"),
    ],
)
def test_anything_but_the_two_placeholders_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_template(text)
    assert not re.search(TEMPLATE_PATTERN, text) or len(text) > MAX_TEMPLATE_CHARS


def test_rendering_fills_both_placeholders_and_unescapes_braces() -> None:
    template = parse_template("{{x}} {focus}: {objectives}{{")
    assert template.render(OBJECTIVES, "security") == (
        "{x} security: security, efficiency, functionality{"
    )
    assert template.render(OBJECTIVES, None) == (
        "{x} security, efficiency, functionality: security, efficiency, functionality{"
    )


def test_render_refuses_an_oversized_prompt_before_building_it() -> None:
    template = parse_template("{focus}" * 1000)
    names = ["n" * 60, "m" * 60]
    assert template.max_length(names) == 1000 * 122 > MAX_PROMPT_CHARS
    with pytest.raises(ValueError, match=f"more than {MAX_PROMPT_CHARS}"):
        template.render(names, None)
    assert len(template.render(names, "short")) == 5000  # a short focus fits


def test_strategy_uses_the_parsed_template() -> None:
    strategy = Strategy(prompt="Improve {focus}.")
    assert strategy.render(OBJECTIVES, None) == "Improve security, efficiency, functionality."
    with pytest.raises(ValueError, match="format spec"):
        Strategy(prompt="{focus:>99999}")


_PIECES = [*"ab {}:!.\n", "{objectives}", "{focus}", "{focus!r}", "{objectives:>9}"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@given(text=_TEXT, focus=st.sampled_from([None, *OBJECTIVES]))
def test_python_and_json_schema_agree_and_rendering_matches_plain_formatting(
    text: str, focus: str | None
) -> None:
    try:
        template = parse_template(text)
    except ValueError:
        assert re.search(TEMPLATE_PATTERN, text) is None
        return
    assert re.search(TEMPLATE_PATTERN, text) is not None
    joined = ", ".join(OBJECTIVES)
    expected = text.format(objectives=joined, focus=joined if focus is None else focus)
    assert template.render(OBJECTIVES, focus) == expected
    assert len(expected) <= template.max_length(OBJECTIVES)
