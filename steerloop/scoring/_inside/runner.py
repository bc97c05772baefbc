"""The candidate process: load the candidate program, then answer the checker's calls.

This process (forked by :mod:`.spawn` before the job was read) holds the candidate program
and nothing that decides the verdict: no test code, no expected value, no nonce, no
descriptor of the verdict file. On descriptor 3 it reads requests ``[seq, op, ...]`` from
the checker, and to descriptor 4 it writes one reply per request: ``[seq, "v", value]`` or
``[seq, "e", exception type name]``. Values that are not plain stay here and travel as
references (see :mod:`.wire`). Everything this process writes is a *claim* the checker only
compares; the candidate may replace any function of this module without gaining more than
that.

Requests: ``load program names`` (first, once: run the program, reply with the values of
those of ``names`` it defines as ``[[name, value], ...]``, or with the exception it
raised), then ``call ref args kwargs``, ``getattr ref name``, ``len ref``, ``iter ref`` (a
list of the items), ``getitem ref key``, ``contains ref item``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys

from . import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

_REQUEST_LIMIT = 1 << 30
_MAX_OBJECTS = 100_000


class _Objects:
    """Objects the checker holds references to (they never leave this process)."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.index: dict[int, int] = {}

    def ref(self, value: object) -> int:
        number = self.index.get(id(value))
        if number is None:
            if len(self.items) >= _MAX_OBJECTS:
                raise wire.WireError("too many object references")
            number = len(self.items)
            self.items.append(value)
            self.index[id(value)] = number
        return number

    def get(self, number: int) -> object:
        if not 0 <= number < len(self.items):
            raise LookupError(number)
        return self.items[number]


def _operations(objects: _Objects) -> dict[str, Callable[..., object]]:
    def call(ref: int, args: list[Any], kwargs: list[list[Any]]) -> object:
        function: Any = objects.get(ref)
        return function(*args, **{str(k): v for k, v in kwargs})

    def contains(ref: int, item: object) -> object:
        return item in objects.get(ref)  # type: ignore[operator]

    return {
        "call": call,
        "getattr": lambda ref, name: getattr(objects.get(ref), name),
        "len": lambda ref: len(objects.get(ref)),  # type: ignore[arg-type]
        "iter": lambda ref: list(objects.get(ref)),  # type: ignore[call-overload]
        "getitem": lambda ref, key: objects.get(ref)[key],  # type: ignore[index]
        "contains": contains,
    }


def _reply(
    seq: int, outcome: tuple[str, object], objects: _Objects, limit: int, *, encoded: bool = False
) -> None:
    kind, value = outcome
    try:
        if kind == "v" and not encoded:
            value = wire.encode(value, objects.ref)
        data = wire.dumps([seq, kind, value])
    except BaseException as exc:  # an unsendable result is the candidate's failure
        data = wire.dumps([seq, "e", type(exc).__name__])
    if len(data) > limit:
        data = wire.dumps([seq, "e", "ResultTooLarge"])
    wire.send(wire.REPLY_FD, data)


def _load(program: str, names: list[str], objects: _Objects) -> tuple[str, object]:
    namespace: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        code = compile(program, "<candidate>", "exec")
        exec(code, namespace)  # noqa: S102 - the candidate, in its own confined process
    except BaseException as exc:  # SystemExit & co. raised by the candidate's module level
        return "e", type(exc).__name__
    values = []
    for name in names:
        if name in namespace:
            try:
                values.append([name, wire.encode(namespace[name], objects.ref)])
            except BaseException:  # noqa: S112 - an unsendable binding is left unbound
                continue
    return "b", values


def main(limit: int) -> NoReturn:
    """Serve the checker until it closes the pipe, then exit (see the module docstring)."""
    objects = _Objects()
    operations = _operations(objects)
    loaded = False
    while True:
        data = wire.receive(wire.REQUEST_FD, _REQUEST_LIMIT)
        if data is None:
            break
        seq, op, *fields = wire.loads(data, objects.get)
        if op == "load" and not loaded:
            loaded = True
            kind, value = _load(str(fields[0]), list(fields[1]), objects)
            _reply(seq, ("v" if kind == "b" else "e", value), objects, limit, encoded=kind == "b")
            continue
        try:
            outcome: tuple[str, object] = ("v", operations[op](*fields))
        except BaseException as exc:  # whatever the candidate raises is its answer
            outcome = ("e", type(exc).__name__)
        _reply(seq, outcome, objects, limit)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # output may be over its size limit
            stream.flush()
    os._exit(0)
