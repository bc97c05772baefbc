"""The scoring package's public names resolve, its docstring examples run, the example runs."""

from __future__ import annotations

import ast
import doctest
import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

MODULES = [
    "steerloop.scoring",
    "steerloop.scoring.base",
    "steerloop.scoring.protocol",
    "steerloop.scoring.callables",
    "steerloop.scoring.composite",
    "steerloop.scoring.security",
    "steerloop.scoring.functionality",
    "steerloop.scoring.efficiency",
    "steerloop.scoring.text",
    "steerloop.scoring.sandbox",
    "steerloop.scoring.tasks",
    "steerloop.scoring.code",
    "steerloop.scoring.judge",
]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scoring_code.py"


@pytest.mark.parametrize("module_name", MODULES)
def test_all_names_resolve(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0


def test_importing_the_package_does_not_import_bandit() -> None:
    code = "import sys, steerloop.scoring.code, steerloop.scoring; print('bandit' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_example_runs_quickly() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "security" in result.stdout and "functionality" in result.stdout
    assert time.monotonic() - started < 10.0


PACKAGE_DIR = Path(__file__).resolve().parents[2] / "steerloop" / "scoring"
ALL_MODULES = sorted(
    "steerloop.scoring." + ".".join(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    for path in PACKAGE_DIR.rglob("*.py")
    if path.name != "__init__.py"
)


@pytest.mark.parametrize("module_name", ALL_MODULES)
def test_every_module_s_examples_run_private_ones_too(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_modules_and_functions_stay_small() -> None:
    """Issue 15: modules <= 600 lines, functions <= 80 lines."""
    too_long = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 600:
            too_long.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    too_long.append(f"{path.name}:{node.name}: {length} lines")
    assert too_long == []
