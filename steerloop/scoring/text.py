"""Turn an LLM response into text, and text into Python code.

Responses reach the scorers in many shapes: a plain string, a LangChain message whose
``content`` is a string or a list of content blocks, a ``ChatGeneration`` or ``LLMResult``,
or a dict from an agent (``{"output": ...}``). :func:`response_text` reduces all of them to
one string; :func:`extract_code` takes the Python code out of that string.

Both functions are duck-typed: they never import LangChain, so they work with any object
that has the same attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["extract_code", "response_text"]

_TEXT_KEYS = ("content", "output", "text")
_MAX_DEPTH = 8

# A fence opens at the start of a line with three or more backticks (or tildes), optionally
# followed by a language tag, and closes with a line holding the same fence (or at the end of
# the text, for a truncated response).
_FENCE = re.compile(
    r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[^\n`]*)\n"
    r"(?P<body>.*?)"
    r"(?:^[ \t]{0,3}(?P=fence)[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = frozenset({"", "python", "python3", "py", "py3", "pycon", "ipython", "python3.11"})


def response_text(response: object) -> str:
    """Return the text of an LLM response.

    Parameters
    ----------
    response
        One of: ``str``; a LangChain message (``AIMessage`` and any ``BaseMessage``) whose
        ``content`` is a string or a list of content blocks (strings or dicts with
        ``{"type": "text", "text": ...}``; other block types such as reasoning or tool calls
        are skipped); a ``ChatGeneration``/``Generation`` (its ``message`` or ``text``); an
        ``LLMResult``/``ChatResult`` (its first generation); a mapping with a ``"content"``,
        ``"output"`` or ``"text"`` key (looked up in that order, values converted
        recursively); ``bytes`` (decoded as UTF-8 with replacement).

    Returns
    -------
    str
        The concatenated text. Content blocks are joined without a separator, as LangChain's
        ``message.text`` does.

    Raises
    ------
    TypeError
        When the response has none of these shapes. The message names the type only, never
        the value.

    Examples
    --------
    >>> response_text("def f(): pass")
    'def f(): pass'
    >>> response_text({"output": [{"type": "text", "text": "a"}, {"type": "image"}, "b"]})
    'ab'
    """
    return _text(response, 0)


def _text(value: object, depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise TypeError("response is nested too deeply to extract text")
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return _text_of_mapping(value, depth)
    if isinstance(value, Sequence):
        return _text_of_blocks(value, depth)
    # LangChain messages (and anything shaped like one).
    content = getattr(value, "content", None)
    if content is not None and not callable(content):
        return _text(content, depth + 1)
    # ChatGeneration carries the message; Generation carries text.
    message = getattr(value, "message", None)
    if message is not None:
        return _text(message, depth + 1)
    generations = getattr(value, "generations", None)
    if isinstance(generations, Sequence) and not isinstance(generations, str):
        return _text_of_generations(generations, depth)
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    raise TypeError(
        f"cannot extract text from a response of type {type(value).__name__}; pass a str, a "
        "LangChain message or generation, or a dict with 'content', 'output' or 'text'"
    )


def _text_of_mapping(value: Mapping[Any, Any], depth: int) -> str:
    if value.get("type") == "text" and isinstance(value.get("text"), str):
        return str(value["text"])
    if "type" in value and value.get("type") not in (None, "text") and "text" not in value:
        return ""  # a non-text content block (image, tool_use, reasoning, ...)
    for key in _TEXT_KEYS:
        if key in value and value[key] is not None:
            return _text(value[key], depth + 1)
    raise TypeError(
        "cannot extract text from a mapping without a 'content', 'output' or 'text' key"
    )


def _text_of_blocks(blocks: Sequence[Any], depth: int) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping):
            if block.get("type", "text") == "text" and isinstance(block.get("text"), str):
                parts.append(str(block["text"]))
        else:
            parts.append(_text(block, depth + 1))
    return "".join(parts)


def _text_of_generations(generations: Sequence[Any], depth: int) -> str:
    first: Any = generations[0] if generations else None
    if isinstance(first, Sequence) and not isinstance(first, str):  # LLMResult: list of lists
        first = first[0] if first else None
    if first is None:
        return ""
    return _text(first, depth + 1)


def extract_code(text: str) -> str:
    """Return the Python code in a response text.

    Fenced blocks (```` ```python ````, ```` ```py ````, ```` ``` ```` with no language,
    and ``~~~`` fences) are collected in order and joined with a blank line. Blocks tagged
    with another language (```` ```bash ````, ```` ```json ````, ...) are skipped; when
    the text has fences but none of them holds Python, the result is ``""``. A fence left
    open at the end of the text (a truncated response) runs to the end. Text with no fence at
    all is returned whole: the response is taken to be code.

    Parameters
    ----------
    text
        The response text (see :func:`response_text`).

    Returns
    -------
    str
        The code, without the fences.

    Examples
    --------
    >>> extract_code("Here:\\n```python\\nx = 1\\n```\\nand\\n```\\ny = 2\\n```\\n")
    'x = 1\\n\\ny = 2\\n'
    >>> extract_code("x = 1")
    'x = 1'
    """
    blocks: list[str] = []
    found_fence = False
    for match in _FENCE.finditer(text):
        found_fence = True
        lang = match.group("lang").strip().lower().split()
        tag = lang[0] if lang else ""
        tag = tag.lstrip("{.").rstrip("}")
        if tag in _PYTHON_TAGS:
            body = match.group("body")
            indent = match.group("indent")
            if indent:
                body = "\n".join(
                    line[len(indent) :] if line.startswith(indent) else line
                    for line in body.split("\n")
                )
            blocks.append(body)
    if not found_fence:
        return text
    return "\n".join(block if block.endswith("\n") else block + "\n" for block in blocks)
