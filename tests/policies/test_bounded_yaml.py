"""Bounded YAML reading: each limit holds exactly at its value, under both parsers."""

from __future__ import annotations

import pytest
from yaml.nodes import MappingNode, ScalarNode

from steerloop.errors import PolicyError
from steerloop.policies.bounded_yaml import (
    MAX_ALIASES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_SCALAR_CHARS,
    check_text,
    compose,
    decode,
)

pytestmark = pytest.mark.usefixtures("parser")


def _error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        compose(text, "p.yaml")
    assert len(caught.value.issues) == 1
    return caught.value


def _flow_list(items: list[str]) -> str:
    return "k: [" + ",".join(items) + "]\n"


def test_node_count_limit_is_exact() -> None:
    fixed = 3  # the top-level mapping, the key 'k' and the list
    node = compose(_flow_list(["a"] * (MAX_NODES - fixed)), "p.yaml")
    assert isinstance(node, MappingNode) and len(node.value[0][1].value) == MAX_NODES - fixed
    error = _error(_flow_list(["a"] * (MAX_NODES - fixed + 1)))
    assert f"more than {MAX_NODES} values" in error.detail
    assert (error.line, error.column) == (1, 5 + 2 * (MAX_NODES - fixed))  # the extra item


def test_an_alias_counts_as_everything_it_repeats() -> None:
    size = 99  # the anchored list and its 98 items
    anchored = "a: &a [" + ",".join(["x"] * (size - 1)) + "]\n"
    aliases = 99
    padding = MAX_NODES - 4 - size - aliases * size  # 4: top mapping, 'a', 'k' and k's list
    items = ["*a"] * aliases + ["y"] * padding
    compose(anchored + _flow_list(items), "p.yaml")  # exactly MAX_NODES values
    error = _error(anchored + _flow_list([*items, "y"]))
    assert f"holds more than {MAX_NODES} values" in error.detail
    error = _error(anchored + _flow_list([*items[:-1], "*a"]))
    assert "through aliases" in error.detail


def test_nested_aliases_fail_at_the_alias_that_crosses_the_budget() -> None:
    text = "a: &a [" + ",".join(["x"] * 9) + "]\n"
    for level, name in enumerate("bcdef", start=1):
        previous = "abcdef"[level - 1]
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
    error = _error(text)
    assert "through aliases" in error.detail
    assert error.line == 5  # e: 10 000 values once expanded; no line after it is read


def test_alias_count_limit_is_exact() -> None:
    compose("a: &a x\n" + _flow_list(["*a"] * MAX_ALIASES), "p.yaml")
    error = _error("a: &a x\n" + _flow_list(["*a"] * (MAX_ALIASES + 1)))
    assert f"more than {MAX_ALIASES} aliases" in error.detail
    assert (error.line, error.column) == (2, 5 + 3 * MAX_ALIASES)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("a: &r [x, *r]\n", (1, 11)),
        ("a: &r {b: [*r]}\n", (1, 12)),
    ],
)
def test_recursive_alias_points_at_the_alias(text: str, position: tuple[int, int]) -> None:
    error = _error(text)
    assert "recursive alias" in error.detail
    assert (error.line, error.column) == position


def test_depth_limit_is_exact_and_counts_through_aliases() -> None:
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # levels 2..MAX_DEPTH
    compose(f"k: {nested}\n", "p.yaml")
    error = _error(f"k: [{nested}]\n")
    assert f"deeper than {MAX_DEPTH}" in error.detail
    shallow = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    compose(f"a: &a {shallow}\nk: [*a]\n", "p.yaml")  # at level MAX_DEPTH once repeated
    error = _error(f"a: &a {shallow}\nk: [[*a]]\n")
    assert "aliases nest" in error.detail
    assert (error.line, error.column) == (2, 6)


def test_scalar_limit_counts_characters() -> None:
    compose('k: "' + "é" * MAX_SCALAR_CHARS + '"\n', "p.yaml")
    error = _error('k: "' + "é" * (MAX_SCALAR_CHARS + 1) + '"\n')
    assert f"at most {MAX_SCALAR_CHARS}" in error.detail
    assert (error.line, error.column) == (1, 4)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("k: é€😀 \x07\n", (1, 8)),  # columns count characters, not UTF-8 bytes
        ("a: 1\r\nb: é\r\nc: \x1b\r\n", (3, 4)),  # CRLF is one line break
        ("a: 1\rb: \x00\n", (2, 4)),  # so is a lone CR
    ],
)
def test_forbidden_character_position(text: str, position: tuple[int, int]) -> None:
    error = _error(text)
    assert "is not allowed in YAML" in error.detail
    assert (error.line, error.column) == position


def test_tabs_get_a_hint_whatever_the_parser_calls_them() -> None:
    for text in ("a:\n\tb: 1\n", "k: v\r\nj: w\r\n\tz"):
        assert "use spaces" in _error(text).detail


def test_libyaml_nesting_limit_reads_as_ours() -> None:
    error = _error("k: " + "[" * 5000)
    assert f"deeper than {MAX_DEPTH}" in error.detail


def test_empty_document_and_scalars_compose() -> None:
    assert compose("# only a comment\n", "p.yaml") is None
    node = compose("just text", "p.yaml")
    assert isinstance(node, ScalarNode) and node.value == "just text"


def test_text_checks() -> None:
    check_text("a" * MAX_BYTES, "p.yaml")
    with pytest.raises(PolicyError, match="larger than"):
        check_text("é" * (MAX_BYTES // 2 + 1), "p.yaml")
    with pytest.raises(PolicyError, match="U\\+D800") as caught:
        check_text("a: 1\nb: x\ud800\n", "p.yaml")
    assert (caught.value.line, caught.value.column) == (2, 5)
    assert decode(b"\xef\xbb\xbfa: 1\n", "p.yaml") == "a: 1\n"
    with pytest.raises(PolicyError, match="UTF-16"):
        decode("a: 1\n".encode("utf-16"), "p.yaml")
