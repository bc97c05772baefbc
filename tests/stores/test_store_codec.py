"""steerloop.stores.codec: exact round trips of trees with float64 arrays, clear errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from steerloop.stores import codec

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
arrays = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    elements=st.floats(allow_nan=True, allow_infinity=True),
)
trees = st.recursive(
    scalars | arrays,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two trees (NaN equals NaN, -0.0 differs from 0.0)."""
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and b.dtype == np.float64
            and a.shape == b.shape
            and a.tobytes() == np.ascontiguousarray(b).tobytes()
        )
    if isinstance(a, float):
        return isinstance(b, float) and (
            math.copysign(1, a) == math.copysign(1, b) and (a == b or (a != a and b != b))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(trees)
def test_every_tree_round_trips_exactly(tree: Any) -> None:
    assert same(tree, codec.decode(codec.encode(tree)))


def test_arrays_come_back_writable_native_and_of_their_shape() -> None:
    rng = np.random.default_rng(7)
    tree = {
        "matrix": rng.normal(size=(3, 4)),
        "transposed": rng.normal(size=(4, 3)).T,  # not C-contiguous
        "big_endian": np.arange(3.0).astype(">f8"),
        "empty": np.zeros((0, 3)),
        "scalar": np.array(2.5),
    }
    back = codec.decode(codec.encode(tree))
    for name, array in tree.items():
        got = back[name]
        assert got.shape == array.shape and got.dtype == np.float64, name
        assert got.flags.writeable and got.dtype.isnative
        assert np.array_equal(got, array)


def test_numpy_scalars_are_stored_as_python_numbers() -> None:
    back = codec.decode(codec.encode([np.float64(1.5), np.int64(-3), np.bool_(True)]))
    assert back == [1.5, -3, True]
    assert [type(v) for v in back] == [float, int, bool]


def test_tuples_come_back_as_lists() -> None:
    assert codec.decode(codec.encode({"t": (1, (2.0, "x"))})) == {"t": [1, [2.0, "x"]]}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.arange(3), "float64 arrays only"),
        (np.zeros(2, np.float32), "float64 arrays only"),
        ({1: "int key"}, "str"),
        (object(), "cannot store object"),
        (2**70, "64-bit"),
    ],
)
def test_what_cannot_be_stored_is_a_clear_type_error(value: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        codec.encode({"x": value})


@pytest.mark.parametrize(
    "data",
    [
        b'{"json": true}',
        b"",
        codec.HEADER + b"\x92\x01",  # truncated array
        codec.HEADER + b"\xc7\x05\x01\x01\x02\x00\x00\x00",  # array header, no data
        codec.HEADER + b"\xd4\x09\x00",  # unknown extension type
    ],
)
def test_what_is_not_a_codec_value_is_a_clear_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"codec value|extension|bytes of data"):
        codec.decode(data)


def test_a_session_tree_is_smaller_than_its_json() -> None:
    from store_helpers import small_controller, small_scores

    session = small_controller().session("s")
    for i in range(30):
        session.update(small_scores(i))
    state = session.snapshot()
    assert len(codec.encode(state.model_dump())) < 2 * len(state.model_dump_json())
    assert type(state).model_validate(codec.decode(codec.encode(state.model_dump()))) == state
