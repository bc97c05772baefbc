"""The sandboxed process from the parent's side: feed it, wait for it, kill what it left.

The process started is left unreaped until everything it left behind is killed, so its pid
and process group id cannot be recycled in between (see :func:`terminate`).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from steerloop.scoring._isolation import run_quietly


def feed_and_wait(process: subprocess.Popen[bytes], payload: bytes, deadline: float) -> bool:
    """Write ``payload`` to stdin and wait for exit without reaping; ``False`` on timeout."""
    assert process.stdin is not None
    stdin_fd = process.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    view = memoryview(payload)
    try:
        pidfd: int | None = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None
    selector = selectors.DefaultSelector()
    try:
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        selector.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
        while True:
            if exited(process.pid):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            wait = remaining if pidfd is not None else min(remaining, 0.005)
            for key, _ in selector.select(wait):
                if key.data != "stdin":
                    continue
                try:
                    view = view[os.write(stdin_fd, view[: 1 << 16]) :]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    view = view[:0]
                if not view:
                    selector.unregister(stdin_fd)
                    process.stdin.close()
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        if not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()


def exited(pid: int) -> bool:
    """Whether ``pid`` has exited (it stays a zombie: its pid and pgid stay reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def terminate(process: subprocess.Popen[bytes], namespaces: bool, uids: Iterable[int]) -> None:
    """Kill everything the run left behind, then reap the process started.

    With namespaces, killing the namespace's PID 1 (the supervisor) makes the kernel kill
    every process in the namespace (``unshare`` then exits by itself). Then the process
    group is killed, and every process of the run's throwaway ``uids`` (without namespaces).
    """
    if namespaces and not exited(process.pid):
        for child in _children(process.pid):
            _kill(child)
        deadline = time.monotonic() + 2.0
        while not exited(process.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
    # The leader is unreaped (zombie or alive), so its pgid cannot have been recycled.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if not namespaces:
        for uid in uids:
            kill_uid(uid)
    with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable (D state) process
        process.wait(timeout=10)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def kill_uid(uid: int) -> None:
    """Kill every process of the (run-private) uid: ``kill -9 -1`` run as that uid."""
    kill = shutil.which("kill") or "/bin/kill"
    for _ in range(3):
        if run_quietly([kill, "-9", "-1"], timeout=5, uid=uid) is None:
            return
        if not uid_has_processes(uid):
            return


def uid_has_processes(uid: int) -> bool:
    """Whether a live (not zombie) process runs with the real uid ``uid``.

    Read from ``/proc/<pid>/status``: the owner of ``/proc/<pid>`` is root for a process
    that is not dumpable (the checker), whatever its uid.
    """
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = dict(
                    line.split(":", 1) for line in (entry / "status").read_text().splitlines()
                )
            except (OSError, ValueError):
                continue
            state = fields.get("State", "").split()
            uids = fields.get("Uid", "").split()
            if uids and int(uids[0]) == uid and state and state[0] not in ("Z", "X"):
                return True
    return False
