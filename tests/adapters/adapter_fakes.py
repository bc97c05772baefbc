"""Helpers for the adapter tests: a small switching policy and a recording fake chat model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from steerloop.policies.schema import (
    Action,
    Condition,
    Estimation,
    Policy,
    Rule,
    Strategy,
    Switching,
)

BALANCED = "BALANCED: cover {objectives}."
SECURE = "SECURE: fix vulnerabilities first."


def make_policy() -> Policy:
    """Two objectives; ``objective.security < 0.3`` switches to ``secure`` after warm-up 2."""
    return Policy(
        objectives=["security", "functionality"],
        strategies={
            "balanced": Strategy(prompt=BALANCED),
            "secure": Strategy(prompt=SECURE, emphasis={"security": 1.0}),
        },
        initial="balanced",
        estimation=Estimation(warmup=2),
        switching=Switching(min_dwell=0),
        rules=[
            Rule(
                name="insecure",
                when=Condition(metric="objective.security", below=0.3),
                then=Action(switch_to="secure"),
            )
        ],
    )


def text_of(response: object) -> str:
    if isinstance(response, BaseMessage):
        return response.text
    return str(response)


def score_text(response: object) -> dict[str, float]:
    """Security 0 for responses containing UNSAFE, else 0.9; functionality 0.8."""
    return {"security": 0.0 if "UNSAFE" in text_of(response) else 0.9, "functionality": 0.8}


class RecordingChatModel(BaseChatModel):
    """A fake chat model that records the messages it receives.

    The reply to a last message ``"echo:X"`` is ``X``; ``"raise:X"`` raises ``ModelDownError(X)``;
    anything else gets the next entry of ``responses`` (cycling). Streaming yields the reply
    word by word.
    """

    responses: list[str] = Field(default_factory=lambda: ["safe code"])
    received: list[list[BaseMessage]] = Field(default_factory=list)
    i: int = 0

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def _reply(self, messages: list[BaseMessage]) -> str:
        self.received.append(list(messages))
        last = messages[-1].text if messages else ""
        if last.startswith("echo:"):
            return last[len("echo:") :]
        if last.startswith("raise:"):
            raise ModelDownError(last[len("raise:") :])
        reply = self.responses[self.i % len(self.responses)]
        self.i += 1
        return reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._reply(messages)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        words = self._reply(messages).split(" ")
        for index, word in enumerate(words):
            piece = word if index == 0 else " " + word
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))

    def system_prompts(self) -> list[str]:
        """The leading system message of every call ("" when there was none)."""
        return [call[0].text if call and call[0].type == "system" else "" for call in self.received]


class ModelDownError(RuntimeError):
    """The fake model's own error."""


class ScriptedToolModel(BaseChatModel):
    """A fake tool-calling chat model: replies follow ``script`` (cycling), fresh each time.

    Each script entry is either a final answer (a string) or a tool call
    ``{"tool": name, "args": {...}}``. ``bind_tools`` returns the model itself.
    """

    script: list[Any]
    received: list[list[BaseMessage]] = Field(default_factory=list)
    i: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-fake"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedToolModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(list(messages))
        last = messages[-1].text if messages else ""
        if last.startswith("raise:"):
            raise ModelDownError(last[len("raise:") :])
        entry = self.script[self.i % len(self.script)]
        self.i += 1
        if isinstance(entry, str):
            message = AIMessage(content=entry)
        else:
            message = AIMessage(
                content="",
                tool_calls=[{"name": entry["tool"], "args": entry["args"], "id": f"call-{self.i}"}],
            )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def system_prompts(self) -> list[str]:
        return [call[0].text if call and call[0].type == "system" else "" for call in self.received]
