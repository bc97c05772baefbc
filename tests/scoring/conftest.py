"""Shared fixtures for the scoring tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steerloop.scoring.sandbox import Sandbox, SandboxLimits


def uid_processes(uid: int | None) -> list[int]:
    """Host pids of live processes whose real uid is ``uid`` (a sandbox's throwaway uid).

    Read from ``/proc/<pid>/status``: ``/proc/<pid>`` itself is owned by root for a process
    that is not dumpable (the sandbox's checker), whatever its uid.
    """
    if uid is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = dict(
                    line.split(":", 1) for line in (entry / "status").read_text().splitlines()
                )
            except (OSError, ValueError):
                continue
            uids, state = status.get("Uid", "").split(), status.get("State", "").split()
            # Zombies are dead, waiting for init to reap them.
            if uids and int(uids[0]) == uid and state and state[0] not in ("Z", "X"):
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


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A non-blocking TCP listener on a free loopback port (to detect network escapes)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()
