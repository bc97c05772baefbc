"""Plain values and frames on the pipe between the checker and the candidate process.

Only *plain* values cross: ``None``, ``bool``, ``int``, ``float`` (NaN and infinities
included), ``str``, ``list``, and the tagged forms ``{"t": [...]}`` (tuple),
``{"d": [[key, value], ...]}`` (dict), ``{"s": [...]}`` (set), ``{"f": [...]}``
(frozenset), ``{"b": "hex"}`` (bytes), ``{"c": [real, imag]}`` (complex) and ``{"r": n}``,
a *reference* to an object that stays in the candidate's process. Decoding builds built-in
objects only (an ``int`` subclass arrives as its ``int`` value, an object with a custom
``__eq__`` as a reference), so a decoded value has no behaviour its sender chose.

A message is a JSON array ``[seq, kind, ...]``; a frame is its 4-byte big-endian length
followed by the message. The receiver refuses a frame over its size cap before reading it,
and :func:`loads` turns every malformed message into :class:`WireError`.

This module runs in both sandboxed processes (see :mod:`steerloop.scoring._inside`).

Examples
--------
>>> data = dumps([1, "v", encode((1, 2.5, {"k": {3}}), None)])
>>> data
b'[1,"v",{"t":[1,2.5,{"d":[["k",{"s":[3]}]]}]}]'
>>> loads(data, None)[2]
(1, 2.5, {'k': {3}})
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Ref = Callable[[object], int]
    Deref = Callable[[int], object]

MAX_DEPTH = 100
REQUEST_FD = 3  # the candidate process reads requests here
REPLY_FD = 4  # and writes its replies here
_HEADER = 4
_CHUNK = 1 << 20


class WireError(Exception):
    """A value cannot be sent, or a frame or message is malformed."""


def encode(value: object, ref: Ref | None, depth: int = 0) -> Any:
    """The JSON-ready tagged form of ``value``.

    Parameters
    ----------
    value
        The value to send.
    ref
        Turns an object that is not plain into a reference number; ``None``: such objects
        raise :class:`WireError`.
    depth
        Current nesting depth (values nested deeper than ``MAX_DEPTH`` raise).
    """
    if value is None or value is True or value is False:
        return value
    if depth > MAX_DEPTH:
        raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
    cls = type(value)
    if cls is str or cls is int or cls is float:
        return value
    if isinstance(value, list | tuple | set | frozenset | dict):
        return _encode_container(value, ref, depth + 1)
    if cls is bytes:
        return {"b": bytes.hex(value)}  # type: ignore[arg-type]
    if cls is complex:
        return {"c": [value.real, value.imag]}  # type: ignore[attr-defined]
    # Subclasses of plain scalars (IntEnum, str subclasses, ...) travel as their base value.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return {"b": bytes.hex(value)}
    if ref is None:
        raise WireError(f"cannot send a {cls.__name__} (only plain values and references)")
    return {"r": ref(value)}


def _encode_container(value: object, ref: Ref | None, depth: int) -> Any:
    if isinstance(value, dict):
        return {"d": [[encode(k, ref, depth), encode(v, ref, depth)] for k, v in dict.items(value)]}
    items = [encode(item, ref, depth) for item in value]  # type: ignore[attr-defined]
    if isinstance(value, list):
        return items
    if isinstance(value, tuple):
        return {"t": items}
    return {"f" if isinstance(value, frozenset) else "s": items}


def dumps(message: list[Any]) -> bytes:
    """Serialize a message whose values went through :func:`encode`."""
    return json.dumps(message, separators=(",", ":"), allow_nan=True).encode("ascii")


def loads(data: bytes, deref: Deref | None) -> list[Any]:
    """Parse a message; tagged values become built-in objects, references go to ``deref``.

    Raises
    ------
    WireError
        For anything but a JSON array of well-formed values.
    """

    def untag(obj: dict[str, Any]) -> object:
        if len(obj) != 1:
            raise WireError("a tagged value has exactly one key")
        ((tag, payload),) = obj.items()
        return _untag(tag, payload, deref)

    try:
        message = json.loads(data, object_hook=untag)
    except WireError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError, LookupError) as exc:
        raise WireError(f"malformed message ({type(exc).__name__})") from None
    if type(message) is not list or not message:
        raise WireError("a message is a non-empty JSON array")
    return message


def _untag(tag: str, payload: Any, deref: Deref | None) -> object:
    if tag == "t" and type(payload) is list:
        return tuple(payload)
    if tag == "d" and type(payload) is list:
        if not all(type(pair) is list and len(pair) == 2 for pair in payload):
            raise WireError("a dict is a list of [key, value] pairs")
        return dict(payload)
    if tag == "s" and type(payload) is list:
        return set(payload)
    if tag == "f" and type(payload) is list:
        return frozenset(payload)
    if tag == "b" and type(payload) is str:
        return bytes.fromhex(payload)
    if tag == "c" and type(payload) is list and len(payload) == 2:
        real, imag = payload
        if type(real) in (int, float) and type(imag) in (int, float):
            return complex(real, imag)
    if tag == "r" and type(payload) is int and payload >= 0 and deref is not None:
        return deref(payload)
    raise WireError(f"unknown or malformed tagged value {tag!r}")


def send(fd: int, data: bytes) -> None:
    """Write one frame (blocking until it is all written)."""
    view = memoryview(len(data).to_bytes(_HEADER, "big") + data)
    while view:
        written = os.write(fd, view[:_CHUNK])
        view = view[written:]


def receive(fd: int, limit: int) -> bytes | None:
    """Read one frame; ``None`` at end of file between frames.

    Raises
    ------
    WireError
        When the frame is larger than ``limit`` bytes (it is not read) or ends early.
    """
    header = _read_exact(fd, _HEADER)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > limit:
        raise WireError(f"frame of {size} bytes is over the {limit}-byte cap")
    body = _read_exact(fd, size) if size else b""
    if body is None:
        raise WireError("the pipe closed inside a frame")
    return body


def _read_exact(fd: int, size: int) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = os.read(fd, min(size - len(buffer), _CHUNK))
        if not chunk:
            if buffer:
                raise WireError("the pipe closed inside a frame")
            return None
        buffer += chunk
    return bytes(buffer)
