"""Coding tasks for the code scorers: what to test a response against.

A :class:`CodeTask` is either HumanEval-shaped (``prompt``, ``entry_point`` and a ``check``
test that defines ``check(candidate)``) or a plain list of ``assert`` statements. Both turn
into a :class:`~steerloop.scoring.sandbox.SandboxJob`, whose test code runs in the
sandbox's checker process and reaches the response's code only through calls (see
:mod:`steerloop.scoring.sandbox`):

* **HumanEval**: the statements of ``check``'s body become the test units (a statement that
  contains an ``assert`` is one test; other statements are setup steps); the module level of
  the test code runs first. ``candidate`` (and the entry point's own name) is bound to the
  response's ``entry_point``. The trusted ``prompt`` runs in the checker, so helpers the
  tests use (``poly``, ``encode_cyclic``, ...) are the task's, never the response's.
  Constant asserts (``assert True``) are dropped.
* **Assert list**: every string is one test. Standard-library modules the tests use
  (``math``, ...) are imported in the checker, never taken from the response. With an
  ``entry_point`` and a prompt that parses, the prompt runs in the checker too and only the
  entry point and names the prompt does not define come from the response; otherwise every
  other name the tests use comes from the response's module.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from steerloop.errors import ScorerError
from steerloop.scoring.sandbox import SandboxJob

__all__ = ["CodeTask", "assemble_program", "build_job"]

_BUILTIN_NAMES = frozenset(dir(builtins))
_STDLIB_MODULES = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class CodeTask:
    """A coding task: tests, and optionally a prompt, an entry point and a reference.

    Attributes
    ----------
    tests
        Assert statements (each string is one test; it may hold several statements).
    check
        HumanEval-style test code defining ``check(candidate)``.
    entry_point
        Name of the function under test (HumanEval); ``candidate`` is bound to it.
    prompt
        Code the response completes (signature, imports, helpers). When the response does not
        define ``entry_point`` itself it is appended to the prompt (a HumanEval completion).
    reference
        A reference solution, as a full program (used by the efficiency scorer).
    task_id
        Free-form identifier.

    Examples
    --------
    >>> task = CodeTask(tests=("assert add(1, 2) == 3",))
    >>> task.kind
    'asserts'
    """

    tests: tuple[str, ...] = ()
    check: str | None = None
    entry_point: str | None = None
    prompt: str = ""
    reference: str | None = None
    task_id: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.tests, str):
            object.__setattr__(self, "tests", (self.tests,))
        else:
            object.__setattr__(self, "tests", tuple(self.tests))
        if self.check is not None and not self.entry_point:
            raise ValueError("a CodeTask with `check` needs the `entry_point` it tests")

    @property
    def kind(self) -> str:
        """``"humaneval"``, ``"asserts"`` or ``"empty"``."""
        if self.check is not None:
            return "humaneval"
        return "asserts" if self.tests else "empty"

    @classmethod
    def from_humaneval(cls, problem: Mapping[str, Any]) -> CodeTask:
        """Build a task from a HumanEval record.

        Parameters
        ----------
        problem
            A mapping with ``prompt``, ``entry_point``, ``test`` and optionally
            ``canonical_solution`` (which, appended to the prompt, becomes the reference) and
            ``task_id``.
        """
        try:
            prompt = str(problem["prompt"])
            entry_point = str(problem["entry_point"])
            test = str(problem["test"])
        except KeyError as exc:
            raise ValueError(
                f"a HumanEval task needs prompt, entry_point and test; missing {exc}"
            ) from None
        solution = problem.get("canonical_solution")
        return cls(
            check=test,
            entry_point=entry_point,
            prompt=prompt,
            reference=prompt + str(solution) if solution is not None else None,
            task_id=str(problem.get("task_id", "")),
        )

    @classmethod
    def coerce(cls, value: object) -> CodeTask:
        """Accept a task, a HumanEval mapping, or a list of assert strings."""
        if isinstance(value, CodeTask):
            return value
        if isinstance(value, Mapping):
            if "test" in value and "entry_point" in value:
                return cls.from_humaneval(value)
            if "tests" in value:
                return cls(
                    tests=_strings(value["tests"]),
                    prompt=str(value.get("prompt", "")),
                    reference=value.get("reference"),
                    entry_point=value.get("entry_point"),
                )
            raise ValueError(
                "a task mapping needs HumanEval keys (prompt, entry_point, test) or 'tests'"
            )
        if isinstance(value, str):
            return cls(tests=(value,))
        if isinstance(value, Sequence):
            return cls(tests=_strings(value))
        raise TypeError(
            f"cannot use a {type(value).__name__} as a coding task; pass a CodeTask, a "
            "HumanEval dict or a list of assert strings"
        )


def _strings(values: object) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,)
    if not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise TypeError("tests must be a list of strings (assert statements)")
    return tuple(values)


def _defines(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
    return False


def assemble_program(code: str, task: CodeTask | None) -> str:
    """The program to run for a response's ``code`` under ``task``.

    With a prompt: a response that defines the entry point (or, for assert tasks, any code
    that parses on its own) is appended to the prompt after a newline, so the prompt's
    imports and helpers stay available; a bare function body is appended directly (a
    HumanEval completion). Without a prompt the code is returned unchanged.

    Raises
    ------
    SyntaxError
        When neither the code alone nor the prompt plus the code parses.
    """
    if task is None or not task.prompt:
        ast.parse(code)
        return code
    try:
        tree = ast.parse(code)
    except SyntaxError:
        tree = None
    if tree is not None and (task.entry_point is None or _defines(tree, task.entry_point)):
        program = task.prompt.rstrip("\n") + "\n\n" + code
    else:
        program = task.prompt + code
    ast.parse(program)
    return program


def _unparse(statements: Sequence[ast.stmt]) -> str:
    module = ast.Module(body=list(statements), type_ignores=[])
    ast.fix_missing_locations(module)
    return ast.unparse(module)


def _contains_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _constant_assert(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant)


def _loaded_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _top_level_names(source: str) -> set[str] | None:
    """Names a module's top level binds, or ``None`` when it does not parse on its own."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            names.update(
                n.id
                for n in ast.walk(node)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            )
    return names


def _assert_bindings(task: CodeTask, names: set[str]) -> tuple[str, dict[str, str]]:
    """The checker's prelude and the names bound from the response, for an assert task."""
    defined = _top_level_names(task.prompt) if task.prompt and task.entry_point else None
    prelude = task.prompt if defined is not None else ""
    defined = defined or set()
    wanted = names - _BUILTIN_NAMES - defined
    modules = sorted(wanted & _STDLIB_MODULES)
    if modules:
        prelude = "".join(f"import {name}\n" for name in modules) + prelude
    bound = sorted(wanted - _STDLIB_MODULES)
    bind = {name: name for name in bound}
    if task.entry_point and defined:
        bind[task.entry_point] = task.entry_point
    return prelude, bind


def build_job(
    program: str,
    task: CodeTask,
    *,
    mode: str = "test",
    reference: str | None = None,
    rounds: int = 5,
    target_seconds: float = 0.01,
) -> SandboxJob:
    """Turn a program and a task into a :class:`SandboxJob`.

    ``mode="test"`` counts passing tests; ``mode="time"`` times them against ``reference``
    (the same test code for candidate and reference, so the comparison is fair).

    Raises
    ------
    ScorerError
        Reason ``"invalid_input"`` when the task has no tests or its test code does not parse.

    Examples
    --------
    >>> job = build_job("def add(a, b):\\n    return a + b\\n",
    ...                 CodeTask(tests=("assert math.isclose(add(1, 2), 3)",)))
    >>> job.prelude, dict(job.bind)
    ('import math\\n', {'add': 'add'})
    """
    job_mode: Literal["test", "time"] = "time" if mode == "time" else "test"
    if task.check is not None:
        return _humaneval_job(program, task, job_mode, reference, rounds, target_seconds)
    if not task.tests:
        raise ScorerError(
            "task",
            "invalid_input",
            "the task has no tests; pass context['task'] (CodeTask, HumanEval dict) or "
            "context['tests'] (assert strings)",
        )
    units: list[tuple[str, bool]] = []
    names: set[str] = set()
    for index, source in enumerate(task.tests):
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise ScorerError(
                "task", "invalid_input", f"test {index} does not parse (line {exc.lineno})"
            ) from None
        names |= _loaded_names(tree)
        units.append((source, True))
    prelude, bind = _assert_bindings(task, names)
    return SandboxJob(
        candidate=program,
        units=tuple(units),
        mode=job_mode,
        prelude=prelude,
        bind=bind,
        reference=reference,
        rounds=rounds,
        target_seconds=target_seconds,
    )


def _humaneval_job(
    program: str,
    task: CodeTask,
    mode: Literal["test", "time"],
    reference: str | None,
    rounds: int,
    target_seconds: float,
) -> SandboxJob:
    assert task.check is not None and task.entry_point is not None
    try:
        tree = ast.parse(task.check)
    except SyntaxError as exc:
        raise ScorerError(
            "task", "invalid_input", f"the task's test code does not parse (line {exc.lineno})"
        ) from None
    check: ast.FunctionDef | None = None
    setup: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            check = node
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "check"
        ):
            continue  # the final `check(entry_point)` call; the units replace it
        else:
            setup.append(node)
    units: list[tuple[str, bool]] = []
    bind = {task.entry_point: task.entry_point}
    if check is None:
        # Arbitrary test code: one unit, passing when it runs without error.
        units.append((_unparse(tree.body), True))
        setup = []
    else:
        parameter = check.args.args[0].arg if check.args.args else "candidate"
        # The entry point's own name is bound too: some HumanEval tests call it directly.
        bind = {parameter: task.entry_point, task.entry_point: task.entry_point}
        for statement in check.body:
            if _constant_assert(statement):
                continue
            units.append((_unparse([statement]), _contains_assert(statement)))
    if not any(counts for _, counts in units):
        raise ScorerError("task", "invalid_input", "the task's check() contains no assert")
    return SandboxJob(
        candidate=program,
        units=tuple(units),
        mode=mode,
        prelude=task.prompt,
        setup=_unparse(setup) if setup else "",
        bind=bind,
        reference=reference,
        rounds=rounds,
        target_seconds=target_seconds,
    )
