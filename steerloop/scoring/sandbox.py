"""Run untrusted Python in confined processes and read back a verdict it cannot forge.

:class:`Sandbox` runs a :class:`SandboxJob` (a candidate program and test units) and
returns a :class:`SandboxResult`.

Who holds what (test mode)
--------------------------
Two sandboxed processes take part (code in :mod:`steerloop.scoring._inside`):

* the **candidate process** holds the candidate program and nothing else: the supervisor
  forks it after reading the configuration and *before* reading the job, so its memory
  never held the tests, the expected values or the nonce (the unread job waits on a
  descriptor it drops first). It confines itself, receives its program and the names the
  tests use, and then answers calls. It sends only plain data through a pipe: for each
  call, the return value (``None``, bools, numbers, strings, bytes and lists, tuples, dicts
  and sets of them, at most ``reply_bytes`` per reply) or an exception type name. Objects
  that are not plain stay in its process and travel as opaque references;
* the **checker** (the supervisor, once it has started the candidate) runs the task's test
  code, calls the candidate through the pipe, computes every comparison on the decoded
  values and writes the verdict record, tagged with a per-run nonce, to a descriptor only
  it holds. Expected values, the test code, the count of passed tests and the nonce never
  enter the candidate's process. The checker runs as a different throwaway uid than the
  candidate (as root) and is not dumpable, so the candidate cannot ``ptrace`` it, read or
  write its memory, reach its descriptors or signal it (in a PID namespace it is PID 1,
  which no signal from inside can kill); if the candidate process dies, hangs or breaks the
  protocol, the run scores 0 passed.

What this guarantees, and what it cannot: a test passes only if the trusted test code,
run in the checker, passes with the values the candidate returned for the calls the test
made. The candidate cannot change the test code, the comparison operators, the counting
or the record; an object with an always-true ``__eq__`` never reaches a comparison (it
stays a reference, and references refuse comparison, hashing and truth). It can still
(1) answer from knowledge: memorised or hard-coded answers, or test data it can read
(everything importable with ``site_packages=True``, e.g. a data set shipped in an
installed package; without namespaces, every world-readable file); (2) see every argument
the tests pass to it, so a test that passes the expected value as an argument gives it
away; (3) not be checked for effects: calls are by value (a test cannot see in-place
changes to its arguments), and only exception type names cross (not messages). Tests
that compare candidate objects (not plain values) fail. Timing runs (``mode="time"``,
the efficiency score) still run candidate and reference in one process and trust the
code's own timings.

Containment, in layers
----------------------
Always (Linux, any user):

* separate interpreters, ``python -I -S -B`` (isolated mode: no ``PYTHON*`` variables, no
  user or site packages unless ``site_packages=True``), in a new session and process group;
* a wall-clock timeout, after which the whole process tree is killed with ``SIGKILL``;
* ``RLIMIT_CPU``, ``RLIMIT_AS`` (address space), ``RLIMIT_FSIZE`` (largest file written,
  which also caps the output), ``RLIMIT_NOFILE``, ``RLIMIT_NPROC`` and no core dumps, per
  process, set before any untrusted code runs;
* no capabilities (an empty bounding set too), ``no_new_privs``, death with the parent;
* a fresh working directory, ``HOME`` and ``TMPDIR`` pointing into it, an allow-listed
  environment (``PATH``, ``LANG``, ``LC_ALL`` only: no secrets reach the code);
* standard output and error go to an unlinked temporary file capped by ``RLIMIT_FSIZE``,
  never to a pipe the parent reads, so a process that holds it cannot stall the parent.

When ``unshare`` (util-linux) can create namespaces — as root, or through a user namespace
for other users — additionally:

* a private **network** namespace (only a down loopback: no network at all);
* a private **PID** namespace with its own ``/proc``: the code cannot see or signal host
  processes, and when the supervisor (PID 1 there) exits or is killed, every process left
  behind (fork bombs, detached grandchildren) is killed by the kernel;
* private **mount**, IPC and UTS namespaces, and a **minimal root**: the processes chroot
  into a tmpfs holding read-only binds of the system directories (``/usr``, ``/lib*``,
  ``/bin``, ``/sbin``) and the interpreter's prefix only, the loader's files of ``/etc``, a
  few devices, the namespace's ``/proc`` and fresh size-limited tmpfs on ``/tmp``,
  ``/var/tmp`` and ``/dev/shm``: the host's other files (the project, test files,
  ``/root``, ``/home``, ``/etc``) are not there to read, and nothing written survives.

When steerloop runs as **root**, the candidate runs as a fresh unprivileged uid/gid (a
random id above 10⁹, different for every run, no supplementary groups) and the checker as
the next one: neither can write the host's files or read other processes' environments,
and ``RLIMIT_NPROC`` counts only the run's own processes.

Without ``unshare`` (or where namespaces are forbidden, e.g. some containers): **no network
isolation** (the code can connect to localhost and the internet), **no PID namespace**,
**no minimal root** (the code can read world-readable host files and write to the
world-writable ``/tmp``, ``/var/tmp``, ``/dev/shm`` as its uid). As root, leftover
processes are killed by uid after the run (``kill -9 -1`` as each throwaway uid), and the
interpreter must be readable by an unprivileged user (an interpreter under ``/root``, as
with pyenv, is refused: pass ``python=`` a system interpreter). As another user the code
runs as the **caller's own uid**: it can signal (and where the kernel's ptrace policy
allows, trace) the caller's other processes, so neither containment nor the verdict holds
against deliberate attacks in that mode; only the process group is killed after the run.
:attr:`Sandbox.isolation` says which case applies; :func:`probe_isolation` checks without
running code.

Not covered, in any mode: no seccomp syscall filter; no cgroup, so memory is bounded per
process (``memory_bytes`` × ``processes`` in total), not for the whole tree; the code can
use the CPU for ``timeout`` seconds. The sandbox is not a security boundary against a
determined attacker with a kernel exploit; it is meant to contain LLM-generated code that
is buggy, greedy, careless or optimising for its score.
"""

from __future__ import annotations

import functools
import marshal
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from steerloop.errors import ScorerError
from steerloop.scoring import _process, _verdict
from steerloop.scoring._isolation import (
    ENV_ALLOWLIST,
    Isolation,
    probe_isolation,
    traversable_by_others,
)

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
_UID_PAIRS = 1 << 23
_TAIL = 4096
_INSIDE = Path(__file__).with_name("_inside")
_MODULES = ("wire", "confine", "runner", "spawn", "checker", "timing", "supervisor")


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
    reply_bytes
        Largest reply of the candidate process to one call (its JSON encoding); a larger
        reply fails that call.
    """

    timeout: float = 10.0
    cpu_seconds: int | None = None
    memory_bytes: int = 512 * _MIB
    output_bytes: int = 1 * _MIB
    open_files: int = 64
    processes: int = 32
    tmpfs_bytes: int = 64 * _MIB
    reply_bytes: int = 8 * _MIB

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        for name in (
            "memory_bytes",
            "output_bytes",
            "open_files",
            "processes",
            "tmpfs_bytes",
            "reply_bytes",
        ):
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
class SandboxJob:
    """What to run: a candidate program and test units.

    Attributes
    ----------
    candidate
        The candidate program (module source); it runs in the candidate process.
    units
        ``(source, counts)`` pairs run in order in the test namespace (in the checker).
        Units with ``counts=True`` are tests; the others are setup steps (a failing step
        fails every later test).
    mode
        ``"test"`` counts passing units; ``"time"`` also measures the units' runtime against
        ``reference``, alternating ``rounds`` times (candidate and reference in one process).
    prelude
        Trusted code run first in the test namespace (e.g. a HumanEval prompt's helpers).
    setup
        Test code run after the bindings (e.g. the module level of a HumanEval test).
    bind
        ``test name -> candidate name``: what the candidate's program defines under
        ``candidate name`` (a plain value, or a reference to call) becomes visible to the
        tests as ``test name``.
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
        ``"crashed"``: no valid verdict (the candidate process ended early or broke the
        protocol, a limit killed a process, the record was tampered with, the harness failed).
    passed, total
        Test units passed and the number of test units. ``passed`` is 0 unless ``status`` is
        ``"ok"``.
    detail
        The supervisor's status (``ok``, ``candidate_error``, ``reference_error``,
        ``task_error``) or why the run did not end with a valid verdict.
    error
        Exception type name raised by the candidate (or reference) while loading, if any.
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
    uid, checker_uid
        The throwaway uids the candidate and the checker ran as (``None`` when not started
        as root).
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
    checker_uid: int | None = None

    @property
    def fraction(self) -> float:
        """Pass fraction in [0, 1] (0 unless the run ended with a valid verdict)."""
        if self.status != "ok" or self.total <= 0:
            return 0.0
        return self.passed / self.total


@functools.lru_cache(maxsize=1)
def _sources() -> dict[str, str]:
    names = {*_MODULES, "boot"}
    return {name: (_INSIDE / f"{name}.py").read_text(encoding="utf-8") for name in names}


def _job_fields(job: SandboxJob, nonce: str, wall: float) -> dict[str, Any]:
    return {
        "nonce": nonce,
        "mode": job.mode,
        "candidate": job.candidate,
        "reference": job.reference,
        "prelude": job.prelude,
        "setup": job.setup,
        "units": [[source, bool(counts)] for source, counts in job.units],
        "bind": dict(job.bind),
        "rounds": job.rounds,
        "target": job.target_seconds,
        "budget": max(0.05, 0.6 * wall),
    }


class Sandbox:
    """Runs :class:`SandboxJob` s in confined processes.

    Parameters
    ----------
    limits
        Resource limits (default :class:`SandboxLimits`).
    python
        Interpreter for the sandboxed processes; default ``sys.executable``. Without
        namespaces and as root it must be installed where an unprivileged user can read it.
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

    def _check_interpreter(self, isolation: Isolation) -> None:
        if os.geteuid() != 0 or isolation.namespaces:
            return
        home = sys.base_prefix if self.python == sys.executable else self.python
        if not traversable_by_others(os.path.realpath(home)):
            raise ScorerError(
                "sandbox",
                "unavailable",
                f"the interpreter {self.python!r} lives under a directory an unprivileged uid "
                "cannot enter, and without namespaces it cannot be remapped; pass "
                "python='/usr/bin/python3' (a system interpreter) or enable unshare",
            )

    def _config(self, uid: int | None, verdict_fd: int, mode: str) -> dict[str, Any]:
        limits = self.limits
        return {
            "mode": mode,
            "verdict_fd": verdict_fd,
            "uid": uid,
            "checker_uid": None if uid is None else uid + 1,
            "mounts": self.isolation.namespaces,
            "site": self.site_packages,
            "tmpfs_bytes": limits.tmpfs_bytes,
            "reply_bytes": limits.reply_bytes,
            "env": dict(ENV_ALLOWLIST),
            "limits": {
                "cpu": limits.cpu,
                "memory": limits.memory_bytes,
                "fsize": limits.output_bytes,
                "nofile": limits.open_files,
                "nproc": limits.processes,
            },
        }

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
        self._check_interpreter(isolation)
        wall = float(timeout) if timeout is not None else self.limits.timeout
        # An even uid for the candidate, the next one for the checker.
        uid = _UID_BASE + 2 * secrets.randbelow(_UID_PAIRS) if os.geteuid() == 0 else None
        nonce = secrets.token_hex(16)
        with (
            tempfile.TemporaryDirectory(
                prefix="steerloop-sandbox-", ignore_cleanup_errors=True
            ) as workdir,
            tempfile.TemporaryFile() as output,
            tempfile.TemporaryFile() as verdict,
        ):
            if uid is not None and not isolation.namespaces:
                os.chown(workdir, uid, uid)
            sources = _sources()
            # Two frames: the configuration first (no secret: the candidate process is forked
            # after reading it), then the job.
            payload = _frame(
                {
                    "modules": [[name, sources[name]] for name in _MODULES],
                    "entry": "supervisor",
                    "config": self._config(uid, verdict.fileno(), job.mode),
                }
            ) + _frame(_job_fields(job, nonce, wall))
            started = time.monotonic()
            process = self._start(isolation, workdir, output, verdict.fileno())
            try:
                timed_out = not _process.feed_and_wait(process, payload, started + wall)
            finally:
                uids = () if uid is None else (uid, uid + 1)
                _process.terminate(process, isolation.namespaces, uids)
            elapsed = time.monotonic() - started
            size, tail = _read_tail(output)
            verdict.seek(0)
            record, problem = _verdict.parse(verdict.read(_verdict.VERDICT_MAX + 1), nonce)
            outcome = _verdict.outcome(
                record,
                problem,
                total=job.total,
                timing=job.mode == "time",
                timed_out=timed_out,
                output_tail=tail,
            )
        return SandboxResult(
            status=outcome.status,
            passed=outcome.passed,
            total=job.total,
            detail=outcome.detail,
            error=outcome.error,
            timings=outcome.timings,
            elapsed=elapsed,
            returncode=process.returncode,
            output_bytes=size,
            output_tail=tail,
            isolation=isolation,
            uid=uid,
            checker_uid=None if uid is None else uid + 1,
        )

    def _start(
        self, isolation: Isolation, workdir: str, output: IO[bytes], verdict_fd: int
    ) -> subprocess.Popen[bytes]:
        flags = ["-I", "-B"] if self.site_packages else ["-I", "-S", "-B"]
        argv = [*isolation.command, self.python, *flags, "-c", _sources()["boot"]]
        try:
            return subprocess.Popen(  # noqa: S603 - fixed argv, no shell; this is the sandbox
                argv,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                cwd=workdir,
                env=dict(ENV_ALLOWLIST),
                pass_fds=(verdict_fd,),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ScorerError(
                "sandbox", "unavailable", f"cannot start {self.python!r}: {exc.strerror}"
            ) from exc


def _frame(value: dict[str, Any]) -> bytes:
    data = marshal.dumps(value)
    return len(data).to_bytes(4, "big") + data


def _read_tail(handle: IO[bytes]) -> tuple[int, bytes]:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - _TAIL))
    return size, handle.read(_TAIL)
