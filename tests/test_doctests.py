"""Every docstring example of the package runs (and there are many of them)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import structlog

import steerloop

#: Modules whose import has side effects a test must not trigger.
SKIP = {"steerloop.__main__", "steerloop.cli.__main__"}
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(steerloop.__path__, prefix="steerloop.")
    if info.name not in SKIP
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(name)
    try:
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        )
    finally:
        structlog.reset_defaults()  # capture_logs in an example configures structlog
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"


def test_there_are_many_examples() -> None:
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name))
    )
    assert examples >= 150, examples
