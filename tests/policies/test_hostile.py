"""Hostile policy files are rejected early, with a positioned error, in bounded time and memory.

The bounds asserted here are generous (20x the goals for CPU time) so the suite passes on a
slow or busy machine; the goals themselves (< 100 ms, < 50 MB per file) are measured by
``python tests/policies/hostile.py`` and recorded in CHANGELOG.md with machine and method.
Memory is the peak of Python allocations under ``tracemalloc``, which does not depend on the
machine's speed, so the 50 MB goal is asserted as it is.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hostile import CASES

from steerloop.errors import PolicyError
from steerloop.policies import bounded_yaml, load_preset, parse_policy

CPU_SECONDS = {"libyaml": 2.0, "python": 15.0}
PEAK_BYTES = 50_000_000


def _reject(data: bytes) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, file="hostile.yaml")
    return caught.value


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_is_rejected_within_bounds(name: str, parser: str) -> None:
    generate, fragment = CASES[name]
    data = generate()
    load_preset("paper")  # first-use costs (imports, pydantic) are not the case's
    start = time.process_time()
    error = _reject(data)
    seconds = time.process_time() - start
    assert fragment in error.detail, str(error.issues[0])
    for issue in error.issues:
        assert (issue.file, issue.line is not None, issue.column is not None) == (
            "hostile.yaml",
            True,
            True,
        ), str(issue)
    assert seconds < CPU_SECONDS[parser], f"{name}: {seconds:.2f} s of CPU"
    if parser == "libyaml":  # the default parser; tracemalloc makes the other one very slow
        tracemalloc.start()
        try:
            _reject(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < PEAK_BYTES, f"{name}: {peak / 1e6:.1f} MB"


def test_corpus_cases_are_near_the_size_limit() -> None:
    sizes = {name: len(generate()) for name, (generate, _) in CASES.items()}
    large = [name for name, size in sizes.items() if size > 900_000]
    assert len(large) >= 15, sizes
    assert sizes["too_large"] > bounded_yaml.MAX_BYTES
    assert all(
        size <= bounded_yaml.MAX_BYTES for name, size in sizes.items() if name != "too_large"
    )
