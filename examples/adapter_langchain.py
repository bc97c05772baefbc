"""Steer a langchain-core chain with SteeredRunnable (offline: a fake chat model).

Shows the strategy prompt reaching the model as a system message, a switch after insecure
answers, per-user sessions from ``configurable.session_id``, streaming, batch, the decision in
the callbacks (what LangSmith shows as the ``steerloop`` child run), and the observe-only
SteeringCallbackHandler.

Run: ``python examples/adapter_langchain.py``
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig

from steerloop import Controller
from steerloop.adapters.langchain import SteeredRunnable, SteeringCallbackHandler
from steerloop.policies.loader import parse_policy

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


def score_reply(message: BaseMessage) -> dict[str, float]:
    """Toy scorer on the model's reply."""
    text = message.text
    return {
        "security": 0.1 if "eval(" in text and "literal_eval" not in text else 0.9,
        "functionality": 0.8 if "def " in text else 0.3,
    }


class PrintDecisions(BaseCallbackHandler):
    """Prints the decision recorded in the ``steerloop`` child run of each call."""

    def __init__(self) -> None:
        self.names: dict[UUID, str] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.names[run_id] = kwargs.get("name") or ""

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self.names.pop(run_id, "") == "steerloop":
            print(f"   traced decision: step {outputs['step']} -> {outputs['strategy']}")


def main() -> None:
    controller = Controller(parse_policy(POLICY))
    model = FakeListChatModel(
        responses=["def f(x): return eval(x)", "def f(x): return eval(x)", "def f(x): ..."]
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "{steering_prompt}"), ("human", "{task}")]
    )
    # Steer the whole prompt | model chain: dict input gets the prompt as {steering_prompt}.
    chain = SteeredRunnable(prompt | model, controller, scorer=score_reply) | StrOutputParser()

    print("== invoke (session alice)")
    alice: RunnableConfig = {
        "configurable": {"session_id": "alice"},
        "callbacks": [PrintDecisions()],
    }
    for _ in range(3):
        used = controller.session("alice").prompt
        reply = chain.invoke({"task": "parse a literal"}, alice)
        print(f"system: {used[:40]!r:44} reply: {reply!r}")

    print("== bob is a separate session")
    print("bob's prompt:", controller.session("bob").prompt)

    print("== stream (chunks as they come, one update on the whole reply)")
    steered_model = SteeredRunnable(model, controller, scorer=score_reply)
    chunks = [c.content for c in steered_model.stream("hi", {"configurable": {"session_id": "s"}})]
    print(f"{len(chunks)} chunks; session s step = {controller.session('s').step}")

    print("== batch (each input by its own session)")
    configs: list[RunnableConfig] = [{"configurable": {"session_id": u}} for u in ("u1", "u2")]
    replies = steered_model.batch(["task one", "task two"], configs)
    print([r.content for r in replies], [controller.session(u).step for u in ("u1", "u2")])

    print("== observe-only callback handler")
    handler = SteeringCallbackHandler(controller, session_id="watched", scorer=score_reply)
    model.invoke("hi", {"callbacks": [handler]})
    print("watched step:", controller.session("watched").step, "faults:", handler.faults)
    assert controller.session("alice").strategy == "security_first"


if __name__ == "__main__":
    main()
