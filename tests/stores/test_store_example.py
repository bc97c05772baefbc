"""examples/stores_redis_two_workers.py runs against the test redis-server and agrees."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from store_helpers import PATIENCE, PROCESS_TIMEOUT, ROOT

pytestmark = pytest.mark.integration


def test_two_workers_decide_like_one_process(redis_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "stores_redis_two_workers.py"),
            "--steps",
            "40",
            "--timeout",
            str(PATIENCE),
        ],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
        cwd=ROOT,
        env={**os.environ, "STEERLOOP_REDIS_URL": redis_url},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "40 steps served alternately by workers [0, 1]" in result.stdout
    assert "decisions identical to one process: True" in result.stdout
    assert "final state identical: True" in result.stdout
    assert "store version 40" in result.stdout
