"""EfficiencyScorer: runtime against a reference solution, or a static proxy from the AST."""

from __future__ import annotations

import ast
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from steerloop.errors import ScorerError
from steerloop.scoring._codeinput import (
    MAX_CODE_BYTES,
    code_from_response,
    coerce_task,
    syntax_error,
    task_from_context,
)
from steerloop.scoring.sandbox import Sandbox, SandboxLimits, SandboxResult
from steerloop.scoring.tasks import CodeTask, assemble_program, build_job

__all__ = ["EfficiencyMeasurement", "EfficiencyScorer", "StaticEfficiency", "static_efficiency"]


@dataclass(frozen=True)
class StaticEfficiency:
    """The static efficiency proxy and its inputs."""

    score: float
    loop_depth: int
    complexity: int


_DECISIONS = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.IfExp,
    ast.ExceptHandler,
    ast.match_case,
)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _complexity(body: list[ast.stmt]) -> int:
    count = 1
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            continue
        if isinstance(node, _DECISIONS):
            count += 1
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            count += 1 + len(node.ifs)
        stack.extend(ast.iter_child_nodes(node))
    return count


def _loop_depth(node: ast.AST, depth: int = 0) -> int:
    deepest = depth
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            deepest = max(deepest, _loop_depth(child, 0))
        elif isinstance(child, _LOOPS):
            deepest = max(deepest, _loop_depth(child, depth + 1))
        elif isinstance(child, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            inner = depth + len(child.generators)
            deepest = max(deepest, inner, _loop_depth(child, inner))
        else:
            deepest = max(deepest, _loop_depth(child, depth))
    return deepest


def static_efficiency(code: str) -> StaticEfficiency:
    """A static efficiency proxy from the AST (no execution).

    Formula
    -------
    ``score = max(0, 1 - 0.25·max(0, D - 1) - 0.02·max(0, C - 10))`` where ``D`` is the
    deepest lexical nesting of loops (``for``, ``while`` and each ``for`` of a
    comprehension; a nested function starts again at 0) and ``C`` the largest McCabe
    cyclomatic complexity of a function (or of the module level). One loop level scores 1.0,
    two 0.75, three 0.5; complexity beyond 10 costs 0.02 per decision. The proxy is exactly
    deterministic (no noise) and blind to algorithmic choices that do not show in the
    structure.

    Raises
    ------
    SyntaxError
        When the code does not parse.

    Examples
    --------
    >>> static_efficiency("def f(xs):\\n    return [x for x in xs for y in xs]\\n").score
    0.75
    """
    tree = ast.parse(code)
    complexities = [_complexity(tree.body)]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            complexities.append(_complexity(node.body))
    depth = _loop_depth(tree)
    complexity = max(complexities)
    score = 1.0 - 0.25 * max(0, depth - 1) - 0.02 * max(0, complexity - 10)
    return StaticEfficiency(score=max(0.0, score), loop_depth=depth, complexity=complexity)


@dataclass(frozen=True)
class EfficiencyMeasurement:
    """How an efficiency score was obtained.

    ``candidate_seconds`` and ``reference_seconds`` are the fastest per-pass times (runtime
    mode); ``static`` holds the proxy's inputs (static mode); ``sandbox`` the raw run.
    """

    score: float
    method: Literal["runtime", "static"]
    candidate_seconds: float | None = None
    reference_seconds: float | None = None
    static: StaticEfficiency | None = None
    sandbox: SandboxResult | None = None


class EfficiencyScorer:
    """Runtime of the tests relative to a reference solution, or a static proxy.

    Runtime mode (the task has tests and a reference): one sandboxed run loads the reference
    and the candidate side by side and times the task's test units for each, alternating
    candidate and reference batches ``rounds`` times (which side goes first alternates); each
    batch repeats the units until the slower side's batch lasts about ``target_seconds``.
    With ``c_i`` and ``r_i`` the per-pass times of round ``i``::

        score = min(1, median_i(r_i / c_i))

    so code as fast as the reference (or faster) scores 1.0, twice as slow 0.5. Pairing the
    two sides round by round cancels slow changes of machine load; the median drops outlier
    rounds. Code that times out or crashes scores 0.0 (fail closed).

    Noise: repeated scores of one candidate whose true ratio is ~0.56 had a standard
    deviation of 0.01-0.03 (range 0.03-0.09 over 5-8 runs) on a two-core machine shared with
    other jobs, and up to ~0.07 while another test suite loaded both cores;
    ``tests/scoring/test_efficiency.py`` measures it on every run and requires a standard
    deviation below 0.1. One score costs about 0.2-0.3 s (one sandbox start plus
    ``2 · rounds · target_seconds`` of timing). Efficiency measures speed only: wrong but
    fast code is caught by functionality.

    Static mode (no tests or no reference): :func:`static_efficiency`.

    Parameters
    ----------
    task
        Default task when the context gives none.
    objective, name
        Objective scored (default ``"efficiency"``) and scorer name (default: objective).
    rounds, target_seconds
        Timing rounds and minimum batch duration.
    limits, sandbox
        As for :class:`FunctionalityScorer`.
    static_fallback
        Use the static proxy when there is nothing to time (else: missing).
    max_bytes
        Largest code accepted.
    """

    def __init__(
        self,
        task: CodeTask | Mapping[str, Any] | list[str] | None = None,
        *,
        objective: str = "efficiency",
        name: str | None = None,
        rounds: int = 7,
        target_seconds: float = 0.02,
        limits: SandboxLimits | Mapping[str, Any] | None = None,
        sandbox: Sandbox | None = None,
        static_fallback: bool = True,
        max_bytes: int = MAX_CODE_BYTES,
    ) -> None:
        if rounds < 1 or not target_seconds > 0:
            raise ValueError("rounds must be >= 1 and target_seconds > 0")
        self.objectives: tuple[str, ...] = (objective,)
        self.name: str = name or objective
        self.task = coerce_task(task)
        self.rounds = rounds
        self.target_seconds = float(target_seconds)
        self.sandbox = sandbox or Sandbox(limits)
        self.static_fallback = static_fallback
        self.max_bytes = max_bytes

    def measure(self, response: object, context: Mapping[str, Any]) -> EfficiencyMeasurement:
        """Score with details (method, timings, sandbox result)."""
        code = code_from_response(response, max_bytes=self.max_bytes, scorer=self.name)
        if not code.strip():
            raise ScorerError(self.name, "invalid_input", "the response contains no code")
        task = task_from_context(context, self.task)
        try:
            program = assemble_program(code, task)
        except SyntaxError as exc:
            raise syntax_error(self.name, exc) from None
        except (ValueError, RecursionError, MemoryError):
            raise ScorerError(self.name, "invalid_input", "code cannot be parsed") from None
        if task is None or task.kind == "empty" or task.reference is None:
            if not self.static_fallback:
                raise ScorerError(
                    self.name,
                    "invalid_input",
                    "nothing to time: the task needs tests and a reference solution",
                )
            static = static_efficiency(code if _parses(code) else program)
            return EfficiencyMeasurement(score=static.score, method="static", static=static)
        job = build_job(
            program,
            task,
            mode="time",
            reference=task.reference,
            rounds=self.rounds,
            target_seconds=self.target_seconds,
        )
        result = self.sandbox.run(job)
        if result.detail == "reference_error":
            raise ScorerError(
                self.name, "invalid_input", f"the reference solution fails to load ({result.error})"
            )
        if result.status != "ok" or result.detail != "ok":
            return EfficiencyMeasurement(score=0.0, method="runtime", sandbox=result)
        candidate_times = result.timings["candidate"]
        reference_times = result.timings["reference"]
        ratios = [
            reference / candidate if candidate > 0 else 1.0
            for reference, candidate in zip(reference_times, candidate_times, strict=False)
        ]
        score = min(1.0, statistics.median(ratios))
        t_candidate = min(candidate_times)
        t_reference = min(reference_times)
        return EfficiencyMeasurement(
            score=score,
            method="runtime",
            candidate_seconds=t_candidate,
            reference_seconds=t_reference,
            sandbox=result,
        )

    def score(self, response: object, context: Mapping[str, Any]) -> dict[str, float]:
        """Efficiency in [0, 1]."""
        return {self.objectives[0]: self.measure(response, context).score}


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True
