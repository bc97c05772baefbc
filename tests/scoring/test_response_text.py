"""Response text and code extraction."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult

from steerloop.scoring import extract_code, response_text


@pytest.mark.parametrize(
    ("response", "text"),
    [
        ("plain", "plain"),
        (b"bytes \xff", "bytes \ufffd"),
        (AIMessage(content="message"), "message"),
        (HumanMessage(content="human"), "human"),
        (
            AIMessage(
                content=[
                    {"type": "reasoning", "reasoning": "thinking..."},
                    {"type": "text", "text": "a"},
                    "b",
                    {"type": "tool_use", "id": "1", "name": "f", "input": {}},
                    {"type": "text", "text": "c"},
                ]
            ),
            "abc",
        ),
        (ChatGeneration(message=AIMessage(content="gen")), "gen"),
        (Generation(text="legacy"), "legacy"),
        (LLMResult(generations=[[Generation(text="first")], [Generation(text="second")]]), "first"),
        (ChatResult(generations=[ChatGeneration(message=AIMessage(content="chat"))]), "chat"),
        ({"content": "dict content"}, "dict content"),
        ({"output": "agent output"}, "agent output"),
        ({"text": "dict text"}, "dict text"),
        ({"output": AIMessage(content=[{"type": "text", "text": "nested"}])}, "nested"),
        ([{"type": "text", "text": "x"}, {"type": "image_url", "image_url": "u"}], "x"),
    ],
)
def test_response_text_shapes(response: Any, text: str) -> None:
    assert response_text(response) == text


@pytest.mark.parametrize("response", [4242, object(), {"other": "LEAKED"}, None])
def test_unsupported_shapes_raise_type_error_naming_the_type_only(response: Any) -> None:
    with pytest.raises(TypeError) as info:
        response_text(response)
    assert "4242" not in str(info.value) and "LEAKED" not in str(info.value)


def test_extract_code_from_fences() -> None:
    text = (
        "Explanation first.\n"
        "```python\nimport math\n```\n"
        "Then a shell command:\n```bash\nrm -rf /\n```\n"
        "```\ndef f():\n    return math.pi\n```\n"
        "~~~py\nprint(f())\n~~~\n"
    )
    assert extract_code(text) == "import math\n\ndef f():\n    return math.pi\n\nprint(f())\n"


def test_extract_code_without_fences_returns_the_text() -> None:
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"


def test_extract_code_with_only_other_languages_is_empty() -> None:
    assert extract_code("```json\n{}\n```\n```bash\nls\n```") == ""


def test_unclosed_fence_runs_to_the_end() -> None:
    assert extract_code("Sure:\n```python\ndef f():\n    return 1\n") == "def f():\n    return 1\n"


def test_longer_fences_and_indented_fences() -> None:
    assert extract_code("````python\nx = '```'\n````\n") == "x = '```'\n"
    assert extract_code("  ```python\n  x = 1\n  ```\n") == "x = 1\n"


@given(st.text(alphabet=st.characters(blacklist_characters="`~"), max_size=200))
def test_text_without_fences_is_returned_unchanged(text: str) -> None:
    assert extract_code(text) == text


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="`~\r", blacklist_categories=("Cs",)),
            max_size=80,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fenced_blocks_round_trip(blocks: list[str]) -> None:
    bodies = [block.rstrip("\n") + "\n" if block else "" for block in blocks]
    text = "".join(f"intro\n```python\n{body}```\n" for body in bodies)
    assert extract_code(text) == "\n".join(b if b.endswith("\n") else b + "\n" for b in bodies)
