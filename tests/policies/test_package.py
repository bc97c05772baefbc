"""The policies package: doctests run, layering holds, modules stay small."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import steerloop.policies

PACKAGE = Path(steerloop.policies.__file__).parent
MODULES = sorted(f"steerloop.policies.{info.name}" for info in pkgutil.iter_modules([str(PACKAGE)]))


@pytest.mark.parametrize("name", ["steerloop.policies", *MODULES])
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_docstring_examples_exist() -> None:
    attempted = sum(
        doctest.testmod(importlib.import_module(name)).attempted
        for name in ["steerloop.policies", *MODULES]
    )
    assert attempted >= 30


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("name", MODULES)
def test_policies_import_only_errors_estimators_and_themselves(name: str) -> None:
    """The layers below policies (tests/test_layering.py checks the whole package)."""
    path = PACKAGE / f"{name.rsplit('.', 1)[1]}.py"
    ours = {module for module in _imports(path) if module.split(".")[0] == "steerloop"}
    allowed = ("steerloop.errors", "steerloop.estimators", "steerloop.policies")
    assert {m for m in ours if not m.startswith(allowed)} == set()


@pytest.mark.parametrize("name", MODULES)
def test_modules_and_functions_stay_small(name: str) -> None:
    source = (PACKAGE / f"{name.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 600
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 80, f"{name}.{node.name} has {length} lines"
