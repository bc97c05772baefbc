"""The telemetry modules' docstring examples run; missing system tools fail in CI."""

from __future__ import annotations

import doctest
import importlib

import pytest
from structlog.testing import capture_logs
from telemetry_helpers import require_tool

MODULES = [
    "steerloop.telemetry",
    "steerloop.telemetry.events",
    "steerloop.telemetry.metrics",
    "steerloop.telemetry.exporter",
    "steerloop.telemetry._catalog",
    "steerloop.telemetry._fleet",
    "steerloop.controller.events",
    "steerloop.controller.listeners",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    with capture_logs():  # keep example events off the test output
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if not name.rsplit(".", 1)[1].startswith("_"):
        assert result.attempted > 0


@pytest.mark.parametrize("module_name", MODULES)
def test_every_all_name_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_a_missing_tool_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install-system-deps"):
        require_tool("steerloop-no-such-tool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_tool("steerloop-no-such-tool")
