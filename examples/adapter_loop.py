"""Steer a plain Python refine loop (offline: the "LLM" is a stand-in function).

Two forms:

* ``@steer(...)`` wraps ``generate(prompt, task)`` so each call gets the current strategy
  prompt and its result is scored and fed back;
* ``steered_steps(...)`` runs a loop until the scores reach a target or ``max_steps``.

Run: ``python examples/adapter_loop.py``
"""

from __future__ import annotations

from steerloop import Controller, Decision
from steerloop.adapters.loop import steer, steered_steps
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


def fake_llm(system_prompt: str, task: str) -> str:
    """A stand-in model: it writes unsafe code unless told to put security first."""
    if system_prompt.startswith("SECURITY FIRST"):
        return f"def solve(text):  # {task}\n    return ast.literal_eval(text)\n"
    return f"def solve(text):  # {task}\n    return eval(text)\n"


def score_code(code: str) -> dict[str, float]:
    """Toy scorer: eval() is insecure; a function definition counts as working code."""
    return {
        "security": 0.1 if "eval(text)" in code and "literal_eval" not in code else 0.9,
        "functionality": 0.8 if code.startswith("def ") else 0.2,
    }


def main() -> None:
    controller = Controller(parse_policy(POLICY))

    # 1. The decorator: call generate(task); the prompt is injected as the first argument.
    @steer(controller, session_id="decorated", scorer=score_code)
    def generate(prompt: str, task: str) -> str:
        return fake_llm(prompt, task)

    print("== @steer")
    for round_ in range(4):
        code = generate("parse a literal")
        decision = generate.last_decision
        assert decision is not None
        first_line = code.splitlines()[1].strip()
        print(f"round {round_}: {first_line:32} -> next: {decision.strategy} ({decision.reason})")

    # 2. The iterator: refine until both raw scores reach 0.8, at most 10 steps.
    print("== steered_steps")
    loop = steered_steps(
        controller.session("refine"), max_steps=10, target=0.8, metric="score", scorer=score_code
    )
    for step in loop:
        decision = step.observe(fake_llm(step.prompt, "parse a literal"))
        assert decision is not None
        print(f"step {step.index}: used {step.strategy:15} scores {scores_line(decision)}")
    print(f"stopped: {loop.stop_reason} after {loop.steps} steps, faults: {loop.faults}")
    assert loop.stop_reason == "target_met"


def scores_line(decision: Decision) -> str:
    """The raw scores of the observed response, from the decision's diagnostics."""
    return ", ".join(
        f"{name}={decision.diagnostics[f'score.{name}']}" for name in ("security", "functionality")
    )


if __name__ == "__main__":
    main()
