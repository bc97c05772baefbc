"""Tests of steerloop.estimators.interference: EW correlation of increments, order helper."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.estimators.interference import InterferenceTracker, interference_order
from steerloop.controller.state import InterferenceState
from steerloop.errors import NotReadyError, NumericalError, ShapeError

OBJECTIVES = ("security", "efficiency", "functionality")


def weighted_correlation(rows: NDArray[np.float64], forgetting: float) -> NDArray[np.float64]:
    """Batch reference: np.cov with aweights λ^{n−k}, normalised to a correlation."""
    n = rows.shape[0]
    weights = forgetting ** np.arange(n - 1, -1, -1, dtype=np.float64)
    cov = np.cov(rows.T, aweights=weights)
    scale = np.sqrt(np.diag(cov))
    return np.asarray(cov / np.outer(scale, scale))


def correlated_increments(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    mixing = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.6, -0.4, 0.8]])
    return np.asarray(0.05 * rng.normal(size=(n, 3)) @ mixing.T)


# --- against the batch computation -----------------------------------------------------------


@pytest.mark.parametrize("forgetting", [1.0, 0.98, 0.9, 0.5])
def test_pooled_matrix_matches_numpy_weighted_correlation(forgetting: float) -> None:
    rng = np.random.default_rng(7)
    rows = correlated_increments(rng, 60)
    tracker = InterferenceTracker(OBJECTIVES, forgetting=forgetting)
    for row in rows:
        tracker.update(row, "balanced")
    expected = weighted_correlation(rows, forgetting)
    np.testing.assert_allclose(tracker.matrix(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tracker.matrix("balanced"), expected, rtol=0, atol=1e-12)
    assert np.array_equal(np.diag(tracker.matrix()), np.ones(3))


def test_pooled_and_per_strategy_streams() -> None:
    rng = np.random.default_rng(11)
    rows = correlated_increments(rng, 90)
    labels = rng.choice(["a", "b", "c"], size=90, p=[0.5, 0.3, 0.2])
    # Strategy c moves its objectives against each other, unlike a and b.
    rows[labels == "c", 2] = -rows[labels == "c", 0] + 0.01 * rng.normal(size=(labels == "c").sum())
    tracker = InterferenceTracker(OBJECTIVES, forgetting=0.95, warmup=5)
    for row, label in zip(rows, labels, strict=True):
        tracker.update(row, str(label))

    assert tracker.strategies == tuple(dict.fromkeys(str(label) for label in labels))
    assert tracker.count() == 90
    np.testing.assert_allclose(tracker.matrix(), weighted_correlation(rows, 0.95), atol=1e-12)
    for name in ("a", "b", "c"):
        own = rows[labels == name]
        assert tracker.count(name) == own.shape[0]
        # A strategy's stream forgets per its own increments: weights λ^{n_π − k}.
        np.testing.assert_allclose(
            tracker.matrix(name), weighted_correlation(own, 0.95), rtol=0, atol=1e-12
        )
    assert tracker.matrix("c")[0, 2] < -0.9
    assert not np.allclose(tracker.matrix("a"), tracker.matrix("c"))


def test_constant_component_gives_nan_row_and_column() -> None:
    rng = np.random.default_rng(3)
    tracker = InterferenceTracker(OBJECTIVES, forgetting=0.9)
    for _ in range(10):
        tracker.update(np.array([rng.normal(), 0.25, rng.normal()]), "s")
    matrix = tracker.matrix()
    assert np.isnan(matrix[1]).all()
    assert np.isnan(matrix[:, 1]).all()
    assert matrix[0, 0] == 1.0
    assert matrix[2, 2] == 1.0
    assert np.isfinite(matrix[0, 2])
    assert matrix[0, 2] == matrix[2, 0]
    # NaN entries are ignored by the minimum.
    assert tracker.minimum() == matrix[0, 2]
    assert tracker.minimum_pair() == ("security", "functionality", matrix[0, 2])


def test_all_nan_minimum() -> None:
    tracker = InterferenceTracker(["a", "b"], warmup=2)
    for _ in range(3):
        tracker.update(np.array([0.1, 0.0]), "s")
    assert np.isnan(tracker.matrix()).sum() == 4
    assert math.isnan(tracker.minimum())
    assert tracker.minimum_pair() is None


def test_single_objective() -> None:
    tracker = InterferenceTracker(["only"], warmup=2)
    tracker.update(np.array([0.1]), "s")
    tracker.update(np.array([-0.1]), "s")
    assert tracker.matrix().tolist() == [[1.0]]
    assert math.isnan(tracker.minimum())
    assert tracker.minimum_pair() is None


# --- minimum and its pair --------------------------------------------------------------------


def test_minimum_and_pair() -> None:
    rows = np.array(
        [[0.1, 0.2, -0.1], [-0.2, 0.1, 0.2], [0.05, -0.1, 0.0], [0.3, 0.1, -0.3], [0.0, -0.2, 0.1]]
    )
    tracker = InterferenceTracker(OBJECTIVES, forgetting=1.0, warmup=5)
    for row in rows:
        tracker.update(row, "s")
    expected = np.corrcoef(rows.T)
    off = expected[~np.eye(3, dtype=bool)]
    assert tracker.minimum() == pytest.approx(off.min(), abs=1e-12)
    i, j = np.unravel_index(np.argmin(np.where(np.eye(3, dtype=bool), np.inf, expected)), (3, 3))
    first, second, value = tracker.minimum_pair() or ("", "", math.nan)
    assert {first, second} == {OBJECTIVES[int(i)], OBJECTIVES[int(j)]}
    assert OBJECTIVES.index(first) < OBJECTIVES.index(second)
    assert value == tracker.minimum()
    assert tracker.minimum("s") == tracker.minimum()


# --- readiness, validation -------------------------------------------------------------------


def test_not_ready_before_warmup() -> None:
    tracker = InterferenceTracker(OBJECTIVES, warmup=4)
    for k in range(3):
        tracker.update(np.array([0.1 * k, -0.1 * k, 0.05 * (k % 2)]), "s")
    assert not tracker.ready()
    assert tracker.count() == 3
    with pytest.raises(NotReadyError) as info:
        tracker.matrix()
    assert (info.value.needed, info.value.have) == (4, 3)
    with pytest.raises(NotReadyError):
        tracker.minimum()
    with pytest.raises(NotReadyError):
        tracker.minimum_pair()
    tracker.update(np.array([0.2, 0.1, 0.0]), "s")
    assert tracker.ready()
    assert tracker.ready("s")
    assert tracker.matrix().shape == (3, 3)


def test_unknown_strategy_is_not_ready() -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    assert tracker.count("never") == 0
    assert not tracker.ready("never")
    with pytest.raises(NotReadyError) as info:
        tracker.matrix("never")
    assert info.value.have == 0
    assert "never" in str(info.value)
    assert tracker.strategies == ()


@pytest.mark.parametrize("warmup", [0, 1, 2])
def test_correlation_needs_two_observations_whatever_the_warmup(warmup: int) -> None:
    tracker = InterferenceTracker(["a", "b"], warmup=warmup)
    tracker.update(np.array([0.1, 0.2]), "s")
    assert not tracker.ready()
    tracker.update(np.array([0.2, 0.1]), "s")
    assert tracker.ready()


@pytest.mark.parametrize("bad", [np.zeros(2), np.zeros(4), np.zeros((3, 1)), np.zeros((1, 3))])
def test_wrong_shape_raises_shape_error_and_changes_nothing(bad: NDArray[np.float64]) -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    with pytest.raises(ShapeError) as info:
        tracker.update(bad, "s")
    assert info.value.expected == (3,)
    assert tracker.count() == 0
    assert tracker.strategies == ()


@pytest.mark.parametrize("bad", [[np.nan, 0.0, 0.0], [0.0, np.inf, 0.0], [0.0, 0.0, -np.inf]])
def test_non_finite_increment_raises_and_changes_nothing(bad: list[float]) -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    tracker.update(np.array([0.1, 0.2, 0.3]), "s")
    before = tracker.to_state()
    with pytest.raises(NumericalError):
        tracker.update(np.array(bad), "t")
    assert tracker.to_state() == before
    assert tracker.strategies == ("s",)


@pytest.mark.parametrize(
    ("objectives", "kwargs"),
    [
        ([], {}),
        (["a", "a"], {}),
        (["a", "b"], {"forgetting": 0.0}),
        (["a", "b"], {"forgetting": 1.01}),
        (["a", "b"], {"warmup": -1}),
    ],
)
def test_invalid_configuration(objectives: list[str], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InterferenceTracker(objectives, **kwargs)  # type: ignore[arg-type]


def test_properties() -> None:
    tracker = InterferenceTracker(list(OBJECTIVES), forgetting=0.9, warmup=7)
    assert tracker.objectives == OBJECTIVES
    assert (tracker.dim, tracker.forgetting, tracker.warmup) == (3, 0.9, 7)


def test_matrix_returns_a_new_array() -> None:
    tracker = InterferenceTracker(["a", "b"], warmup=2)
    tracker.update(np.array([0.1, 0.2]), "s")
    tracker.update(np.array([0.2, 0.1]), "s")
    tracker.matrix()[0, 1] = 5.0
    assert tracker.matrix()[0, 1] == -1.0


# --- order helper ----------------------------------------------------------------------------


def test_order_on_paper_values() -> None:
    paper = np.array([[1.0, 0.05, -0.09], [0.05, 1.0, -0.17], [-0.09, -0.17, 1.0]])
    assert interference_order(paper, OBJECTIVES) == ["functionality", "efficiency", "security"]


def test_order_key_and_tie_breaks() -> None:
    # Totals of negative parts (NaN and positive entries count 0): a, b, c −0.4, d −0.2.
    matrix = np.array(
        [
            [1.0, -0.1, -0.3, 0.9],
            [-0.1, 1.0, -0.1, -0.2],
            [-0.3, -0.1, 1.0, np.nan],
            [0.9, -0.2, np.nan, 1.0],
        ]
    )
    names = ["a", "b", "c", "d"]
    # Among the tied a, b, c the worst single entry decides: a and c −0.3, b −0.2; a and c
    # tie again and keep policy order. d has the smallest total and comes last.
    assert interference_order(matrix, names) == ["a", "c", "b", "d"]


def test_order_falls_back_to_policy_order() -> None:
    no_conflict = np.array([[1.0, 0.2, np.nan], [0.2, 1.0, 0.0], [np.nan, 0.0, 1.0]])
    assert interference_order(no_conflict, ["x", "y", "z"]) == ["x", "y", "z"]
    symmetric_tie = np.array([[1.0, -0.5], [-0.5, 1.0]])
    assert interference_order(symmetric_tie, ["x", "y"]) == ["x", "y"]
    assert interference_order(symmetric_tie, ["y", "x"]) == ["y", "x"]


def test_order_ignores_the_diagonal_and_checks_shape() -> None:
    matrix = np.array([[-5.0, -0.1], [-0.1, np.nan]])
    assert interference_order(matrix, ["x", "y"]) == ["x", "y"]
    with pytest.raises(ShapeError):
        interference_order(np.eye(3), ["x", "y"])


# --- snapshots -------------------------------------------------------------------------------


def test_json_round_trip_continues_bit_identically() -> None:
    rng = np.random.default_rng(5)
    rows = correlated_increments(rng, 40)
    labels = ["a", "b", "a", "c"] * 10
    original = InterferenceTracker(OBJECTIVES, forgetting=0.97, warmup=3)
    for row, label in zip(rows[:20], labels[:20], strict=True):
        original.update(row, label)

    text = original.to_state().model_dump_json()
    restored = InterferenceTracker.from_state(
        InterferenceState.model_validate_json(text),
        objectives=OBJECTIVES,
        forgetting=0.97,
        warmup=3,
    )
    assert restored.to_state() == original.to_state()
    assert restored.strategies == original.strategies
    for row, label in zip(rows[20:], labels[20:], strict=True):
        original.update(row, label)
        restored.update(row, label)
    assert restored.to_state().model_dump_json() == original.to_state().model_dump_json()
    for name in (None, "a", "b", "c"):
        assert np.array_equal(restored.matrix(name), original.matrix(name), equal_nan=True)
        assert restored.count(name) == original.count(name)


def test_from_state_rejects_other_dimension() -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    tracker.update(np.array([0.1, 0.2, 0.3]), "s")
    with pytest.raises(ShapeError):
        InterferenceTracker.from_state(
            tracker.to_state(), objectives=["a", "b"], forgetting=0.98, warmup=5
        )


# --- properties ------------------------------------------------------------------------------

increment_streams = st.integers(1, 4).flatmap(
    lambda d: hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 25), st.just(d)),
        elements=st.floats(-10.0, 10.0, allow_nan=False, allow_subnormal=False),
    )
)


@settings(max_examples=100, deadline=None)
@given(rows=increment_streams, forgetting=st.sampled_from([1.0, 0.98, 0.7]))
def test_matrix_invariants(rows: NDArray[np.float64], forgetting: float) -> None:
    d = rows.shape[1]
    tracker = InterferenceTracker([f"o{i}" for i in range(d)], forgetting=forgetting, warmup=2)
    for row in rows:
        tracker.update(row, "s")
    matrix = tracker.matrix()
    finite = matrix[np.isfinite(matrix)]
    assert np.all((finite >= -1.0) & (finite <= 1.0))
    assert np.array_equal(matrix, matrix.T, equal_nan=True)
    variance = np.diag(np.asarray(tracker.to_state().pooled.scatter))
    diagonal = np.diag(matrix)
    assert np.all(diagonal[variance > 0] == 1.0)
    assert np.all(np.isnan(diagonal[variance == 0]))
    minimum = tracker.minimum()
    off = matrix[~np.eye(d, dtype=bool)]
    if np.isnan(off).all():
        assert math.isnan(minimum)
    else:
        assert minimum == np.nanmin(off)
    assert sorted(interference_order(matrix, tracker.objectives)) == sorted(tracker.objectives)


def test_parked_streams_keep_every_bit_and_unpack_on_use() -> None:
    rng = np.random.default_rng(12)
    steps = [(rng.normal(0.0, 0.1, 3), name) for name in ["a", "b", "a", "c", "b"] * 6]
    live = InterferenceTracker(["x", "y", "z"], forgetting=0.95, warmup=2)
    parked = InterferenceTracker(["x", "y", "z"], forgetting=0.95, warmup=2)
    for increment, name in steps:
        live.update(increment, name)
        for other in ("a", "b", "c", "never-seen"):
            parked.park(other)  # park everything, every step: updates unpack as needed
        parked.update(increment, name)
        for other in ("a", "b", "c"):
            parked.park(other)
        assert parked.to_state().model_dump_json() == live.to_state().model_dump_json()
    assert parked.strategies == live.strategies == ("a", "b", "c")
    assert parked.count("c") == live.count("c") == 6
    for name in (None, "a", "b", "c"):
        assert np.array_equal(parked.matrix(name), live.matrix(name), equal_nan=True)
    assert parked.to_state() == live.to_state()
