"""The controller package: docstring examples run, modules and functions stay small."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import steerloop.controller

PACKAGE = Path(steerloop.controller.__file__).parent
MODULES = sorted(
    f"steerloop.controller.{info.name}" for info in pkgutil.iter_modules([str(PACKAGE)])
)


@pytest.fixture(autouse=True)
def unconfigured_structlog() -> Iterator[None]:
    """Examples run as in a fresh process: structlog not configured.

    ``structlog.testing.capture_logs`` (used by many tests) leaves ``is_configured()`` true,
    and then every decision is logged at debug level, into the examples' output.
    """
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize("name", ["steerloop.controller", *MODULES])
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_docstring_examples_exist() -> None:
    attempted = sum(doctest.testmod(importlib.import_module(name)).attempted for name in MODULES)
    assert attempted >= 15


@pytest.mark.parametrize("name", MODULES)
def test_modules_and_functions_stay_small(name: str) -> None:
    source = (PACKAGE / f"{name.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 600
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 80, f"{name}.{node.name} has {length} lines"
