"""Test harness that runs *inside* the sandbox (see :mod:`steerloop.scoring.sandbox`).

This file is not imported by steerloop: the sandbox passes its source to
``python -I -S -B -c SOURCE`` and feeds the configuration and the job on standard input
(``marshal`` format: the parent is trusted, and ``json`` would cost an import of ``re`` at
every start). It uses the standard library only.

Order of work, all before any untrusted code runs:

1. read the job (including the nonce) from stdin, then point fd 0 at ``/dev/null``;
2. in a private mount namespace: a fresh tmpfs on ``/tmp``, ``/var/tmp``, ``/dev/shm`` and
   ``/run/lock`` (the world-writable places), a working directory inside the new ``/tmp``,
   and, when the interpreter lives under a directory others cannot enter (``/root`` with a
   pyenv install), a tmpfs over that directory with only the interpreter's prefix bound back
   in — so the unprivileged uid can import the standard library and sees nothing else there;
   an interpreter prefix (or, with site packages, a virtual environment) that lives under
   one of the world-writable places is opened before the tmpfs hides it and bound back
   read-only at the same path;
3. resource limits (CPU, address space, file size, open files, processes, no core dumps);
4. drop to the unprivileged uid/gid with no supplementary groups (when started as root),
   then ``PR_SET_NO_NEW_PRIVS`` and ``PR_SET_PDEATHSIG(SIGKILL)``;
5. run the job and write one verdict record, tagged with the nonce, to the verdict fd.

The verdict counts test units that ran to completion. Values returned by the candidate's
functions and the operands of every comparison in the test code must be *plain* (built-in
scalars and containers, or classes that override none of the comparison, hashing, truth,
arithmetic, numeric-conversion, container or attribute-access hooks; ``__repr__`` and
``__str__`` may be overridden, as namedtuples do), so an object whose ``__eq__`` always returns
``True`` fails instead of passing. The candidate and the tests live in separate namespaces,
the tests see a pristine copy of the builtins, and the builtins are restored after the
candidate's code and after every unit.

Limits of the verdict: untrusted code shares the interpreter with the harness, so code that
deliberately introspects it (``gc``, frames, ``ctypes``) can forge a record. The sandbox keeps
such code from harming the host; the verdict protocol defeats accidental and lazy cheating
(exit code 0, early exit, printing a fake record, always-equal objects, shadowed builtins).
"""

from __future__ import annotations

import builtins
import ctypes
import functools
import gc
import marshal
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

_perf = time.perf_counter
_write = os.write
_exec = exec
_compile = compile
_type = type
_id = id
_float_repr = float.__repr__
_int_repr = int.__repr__
_dict_clear = dict.clear
_dict_update = dict.update
_dict_items = dict.items
_BUILTINS: dict[str, Any] = builtins.__dict__
_PRISTINE: dict[str, Any] = dict(_BUILTINS)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

_PLAIN_TYPES = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type(None),
    list,
    tuple,
    dict,
    set,
    frozenset,
)
_PLAIN = frozenset(_PLAIN_TYPES)
_SAFE_DEFINERS = _PLAIN | {object, type}
_HOOKS = (
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__hash__",
    "__bool__",
    "__len__",
    "__iter__",
    "__contains__",
    "__getitem__",
    "__index__",
    "__int__",
    "__float__",
    "__complex__",
    "__abs__",
    "__neg__",
    "__pos__",
    "__round__",
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__floordiv__",
    "__rfloordiv__",
    "__mod__",
    "__rmod__",
    "__pow__",
    "__rpow__",
    "__getattribute__",
    "__getattr__",
)
_PLAIN_LIMIT = 1_000_000
_type_verdicts: dict[type, bool] = {}


class NotPlainError(Exception):
    """A value that crosses from candidate to test code overrides comparison hooks."""


def _type_ok(cls: type) -> bool:
    if cls in _PLAIN:
        return True
    known = _type_verdicts.get(cls)
    if known is not None:
        return known
    verdict = True
    for hook in _HOOKS:
        for klass in cls.__mro__:
            if hook in klass.__dict__:
                if klass not in _SAFE_DEFINERS:
                    verdict = False
                break
        if not verdict:
            break
    _type_verdicts[cls] = verdict
    return verdict


def is_plain(value: object) -> bool:
    """Whether ``value`` (recursively) uses only built-in comparison and conversion hooks."""
    stack = [value]
    seen: set[int] = set()
    count = 0
    while stack:
        item = stack.pop()
        count += 1
        if count > _PLAIN_LIMIT:
            return False
        cls = _type(item)
        if not _type_ok(cls):
            return False
        if issubclass(cls, (list, tuple, set, frozenset, dict)):
            key = _id(item)
            if key in seen:
                continue
            seen.add(key)
            if issubclass(cls, dict):
                mapping: dict[object, object] = item  # type: ignore[assignment]
                for key_value in _dict_items(mapping):
                    stack.extend(key_value)
            else:
                stack.extend(item)  # type: ignore[arg-type]
    return True


def _check(value: object) -> object:
    if not is_plain(value):
        raise NotPlainError(_type(value).__name__)
    return value


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "Eq": lambda a, b: a == b,
    "NotEq": lambda a, b: a != b,
    "Lt": lambda a, b: a < b,
    "LtE": lambda a, b: a <= b,
    "Gt": lambda a, b: a > b,
    "GtE": lambda a, b: a >= b,
    "In": lambda a, b: a in b,
    "NotIn": lambda a, b: a not in b,
}


def compare(left: object, ops: tuple[str, ...], *rights: Callable[[], object]) -> bool:
    """Evaluate a (chained) comparison of plain operands; rewritten test code calls this."""
    for op, thunk in zip(ops, rights, strict=False):
        right = thunk()
        if op == "Is":
            result = left is right
        elif op == "IsNot":
            result = left is not right
        else:
            _check(left)
            _check(right)
            result = _OPERATORS[op](left, right)
            if _type(result) is not bool:
                raise NotPlainError("comparison result")
        if not result:
            return False
        left = right
    return True


def truth(value: object) -> bool:
    """Truth value of a plain value; rewritten ``assert`` statements call this."""
    _check(value)
    return bool(value)


def _identity(value: object) -> object:
    return value


def guard(fn: object) -> object:
    """Wrap a candidate function so that its return values must be plain."""
    if isinstance(fn, type) or not callable(fn):
        return fn

    @functools.wraps(fn)
    def guarded(*args: object, **kwargs: object) -> object:
        return _check(fn(*args, **kwargs))

    return guarded


# --------------------------------------------------------------------------- setup


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return libc


def _mount(
    libc: Any, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    result = libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), target)


def _blocking_ancestor(path: str) -> str | None:
    """The first ancestor of ``path`` that other users cannot traverse, if any."""
    current = "/"
    for part in path.strip("/").split("/")[:-1]:
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


_FRESH_TMPFS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # noqa: S108 - private mounts


def _under_fresh_tmpfs(path: str) -> bool:
    return any(path == place or path.startswith(place + "/") for place in _FRESH_TMPFS)


def _bind_back_read_only(libc: Any, handle: int, prefix: str, *, must_be_read_only: bool) -> None:
    """Bind the directory open as ``handle`` (hidden since) at ``prefix``, read-only."""
    os.makedirs(prefix, 0o755, exist_ok=True)
    _mount(libc, f"/proc/self/fd/{handle}", prefix, None, MS_BIND | MS_REC, None)
    os.close(handle)
    try:
        _mount(libc, None, prefix, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)
    except OSError:
        # In a user namespace (not root) a remount that would clear a locked flag of the
        # original mount is refused; the code then runs as the owner of those files anyway.
        if must_be_read_only:
            raise


def _setup_mounts(libc: Any, config: dict[str, Any]) -> str:
    size = int(config["tmpfs_bytes"])
    flags = MS_NOSUID | MS_NODEV
    prefixes = {os.path.realpath(sys.base_prefix)}
    if config.get("site"):
        prefixes.add(os.path.realpath(sys.prefix))
    # Prefixes under a place that gets a fresh tmpfs below: keep a handle to bind them back.
    covered = {
        prefix: os.open(prefix, os.O_PATH | os.O_DIRECTORY)
        for prefix in sorted(prefixes)
        if _under_fresh_tmpfs(prefix)
    }
    hidden: dict[str, list[str]] = {}
    for prefix in sorted(prefixes - covered.keys()):
        ancestor = _blocking_ancestor(prefix)
        if ancestor is not None:
            hidden.setdefault(ancestor, []).append(prefix)
    # Mount targets inside the sandbox's private mount namespace (not host temp files).
    _mount(libc, "tmpfs", "/tmp", "tmpfs", flags, f"mode=1777,size={size}")  # noqa: S108
    for ancestor, inner in hidden.items():
        stages = []
        for index, prefix in enumerate(inner):
            stage = f"/tmp/.stage{index}"  # noqa: S108 - private namespace
            os.mkdir(stage, 0o700)
            _mount(libc, prefix, stage, None, MS_BIND | MS_REC, None)
            stages.append((stage, prefix))
        _mount(libc, "tmpfs", ancestor, "tmpfs", flags, "mode=0755,size=1048576")
        for stage, prefix in stages:
            os.makedirs(prefix, 0o755, exist_ok=True)
            _mount(libc, stage, prefix, None, MS_BIND | MS_REC, None)
            libc.umount2(stage.encode(), MNT_DETACH)
            os.rmdir(stage)
    for place in ("/var/tmp", "/dev/shm", "/run/lock"):  # noqa: S108 - overmounted, private
        if os.path.isdir(place) and not os.path.islink(place):
            _mount(libc, "tmpfs", place, "tmpfs", flags, "mode=1777,size=1048576")
    for prefix, handle in covered.items():
        _bind_back_read_only(libc, handle, prefix, must_be_read_only=config.get("uid") is not None)
    work = "/tmp/work"  # noqa: S108 - inside the private tmpfs mounted above
    os.mkdir(work, 0o700)
    if config.get("uid") is not None:
        os.chown(work, int(config["uid"]), int(config["gid"]))
    return work


def _set_limits(limits: dict[str, int]) -> None:
    cpu = int(limits["cpu"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (int(limits["memory"]),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["fsize"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["nofile"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["nproc"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise PermissionError("privilege drop did not take effect")


# --------------------------------------------------------------------------- running


def _record(fields: dict[str, object]) -> bytes:
    """Serialize the verdict without json (the candidate may have patched json)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            text = "null"
        elif _type(value) is bool:
            text = "true" if value else "false"
        elif _type(value) is int:
            text = _int_repr(value)
        elif _type(value) is float:
            text = (
                _float_repr(value)
                if value == value and value not in (float("inf"), float("-inf"))
                else "null"
            )
        elif _type(value) is list:
            text = "[" + ",".join(_float_repr(float(v)) for v in value) + "]"
        else:
            raw = str(value)
            text = '"' + "".join(c for c in raw[:80] if c.isalnum() or c in "_.-") + '"'
        parts.append(f'"{key}":{text}')
    return ("{" + ",".join(parts) + "}\n").encode("ascii")


def _restore_builtins() -> None:
    _dict_clear(_BUILTINS)
    _dict_update(_BUILTINS, _PRISTINE)


def _test_namespace() -> dict[str, Any]:
    return {
        "__name__": "__steerloop_tests__",
        "__builtins__": dict(_PRISTINE),
        "__sl_compare__": compare,
        "__sl_truth__": truth,
    }


class _Side:
    """One program (candidate or reference) with its own test namespace."""

    def __init__(self, job: dict[str, Any], source: str, label: str) -> None:
        self.error: str | None = None
        self.stage = ""
        self.units: list[tuple[Any, bool]] = []
        namespace: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": builtins}
        self.tests = _test_namespace()
        try:
            self.stage = "load"
            _exec(_compile(source, f"<{label}>", "exec"), namespace)
            _restore_builtins()
            self.stage = "prelude"
            if job.get("prelude"):
                _exec(_compile(job["prelude"], "<prelude>", "exec"), self.tests)
            wrap = guard if job.get("guard", True) else _identity
            for test_name, name in _dict_items(job.get("bind") or {}):
                if name in namespace:
                    self.tests[test_name] = wrap(namespace[name])
            self.stage = "setup"
            if job.get("setup"):
                _exec(_compile(job["setup"], "<test setup>", "exec"), self.tests)
            self.stage = "units"
            for index, (unit, counts) in enumerate(job["units"]):
                self.units.append((_compile(unit, f"<test {index}>", "exec"), bool(counts)))
        except BaseException as exc:  # anything the candidate raises, SystemExit included
            self.error = _type(exc).__name__
        finally:
            _restore_builtins()

    def run(self, restore: bool = True) -> tuple[int, int]:
        """Run every unit once; return (passed, failed) counting units only.

        ``restore=False`` (timing) restores the builtins once per pass, not per unit.
        """
        passed = failed = 0
        broken = False
        for code, counts in self.units:
            if broken:
                failed += counts
                continue
            try:
                _exec(code, self.tests)
            except BaseException:
                if counts:
                    failed += 1
                else:
                    broken = True
            else:
                passed += counts
            finally:
                if restore:
                    _restore_builtins()
        if not restore:
            _restore_builtins()
        return passed, failed


def _run_tests(job: dict[str, Any]) -> dict[str, object]:
    total = sum(1 for _, counts in job["units"] if counts)
    side = _Side(job, job["candidate"], "candidate")
    if side.error is not None:
        return {"passed": 0, "total": total, "error": side.error, "stage": side.stage}
    passed, _ = side.run()
    return {"passed": passed, "total": total, "error": None, "stage": "done"}


def _time_side(side: _Side, repeat: int) -> float:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = _perf()
        for _ in range(repeat):
            side.run(restore=False)
        return (_perf() - start) / repeat
    finally:
        if was_enabled:
            gc.enable()


def _run_timing(job: dict[str, Any]) -> dict[str, object]:
    total = sum(1 for _, counts in job["units"] if counts)
    started = _perf()
    budget = float(job["budget"])
    reference = _Side(job, job["reference"], "reference")
    if reference.error is not None:
        return {"status": "reference_error", "error": reference.error, "stage": reference.stage}
    candidate = _Side(job, job["candidate"], "candidate")
    if candidate.error is not None:
        return {"status": "candidate_error", "error": candidate.error, "stage": candidate.stage}
    ref_once = _time_side(reference, 1)
    passed, _ = candidate.run()  # warm-up and correctness count
    cand_once = _time_side(candidate, 1)
    rounds = int(job["rounds"])
    # Repeat the units so that the *slower* side's batch lasts about `target` seconds: a slow
    # candidate then costs ~2·target per round, not the whole budget.
    slower = max(ref_once, cand_once, 1e-7)
    repeat = max(1, min(10_000, int(float(job["target"]) / slower)))
    remaining = budget - (_perf() - started)
    if (ref_once + cand_once) * repeat * rounds > remaining:
        repeat = max(1, int(remaining / max(rounds * (ref_once + cand_once), 1e-9)))
    ref_times: list[float] = []
    cand_times: list[float] = []
    for index in range(rounds):
        # Alternate which side goes first, so that a systematic order effect cancels.
        if index % 2 == 0:
            cand_times.append(_time_side(candidate, repeat))
            ref_times.append(_time_side(reference, repeat))
        else:
            ref_times.append(_time_side(reference, repeat))
            cand_times.append(_time_side(candidate, repeat))
        if _perf() - started > budget:
            break
    return {
        "status": "ok",
        "passed": passed,
        "total": total,
        "repeat": repeat,
        "candidate": cand_times,
        "reference": ref_times,
    }


def main() -> None:
    """Entry point: ``python -I -S -B -c SOURCE`` with ``{"config", "job"}`` on stdin."""
    # The job comes from the trusted parent process, before any untrusted code runs.
    message = marshal.loads(sys.stdin.buffer.read())  # noqa: S302
    config: dict[str, Any] = message["config"]
    job: dict[str, Any] = message["job"]
    verdict_fd = int(config["verdict_fd"])
    nonce = str(job.pop("nonce"))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    def emit(fields: dict[str, object]) -> None:
        _write(verdict_fd, _record({"nonce": nonce, **fields}))

    try:
        libc = _libc()
        if config.get("mounts"):
            os.chdir(_setup_mounts(libc, config))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _set_limits(config["limits"])
        if config.get("uid") is not None:
            _drop_privileges(int(config["uid"]), int(config["gid"]))
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        cwd = os.getcwd()
        os.environ["HOME"] = cwd
        os.environ["TMPDIR"] = cwd
    except BaseException as exc:
        emit({"status": "sandbox_error", "error": type(exc).__name__, "stage": "setup"})
        sys.stderr.write(f"steerloop sandbox setup failed: {exc!r}\n")
        os._exit(3)

    try:
        timing = job["mode"] == "time"
        fields = _run_timing(job) if timing else {"status": "ok", **_run_tests(job)}
    except BaseException as exc:
        fields = {"status": "harness_error", "error": _type(exc).__name__}
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: S110 - output may be over its size limit
            pass
    emit(fields)
    os._exit(0)


if __name__ == "__main__":
    main()
