"""FunctionalityScorer: the fraction of a task's tests the response's code passes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steerloop.errors import ScorerError
from steerloop.scoring._codeinput import (
    MAX_CODE_BYTES,
    code_from_response,
    coerce_task,
    task_from_context,
)
from steerloop.scoring.sandbox import Sandbox, SandboxLimits, SandboxResult
from steerloop.scoring.tasks import CodeTask, assemble_program, build_job

__all__ = ["FunctionalityScorer"]


class FunctionalityScorer:
    """Fraction of the task's tests the code passes, run in a :class:`Sandbox`.

    HumanEval tasks count each assertion statement of ``check`` as one test; an assert list
    counts each string. The code runs in a confined process of its own and the tests in a
    separate checker process that computes the verdict from the plain values the code
    returns (see :mod:`steerloop.scoring.sandbox` for what this guarantees against code that
    tries to forge its score, and what protection applies where). Code that times out,
    crashes, exits early, does not parse or is absent scores 0.0 (fail closed). A task whose
    own prompt fails to run is a failure (reason ``invalid_input``), not a 0.

    Parameters
    ----------
    task
        Default task when the context gives none.
    objective, name
        Objective scored (default ``"functionality"``) and scorer name (default: objective).
    limits
        :class:`SandboxLimits` or a mapping of its fields (``timeout`` seconds, ...).
    sandbox
        A configured :class:`Sandbox` (overrides ``limits``).
    max_bytes
        Largest code accepted.
    """

    def __init__(
        self,
        task: CodeTask | Mapping[str, Any] | list[str] | None = None,
        *,
        objective: str = "functionality",
        name: str | None = None,
        limits: SandboxLimits | Mapping[str, Any] | None = None,
        sandbox: Sandbox | None = None,
        max_bytes: int = MAX_CODE_BYTES,
    ) -> None:
        self.objectives: tuple[str, ...] = (objective,)
        self.name: str = name or objective
        self.task = coerce_task(task)
        self.sandbox = sandbox or Sandbox(limits)
        self.max_bytes = max_bytes

    def run(self, response: object, context: Mapping[str, Any]) -> SandboxResult | None:
        """Run the tests; ``None`` when the code is empty or does not parse."""
        task = task_from_context(context, self.task)
        if task is None or task.kind == "empty":
            raise ScorerError(
                self.name,
                "invalid_input",
                "no tests: pass context['task'] (CodeTask or HumanEval dict), "
                "context['tests'] (assert strings) or task=... to the constructor",
            )
        code = code_from_response(response, max_bytes=self.max_bytes, scorer=self.name)
        if not code.strip():
            return None
        try:
            program = assemble_program(code, task)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        result = self.sandbox.run(build_job(program, task))
        if result.detail == "task_error":
            raise ScorerError(
                self.name,
                "invalid_input",
                f"the task's prompt raises {result.error} when run on its own; fix the task",
            )
        return result

    def score(self, response: object, context: Mapping[str, Any]) -> dict[str, float]:
        """Pass fraction in [0, 1]."""
        result = self.run(response, context)
        return {self.objectives[0]: 0.0 if result is None else result.fraction}
