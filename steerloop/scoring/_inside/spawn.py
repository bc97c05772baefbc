"""Start the candidate process, before the supervisor has read anything secret.

The supervisor's standard input carries two frames (see :mod:`.wire`): the configuration
(limits, uids, this package's source: nothing secret), which :mod:`.boot` reads, and the
job (the candidate program, the tests, the nonce), which the supervisor reads only *after*
this fork. The child therefore starts with a copy of a memory that has never held the job:
no test code, no expected value, no nonce; it points descriptor 0 (where the job still
waits, unread) at ``/dev/null`` first thing, keeps standard output and error (the capped
output file), takes the request pipe as descriptor 3 and the reply pipe as descriptor 4,
closes every other descriptor (the verdict file among them), enters the working directory,
confines itself (:func:`.confine.restrict`, as the candidate uid) and then serves the
checker (:func:`.runner.main`), which sends it its program. A failure before serving is
reported on a separate pipe, so it reads as a sandbox failure, never as something the
candidate did.
"""

from __future__ import annotations

import fcntl
import os

from . import confine, runner, wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

_FD_FLOOR = 10
_FD_CEILING = 1 << 16


class Candidate:
    """The started candidate process and the supervisor's ends of its pipes."""

    __slots__ = ("pid", "replies", "requests", "status")

    def __init__(self, pid: int, requests: int, replies: int, status: int) -> None:
        self.pid = pid
        self.requests = requests
        self.replies = replies
        self.status = status


class SpawnError(Exception):
    """The candidate process could not be set up (a sandbox failure)."""


def _child(lib: Any, config: dict[str, Any], pipes: tuple[int, int], status: int) -> NoReturn:
    """In the forked child: descriptors, confinement, then serve the checker. Never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the unread job waits on the old descriptor 0: drop it first
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, _FD_FLOOR) for fd in pipes]
        status = fcntl.fcntl(status, fcntl.F_DUPFD, _FD_FLOOR + len(pipes))
        for target, fd in zip((wire.REQUEST_FD, wire.REPLY_FD), high, strict=True):
            os.dup2(fd, target)
        os.closerange(5, status)
        os.closerange(status + 1, _FD_CEILING)
        work = str(config["work"])
        os.chdir(work)
        uid = config.get("uid")
        confine.restrict(lib, config["limits"], None if uid is None else int(uid), dumpable=True)
        os.environ.clear()
        os.environ.update({**config["env"], "HOME": work, "TMPDIR": work})
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"[:500].encode("utf-8", "replace")
        try:
            os.write(status, message or b"failed")
        finally:
            os._exit(127)
    os.close(status)
    try:
        runner.main(int(config["reply_bytes"]))
    finally:
        os._exit(70)


def start(lib: Any, config: dict[str, Any]) -> Candidate:
    """Fork the candidate process (call before reading the job).

    Check :func:`wait_ready` before using it.
    """
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(lib, config, (requests_r, replies_w), status_w)
    for fd in (requests_r, replies_w, status_w):
        os.close(fd)
    return Candidate(pid=pid, requests=requests_w, replies=replies_r, status=status_r)


def wait_ready(candidate: Candidate) -> None:
    """Wait until the child is confined and serving.

    Raises
    ------
    SpawnError
        When the child could not be confined (its message says why).
    """
    failure = b""
    while chunk := os.read(candidate.status, 4096):
        failure += chunk
    os.close(candidate.status)
    if failure:
        os.waitpid(candidate.pid, 0)
        raise SpawnError(failure.decode("utf-8", "replace"))
