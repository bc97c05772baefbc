"""Telemetry code uses only public APIs of its dependencies (issue 15, part 2).

A static check over the telemetry modules (and the controller-level event modules they share):
every underscored attribute read or written belongs to the object's own class (``self._x``),
and prometheus_client is imported only from its documented modules, by public names.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "steerloop"
SOURCES = sorted(
    [
        *(PACKAGE / "telemetry").glob("*.py"),
        PACKAGE / "controller" / "events.py",
        PACKAGE / "controller" / "listeners.py",
    ]
)
PUBLIC_PROMETHEUS_MODULES = {
    "prometheus_client",
    "prometheus_client.core",
    "prometheus_client.multiprocess",
    "prometheus_client.registry",  # Collector, for custom collectors (documented)
}


def private_attributes(tree: ast.AST) -> list[str]:
    """``x._name`` (``x`` not ``self``/``cls``) and ``getattr(x, "_name")``-style reads."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name, owner = node.attr, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name, owner = node.args[1].value, node.args[0]
        else:
            continue
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def prometheus_imports(tree: ast.AST) -> list[tuple[str, str]]:
    """``(module, name)`` of every prometheus_client import; a submodule counts as a module."""
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if importlib.util.find_spec(node.module or "") and is_module(submodule):
                    imports.append((submodule, ""))
                else:
                    imports.append((node.module or "", alias.name))
        elif isinstance(node, ast.Import):
            imports += [(alias.name, "") for alias in node.names if "prometheus" in alias.name]
    return imports


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_no_private_attribute_of_another_object(path: Path) -> None:
    assert private_attributes(ast.parse(path.read_text())) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_prometheus_client_is_imported_from_public_modules_only(path: Path) -> None:
    for module, name in prometheus_imports(ast.parse(path.read_text())):
        assert module in PUBLIC_PROMETHEUS_MODULES, (module, name)
        assert not name.startswith("_"), (module, name)


def test_the_checks_catch_what_they_look_for() -> None:
    bad = ast.parse(
        "from prometheus_client import values\n"
        "from prometheus_client.values import MutexValue\n"
        "def f(histogram):\n"
        "    with histogram._lock:\n"
        "        histogram._sum._value += 1\n"
        "    bounds = getattr(histogram, '_upper_bounds', None)\n"
        "    self._ok = getattr(self, '__name__', None)\n"
    )
    assert len(private_attributes(bad)) == 4
    assert prometheus_imports(bad) == [
        ("prometheus_client.values", ""),
        ("prometheus_client.values", "MutexValue"),
    ]


def test_modules_stay_small() -> None:
    for path in SOURCES:
        assert len(path.read_text().splitlines()) <= 600, path
