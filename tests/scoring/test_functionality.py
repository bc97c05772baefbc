"""FunctionalityScorer and CodeTask: task formats, program assembly, test-gaming defenses."""

from __future__ import annotations

import pytest

from steerloop.errors import ScorerError
from steerloop.scoring import CompositeScorer
from steerloop.scoring.code import FunctionalityScorer
from steerloop.scoring.sandbox import Sandbox, SandboxLimits
from steerloop.scoring.tasks import CodeTask, assemble_program, build_job

TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]


@pytest.fixture(scope="module")
def scorer() -> FunctionalityScorer:
    return FunctionalityScorer(sandbox=Sandbox(SandboxLimits(timeout=1.5)))


def test_assert_list_from_context(scorer: FunctionalityScorer) -> None:
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    assert scorer.score(good, {"tests": TESTS}) == {"functionality": 1.0}
    half = "def add(a, b):\n    return a + b if a > 0 else 99\n"
    assert scorer.score(half, {"tests": TESTS}) == {"functionality": pytest.approx(2 / 3)}


def test_task_from_constructor_and_context_overrides() -> None:
    scorer = FunctionalityScorer(TESTS, sandbox=Sandbox(SandboxLimits(timeout=3.0)))
    assert scorer.score("def add(a, b):\n    return a + b\n", {}) == {"functionality": 1.0}
    other = {"tests": ["assert add(1, 1) == 11"]}
    assert scorer.score("def add(a, b):\n    return a + b\n", other) == {"functionality": 0.0}


def test_code_task_object_with_prompt(scorer: FunctionalityScorer) -> None:
    task = CodeTask(
        prompt="import math\n\ndef area(r):\n    '''Area of a circle.'''\n",
        entry_point="area",
        tests=("assert abs(area(1) - math.pi) < 1e-9", "assert area(0) == 0"),
    )
    assert scorer.score("    return math.pi * r * r\n", {"task": task}) == {"functionality": 1.0}
    assert scorer.score("def area(r):\n    return math.pi * r * r\n", {"task": task}) == {
        "functionality": 1.0
    }


def test_no_code_syntax_error_and_crash_score_zero(scorer: FunctionalityScorer) -> None:
    context = {"tests": TESTS}
    assert scorer.score("I cannot write that function.\n```text\nno\n```", context) == {
        "functionality": 0.0
    }
    assert scorer.score("def add(a, b:\n    return a + b\n", context) == {"functionality": 0.0}
    assert scorer.score("import os\nos.abort()\n", context) == {"functionality": 0.0}
    assert scorer.score("def add(a, b):\n    while True:\n        pass\n", context) == {
        "functionality": 0.0
    }


def test_no_task_is_a_failure_not_a_zero(scorer: FunctionalityScorer) -> None:
    with pytest.raises(ScorerError) as info:
        scorer.score("def add(a, b):\n    return a + b\n", {})
    assert info.value.reason == "invalid_input"
    result = CompositeScorer([scorer], objectives=["functionality"]).score("x = 1")
    assert result.scores == {}
    assert result.failures[0].reason == "invalid_input"


def test_always_equal_and_truthy_objects_fail_assert_tests(scorer: FunctionalityScorer) -> None:
    cheat = (
        "class Yes(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __bool__(self):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Yes(0)\n"
    )
    tests = [*TESTS, "assert add(0, 0)", "assert [add(1, 1)] == [2]", "assert add(1, 1) in {2}"]
    # Yes(0) reaches the tests as the plain int 0: it passes exactly what `return 0` passes
    # (add(-1, 1) == 0), its __eq__ and __bool__ never run in the checker.
    honest_zero = scorer.score("def add(a, b):\n    return 0\n", {"tests": tests})
    assert honest_zero == {"functionality": pytest.approx(1 / 6)}
    assert scorer.score(cheat, {"tests": tests}) == honest_zero
    opaque = cheat.replace("class Yes(int):", "class Yes:").replace("Yes(0)", "Yes()")
    assert scorer.score(opaque, {"tests": tests}) == {"functionality": 0.0}


def test_arithmetic_hook_cheat_fails(scorer: FunctionalityScorer) -> None:
    cheat = (
        "class Zero:\n"
        "    def __sub__(self, other):\n        return 0.0\n"
        "    def __rsub__(self, other):\n        return 0.0\n"
        "def add(a, b):\n    return Zero()\n"
    )
    tests = ["assert abs(add(1, 2) - 3) < 1e-9"]
    assert scorer.score(cheat, {"tests": tests}) == {"functionality": 0.0}


def test_plain_subclasses_without_overrides_are_fine(scorer: FunctionalityScorer) -> None:
    code = (
        "from collections import namedtuple\n"
        "Point = namedtuple('Point', 'x y')\n"
        "def add(a, b):\n    return Point(a, b)\n"
    )
    assert scorer.score(code, {"tests": ["assert add(1, 2) == (1, 2)"]}) == {"functionality": 1.0}


def test_classes_under_test_still_work_in_assert_tasks(scorer: FunctionalityScorer) -> None:
    code = (
        "class Stack:\n"
        "    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n        return self\n"
        "    def size(self):\n        return len(self.items)\n"
    )
    tests = ["assert Stack().push(1).push(2).size() == 2", "s = Stack()\nassert s.size() == 0"]
    assert scorer.score(code, {"tests": tests}) == {"functionality": 1.0}


def test_setup_step_failure_fails_the_remaining_tests() -> None:
    task = CodeTask(
        check=(
            "def check(candidate):\n"
            "    assert candidate(1) == 1\n"
            "    table = candidate('boom')\n"
            "    assert table == 'boom'\n"
            "    assert True\n"
        ),
        entry_point="ident",
    )
    job = build_job("def ident(x):\n    return x\n", task)
    assert [counts for _, counts in job.units] == [True, False, True]  # `assert True` dropped
    result = Sandbox(SandboxLimits(timeout=3.0)).run(
        build_job(
            "def ident(x):\n    if x == 'boom':\n        raise ValueError\n    return x\n", task
        )
    )
    assert (result.passed, result.total) == (1, 2)


def test_code_task_coercion() -> None:
    assert CodeTask.coerce(["assert f() == 1"]).kind == "asserts"
    assert CodeTask.coerce("assert f() == 1").tests == ("assert f() == 1",)
    humaneval = {
        "task_id": "T/1",
        "prompt": "def f():\n",
        "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
        "canonical_solution": "    return 1\n",
    }
    task = CodeTask.coerce(humaneval)
    assert task.kind == "humaneval" and task.reference == "def f():\n    return 1\n"
    assert CodeTask.coerce({"tests": ["assert f() == 1"], "reference": "x"}).reference == "x"
    with pytest.raises(TypeError):
        CodeTask.coerce(3)
    with pytest.raises(ValueError):
        CodeTask.coerce({"prompt": "p"})
    with pytest.raises(ValueError):
        CodeTask(check="def check(c):\n    assert c\n")


def test_assemble_program() -> None:
    task = CodeTask(
        prompt="import math\n\ndef f(x):\n    '''Doc.'''\n", entry_point="f", tests=("assert f(1)",)
    )
    assert assemble_program("    return x\n", task) == task.prompt + "    return x\n"
    full = "def f(x):\n    return x\n"
    assert assemble_program(full, task) == task.prompt.rstrip("\n") + "\n\n" + full
    assert assemble_program(full, None) == full
    with pytest.raises(SyntaxError):
        assemble_program("def f(:\n", task)


def test_bad_tests_are_reported_as_invalid_input() -> None:
    with pytest.raises(ScorerError) as info:
        build_job("x = 1", CodeTask(tests=("assert (",)))
    assert info.value.reason == "invalid_input"
    with pytest.raises(ScorerError):
        build_job("x = 1", CodeTask(check="def check(c):\n    pass\n", entry_point="f"))
