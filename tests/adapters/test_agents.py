"""SteeringMiddleware in real create_agent runs with a fake tool-calling model."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from typing import Any

import pytest
from adapter_fakes import BALANCED, SECURE, ModelDownError, ScriptedToolModel, score_text, text_of
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from structlog.testing import capture_logs

from steerloop import Controller
from steerloop.adapters.agents import STATE_KEY, SteeringMiddleware
from steerloop.policies.schema import Policy

BALANCED_TEXT = BALANCED.format(objectives="security, functionality")
AGENT_PROMPT = "You are a coding agent."
AFTER_MODEL = "SteeringMiddleware.after_model"  # the node that writes the snapshot


@tool
def lookup(query: str) -> str:
    """Look up documentation."""
    return f"docs for {query}"


def tool_then_answer(answer: str) -> ScriptedToolModel:
    return ScriptedToolModel(script=[{"tool": "lookup", "args": {"query": "csv"}}, answer])


def build(
    controller: Controller, model: ScriptedToolModel, saver: Any = None, **kwargs: Any
) -> tuple[Any, SteeringMiddleware]:
    kwargs.setdefault("scorer", score_text)
    middleware = SteeringMiddleware(controller, **kwargs)
    agent = create_agent(
        model,
        tools=[lookup],
        system_prompt=AGENT_PROMPT,
        middleware=[middleware],
        checkpointer=saver,
    )
    return agent, middleware


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def ask(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def test_prompt_reaches_every_model_call_and_each_response_is_scored(
    controller: Controller,
) -> None:
    model = tool_then_answer("safe answer")
    agent, middleware = build(controller, model)
    result = agent.invoke(ask("parse csv"), thread("t1"))
    assert result["messages"][-1].content == "safe answer"
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai"]
    assert model.system_prompts() == [f"{BALANCED_TEXT}\n\n{AGENT_PROMPT}"] * 2
    assert controller.session("t1").step == 2  # the tool-call turn and the answer
    assert result["steerloop_decision"]["strategy"] == "balanced"
    assert STATE_KEY not in result  # private: not in the output schema
    assert middleware.faults == 0


def test_placement_options(controller: Controller) -> None:
    for placement, expected in [
        ("append", f"{AGENT_PROMPT}\n\n{BALANCED_TEXT}"),
        ("replace", BALANCED_TEXT),
    ]:
        model = ScriptedToolModel(script=["ok"])
        agent, _ = build(controller, model, placement=placement)
        agent.invoke(ask("hi"), thread(placement))
        assert model.system_prompts() == [expected]
    with pytest.raises(ValueError, match="placement"):
        SteeringMiddleware(controller, scorer=score_text, placement="middle")  # type: ignore[arg-type]


def test_controller_state_survives_in_the_checkpointer_per_thread(policy: Policy) -> None:
    saver = InMemorySaver()
    model = ScriptedToolModel(script=["UNSAFE answer"])
    first_controller = Controller(policy)
    agent, _ = build(first_controller, model, saver)
    agent.invoke(ask("one"), thread("t1"))
    agent.invoke(ask("two"), thread("t1"))
    assert model.system_prompts() == [f"{BALANCED_TEXT}\n\n{AGENT_PROMPT}"] * 2
    state = agent.get_state(thread("t1")).values
    snapshot = json.loads(state[STATE_KEY])
    assert snapshot["step"] == 2 and snapshot["strategy"] == "secure"

    # A new process: fresh controller and middleware, same checkpointer.
    restarted = Controller(policy)
    model_2 = ScriptedToolModel(script=["UNSAFE answer"])
    agent_2, middleware_2 = build(restarted, model_2, saver)
    agent_2.invoke(ask("three"), thread("t1"))
    assert model_2.system_prompts() == [f"{SECURE}\n\n{AGENT_PROMPT}"]  # restored strategy
    assert restarted.session("t1").step == 3
    assert json.loads(agent_2.get_state(thread("t1")).values[STATE_KEY])["step"] == 3

    # Another thread starts fresh.
    agent_2.invoke(ask("hello"), thread("t2"))
    assert model_2.system_prompts()[-1] == f"{BALANCED_TEXT}\n\n{AGENT_PROMPT}"
    assert restarted.session("t2").step == 1
    assert middleware_2.faults == 0


def test_forked_state_is_restored_under_the_new_thread(policy: Policy) -> None:
    saver = InMemorySaver()
    controller = Controller(policy)
    agent, _ = build(controller, ScriptedToolModel(script=["UNSAFE"]), saver)
    agent.invoke(ask("one"), thread("src"))
    agent.invoke(ask("two"), thread("src"))
    values = agent.get_state(thread("src")).values
    agent.update_state(
        thread("fork"),
        {"messages": values["messages"], STATE_KEY: values[STATE_KEY]},
        as_node=AFTER_MODEL,
    )
    agent.invoke(ask("three"), thread("fork"))
    assert controller.session("fork").step == 3
    assert controller.session("src").step == 2


async def test_async_agent_run(policy: Policy) -> None:
    async def ascore(message: Any) -> dict[str, float]:
        return score_text(message)

    controller = Controller(policy)
    model = tool_then_answer("UNSAFE")
    agent, _ = build(controller, model, InMemorySaver(), scorer=ascore)
    result = await agent.ainvoke(ask("go"), thread("a"))
    assert result["messages"][-1].content == "UNSAFE"
    await agent.ainvoke(ask("again"), thread("a"))
    assert controller.session("a").step == 4
    assert model.system_prompts()[-1] == f"{SECURE}\n\n{AGENT_PROMPT}"


def test_refine_until_target_met(controller: Controller) -> None:
    model = ScriptedToolModel(script=["draft 1", "draft 2", "final"])

    def score(message: Any) -> dict[str, float]:
        good = text_of(message) == "final"
        return {"security": 0.9, "functionality": 0.9 if good else 0.2}

    agent, _ = build(controller, model, scorer=score, refine=True, target=0.8, metric="score")
    result = agent.invoke(ask("write it"), thread("r"))
    assert [m.content for m in result["messages"] if m.type == "ai"] == [
        "draft 1",
        "draft 2",
        "final",
    ]
    refine_messages = [m for m in result["messages"][1:] if m.type == "human"]
    assert len(refine_messages) == 2
    assert all(m.additional_kwargs.get("steerloop_refine") for m in refine_messages)
    assert result["steerloop_stop_reason"] == "target_met"


def test_refine_stops_at_max_iterations_per_invocation(policy: Policy) -> None:
    controller = Controller(policy)
    model = ScriptedToolModel(script=["UNSAFE"])
    saver = InMemorySaver()
    agent, _ = build(controller, model, saver, refine=True, target=0.8, max_iterations=2)
    result = agent.invoke(ask("write it"), thread("r"))
    assert len(model.received) == 3  # the answer and two refinements
    assert result["steerloop_stop_reason"] == "max_iterations"
    agent.invoke(ask("again"), thread("r"))  # the count starts over per invocation
    assert len(model.received) == 6


def test_refine_target_defaults_to_the_policy_sequential_target(policy: Policy) -> None:
    from steerloop.policies.schema import Action, Condition, Rule, SequentialAction, Strategy

    with pytest.raises(ValueError, match="needs a target"):
        SteeringMiddleware(Controller(policy), scorer=score_text, refine=True)
    rule = Rule(
        name="interfere",
        when=Condition(metric="interference.min", below=-0.15),
        then=Action(sequential=SequentialAction(target=0.7)),
    )
    feature = Strategy(prompt="FEATURES first.", emphasis={"functionality": 1.0})
    with_sequential = policy.model_copy(
        update={
            "rules": [*policy.rules, rule],
            "strategies": {**policy.strategies, "feature": feature},
        }
    )
    middleware = SteeringMiddleware(Controller(with_sequential), scorer=score_text, refine=True)
    assert middleware.target == {"security": 0.7, "functionality": 0.7}


def test_scorer_faults_fail_open_and_model_errors_pass_through(controller: Controller) -> None:
    def broken(message: Any) -> dict[str, float]:
        raise ValueError("bad")

    model = tool_then_answer("SECRET answer")
    agent, middleware = build(controller, model, scorer=broken)
    with capture_logs() as logs:
        result = agent.invoke(ask("go"), thread("f"))
    assert result["messages"][-1].content == "SECRET answer"
    assert middleware.faults == 2
    assert {log["adapter"] for log in logs if log["event"] == "steerloop.adapter_fault"} == {
        "agent"
    }
    assert "SECRET" not in repr(logs)
    with pytest.raises(ModelDownError, match="offline"):
        agent.invoke(ask("raise:offline"), thread("f"))
    strict_agent, _ = build(controller, ScriptedToolModel(script=["x"]), scorer=broken, strict=True)
    with pytest.raises(ValueError, match="bad"):
        strict_agent.invoke(ask("go"), thread("s"))


def test_corrupt_snapshot_in_state_fails_open(controller: Controller) -> None:
    saver = InMemorySaver()
    agent, middleware = build(controller, ScriptedToolModel(script=["ok"]), saver)
    agent.update_state(thread("c"), {"messages": [], STATE_KEY: "{not json"}, as_node=AFTER_MODEL)
    assert agent.invoke(ask("hi"), thread("c"))["messages"][-1].content == "ok"
    assert middleware.faults == 1 and controller.session("c").step == 1


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    monkeypatch.delitem(sys.modules, "steerloop.adapters.agents")
    with pytest.raises(ImportError, match=r"pip install 'steerloop\[agents\]'"):
        importlib.import_module("steerloop.adapters.agents")


@dataclasses.dataclass
class OldStyleRequest:
    """The langchain 1.0 shape: a ``system_prompt`` string field and no ``system_message``."""

    system_prompt: str | None
    state: dict[str, Any]


@dataclasses.dataclass
class OldStyleRequestWithOverride(OldStyleRequest):
    def override(self, **changes: Any) -> OldStyleRequestWithOverride:
        return dataclasses.replace(self, **changes)


def test_falls_back_to_system_prompt_on_older_langchain(controller: Controller) -> None:
    middleware = SteeringMiddleware(controller, scorer=score_text, default_session="default")
    for cls in (OldStyleRequest, OldStyleRequestWithOverride):
        request = cls(system_prompt=AGENT_PROMPT, state={"messages": []})
        steered = middleware._steer_request(request)  # type: ignore[arg-type]
        assert steered.system_prompt == f"{BALANCED_TEXT}\n\n{AGENT_PROMPT}"
        assert request.system_prompt == AGENT_PROMPT  # not mutated
