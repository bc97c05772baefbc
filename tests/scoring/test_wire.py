"""The plain-value codec and the frames of the candidate pipe; the checker's value rules."""

from __future__ import annotations

import math
import os
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steerloop.scoring._inside import checker, wire

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.complex_numbers(allow_nan=False)
)
hashables = scalars | st.tuples(scalars, scalars) | st.frozensets(scalars, max_size=3)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=20,
)


def canon(value: object) -> object:
    """Type and value, recursively (floats by repr: -0.0 and 0.0 differ), order-free sets."""
    kind = type(value).__name__
    if isinstance(value, float | complex):
        return kind, repr(value)
    if isinstance(value, list | tuple):
        return kind, [canon(v) for v in value]
    if isinstance(value, set | frozenset):
        return kind, sorted(repr(canon(v)) for v in value)
    if isinstance(value, dict):
        return kind, sorted(repr((canon(k), canon(v))) for k, v in value.items())
    return kind, repr(value)


def round_trip(value: object) -> Any:
    return wire.loads(wire.dumps([1, "v", wire.encode(value, None)]), None)[2]


@given(values)
def test_plain_values_round_trip_exactly_with_their_types(value: object) -> None:
    assert canon(round_trip(value)) == canon(value)  # same types all the way down


def test_special_floats_and_subclasses_arrive_as_built_ins() -> None:
    back = round_trip([math.inf, -0.0, math.nan])
    assert back[0] == math.inf and math.copysign(1, back[1]) == -1 and math.isnan(back[2])

    class Color(IntEnum):
        RED = 1

    point = namedtuple("point", "x y")
    back = round_trip([Color.RED, point(1, 2), OrderedDict(a=1)])
    assert [type(v) for v in back] == [int, tuple, dict]
    assert back == [1, (1, 2), {"a": 1}]


def test_objects_become_references_or_are_refused() -> None:
    marker = object()
    with pytest.raises(wire.WireError, match="cannot send"):
        wire.encode(marker, None)
    assert wire.encode([marker], lambda obj: 7) == [{"r": 7}]
    assert wire.loads(b'[1,"v",{"r":7}]', lambda n: f"ref {n}")[2] == "ref 7"


@pytest.mark.parametrize(
    "data",
    [
        b"{}",
        b"[]",
        b"not json",
        b'[1,"v",{"t":[1],"d":[]}]',
        b'[1,"v",{"x":1}]',
        b'[1,"v",{"d":[[[1],2]]}]',
        b'[1,"v",{"r":-1}]',
        b'[1,"v",{"c":["a",1]}]',
        b"[" * 100_000 + b"]" * 100_000,
        b'[1,"v",1' + b"0" * 5000 + b"]",
    ],
)
def test_malformed_messages_are_wire_errors(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.loads(data, None)


def test_too_deep_values_are_refused() -> None:
    deep: list[Any] = []
    for _ in range(wire.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(wire.WireError, match="deeper"):
        wire.encode(deep, None)


def test_frames_are_exact_and_capped() -> None:
    read, write = os.pipe()
    try:
        wire.send(write, b"hello")
        wire.send(write, b"x" * 100)
        assert wire.receive(read, 10) == b"hello"
        with pytest.raises(wire.WireError, match="cap"):
            wire.receive(read, 10)
    finally:
        os.close(read)
        os.close(write)
    read, write = os.pipe()
    os.write(write, b"\x00\x00")  # half a header, then the end: not a frame
    os.close(write)
    with pytest.raises(wire.WireError, match="inside a frame"):
        wire.receive(read, 10)
    os.close(read)


def test_candidate_exceptions_map_to_standard_types_only() -> None:
    assert type(checker.candidate_exception("ValueError")) is ValueError
    for name in ("StopIteration", "SystemExit", "KeyboardInterrupt", "MyError", "x" * 500):
        error = checker.candidate_exception(name)
        assert type(error) is checker.CandidateError
        assert len(str(error)) <= 80


def test_a_reference_refuses_comparison_hashing_and_truth() -> None:
    remote = checker.Remote(None, 3)  # type: ignore[arg-type]
    attempts: list[Callable[[], object]] = [
        lambda: remote == 1,
        lambda: remote != 1,
        lambda: remote < 1,
        lambda: remote > 1,
        lambda: remote.__eq__(1),
        lambda: [remote] == [1],
        lambda: bool(remote),
        lambda: hash(remote),
        lambda: remote in {1},
    ]
    for attempt in attempts:
        with pytest.raises(checker.NotPlainError):
            attempt()
    with pytest.raises(AttributeError):
        remote.__deepcopy__  # noqa: B018 - dunder lookups never reach the candidate
