"""Issue 20, items 1 and 3: one scorer argument name everywhere, and no silent session merge.

Every adapter takes ``scorer=`` (the loop helpers' old ``score=`` works for one release with a
DeprecationWarning), and an adapter that reads the session id from a config or metadata key
raises a clear ``ValueError`` when that key is missing or misspelled, unless the user opted
in to a shared session.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
from adapter_fakes import RecordingChatModel, ScriptedToolModel, score_text
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from steerloop import Controller
from steerloop.adapters.agents import SteeringMiddleware
from steerloop.adapters.langchain import SteeredRunnable, SteeringCallbackHandler
from steerloop.adapters.loop import steer, steered_steps

SAFE = {"security": 0.9, "functionality": 0.8}


# -- item 1: one name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "adapter", [steer, steered_steps, SteeredRunnable, SteeringCallbackHandler, SteeringMiddleware]
)
def test_every_adapter_takes_scorer(adapter: Any) -> None:
    assert "scorer" in inspect.signature(adapter).parameters


def test_the_no_scorer_error_names_the_argument_that_works(
    controller: Controller, model: RecordingChatModel
) -> None:
    for build in (
        lambda: SteeredRunnable(model, controller),
        lambda: SteeringCallbackHandler(controller, session_id="s"),
        lambda: SteeringMiddleware(controller),
        lambda: steer(controller, session_id="s")(lambda prompt: "x"),
    ):
        with pytest.raises(ValueError, match=r"pass scorer=fn\(response\)") as caught:
            build()
        assert "score=" not in str(caught.value).replace("scorer=", "")
    # ... and the argument it names is accepted.
    steered = SteeredRunnable(model, controller, scorer=score_text)
    steered.invoke("hi", {"configurable": {"session_id": "u"}})
    assert controller.session("u").step == 1


def test_score_still_works_for_one_release_with_a_deprecation_warning(
    controller: Controller,
) -> None:
    with pytest.warns(DeprecationWarning, match=r"steer\(score=\.\.\.\) is deprecated; use scorer"):
        generate = steer(controller, session_id="s", score=lambda r: SAFE)(lambda prompt: "x")
    generate()
    assert controller.session("s").step == 1
    with pytest.warns(DeprecationWarning, match=r"steered_steps\(score=\.\.\.\)"):
        loop = steered_steps(controller.session("t"), max_steps=1, score=lambda r: SAFE)
    for step in loop:
        assert step.observe("x") is not None
    with pytest.raises(TypeError, match="scorer= only"):
        steer(controller, session_id="s", scorer=score_text, score=score_text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        steer(controller, session_id="s", scorer=score_text)
        steered_steps(controller.session("t"), max_steps=1, scorer=score_text)


def test_steer_without_a_session_id_is_deprecated_not_silent(controller: Controller) -> None:
    with pytest.warns(DeprecationWarning, match="one shared session 'default'"):
        generate = steer(controller, scorer=lambda r: SAFE)(lambda prompt: "x")
    generate()
    assert controller.session("default").step == 1


# -- item 3: SteeredRunnable -----------------------------------------------------------------


def test_runnable_calls_without_a_session_id_raise_before_the_model_runs(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = SteeredRunnable(model, controller, scorer=score_text)
    for call in (
        lambda: steered.invoke("alice"),  # the reproducer: no config at all
        lambda: steered.invoke("bob", {"configurable": {}}),
        lambda: steered.batch(["a", "b"], [{"configurable": {"session_id": "a"}}, {}]),
        lambda: list(steered.stream("c")),
    ):
        with pytest.raises(ValueError, match="no 'session_id' in config"):
            call()
    assert model.received == []
    assert len(controller) == 1  # only "a" of the batch was looked up, nothing was stepped
    assert controller.session("a").step == 0


def test_a_misspelled_session_key_gets_a_did_you_mean(
    controller: Controller, model: RecordingChatModel
) -> None:
    steered = SteeredRunnable(model, controller, scorer=score_text)
    with pytest.raises(ValueError, match="found 'sessionid': did you mean 'session_id'"):
        steered.invoke("dave", {"configurable": {"sessionid": "dave"}})
    with pytest.raises(ValueError, match="found 'user': did you mean 'user_id'"):
        SteeredRunnable(model, controller, scorer=score_text, session_key="user_id").invoke(
            "x", {"configurable": {"user": "dave"}}
        )


async def test_async_calls_raise_too(controller: Controller, model: RecordingChatModel) -> None:
    steered = SteeredRunnable(model, controller, scorer=score_text)
    with pytest.raises(ValueError, match="no 'session_id'"):
        await steered.ainvoke("alice")
    assert model.received == []


def test_opting_in_to_a_shared_session(controller: Controller, model: RecordingChatModel) -> None:
    steered = SteeredRunnable(model, controller, scorer=score_text, default_session="shared")
    steered.invoke("alice")
    steered.invoke("bob")
    steered.invoke("carol", {"configurable": {"session_id": "carol"}})
    assert controller.session("shared").step == 2
    assert controller.session("carol").step == 1


# -- item 3: SteeringCallbackHandler ---------------------------------------------------------


def test_handler_runs_without_a_session_id_raise(
    controller: Controller, model: RecordingChatModel
) -> None:
    handler = SteeringCallbackHandler(controller, scorer=score_text)
    with pytest.raises(ValueError, match="no 'session_id' in the run's metadata"):
        model.invoke("x", {"callbacks": [handler]})
    with pytest.raises(ValueError, match="did you mean 'session_id'"):
        model.invoke("x", {"callbacks": [handler], "metadata": {"session-id": "u"}})
    model.invoke("x", {"callbacks": [handler], "metadata": {"session_id": "u"}})
    assert controller.session("u").step == 1
    assert handler.faults == 0 and handler._runs == {}


# -- item 3: SteeringMiddleware --------------------------------------------------------------


def agent_with(middleware: SteeringMiddleware) -> Any:
    return create_agent(
        ScriptedToolModel(script=["done"]), middleware=[middleware], checkpointer=InMemorySaver()
    )


def test_agent_runs_without_a_thread_id_raise(controller: Controller) -> None:
    middleware = SteeringMiddleware(controller, scorer=score_text)
    request = {"messages": [HumanMessage("hi")]}
    with pytest.raises(ValueError, match="SteeringMiddleware: no 'thread_id'"):
        create_agent(ScriptedToolModel(script=["done"]), middleware=[middleware]).invoke(request)
    with pytest.raises(ValueError, match="found 'thread': did you mean 'thread_id'"):
        create_agent(ScriptedToolModel(script=["done"]), middleware=[middleware]).invoke(
            request, {"configurable": {"thread": "t"}}
        )
    assert len(controller) == 0
    agent_with(middleware).invoke(request, {"configurable": {"thread_id": "t"}})
    assert controller.session("t").step == 1


def test_agent_opt_in_to_a_shared_session(controller: Controller) -> None:
    middleware = SteeringMiddleware(controller, scorer=score_text, default_session="shared")
    agent = create_agent(ScriptedToolModel(script=["done"]), middleware=[middleware])
    agent.invoke({"messages": [HumanMessage("hi")]})
    assert controller.session("shared").step == 1
