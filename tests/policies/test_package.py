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
#: Being rewritten by the lead (it still reads controller types); checked once it lands.
NOT_YET_LAYERED = {"steerloop.policies.engine"}


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


@pytest.mark.parametrize("name", sorted(set(MODULES) - NOT_YET_LAYERED))
def test_policies_import_only_errors_and_themselves(name: str) -> None:
    path = PACKAGE / f"{name.rsplit('.', 1)[1]}.py"
    ours = {module for module in _imports(path) if module.split(".")[0] == "steerloop"}
    allowed = {"steerloop.errors"}
    assert {m for m in ours if m not in allowed and not m.startswith("steerloop.policies")} == set()


@pytest.mark.parametrize("name", sorted(set(MODULES) - NOT_YET_LAYERED))
def test_modules_and_functions_stay_small(name: str) -> None:
    source = (PACKAGE / f"{name.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 600
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 80, f"{name}.{node.name} has {length} lines"
