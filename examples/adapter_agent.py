"""Steer a LangChain v1 agent with SteeringMiddleware (offline: a fake tool-calling model).

The controller state lives in the agent state (a private key the checkpointer persists per
thread), so a second invocation on the same thread — even from a fresh process with a new
controller — continues where the first stopped, while a new thread starts fresh. The second
agent shows refine mode: it sends the answer back to the model until the target is met.

Needs the ``agents`` extra: ``pip install 'steerloop[agents]'``.
Run: ``python examples/adapter_agent.py``
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from steerloop import Controller
from steerloop.policies.loader import parse_policy

try:  # the ``agents`` extra: LangChain v1 agents and LangGraph
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from steerloop.adapters.agents import SteeringMiddleware
except ImportError as error:
    raise SystemExit(
        f"examples/adapter_agent.py needs the 'agents' extra ({error}); install it with: "
        "pip install 'steerloop[agents]'  (in this repository: "
        ".venv/bin/pip install -e '.[agents]')"
    ) from None

POLICY = """
version: 1
objectives: [security, functionality]
strategies:
  balanced: {prompt: "Improve {objectives} together."}
  security_first:
    prompt: "SECURITY FIRST: never eval user input; validate everything."
    emphasis: {security: 1.0}
initial: balanced
estimation: {warmup: 2}
switching: {min_dwell: 0}
rules:
  - name: insecure
    when: {metric: objective.security, below: 0.4}
    then: {switch_to: security_first}
"""


class FakeToolModel(BaseChatModel):
    """Calls the ``docs`` tool, then answers; the answer is safe only under SECURITY FIRST."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "fake-tool-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls += 1
        system = messages[0].text if messages[0].type == "system" else ""
        if messages[-1].type == "human" and "Revise" not in messages[-1].text:
            tool_call = {"name": "docs", "args": {"topic": "parsing"}, "id": f"c{self.calls}"}
            reply = AIMessage(content="", tool_calls=[tool_call])
        elif system.startswith("SECURITY FIRST"):
            reply = AIMessage(content="def parse(s): return ast.literal_eval(s)")
        else:
            reply = AIMessage(content="def parse(s): return eval(s)")
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def docs(topic: str) -> str:
    """Read the documentation on a topic."""
    return f"(documentation about {topic})"


def score(message: AIMessage) -> dict[str, float]:
    """Toy scorer: tool-call turns have no code yet (security unknown -> missing)."""
    if message.tool_calls:
        return {"functionality": 0.5}
    unsafe = "eval(s)" in message.text and "literal_eval" not in message.text
    return {"security": 0.1 if unsafe else 0.9, "functionality": 0.8}


def make_agent(saver: InMemorySaver, **options: Any) -> tuple[Any, Controller]:
    controller = Controller(parse_policy(POLICY))
    middleware = SteeringMiddleware(controller, scorer=score, **options)
    agent = create_agent(
        FakeToolModel(),
        tools=[docs],
        system_prompt="You are a careful Python engineer.",
        middleware=[middleware],
        checkpointer=saver,
    )
    return agent, controller


def main() -> None:
    saver = InMemorySaver()
    thread = {"configurable": {"thread_id": "user-1"}}
    request = {"messages": [("user", "Write a parser for Python literals.")]}

    print("== two invocations on thread user-1")
    agent, controller = make_agent(saver)
    for turn in range(2):
        result = agent.invoke(request, thread)
        session = controller.session("user-1")
        print(
            f"turn {turn}: answer {result['messages'][-1].content!r}; "
            f"session step {session.step}, next strategy {session.strategy}"
        )

    print("== a fresh process (new controller) resumes user-1 from the checkpoint")
    agent_2, controller_2 = make_agent(saver)
    result = agent_2.invoke(request, thread)
    print(f"answer {result['messages'][-1].content!r}; step {controller_2.session('user-1').step}")
    agent_2.invoke(request, {"configurable": {"thread_id": "user-2"}})
    print("user-2 starts fresh: step", controller_2.session("user-2").step)

    print("== refine mode: back to the model until security >= 0.8 (at most 4 times)")
    refiner, _ = make_agent(
        InMemorySaver(), refine=True, target={"security": 0.8}, metric="score", max_iterations=4
    )
    result = refiner.invoke(request, {"configurable": {"thread_id": "refine"}})
    answers = [m.content for m in result["messages"] if m.type == "ai" and m.content]
    print(f"{len(answers)} answers; stop reason: {result['steerloop_stop_reason']}")
    print("final:", answers[-1])
    assert result["steerloop_stop_reason"] == "target_met"


if __name__ == "__main__":
    main()
