"""SteeredRunnable and SteeringCallbackHandler with langchain-core fake chat models."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from adapter_fakes import BALANCED, SECURE, ModelDownError, RecordingChatModel, score_text
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from structlog.testing import capture_logs

from steerloop import Controller
from steerloop.adapters.langchain import (
    STEERING_MESSAGE_ID,
    SteeredRunnable,
    SteeringCallbackHandler,
    is_steering_message,
)
from steerloop.scoring.base import CallableScorer

BALANCED_TEXT = BALANCED.format(objectives="security, functionality")


def cfg(session: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"session_id": session}, **extra}


def steered_model(
    controller: Controller, model: RecordingChatModel, **kwargs: Any
) -> SteeredRunnable[Any, Any]:
    kwargs.setdefault("scorer", score_text)
    return SteeredRunnable(model, controller, **kwargs)


class Recorder(BaseCallbackHandler):
    """Collects chain and chat-model callbacks."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: dict[UUID, Any] = {}
        self.errors: dict[UUID, BaseException] = {}
        self.chat_metadata: list[dict[str, Any]] = []

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append(
            {
                "name": kwargs.get("name"),
                "run_id": run_id,
                "parent": parent_run_id,
                "inputs": inputs,
                "metadata": metadata or {},
            }
        )

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.ends[run_id] = outputs

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors[run_id] = error

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.chat_metadata.append(metadata or {})

    def run(self, name: str) -> dict[str, Any]:
        matches = [start for start in self.starts if start["name"] == name]
        assert len(matches) == 1, (name, [s["name"] for s in self.starts])
        return matches[0]


# -- injection ---------------------------------------------------------------------------


def test_strategy_prompt_reaches_model_and_output_is_unchanged(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    output = steered.invoke([HumanMessage("write a parser")], cfg("u1"))
    assert isinstance(output, AIMessage) and output.content == "safe code"
    received = model.received[0]
    assert [m.type for m in received] == ["system", "human"]
    assert received[0].text == BALANCED_TEXT == controller.session("u1").prompt
    assert is_steering_message(received[0]) and received[0].id == STEERING_MESSAGE_ID
    assert controller.session("u1").step == 1


def test_switching_changes_the_prompt_the_model_receives(controller: Controller) -> None:
    model = RecordingChatModel(responses=["UNSAFE eval(input())"])
    steered = steered_model(controller, model)
    for _ in range(3):
        steered.invoke("write a parser", cfg("u1"))
    assert model.system_prompts() == [BALANCED_TEXT, BALANCED_TEXT, SECURE]
    decision = controller.session("u1").last_decision
    assert decision is not None and decision.rule == "insecure" and decision.strategy == "secure"


def test_previous_steering_message_is_replaced_never_stacked(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    old = SystemMessage("stale strategy", id=STEERING_MESSAGE_ID)
    marked = SystemMessage("stale too", additional_kwargs={"steerloop": True})
    user_system = SystemMessage("You are terse.")
    history = [old, user_system, HumanMessage("hi"), AIMessage("yo"), marked, HumanMessage("go")]
    steered.invoke(history, cfg("u1"))
    received = model.received[0]
    assert [m.text for m in received] == [BALANCED_TEXT, "You are terse.", "hi", "yo", "go"]
    assert sum(is_steering_message(m) for m in received) == 1
    # Feeding the model's own input back in (a growing history) still yields one message.
    steered.invoke([*received, AIMessage("ok"), HumanMessage("again")], cfg("u1"))
    assert sum(is_steering_message(m) for m in model.received[1]) == 1
    assert history[0] is old  # the caller's list is not mutated


def test_string_prompt_value_and_tuple_inputs(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    steered.invoke("plain string", cfg("u1"))
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    (prompt | steered).invoke({"q": "from a template"}, cfg("u1"))
    steered.invoke([("human", "a tuple message")], cfg("u1"))
    assert [[m.type for m in call] for call in model.received] == [["system", "human"]] * 3
    assert [call[1].text for call in model.received] == [
        "plain string",
        "from a template",
        "a tuple message",
    ]


def test_dict_input_gets_the_prompt_as_a_named_variable(
    controller: Controller, model: RecordingChatModel
) -> None:
    template = ChatPromptTemplate.from_messages(
        [("system", "{steering_prompt}"), ("human", "{question}")]
    )
    steered = SteeredRunnable(template | model, controller, scorer=score_text)
    steered.invoke({"question": "hi"}, cfg("u1"))
    custom = SteeredRunnable(
        ChatPromptTemplate.from_messages([("system", "Rules: {rules}"), ("human", "{question}")])
        | model,
        controller,
        prompt_variable="rules",
        scorer=score_text,
    )
    custom.invoke({"question": "hi"}, cfg("u2"))
    assert model.system_prompts() == [BALANCED_TEXT, f"Rules: {BALANCED_TEXT}"]


def test_unsupported_input_type_is_a_clear_type_error(
    controller: Controller, model: RecordingChatModel
) -> None:
    with pytest.raises(TypeError, match="cannot inject"):
        steered_model(controller, model).invoke(42, cfg("u1"))  # type: ignore[arg-type]


def test_a_scorer_is_required(policy: Any, model: RecordingChatModel) -> None:
    with pytest.raises(ValueError, match="no scorers"):
        SteeredRunnable(model, Controller(policy))


# -- sessions ----------------------------------------------------------------------------


def test_sessions_are_isolated_across_interleaved_calls(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    for _ in range(3):
        steered.invoke("echo:UNSAFE eval()", cfg("alice"))
        steered.invoke("echo:safe code", cfg("bob"))
    prompts = model.system_prompts()
    assert prompts[0::2] == [BALANCED_TEXT, BALANCED_TEXT, SECURE]  # alice switched
    assert prompts[1::2] == [BALANCED_TEXT] * 3  # bob did not
    assert controller.session("alice").step == controller.session("bob").step == 3
    assert controller.session("bob").strategy == "balanced"


def test_session_key_and_default_session(controller: Controller, model: RecordingChatModel) -> None:
    steered = steered_model(controller, model, session_key="user", default_session="anon")
    steered.invoke("hi", {"configurable": {"user": "carol"}})
    steered.invoke("hi")
    assert controller.session("carol").step == 1
    assert controller.session("anon").step == 1


# -- composition -------------------------------------------------------------------------


def test_with_config_and_pipe_composition(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    assert isinstance(steered, Runnable)
    bound = steered.with_config(configurable={"session_id": "cfg"})
    assert bound.invoke("hi").content == "safe code"
    chain = RunnableLambda(lambda text: [HumanMessage(text)]) | steered | StrOutputParser()
    assert chain.invoke("hi", cfg("piped")) == "safe code"
    assert controller.session("cfg").step == 1
    assert controller.session("piped").step == 1
    assert model.system_prompts() == [BALANCED_TEXT, BALANCED_TEXT]


def test_model_errors_pass_through_and_compose_with_fallbacks(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    with pytest.raises(ModelDownError, match="boom"):
        steered.invoke("raise:boom", cfg("u1"))
    assert controller.session("u1").step == 0 and steered.faults == 0
    fallback = RunnableLambda(lambda _: AIMessage("fallback"))
    assert steered.with_fallbacks([fallback]).invoke("raise:x", cfg("u1")).content == "fallback"


# -- batch, stream, async ----------------------------------------------------------------


def test_batch_steers_each_input_by_its_session(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    outputs = steered.batch(
        ["echo:one", "echo:UNSAFE two", "echo:three"], [cfg("a"), cfg("b"), cfg("a")]
    )
    assert [o.content for o in outputs] == ["one", "UNSAFE two", "three"]
    assert controller.session("a").step == 2 and controller.session("b").step == 1
    assert all(call[0].text == BALANCED_TEXT for call in model.received)


def test_batch_return_exceptions_skips_failed_items(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    outputs = steered.batch(["echo:ok", "raise:down"], [cfg("a"), cfg("b")], return_exceptions=True)
    assert outputs[0].content == "ok" and isinstance(outputs[1], ModelDownError)
    assert controller.session("a").step == 1 and controller.session("b").step == 0
    with pytest.raises(ModelDownError):
        steered.batch(["echo:ok", "raise:down"], [cfg("a"), cfg("b")])


async def test_abatch(controller: Controller, model: RecordingChatModel) -> None:
    steered = steered_model(controller, model)
    outputs = await steered.abatch(["echo:x", "echo:y"], [cfg("a"), cfg("b")])
    assert [o.content for o in outputs] == ["x", "y"]
    assert controller.session("a").step == controller.session("b").step == 1
    assert [call[0].text for call in model.received] == [BALANCED_TEXT] * 2


async def test_ainvoke_and_async_scorer(controller: Controller, model: RecordingChatModel) -> None:
    async def ascore(message: Any) -> dict[str, float]:
        return score_text(message)

    steered = SteeredRunnable(model, controller, scorer=ascore)
    for _ in range(3):
        output = await steered.ainvoke("echo:UNSAFE", cfg("u1"))
        assert output.content == "UNSAFE"
    assert model.system_prompts() == [BALANCED_TEXT, BALANCED_TEXT, SECURE]


def test_stream_yields_chunks_first_and_updates_once_on_the_aggregate(
    controller: Controller, model: RecordingChatModel
) -> None:
    seen: list[str] = []

    def score(message: Any) -> dict[str, float]:
        seen.append(message.text)
        return score_text(message)

    steered = SteeredRunnable(model, controller, scorer=score)
    session = controller.session("s")
    chunks = []
    for chunk in steered.stream("echo:three word answer", cfg("s")):
        chunks.append(chunk.content)
        assert session.step == 0  # no update while streaming
    assert [c for c in chunks if c] == ["three", " word", " answer"]
    assert seen == ["three word answer"] and session.step == 1
    assert model.received[0][0].text == BALANCED_TEXT

    for _ in steered.stream("echo:left early", cfg("s")):
        break
    assert session.step == 1  # a stream left early is not observed


async def test_astream(controller: Controller, model: RecordingChatModel) -> None:
    steered = steered_model(controller, model)
    chunks = [chunk.content async for chunk in steered.astream("echo:a b c", cfg("s"))]
    assert [c for c in chunks if c] == ["a", " b", " c"]
    assert controller.session("s").step == 1
    assert model.received[0][0].text == BALANCED_TEXT


def test_stream_through_a_chain(controller: Controller, model: RecordingChatModel) -> None:
    chain = steered_model(controller, model) | StrOutputParser()
    assert "".join(chain.stream("echo:x y", cfg("s"))) == "x y"
    assert controller.session("s").step == 1


# -- tracing -----------------------------------------------------------------------------


def test_decision_is_traced_as_a_child_run_with_metadata(
    controller: Controller, model: RecordingChatModel
) -> None:
    recorder = Recorder()
    steered = steered_model(controller, model)
    steered.invoke("echo:hi", cfg("t", callbacks=[recorder], run_name="steered-call"))
    outer = recorder.run("steered-call")
    decision_run = recorder.run("steerloop")
    assert decision_run["parent"] == outer["run_id"]
    assert decision_run["inputs"] == {"session_id": "t", "strategy": "balanced"}
    payload = recorder.ends[decision_run["run_id"]]
    assert payload["strategy"] == "balanced" and payload["step"] == 1
    assert set(payload) >= {"changed", "rule", "reason", "mode", "error"}
    assert recorder.ends[outer["run_id"]].content == "hi"
    assert recorder.chat_metadata[0]["steerloop_strategy"] == "balanced"
    assert recorder.chat_metadata[0]["steerloop_session_id"] == "t"


async def test_decision_shows_in_astream_events(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = steered_model(controller, model)
    events = [
        event
        async for event in steered.astream_events("echo:hi", cfg("t"), version="v2")
        if event["name"] == "steerloop" and event["event"] == "on_chain_end"
    ]
    assert len(events) == 1
    assert events[0]["data"]["output"]["strategy"] == "balanced"


def test_model_error_is_recorded_on_the_run(
    controller: Controller, model: RecordingChatModel
) -> None:
    recorder = Recorder()
    with pytest.raises(ModelDownError):
        steered_model(controller, model).invoke("raise:x", cfg("t", callbacks=[recorder]))
    outer = recorder.run("SteeredRunnable")
    assert isinstance(recorder.errors[outer["run_id"]], ModelDownError)


# -- faults ------------------------------------------------------------------------------


def test_scorer_that_raises_fails_open_counts_and_logs_without_text(
    controller: Controller, model: RecordingChatModel
) -> None:
    def broken(message: Any) -> dict[str, float]:
        raise ValueError(f"cannot score {message.text}")

    steered = SteeredRunnable(model, controller, scorer=broken)
    with capture_logs() as logs:
        output = steered.invoke("echo:SECRET-RESPONSE", cfg("u1"))
    assert output.content == "SECRET-RESPONSE"
    assert steered.faults == 1
    assert controller.session("u1").step == 0
    faults = [log for log in logs if log["event"] == "steerloop.adapter_fault"]
    assert len(faults) == 1
    assert faults[0]["error_type"] == "ValueError" and faults[0]["adapter"] == "runnable"
    assert faults[0]["session_id"] == "u1"
    assert "SECRET" not in repr(logs) and BALANCED_TEXT not in repr(logs)


def test_controller_scorer_failure_is_a_missing_value(
    policy: Any, model: RecordingChatModel
) -> None:
    def broken(response: Any) -> dict[str, float]:
        raise ValueError("bad")

    controller = Controller(policy, scorers=[CallableScorer(broken, ["security"], name="b")])
    steered = SteeredRunnable(model, controller)
    assert steered.invoke("echo:fine", cfg("u1")).content == "fine"
    decision = controller.session("u1").last_decision
    assert decision is not None and decision.diagnostics["errors.scorer"] == 1.0
    assert set(decision.missing) == {"security", "functionality"}


def test_strict_reraises_scorer_faults(controller: Controller, model: RecordingChatModel) -> None:
    def broken(message: Any) -> dict[str, float]:
        raise ValueError("bad")

    steered = SteeredRunnable(model, controller, scorer=broken, strict=True)
    with pytest.raises(ValueError, match="bad"):
        steered.invoke("echo:x", cfg("u1"))
    strict_controller = Controller(controller.policy, strict=True)
    inherited = SteeredRunnable(model, strict_controller, scorer=broken)
    with pytest.raises(ValueError, match="bad"):
        inherited.invoke("echo:x", cfg("u1"))


async def test_async_scorer_fault_fails_open(
    controller: Controller, model: RecordingChatModel
) -> None:
    async def broken(message: Any) -> dict[str, float]:
        raise KeyError("x")

    steered = SteeredRunnable(model, controller, scorer=broken)
    assert (await steered.ainvoke("echo:x", cfg("u1"))).content == "x"
    chunks = [c async for c in steered.astream("echo:y", cfg("u1"))]
    assert "".join(c.content for c in chunks) == "y"
    assert steered.faults == 2


def test_steerloop_scorer_object_is_accepted(
    controller: Controller, model: RecordingChatModel
) -> None:
    scorer = CallableScorer(score_text, ["security", "functionality"], name="text")
    steered = SteeredRunnable(model, controller, scorer=scorer)
    steered.invoke("echo:UNSAFE", cfg("u1"))
    decision = controller.session("u1").last_decision
    assert decision is not None and decision.diagnostics["score.security"] == 0.0


# -- callback handler --------------------------------------------------------------------


def test_callback_handler_observes_without_injecting(
    controller: Controller, model: RecordingChatModel
) -> None:
    handler = SteeringCallbackHandler(controller, scorer=score_text, session_id="shared")
    model.invoke("echo:UNSAFE", {"callbacks": [handler], "metadata": {"session_id": "h"}})
    model.invoke("echo:UNSAFE", {"callbacks": [handler]})  # no id: the opted-in session
    assert controller.session("h").step == 1
    assert controller.session("shared").step == 1
    assert all(call[0].type == "human" for call in model.received)
    assert handler.last_decision is not None and handler.faults == 0


async def test_callback_handler_async_and_faults(
    controller: Controller, model: RecordingChatModel
) -> None:
    def broken(message: Any) -> dict[str, float]:
        raise ValueError("bad")

    handler = SteeringCallbackHandler(controller, session_id="h", scorer=broken)
    assert (await model.ainvoke("echo:x", {"callbacks": [handler]})).content == "x"
    assert handler.faults == 1
    strict = SteeringCallbackHandler(controller, session_id="h", scorer=broken, strict=True)
    with pytest.raises(ValueError, match="bad"):
        model.invoke("echo:x", {"callbacks": [strict]})
    with pytest.raises(ModelDownError):
        model.invoke("raise:x", {"callbacks": [handler]})
    assert handler._runs == {}
