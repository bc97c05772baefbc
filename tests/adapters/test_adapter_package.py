"""The adapters package stays light: names resolve lazily, nothing imports LangChain early."""

from __future__ import annotations

import subprocess
import sys

import pytest

import steerloop.adapters


def test_names_resolve_lazily() -> None:
    from steerloop.adapters.agents import SteeringMiddleware
    from steerloop.adapters.langchain import SteeredRunnable
    from steerloop.adapters.loop import steer

    assert steerloop.adapters.SteeredRunnable is SteeredRunnable
    assert steerloop.adapters.SteeringMiddleware is SteeringMiddleware
    assert steerloop.adapters.steer is steer
    for name in steerloop.adapters.__all__:
        assert getattr(steerloop.adapters, name) is not None
    with pytest.raises(AttributeError):
        _ = steerloop.adapters.nothing_here


def test_importing_the_package_and_loop_adapter_does_not_import_langchain() -> None:
    code = (
        "import sys, steerloop.adapters, steerloop.adapters.loop; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain', 'langchain_core', 'langgraph')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["_common", "loop", "langchain", "callbacks", "agents"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    imported = importlib.import_module(f"steerloop.adapters.{module}")
    result = doctest.testmod(imported, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
