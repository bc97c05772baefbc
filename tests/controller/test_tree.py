"""Estimator snapshots as trees: both array forms, every bit, and errors that say where."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from controller_helpers import make_controller
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from steerloop.controller.models import ModelsState
from steerloop.controller.tree import TreeError, from_tree, to_tree
from steerloop.estimators.kalman import KalmanState
from steerloop.policies.memory import EngineMemory, EngineState

GOOD = {"security": 0.8, "efficiency": 0.6, "functionality": 0.7}


@dataclasses.dataclass(frozen=True)
class Inner:
    values: np.ndarray[Any, np.dtype[np.float64]]
    label: str


@dataclasses.dataclass(frozen=True)
class Outer:
    count: int
    weight: float
    flag: bool
    inner: Inner
    optional: np.ndarray[Any, np.dtype[np.float64]] | None
    by_name: Mapping[str, Inner]
    order: tuple[str, ...]
    maybe_text: str | None = None


def sample() -> Outer:
    special = np.array([math.nan, -0.0, math.inf, -math.inf, 5e-324, 1.0 / 3.0])
    return Outer(
        count=3,
        weight=0.1,
        flag=True,
        inner=Inner(special, "x"),
        optional=None,
        by_name={"a": Inner(np.eye(2), "a"), "b": Inner(np.zeros((0, 3)), "b")},
        order=("security", "efficiency"),
    )


def bits_equal(first: Any, second: Any) -> bool:
    """Equal, with float arrays compared bit for bit (NaN and -0.0 included)."""
    if dataclasses.is_dataclass(first):
        return type(first) is type(second) and all(
            bits_equal(getattr(first, f.name), getattr(second, f.name))
            for f in dataclasses.fields(first)
        )
    if isinstance(first, np.ndarray):
        return (
            isinstance(second, np.ndarray)
            and first.shape == second.shape
            and second.dtype == np.float64
            and first.tobytes() == second.tobytes()
        )
    if isinstance(first, Mapping):
        return set(first) == set(second) and all(bits_equal(first[k], second[k]) for k in first)
    if isinstance(first, tuple):
        return len(first) == len(second) and all(map(bits_equal, first, second))
    return type(first) is type(second) and first == second


@pytest.mark.parametrize("arrays", ["base64", "raw"])
def test_round_trip_keeps_every_bit_in_both_forms(arrays: Any) -> None:
    value = sample()
    tree = to_tree(value, arrays=arrays)
    assert bits_equal(from_tree(Outer, tree), value)
    if arrays == "base64":
        through_json = json.loads(json.dumps(tree, allow_nan=False))  # base64: no NaN in JSON
        assert bits_equal(from_tree(Outer, through_json), value)
        assert tree["inner"]["values"] == {
            "shape": [6],
            "f8": "AAAAAAAA+H8AAAAAAAAAgAAAAAAAAPB/AAAAAAAA8P8BAAAAAAAAAFVVVVVVVdU/",
        }
        assert tree["order"] == ["security", "efficiency"] and tree["optional"] is None
    else:
        assert isinstance(tree["inner"]["values"], np.ndarray)


def test_raw_trees_are_copied_on_the_way_back() -> None:
    state = KalmanState(np.array([0.5, 0.25]), np.eye(2), 3)
    tree = to_tree(state, arrays="raw")
    again = from_tree(KalmanState, tree)
    tree["mean"][0] = 9.0
    assert again.mean.tolist() == [0.5, 0.25]


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    )
)
def test_any_float64_array_survives_json(array: np.ndarray[Any, np.dtype[np.float64]]) -> None:
    tree = json.loads(json.dumps(to_tree(array)))
    back = from_tree(KalmanState, {"mean": tree, "covariance": tree, "count": 1}).mean
    assert back.shape == array.shape and back.tobytes() == array.tobytes()


def test_views_other_dtypes_and_0d_arrays_are_written_as_float64_of_their_shape() -> None:
    matrix = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2]  # not contiguous, not float
    tree = {"mean": to_tree(matrix), "covariance": to_tree(np.array(2.5)), "count": 0}
    back = from_tree(KalmanState, tree)
    assert back.mean.dtype == np.float64 and back.mean.tolist() == matrix.tolist()
    assert back.covariance.shape == () and float(back.covariance) == 2.5
    assert to_tree(np.float64(0.5)) == 0.5 and type(to_tree(np.int64(3))) is int


def test_a_real_session_round_trips_through_its_trees() -> None:
    session = make_controller(switching={"min_dwell": 0}).session("t")
    for step in range(20):
        session.update({**GOOD, "security": 0.1 if step % 8 < 4 else 0.7})
    models = session._core.models.to_state()
    for arrays in ("base64", "raw"):
        assert bits_equal(from_tree(ModelsState, to_tree(models, arrays=arrays)), models)  # type: ignore[arg-type]
    memory = EngineMemory(sequential_order=["a"], rule_last_fired={"r": 2}, plan_first="x")
    state = memory.to_state()
    assert from_tree(EngineState, json.loads(json.dumps(to_tree(state)))) == state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, r"Outer: unknown field\(s\) \['colour'\]"),
        ({"count": None}, r"Outer\.count: expected int, got NoneType"),
        ({"count": True}, r"Outer\.count: expected int, got bool"),
        ({"count": 2.0}, r"Outer\.count: expected int, got float"),
        ({"weight": "0.1"}, r"Outer\.weight: expected a number, got str"),
        ({"weight": False}, r"Outer\.weight: expected a number, got bool"),
        ({"flag": 1}, r"Outer\.flag: expected bool, got int"),
        ({"inner": [1]}, r"Outer\.inner: expected an object, got list"),
        ({"order": "ab"}, r"Outer\.order: expected a list, got str"),
        ({"by_name": []}, r"Outer\.by_name: expected an object, got list"),
        ({"maybe_text": 3}, r"Outer\.maybe_text: int fits none of"),
        ({"optional": {"shape": [1]}}, r"Outer\.optional: .*fits none of"),
    ],
)
def test_a_tree_that_does_not_fit_names_the_place(change: dict[str, Any], message: str) -> None:
    tree = to_tree(sample())
    tree.update(change)
    with pytest.raises(TreeError, match=message):
        from_tree(Outer, tree)


def test_missing_fields_and_broken_arrays_name_the_place() -> None:
    tree = to_tree(sample())
    del tree["weight"]
    with pytest.raises(TreeError, match=r"Outer: missing field\(s\) \['weight'\]"):
        from_tree(Outer, tree)
    array = to_tree(np.array([1.0, 2.0]))
    cases = [
        ({"shape": [3], "f8": array["f8"]}, r"\.f8: 16 bytes do not fill shape \[3\]"),
        ({"shape": [2], "f8": "####"}, r"\.f8: not base64"),
        ({"shape": [-1], "f8": array["f8"]}, r"\.shape: expected a list of sizes"),
        ({"shape": [2]}, r"expected \{'shape': \[...\], 'f8': base64\}"),
        ([1.0, 2.0], r"expected \{'shape'"),
    ]
    for broken, message in cases:
        tree = to_tree(sample())
        tree["inner"]["values"] = broken
        with pytest.raises(TreeError, match=message) as caught:
            from_tree(Outer, tree)
        assert "Outer.inner.values" in str(caught.value)
    assert issubclass(TreeError, ValueError)
