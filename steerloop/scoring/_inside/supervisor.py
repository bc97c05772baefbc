"""The first sandboxed process: confine, start the candidate, check, write the verdict.

It runs as ``python -I -S -B -c <boot>`` (see :mod:`.boot`), which has read the first frame
of standard input (the configuration). In order, before any untrusted code runs:

1. with mount namespaces, build the minimal root and chroot into it
   (:func:`.confine.build_root`);
2. test mode: fork the candidate process (:mod:`.spawn`), which confines itself as the
   candidate uid — *before* step 3, so it never holds the job;
3. read the second frame, the job (including the nonce);
4. test mode: confine itself as the *checker* (a different throwaway uid when started as
   root; not dumpable in every case) and run the tests against the candidate
   (:mod:`.checker`); time mode: confine itself as the candidate uid and time both
   programs in this process (:mod:`.timing`);
5. write one verdict record, tagged with the nonce, to the verdict descriptor, which only
   this process holds.

In a PID namespace this process is PID 1: signals from inside the namespace cannot kill it,
and when it exits the kernel kills everything the candidate left behind.
"""

from __future__ import annotations

import marshal
import os
import signal
import sys

from . import checker, confine, spawn, timing, wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

_JOB_LIMIT = 1 << 31


def _record(fields: dict[str, object]) -> bytes:
    """Serialize the verdict without ``json`` (time mode shares this process with the code)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            text = "null"
        elif type(value) is bool:
            text = "true" if value else "false"
        elif type(value) is int:
            text = int.__repr__(value)
        elif type(value) is float:
            text = float.__repr__(value) if value - value == 0 else "null"
        elif type(value) is list:
            text = "[" + ",".join(float.__repr__(float(v)) for v in value) + "]"
        else:
            raw = str(value)
            text = '"' + "".join(c for c in raw[:120] if c.isalnum() or c in "_.-: ") + '"'
        parts.append(f'"{key}":{text}')
    return ("{" + ",".join(parts) + "}\n").encode("ascii")


def _read_job() -> dict[str, Any]:
    data = wire.receive(0, _JOB_LIMIT)
    if data is None:
        raise EOFError("no job on standard input")
    job: dict[str, Any] = marshal.loads(data)  # noqa: S302 - written by the trusted parent
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return job


def _prepare(lib: Any, config: dict[str, Any]) -> spawn.Candidate | None:
    """Steps 1-2: the root, the working directory, the candidate process (test mode)."""
    config["executable"] = (
        sys.executable if config.get("site") else os.path.realpath(sys.executable)
    )
    if config.get("mounts"):
        confine.build_root(lib, config)
        config["work"] = confine.WORK
    else:
        config["work"] = os.getcwd()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return spawn.start(lib, config) if config["mode"] == "test" else None


def _confine(lib: Any, config: dict[str, Any], started: spawn.Candidate | None) -> Any:
    """Step 4's confinement; returns the link to the candidate in test mode."""
    if started is None:
        uid = config.get("uid")
        confine.restrict(lib, config["limits"], None if uid is None else int(uid), dumpable=True)
        os.environ["HOME"] = os.environ["TMPDIR"] = str(config["work"])
        return None
    spawn.wait_ready(started)
    os.chdir("/")
    checker_uid = config.get("checker_uid")
    confine.restrict(
        lib, config["limits"], None if checker_uid is None else int(checker_uid), dumpable=False
    )
    return checker.Link(started.pid, started.requests, started.replies, int(config["reply_bytes"]))


def _fail(verdict_fd: int, nonce: str, exc: BaseException) -> NoReturn:
    _emit(verdict_fd, nonce, {"status": "sandbox_error", "error": f"{type(exc).__name__}: {exc}"})
    sys.stderr.write(f"steerloop sandbox setup failed: {exc!r}\n")
    os._exit(3)


def main(payload: dict[str, Any]) -> NoReturn:
    """Entry point (see :mod:`.boot`)."""
    config: dict[str, Any] = payload["config"]
    verdict_fd = int(config["verdict_fd"])
    lib = None
    try:
        lib = confine.libc()
        started = _prepare(lib, config)
    except BaseException as exc:
        _fail(verdict_fd, str(_read_job().get("nonce")), exc)
    job = _read_job()
    nonce = str(job.pop("nonce"))
    try:
        link = _confine(lib, config, started)
    except BaseException as exc:
        _fail(verdict_fd, nonce, exc)
    try:
        fields = checker.run(job, link) if started is not None else timing.run(job)
    except BaseException as exc:
        fields = {"status": "harness_error", "error": type(exc).__name__}
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: S110 - output may be over its size limit
            pass
    _emit(verdict_fd, nonce, fields)
    os._exit(0)


def _emit(verdict_fd: int, nonce: str, fields: dict[str, object]) -> None:
    os.write(verdict_fd, _record({"nonce": nonce, **fields}))
