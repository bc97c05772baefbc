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
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "ANTHROPIC_"))
    }
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert expected in completed.stdout
