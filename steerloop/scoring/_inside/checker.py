"""The checker: run the task's tests in this process against the candidate in another.

The test code (the task's prompt as a prelude, the test module's setup and the test units)
runs here; the candidate program runs in the candidate process (:mod:`.runner`), reached
only through :class:`Link`. A name the tests take from the candidate is bound to what the
candidate process sends for it: a plain value (decoded into built-in objects, see
:mod:`.wire`) or a :class:`Remote` reference. Calling a reference sends the arguments
(plain values and references only) and returns the reply, so the candidate sees the
arguments of its calls and nothing else: expected values, the comparisons, the count of
passed tests and the verdict stay in this process.

A :class:`Remote` can be called and its attributes, length, items and membership asked
for (each answer is again plain or a reference), but it refuses comparison, hashing and
truth: an object whose ``__eq__`` always answers ``True`` stays in the candidate's process,
where it cannot answer the checker's ``==``.

An exception raised by the candidate arrives as its type name: a built-in exception type
of that name is raised here (so ``except ValueError`` in a test works), any other name
raises :class:`CandidateError`; ``StopIteration`` and non-``Exception`` types
(``SystemExit``, ``KeyboardInterrupt``) also become :class:`CandidateError`, so they
cannot end a test's loop or the checker. When the candidate process ends or breaks the
protocol, every later call raises :class:`CandidateGoneError` and the run's verdict is
``candidate_crashed`` (0 passed), whatever the tests caught.
"""

from __future__ import annotations

import builtins
import os
import time

from . import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


class CandidateGoneError(Exception):
    """The candidate process ended, or broke the protocol; no further call is possible."""


class CandidateError(Exception):
    """The candidate raised an exception that is not a standard ``Exception`` type."""


class NotPlainError(TypeError):
    """Comparison, hashing or truth of an object that lives in the candidate's process."""


_NOT_RAISED_AS_IS = (StopIteration, StopAsyncIteration)


def candidate_exception(name: str) -> Exception:
    """The exception to raise in the tests for an exception the candidate raised."""
    label = name[:80]
    cls = builtins.__dict__.get(label)
    if (
        isinstance(cls, type)
        and issubclass(cls, Exception)
        and not issubclass(cls, _NOT_RAISED_AS_IS)
    ):
        try:
            return cls()
        except Exception:  # noqa: S110 - exception types that need arguments
            pass
    return CandidateError(label)


class Link:
    """The checker's end of the candidate pipe: one request, one reply, in order.

    Parameters
    ----------
    pid
        The candidate process (to report how it ended).
    requests, replies
        Descriptors to write requests to and read replies from.
    limit
        Largest reply frame accepted, in bytes.
    """

    def __init__(self, pid: int, requests: int, replies: int, limit: int) -> None:
        self.pid = pid
        self.requests = requests
        self.replies = replies
        self.limit = limit
        self.seq = 0
        self.gone: str | None = None

    def _receive(self, seq: int) -> list[Any]:
        try:
            data = wire.receive(self.replies, self.limit)
            if data is None:
                raise CandidateGoneError(self._ending())
            message = wire.loads(data, self._remote)
        except wire.WireError as exc:
            raise CandidateGoneError(f"protocol: {exc}") from None
        except OSError as exc:
            raise CandidateGoneError(f"pipe: {exc.strerror}") from None
        if type(message[0]) is not int or message[0] != seq:
            raise CandidateGoneError("protocol: reply out of sequence")
        return message

    def _remote(self, number: int) -> Remote:
        return Remote(self, number)

    def _ending(self) -> str:
        """How the candidate process ended (it may only have closed its reply pipe)."""
        status = 0
        for _ in range(50):
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return "ended"
            if pid:
                break
            time.sleep(0.001)
        else:
            return "closed its reply pipe"
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exited with status {os.waitstatus_to_exitcode(status)}"

    def start(self, program: str, names: list[str]) -> tuple[dict[str, object], str | None]:
        """Send the candidate its program; return its bindings and its load error name.

        When the process ends or breaks the protocol instead, :attr:`gone` says how and the
        bindings are empty.
        """
        try:
            self.seq += 1
            wire.send(self.requests, wire.dumps([self.seq, "load", program, names]))
            loaded = self._receive(self.seq)
        except CandidateGoneError as exc:
            self.gone = str(exc)
            return {}, None
        except OSError as exc:
            self.gone = f"pipe: {exc.strerror}"
            return {}, None
        if len(loaded) == 3 and _is(loaded[1], "e") and type(loaded[2]) is str:
            return {}, loaded[2][:80]
        if len(loaded) != 3 or not _is(loaded[1], "v") or type(loaded[2]) is not list:
            self.gone = "protocol: malformed load reply"
            return {}, None
        values: dict[str, object] = {}
        for pair in loaded[2]:
            if type(pair) is list and len(pair) == 2 and type(pair[0]) is str:
                values[pair[0]] = pair[1]
        return values, None

    def request(self, op: str, *fields: object) -> object:
        """Send one request and return the candidate's answer (or raise its exception)."""
        if self.gone is not None:
            raise CandidateGoneError(self.gone)
        self.seq += 1
        try:
            encoded = [wire.encode(field, _remote_ref) for field in fields]
        except wire.WireError as exc:
            raise TypeError(str(exc)) from None
        try:
            wire.send(self.requests, wire.dumps([self.seq, op, *encoded]))
            reply = self._receive(self.seq)
        except CandidateGoneError as exc:
            self.gone = str(exc)
            raise
        except OSError as exc:
            self.gone = f"pipe: {exc.strerror}"
            raise CandidateGoneError(self.gone) from None
        if len(reply) == 3 and _is(reply[1], "v"):
            return reply[2]
        if len(reply) == 3 and _is(reply[1], "e") and type(reply[2]) is str:
            raise candidate_exception(reply[2])
        self.gone = "protocol: malformed reply"
        raise CandidateGoneError(self.gone)


def _is(value: object, text: str) -> bool:
    """``value == text`` for a value from the candidate (checked by type first: a reference
    refuses comparison)."""
    return type(value) is str and value == text


def _remote_ref(value: object) -> int:
    if type(value) is Remote:
        return value._number
    raise wire.WireError(f"cannot pass a {type(value).__name__} to the candidate")


class Remote:
    """An object of the candidate's process: callable and inspectable, never compared."""

    __slots__ = ("_link", "_number")

    def __init__(self, link: Link, number: int) -> None:
        self._link = link
        self._number = number

    def __call__(self, *args: object, **kwargs: object) -> object:
        pairs = [[key, value] for key, value in kwargs.items()]
        return self._link.request("call", self._number, list(args), pairs)

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._link.request("getattr", self._number, name)

    def __len__(self) -> int:
        value = self._link.request("len", self._number)
        if type(value) is not int or value < 0:
            raise NotPlainError("len() of a candidate object is not a non-negative int")
        return value

    def __iter__(self) -> Iterator[object]:
        value = self._link.request("iter", self._number)
        if type(value) is not list:
            raise NotPlainError("iterating a candidate object gave no list")
        return iter(value)

    def __getitem__(self, key: object) -> object:
        return self._link.request("getitem", self._number, key)

    def __contains__(self, item: object) -> bool:
        value = self._link.request("contains", self._number, item)
        if type(value) is not bool:
            raise NotPlainError("membership in a candidate object is not a bool")
        return value

    def _refuse(self, *args: object) -> bool:
        raise NotPlainError(
            f"{self!r} is an object of the candidate's process; tests compare plain values"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __bool__ = _refuse

    def __hash__(self) -> int:
        raise NotPlainError(f"{self!r} cannot be hashed by the tests")

    def __repr__(self) -> str:
        return f"<candidate object #{self._number}>"


def run(job: dict[str, Any], link: Link) -> dict[str, object]:
    """Run the job's tests against the linked candidate; the fields of the verdict record."""
    units = [
        (compile(source, f"<test {i}>", "exec"), bool(counts))
        for i, (source, counts) in enumerate(job["units"])
    ]
    total = sum(1 for _, counts in units if counts)
    tests: dict[str, Any] = {"__name__": "__steerloop_tests__", "__builtins__": builtins}
    if job.get("prelude"):
        try:
            exec(compile(job["prelude"], "<prelude>", "exec"), tests)  # noqa: S102 - the task
        except BaseException as exc:  # the task's own code fails: not the candidate's doing
            return {"status": "task_error", "error": type(exc).__name__, "total": total}
    values, error = link.start(job["candidate"], sorted(set(job["bind"].values())))
    if error is not None:
        return {"status": "candidate_error", "error": error, "passed": 0, "total": total}
    for test_name, name in job["bind"].items():
        if name in values:
            tests[test_name] = values[name]
    broken = False
    if job.get("setup"):
        try:
            exec(compile(job["setup"], "<test setup>", "exec"), tests)  # noqa: S102 - the task
        except BaseException:
            broken = True
    passed = 0
    for code, counts in units:
        if broken:
            continue
        try:
            exec(code, tests)  # noqa: S102 - the task's test code
        except BaseException:
            broken = broken or not counts
        else:
            passed += counts
    if link.gone is not None:
        return {"status": "candidate_crashed", "error": link.gone, "total": total}
    return {"status": "ok", "passed": passed, "total": total}
