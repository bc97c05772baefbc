"""Stand-ins for what README's snippets assume the reader brings (``given=`` names).

Each is deterministic and offline: a "model" that writes insecure code until told to put
security first, a scorer that notices it, a langchain-core fake chat model. See
``tests/readme_snippets.py`` for the convention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["STAND_INS", "provide"]

UNSAFE = "def parse(text):\n    return eval(text)\n"
SAFE = "import ast\n\ndef parse(text):\n    return ast.literal_eval(text)\n"


def my_llm(system: str, user: str) -> str:
    """Your model call: writes ``eval`` unless the system prompt stresses security."""
    del user
    return SAFE if "secur" in system.lower() else UNSAFE


def my_scorer(code: str) -> dict[str, float]:
    """Your scorer: ``eval`` is insecure; shorter code counts as a little more efficient."""
    return {
        "security": 0.1 if "eval(" in code and "literal_eval" not in code else 0.9,
        "efficiency": max(0.0, 0.9 - len(code) / 1000),
        "functionality": 0.8 if "def " in code else 0.2,
    }


def chat_model() -> Any:
    """A langchain-core chat model (``FakeListChatModel``) answering with code."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    return FakeListChatModel(responses=[UNSAFE, SAFE])


def controller_class() -> Any:
    """``Controller``, for a snippet that continues the quickstart."""
    from steerloop import Controller

    return Controller


#: name -> factory of the value bound to that name.
STAND_INS: dict[str, Callable[[], Any]] = {
    "my_llm": lambda: my_llm,
    "my_scorer": lambda: my_scorer,
    "chat_model": chat_model,
    "Controller": controller_class,
    "scores": lambda: my_scorer(SAFE),
}


def provide(names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The values of ``names`` (``KeyError`` naming the known ones when one is unknown)."""
    unknown = sorted(set(names) - set(STAND_INS))
    if unknown:
        raise KeyError(f"no README stand-in named {unknown}; known: {sorted(STAND_INS)}")
    return {name: STAND_INS[name]() for name in names}
