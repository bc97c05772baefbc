"""Packaging: the public API resolves, the version matches, the import stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import version

import pytest

import steerloop

PUBLIC_MODULES = [
    "steerloop",
    "steerloop.errors",
    "steerloop.estimators.ewstats",
    "steerloop.estimators.rls",
    "steerloop.estimators.kalman",
    "steerloop.estimators.drift",
    "steerloop.estimators.spectrum",
    "steerloop.estimators.interference",
    "steerloop.estimators.severity",
    "steerloop.controller.session",
    "steerloop.controller.state",
    "steerloop.controller.diagnostics",
    "steerloop.policies",
    "steerloop.policies.schema",
    "steerloop.policies.engine",
    "steerloop.policies.loader",
    "steerloop.policies.conditions",
    "steerloop.adapters",
    "steerloop.adapters.loop",
    "steerloop.adapters.langchain",
    "steerloop.adapters.agents",
    "steerloop.scoring",
    "steerloop.scoring.base",
    "steerloop.scoring.text",
    "steerloop.scoring.code",
    "steerloop.scoring.sandbox",
    "steerloop.scoring.tasks",
    "steerloop.scoring.judge",
    "steerloop.telemetry",
    "steerloop.telemetry.metrics",
    "steerloop.telemetry.events",
    "steerloop.simulate",
    "steerloop.simulate.generated",
    "steerloop.simulate.sequential",
    "steerloop.analysis",
    "steerloop.analysis.plots",
    "steerloop.analysis.recorder",
    "steerloop.analysis.severity",
    "steerloop.analysis.timeline",
    "steerloop.analysis.uncertainty",
    "steerloop.stores",
    "steerloop.cli",
    "steerloop.cli.progress",
    "steerloop.cli.output",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_all_name_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} has no __all__"
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []


def test_version_matches_installed_metadata() -> None:
    assert steerloop.__version__ == version("steerloop")


def test_design_names_are_exported() -> None:
    for name in ("Controller", "Session", "Decision", "Policy", "load_policy"):
        assert name in steerloop.__all__


def test_import_stays_light() -> None:
    code = (
        "import sys, steerloop\n"
        "heavy = [m for m in ('langchain', 'langgraph', 'redis', 'bandit', 'matplotlib', 'rich',"
        " 'filterpy', 'scipy.stats')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_controller_modules_do_no_io_or_logging() -> None:
    import ast
    from pathlib import Path

    forbidden = {"logging", "structlog", "prometheus_client", "redis", "requests", "httpx"}
    controller_dir = Path(steerloop.__file__).parent / "controller"
    # The controller's default structlog events (issue 20) live in these two listener modules,
    # which the step calls only through Controller.add_listener; the step itself logs nothing.
    event_modules = {"events.py", "listeners.py"}
    offenders = []
    for path in controller_dir.glob("*.py"):
        if path.name in event_modules:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            offenders += [f"{path.name}: {root}" for root in roots & forbidden]
    assert offenders == []
