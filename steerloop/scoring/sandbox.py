"""Run untrusted Python in a separate, confined process and read back a trusted verdict.

:class:`Sandbox` runs a :class:`SandboxJob` (candidate code plus test units) with the
harness in :mod:`steerloop.scoring._harness` and returns a :class:`SandboxResult`.

Protection, in layers
---------------------
Always (Linux, any user):

* a separate interpreter, ``python -I -S -B`` (isolated mode: no ``PYTHON*`` variables, no
  user or site packages unless ``site_packages=True``), in a new session and process group;
* a wall-clock timeout, after which the whole process tree is killed with ``SIGKILL``;
* ``RLIMIT_CPU``, ``RLIMIT_AS`` (address space), ``RLIMIT_FSIZE`` (largest file written,
  which also caps the output), ``RLIMIT_NOFILE``, ``RLIMIT_NPROC`` and no core dumps, set by
  the harness before any untrusted code runs;
* a fresh temporary working directory, ``HOME`` and ``TMPDIR`` pointing into it;
* an allow-listed environment (``PATH``, ``LANG``, ``LC_ALL`` only: no secrets reach the code);
* standard output and error go to an unlinked temporary file capped by ``RLIMIT_FSIZE``,
  never to a pipe, so a process that holds the descriptor cannot stall the parent;
* the verdict is a single JSON record tagged with a random nonce, written by the harness to
  a dedicated descriptor and validated by the parent: exit status 0 never means "passed".

When ``unshare`` (util-linux) can create namespaces — as root, or through a user namespace
for other users — additionally:

* a private **network** namespace (only a down loopback: no network at all);
* a private **PID** namespace with its own ``/proc``: the code cannot see or signal host
  processes, and when the harness (PID 1 there) exits or is killed, every process it left
  behind (fork bombs, detached grandchildren) is killed by the kernel;
* private **mount**, IPC and UTS namespaces: fresh size-limited tmpfs on ``/tmp``,
  ``/var/tmp``, ``/dev/shm`` and ``/run/lock`` (the world-writable places), so files written
  outside the working directory vanish with the run.

When steerloop runs as **root**, the code additionally runs as a fresh unprivileged uid/gid
(a random id above 10⁹, different for every run, no supplementary groups) with
``PR_SET_NO_NEW_PRIVS``: it cannot write the host's files, read root's files or other
processes' environments, and ``RLIMIT_NPROC`` counts only its own processes. When the
interpreter lives under a directory that uid cannot enter (``/root/.pyenv``), the mount
namespace puts a tmpfs over that directory with only the interpreter bound back in.

Without ``unshare`` (or where namespaces are forbidden, e.g. some containers): **no network
isolation** (the code can connect to localhost and the internet), **no PID namespace** and
**no private /tmp** (the code can write to the world-writable ``/tmp``, ``/var/tmp``,
``/dev/shm`` as its uid). As root, leftover processes are killed by uid after the run
(``kill -9 -1`` as the sandbox uid), and the interpreter must be readable by an unprivileged
user (an interpreter under ``/root``, as with pyenv, is refused: pass ``python=`` a system
interpreter); as another user only the process group is killed, so a process that calls
``setsid()`` can outlive the run (still bound by ``RLIMIT_CPU``). :attr:`Sandbox.isolation`
says which case applies; :func:`probe_isolation` checks without running code.

Why a fresh uid rather than ``nobody``: ``RLIMIT_NPROC`` counts every process of a uid, so
sandboxes running in parallel (and unrelated ``nobody`` processes) would share one budget,
and the kill-by-uid sweep of the fallback mode would hit processes that are not ours.

Not covered, in any mode: no seccomp syscall filter; no cgroup, so memory is bounded per
process (``memory_bytes`` × ``processes`` in total), not for the whole tree; the code can
*read* world-readable host files (the project's source, ``/etc/passwd``); it can use the CPU
for ``timeout`` seconds. The verdict is trustworthy against accidents and lazy cheating, not
against code that deliberately tampers with the interpreter it shares with the harness (see
``_harness``). The sandbox is not a security boundary against a determined attacker with a
kernel exploit; it is meant to contain LLM-generated code that is buggy, greedy or careless.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from steerloop.errors import ScorerError

__all__ = [
    "Isolation",
    "Sandbox",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "probe_isolation",
]

_MIB = 1024 * 1024
_UID_BASE = 1_000_000_000
_UID_SPAN = 1 << 24
_ENV_ALLOWLIST = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}
_NS_FLAGS = ("--net", "--pid", "--ipc", "--uts", "--fork", "--mount-proc", "--kill-child")
_VERDICT_MAX = 64 * 1024
_TAIL = 4096


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run.

    Attributes
    ----------
    timeout
        Wall-clock seconds before the whole process tree is killed.
    cpu_seconds
        ``RLIMIT_CPU`` per process (soft; the hard limit is one second more). ``None``: the
        timeout rounded up, plus one.
    memory_bytes
        ``RLIMIT_AS`` per process (virtual address space).
    output_bytes
        ``RLIMIT_FSIZE``: the largest file any process may write, stdout/stderr included.
    open_files
        ``RLIMIT_NOFILE``.
    processes
        ``RLIMIT_NPROC``: processes and threads of the sandbox uid (effective as non-root).
    tmpfs_bytes
        Size of the private ``/tmp`` (namespace mode).
    """

    timeout: float = 10.0
    cpu_seconds: int | None = None
    memory_bytes: int = 512 * _MIB
    output_bytes: int = 1 * _MIB
    open_files: int = 64
    processes: int = 32
    tmpfs_bytes: int = 64 * _MIB

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        for name in ("memory_bytes", "output_bytes", "open_files", "processes", "tmpfs_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def cpu(self) -> int:
        """The effective CPU-seconds limit."""
        if self.cpu_seconds is not None:
            return max(1, int(self.cpu_seconds))
        return int(self.timeout) + 2

    @classmethod
    def coerce(cls, value: SandboxLimits | Mapping[str, Any] | None) -> SandboxLimits:
        """Accept limits, a mapping of their fields (e.g. from a policy ``with:``), or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, SandboxLimits):
            return value
        return cls(**dict(value))


@dataclass(frozen=True)
class Isolation:
    """Which protections apply to a sandboxed run (see the module docstring)."""

    namespaces: bool
    user_namespace: bool
    uid: Literal["fresh", "same"]
    command: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line per protection, for logs and docs."""
        lines = ["separate process group, wall-clock timeout, rlimits, fresh cwd, clean env"]
        if self.namespaces:
            kind = "user+" if self.user_namespace else ""
            lines.append(f"{kind}net+pid+mount+ipc+uts namespaces (no network, private /tmp)")
        else:
            lines.append("NO network isolation, NO pid namespace (unshare unavailable)")
        if self.uid == "fresh":
            lines.append("fresh unprivileged uid/gid per run, no_new_privs")
        else:
            lines.append("same uid as the caller")
        lines.extend(self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class SandboxJob:
    """What to run: a candidate program and test units (see ``_harness``).

    Attributes
    ----------
    candidate
        The candidate program (module source).
    units
        ``(source, counts)`` pairs run in order in the test namespace. Units with
        ``counts=True`` are tests; the others are setup steps (a failing step fails every
        later test).
    mode
        ``"test"`` counts passing units; ``"time"`` also measures the units' runtime against
        ``reference``, alternating ``rounds`` times.
    prelude
        Trusted code run first in the test namespace (e.g. a HumanEval prompt's helpers).
    setup
        Test code run after the bindings (e.g. the module level of a HumanEval test).
    bind
        ``test name -> candidate name``: candidate objects made visible to the tests.
        Functions are wrapped so that their return values must be plain when ``guard``.
    guard
        Check values crossing from candidate to tests (see the harness docstring).
    reference
        The reference program (``mode="time"``).
    rounds, target_seconds
        Timing: alternating measurement rounds, and the minimum duration of one measured
        batch (the units are repeated to reach it).
    """

    candidate: str
    units: tuple[tuple[str, bool], ...]
    mode: Literal["test", "time"] = "test"
    prelude: str = ""
    setup: str = ""
    bind: Mapping[str, str] = field(default_factory=dict)
    guard: bool = True
    reference: str | None = None
    rounds: int = 5
    target_seconds: float = 0.01

    @property
    def total(self) -> int:
        """Number of test units (setup steps excluded)."""
        return sum(1 for _, counts in self.units if counts)


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed run.

    Attributes
    ----------
    status
        ``"ok"``: a valid verdict arrived; ``"timeout"``: killed at the wall-clock timeout;
        ``"crashed"``: the process ended without a valid verdict (killed by a limit, exited
        early, tampered with the record, or the harness failed).
    passed, total
        Test units passed and the number of test units. ``passed`` is 0 unless ``status`` is
        ``"ok"``.
    detail
        The harness's own status (``ok``, ``candidate_error``, ``reference_error``,
        ``harness_error``) or why the verdict was rejected.
    error
        Exception type name raised by the candidate while loading, if any.
    timings
        ``mode="time"``: per-round seconds for ``"candidate"`` and ``"reference"``.
    elapsed
        Wall-clock seconds of the run.
    returncode
        Exit status of the process started (``unshare`` or the interpreter).
    output_bytes, output_tail
        Size of the combined stdout/stderr file and its last bytes (for debugging only: it may
        contain the candidate's output; steerloop never logs it).
    isolation
        The protections that applied.
    uid
        The throwaway uid the code ran as (``None`` when not started as root).
    """

    status: Literal["ok", "timeout", "crashed"]
    passed: int
    total: int
    detail: str
    error: str | None
    timings: Mapping[str, tuple[float, ...]]
    elapsed: float
    returncode: int | None
    output_bytes: int
    output_tail: bytes
    isolation: Isolation
    uid: int | None = None

    @property
    def fraction(self) -> float:
        """Pass fraction in [0, 1] (0 unless the run ended with a valid verdict)."""
        if self.status != "ok" or self.total <= 0:
            return 0.0
        return self.passed / self.total


# --------------------------------------------------------------------------- probing

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
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell, probing unshare itself
            [*prefix, true],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
            env=dict(_ENV_ALLOWLIST),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return prefix if completed.returncode == 0 else None


def probe_isolation(namespaces: bool | None = None) -> Isolation:
    """Find which isolation a :class:`Sandbox` gets on this machine (result cached).

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


def _traversable_by_others(path: str) -> bool:
    current = Path(path).resolve()
    for directory in [*reversed(current.parents), current]:
        try:
            mode = directory.stat().st_mode
        except OSError:
            return False
        if not mode & 0o001:
            return False
    return True


@functools.lru_cache(maxsize=1)
def _harness_source() -> str:
    return (Path(__file__).with_name("_harness.py")).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- running


class Sandbox:
    """Runs :class:`SandboxJob` s in confined processes.

    Parameters
    ----------
    limits
        Resource limits (default :class:`SandboxLimits`).
    python
        Interpreter for the sandboxed process; default ``sys.executable``. Without namespaces
        and as root it must be installed where an unprivileged user can read it.
    namespaces
        ``None`` (default): use ``unshare`` when it works; ``True``: require it; ``False``:
        never.
    site_packages
        Let the code import installed third-party packages (default: standard library only).

    Examples
    --------
    >>> sandbox = Sandbox(SandboxLimits(timeout=5))
    >>> job = SandboxJob(candidate="def f(x):\\n    return 2 * x\\n",
    ...                  units=(("assert f(2) == 4", True), ("assert f(1) == 3", True)),
    ...                  bind={"f": "f"})
    >>> result = sandbox.run(job)
    >>> result.status, result.passed, result.total
    ('ok', 1, 2)
    """

    def __init__(
        self,
        limits: SandboxLimits | Mapping[str, Any] | None = None,
        *,
        python: str | None = None,
        namespaces: bool | None = None,
        site_packages: bool = False,
    ) -> None:
        self.limits = SandboxLimits.coerce(limits)
        self.python = python or sys.executable
        self.site_packages = site_packages
        self._namespaces = namespaces
        self._isolation: Isolation | None = None

    @property
    def isolation(self) -> Isolation:
        """The protections that apply (probed once)."""
        if self._isolation is None:
            self._isolation = probe_isolation(self._namespaces)
        return self._isolation

    def run(self, job: SandboxJob, *, timeout: float | None = None) -> SandboxResult:
        """Run ``job`` and return its validated result.

        Parameters
        ----------
        job
            The program and tests.
        timeout
            Override of ``limits.timeout`` for this run.

        Raises
        ------
        ScorerError
            Reason ``"unavailable"`` when the sandbox itself cannot start (interpreter
            missing or unreadable by the sandbox uid, namespace setup refused). Failures of
            the *code* never raise: they are results.
        """
        isolation = self.isolation
        limits = self.limits
        wall = float(timeout) if timeout is not None else limits.timeout
        root = os.geteuid() == 0
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN) if root else None
        if (
            root
            and not isolation.namespaces
            and not _traversable_by_others(
                os.path.realpath(sys.base_prefix if self.python == sys.executable else self.python)
            )
        ):
            raise ScorerError(
                "sandbox",
                "unavailable",
                f"the interpreter {self.python!r} lives under a directory an unprivileged uid "
                "cannot enter, and without namespaces it cannot be remapped; pass "
                "python='/usr/bin/python3' (a system interpreter) or enable unshare",
            )
        nonce = secrets.token_hex(16)
        job_fields: dict[str, Any] = {
            "nonce": nonce,
            "mode": job.mode,
            "candidate": job.candidate,
            "reference": job.reference,
            "prelude": job.prelude,
            "setup": job.setup,
            "units": [[source, bool(counts)] for source, counts in job.units],
            "bind": dict(job.bind),
            "guard": job.guard,
            "rounds": job.rounds,
            "target": job.target_seconds,
            "budget": max(0.05, 0.6 * wall),
        }
        with (
            tempfile.TemporaryDirectory(
                prefix="steerloop-sandbox-", ignore_cleanup_errors=True
            ) as workdir,
            tempfile.TemporaryFile() as output,
            tempfile.TemporaryFile() as verdict,
        ):
            if uid is not None and not isolation.namespaces:
                os.chown(workdir, uid, uid)
            config = {
                "verdict_fd": verdict.fileno(),
                "uid": uid,
                "gid": uid,
                "mounts": isolation.namespaces,
                "site": self.site_packages,
                "tmpfs_bytes": limits.tmpfs_bytes,
                "limits": {
                    "cpu": limits.cpu,
                    "memory": limits.memory_bytes,
                    "fsize": limits.output_bytes,
                    "nofile": limits.open_files,
                    "nproc": limits.processes,
                },
            }
            payload = marshal.dumps({"config": config, "job": job_fields})
            flags = ["-I", "-B"] if self.site_packages else ["-I", "-S", "-B"]
            argv = [*isolation.command, self.python, *flags, "-c", _harness_source()]
            started = time.monotonic()
            try:
                process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell; this is the sandbox
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=output,
                    stderr=output,
                    cwd=workdir,
                    env=dict(_ENV_ALLOWLIST),
                    pass_fds=(verdict.fileno(),),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise ScorerError(
                    "sandbox", "unavailable", f"cannot start {self.python!r}: {exc.strerror}"
                ) from exc
            try:
                timed_out = not _feed_and_wait(process, payload, started + wall)
            finally:
                _terminate(process, isolation, uid)
            elapsed = time.monotonic() - started
            return _result(
                job,
                nonce,
                verdict,
                output,
                timed_out=timed_out,
                elapsed=elapsed,
                returncode=process.returncode,
                isolation=isolation,
                uid=uid,
            )


def _feed_and_wait(process: subprocess.Popen[bytes], payload: bytes, deadline: float) -> bool:
    """Write the job to stdin and wait for exit without reaping; False on timeout."""
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
            if _exited(process.pid):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            wait = remaining if pidfd is not None else min(remaining, 0.005)
            for key, _ in selector.select(wait):
                if key.data == "stdin":
                    try:
                        written = os.write(stdin_fd, view[: 1 << 16])
                        view = view[written:]
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


def _exited(pid: int) -> bool:
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


def _terminate(process: subprocess.Popen[bytes], isolation: Isolation, uid: int | None) -> None:
    """Kill everything the run left behind, then reap the process we started."""
    if isolation.namespaces and not _exited(process.pid):
        # Namespace mode: killing the namespace's PID 1 (the harness) makes the kernel kill
        # every process in the namespace; unshare then exits on its own.
        for child in _children(process.pid):
            _kill(child)
        deadline = time.monotonic() + 2.0
        while not _exited(process.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
    # The leader is unreaped (zombie or alive), so its pgid cannot have been recycled.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if uid is not None and not isolation.namespaces:
        _kill_uid(uid)
    with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable (D state) process
        process.wait(timeout=10)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _kill_uid(uid: int) -> None:
    """Kill every process of the (run-private) sandbox uid: ``kill -9 -1`` run as that uid."""
    kill = shutil.which("kill") or "/bin/kill"
    for _ in range(3):
        try:
            subprocess.run(  # noqa: S603 - fixed argv, runs as the throwaway sandbox uid
                [kill, "-9", "-1"],
                user=uid,
                group=uid,
                extra_groups=[],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
                env=dict(_ENV_ALLOWLIST),
            )
        except (OSError, subprocess.SubprocessError):
            return
        if not _uid_has_processes(uid):
            return


def _uid_has_processes(uid: int) -> bool:
    """Whether a live (not zombie) process runs as ``uid``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and not _is_zombie(entry):
                    return True
            except OSError:
                continue
    return False


def _is_zombie(proc_entry: Path) -> bool:
    """Zombies are dead and hold no resources; they wait for their new parent to reap them."""
    stat = (proc_entry / "stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _read_tail(handle: IO[bytes]) -> tuple[int, bytes]:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - _TAIL))
    return size, handle.read(_TAIL)


def _result(
    job: SandboxJob,
    nonce: str,
    verdict: IO[bytes],
    output: IO[bytes],
    *,
    timed_out: bool,
    elapsed: float,
    returncode: int | None,
    isolation: Isolation,
    uid: int | None,
) -> SandboxResult:
    size, tail = _read_tail(output)
    verdict.seek(0)
    raw = verdict.read(_VERDICT_MAX + 1)
    record, problem = _parse_verdict(raw, nonce)

    def build(
        status: Literal["ok", "timeout", "crashed"],
        detail: str,
        passed: int = 0,
        error: str | None = None,
        timings: Mapping[str, tuple[float, ...]] | None = None,
    ) -> SandboxResult:
        return SandboxResult(
            status=status,
            passed=passed,
            total=job.total,
            detail=detail,
            error=error,
            timings=timings or {},
            elapsed=elapsed,
            returncode=returncode,
            output_bytes=size,
            output_tail=tail,
            isolation=isolation,
            uid=uid,
        )

    if record is not None and record.get("status") == "sandbox_error":
        raise ScorerError(
            "sandbox",
            "unavailable",
            f"sandbox setup failed ({record.get('error')}); output: "
            f"{tail[-300:].decode('utf-8', 'replace').strip()}",
        )
    if timed_out:
        return build("timeout", "wall-clock timeout")
    if record is None:
        return build("crashed", problem)
    status = str(record.get("status"))
    error = record.get("error")
    error_name = str(error) if isinstance(error, str) else None
    if status in ("candidate_error",):
        return build("ok", status, error=error_name)
    if status == "reference_error":
        return build("ok", status, error=error_name)
    if status != "ok":
        return build("crashed", status, error=error_name)
    passed, total = record.get("passed"), record.get("total")
    if (
        type(passed) is not int
        or type(total) is not int
        or total != job.total
        or not 0 <= passed <= total
    ):
        return build("crashed", "verdict counts do not match the job")
    timings: dict[str, tuple[float, ...]] = {}
    if job.mode == "time":
        for key in ("candidate", "reference"):
            values = record.get(key)
            if not isinstance(values, list) or not values:
                return build("crashed", "verdict lacks timings")
            timings[key] = tuple(float(v) for v in values)
    return build("ok", "ok", passed=passed, error=error_name, timings=timings)


def _parse_verdict(raw: bytes, nonce: str) -> tuple[dict[str, Any] | None, str]:
    if not raw:
        return None, "no verdict (the process exited or was killed before the tests ended)"
    if len(raw) > _VERDICT_MAX:
        return None, "verdict too large (tampered)"
    lines = [line for line in raw.split(b"\n") if line.strip()]
    if len(lines) != 1:
        return None, "verdict has extra records (tampered)"
    try:
        record = json.loads(lines[0])
    except ValueError:
        return None, "verdict is not valid JSON (tampered)"
    if not isinstance(record, dict):
        return None, "verdict is not a record (tampered)"
    tag = record.get("nonce")
    if not isinstance(tag, str) or not hmac.compare_digest(tag.encode(), nonce.encode()):
        return None, "verdict nonce mismatch (tampered)"
    return record, ""
