"""Every adapter example runs offline as a script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("adapter_loop.py", "stopped: target_met"),
        ("adapter_langchain.py", "traced decision: step 3 -> security_first"),
        ("adapter_agent.py", "stop reason: target_met"),
    ],
)
def test_example_runs(script: str, expected: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=offline_env(),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert expected in completed.stdout


def offline_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "ANTHROPIC_"))
    }


@pytest.mark.parametrize("blocked", ["langchain", "langgraph"])
def test_the_agent_example_names_its_extra_when_it_is_missing(blocked: str) -> None:
    # ``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed.
    code = (
        f"import sys, runpy; sys.modules[{blocked!r}] = None; "
        f"runpy.run_path({str(EXAMPLES / 'adapter_agent.py')!r}, run_name='__main__')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=offline_env(),
        check=False,
    )
    assert completed.returncode == 1
    assert "needs the 'agents' extra" in completed.stderr
    assert "pip install 'steerloop[agents]'" in completed.stderr
    assert "Traceback" not in completed.stderr
