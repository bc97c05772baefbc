"""Which isolation the sandbox gets on this machine: probing ``unshare`` (see ``sandbox``)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from steerloop.errors import ScorerError

ENV_ALLOWLIST = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}
_NS_FLAGS = ("--net", "--pid", "--ipc", "--uts", "--fork", "--mount-proc", "--kill-child")


def run_quietly(argv: Sequence[str], *, timeout: float, uid: int | None = None) -> int | None:
    """Run a fixed helper command: no shell, no input or output, the allowlisted environment.

    Parameters
    ----------
    argv : Sequence[str]
        The command and its arguments (chosen by steerloop, never by a candidate).
    timeout : float
        Seconds it may take.
    uid : int | None
        Run it as this user and group, with no supplementary groups (default: as the caller).

    Returns
    -------
    int | None
        Its exit status; ``None`` when it could not be started or did not finish in time.
    """
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv from steerloop, no shell
            list(argv),
            user=uid,
            group=uid,
            extra_groups=None if uid is None else [],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            env=dict(ENV_ALLOWLIST),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.returncode


@dataclass(frozen=True)
class Isolation:
    """Which protections apply to a sandboxed run (see :mod:`steerloop.scoring.sandbox`)."""

    namespaces: bool
    user_namespace: bool
    uid: Literal["fresh", "same"]
    command: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line per protection, for logs and docs."""
        lines = [
            "separate process group, wall-clock timeout, rlimits, clean env",
            "candidate and checker in separate processes (the verdict is the checker's)",
        ]
        if self.namespaces:
            kind = "user+" if self.user_namespace else ""
            lines.append(f"{kind}net+pid+mount+ipc+uts namespaces (no network, private /tmp)")
            lines.append("minimal root: system libraries and the interpreter only, read-only")
        else:
            lines.append("NO network isolation, NO pid namespace (unshare unavailable)")
        if self.uid == "fresh":
            lines.append("fresh unprivileged uids per run (candidate, checker), no_new_privs")
        else:
            lines.append("same uid as the caller, no capabilities, checker not dumpable")
        lines.extend(self.notes)
        return "\n".join(lines)


_probe_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _probe(user_namespace: bool) -> tuple[str, ...] | None:
    unshare = shutil.which("unshare") or (
        "/usr/bin/unshare" if Path("/usr/bin/unshare").exists() else None
    )
    true = shutil.which("true") or "/bin/true"
    if unshare is None:
        return None
    prefix = (unshare, *(("--user", "--map-root-user") if user_namespace else ()), *_NS_FLAGS, "--")
    return prefix if run_quietly([*prefix, true], timeout=10) == 0 else None


def probe_isolation(namespaces: bool | None = None) -> Isolation:
    """Find which isolation a :class:`~steerloop.scoring.sandbox.Sandbox` gets (cached).

    Parameters
    ----------
    namespaces
        ``None``: use namespaces when ``unshare`` works; ``False``: never; ``True``: require
        them (raise when unavailable).

    Raises
    ------
    ScorerError
        Reason ``"unavailable"`` when ``namespaces=True`` and ``unshare`` does not work.
    """
    root = os.geteuid() == 0
    prefix: tuple[str, ...] | None = None
    notes: list[str] = []
    if namespaces is not False:
        with _probe_lock:
            prefix = _probe(user_namespace=not root)
        if prefix is None:
            how = "unshare --net --pid" if root else "unshare --user --net --pid"
            if namespaces:
                raise ScorerError(
                    "sandbox",
                    "unavailable",
                    f"`{how}` does not work here; install util-linux, allow namespaces "
                    "(containers: --privileged or a seccomp profile allowing unshare), or pass "
                    "namespaces=False to run with rlimits and uid separation only",
                )
            notes.append(f"`{how}` failed: running without namespaces")
    return Isolation(
        namespaces=prefix is not None,
        user_namespace=prefix is not None and not root,
        uid="fresh" if root else "same",
        command=prefix or (),
        notes=tuple(notes),
    )


def traversable_by_others(path: str) -> bool:
    """Whether every directory down to ``path`` lets other users through."""
    current = Path(path).resolve()
    for directory in [*reversed(current.parents), current]:
        try:
            mode = directory.stat().st_mode
        except OSError:
            return False
        if not mode & 0o001:
            return False
    return True
