"""Shared fixtures for the scoring tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from steerloop.scoring.sandbox import Sandbox, SandboxLimits


def uid_processes(uid: int | None) -> list[int]:
    """Host pids of live processes running as ``uid`` (the sandbox's throwaway uid)."""
    if uid is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid != uid:
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):  # zombies are dead, waiting for init to reap them
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """A sandbox with short limits (the hostile corpus runs into the timeout on purpose)."""
    return Sandbox(SandboxLimits(timeout=2.0, cpu_seconds=3, memory_bytes=256 * 2**20))


@pytest.fixture
def live_processes() -> Callable[[int | None], list[int]]:
    """:func:`uid_processes`, as a fixture (the test directories are not packages)."""
    return uid_processes
