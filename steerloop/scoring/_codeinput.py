"""The code of a response and the task of a call, shared by the code scorers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from steerloop.errors import ScorerError
from steerloop.scoring.tasks import CodeTask
from steerloop.scoring.text import extract_code, response_text

MAX_CODE_BYTES = 100_000
EXTRA_HINT = "pip install 'steerloop[code]'"


def code_from_response(
    response: object, *, max_bytes: int = MAX_CODE_BYTES, scorer: str = "code"
) -> str:
    """The code of a response: text, then fenced blocks (or the whole text), size-capped.

    Raises
    ------
    ScorerError
        Reason ``"invalid_input"`` when the code is larger than ``max_bytes`` (UTF-8).
    """
    try:
        text = response_text(response)
    except TypeError as exc:
        raise ScorerError(scorer, "invalid_input", str(exc)) from None
    code = extract_code(text)
    size = len(code.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise ScorerError(
            scorer,
            "invalid_input",
            f"code is {size} bytes, over the {max_bytes}-byte cap (max_bytes=...)",
        )
    return code


def task_from_context(context: Mapping[str, Any], default: CodeTask | None) -> CodeTask | None:
    """The task of a call: ``context["task"]``, else ``context["tests"]``, else ``default``."""
    task: CodeTask | None = default
    if context.get("task") is not None:
        task = CodeTask.coerce(context["task"])
    elif context.get("tests") is not None:
        task = CodeTask.coerce(list(context["tests"]))
    reference = context.get("reference")
    if isinstance(reference, str) and task is not None and task.reference is None:
        task = replace(task, reference=reference)
    return task


def coerce_task(task: CodeTask | Mapping[str, Any] | list[str] | None) -> CodeTask | None:
    return None if task is None else CodeTask.coerce(task)


def syntax_error(scorer: str, exc: SyntaxError) -> ScorerError:
    # The line number only: SyntaxError's text quotes the offending line of the response.
    return ScorerError(
        scorer, "invalid_input", f"code does not parse (SyntaxError at line {exc.lineno})"
    )
