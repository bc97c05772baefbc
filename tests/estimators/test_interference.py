"""Interference (steerloop.estimators.interference): EW correlation of increments, gates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.errors import NotReadyError, ShapeError
from steerloop.estimators.interference import (
    InterferenceState,
    InterferenceTracker,
    interference_order,
    off_diagonal_minimum,
)

FloatArray = NDArray[np.float64]
OBJECTIVES = ("security", "efficiency", "functionality")


def weighted_correlation(rows: FloatArray, forgetting: float) -> FloatArray:
    """Batch reference: np.cov with aweights λ^{n−k}, normalised to a correlation."""
    n = rows.shape[0]
    weights = forgetting ** np.arange(n - 1, -1, -1, dtype=np.float64)
    cov = np.cov(rows.T, aweights=weights)
    scale = np.sqrt(np.diag(cov))
    return np.asarray(cov / np.outer(scale, scale))


def kish(n: int, forgetting: float) -> float:
    weights = forgetting ** np.arange(n, dtype=np.float64)
    return float(weights.sum() ** 2 / (weights * weights).sum())


def correlated_increments(rng: np.random.Generator, n: int) -> FloatArray:
    mixing = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.6, -0.4, 0.8]])
    return np.asarray(0.05 * rng.normal(size=(n, 3)) @ mixing.T)


def feed(tracker: InterferenceTracker, rows: FloatArray, strategy: str = "s") -> None:
    for row in rows:
        tracker.update(row, strategy)


def assert_same_state(a: InterferenceState, b: InterferenceState) -> None:
    """Exact equality of two snapshots (a promise of the round trip)."""
    pairs = [(a.pooled, b.pooled)]
    assert list(a.by_strategy) == list(b.by_strategy)
    pairs += [(a.by_strategy[name], b.by_strategy[name]) for name in a.by_strategy]
    for x, y in pairs:
        assert (x.weight, x.weight_sq, x.count) == (y.weight, y.weight_sq, y.count)
        assert np.array_equal(x.mean, y.mean) and np.array_equal(x.scatter, y.scatter)


# ----------------------------------------------------------------------------- batch


@pytest.mark.parametrize("forgetting", [1.0, 0.98, 0.9, 0.5])
def test_pooled_matrix_matches_numpy_weighted_correlation(forgetting: float) -> None:
    rng = np.random.default_rng(7)
    rows = correlated_increments(rng, 60)
    tracker = InterferenceTracker(OBJECTIVES, forgetting=forgetting, min_effective=2)
    feed(tracker, rows, "balanced")
    expected = weighted_correlation(rows, forgetting)
    np.testing.assert_allclose(tracker.matrix(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tracker.matrix("balanced"), expected, rtol=0, atol=1e-12)
    assert np.array_equal(np.diag(tracker.matrix()), np.ones(3))
    off = expected[~np.eye(3, dtype=bool)]
    minimum = tracker.minimum()
    assert minimum is not None and minimum == pytest.approx(off.min(), abs=1e-12)


def test_pooled_and_per_strategy_streams() -> None:
    """Each strategy's stream forgets per its own increments: weights λ^{n_π − k}."""
    rng = np.random.default_rng(11)
    rows = correlated_increments(rng, 120)
    labels = rng.choice(["a", "b", "c"], size=120, p=[0.4, 0.3, 0.3])
    # Strategy c moves its objectives against each other, unlike a and b.
    own_c = labels == "c"
    rows[own_c, 2] = -rows[own_c, 0] + 0.01 * rng.normal(size=own_c.sum())
    tracker = InterferenceTracker(OBJECTIVES, forgetting=0.95, min_effective=5)
    for row, label in zip(rows, labels, strict=True):
        tracker.update(row, str(label))
    np.testing.assert_allclose(tracker.matrix(), weighted_correlation(rows, 0.95), atol=1e-12)
    for name in ("a", "b", "c"):
        own = rows[labels == name]
        np.testing.assert_allclose(
            tracker.matrix(name), weighted_correlation(own, 0.95), rtol=0, atol=1e-12
        )
    assert tracker.matrix("c")[0, 2] < -0.9
    c_minimum = tracker.minimum("c")
    assert c_minimum is not None and c_minimum < -0.9
    assert not np.allclose(tracker.matrix("a"), tracker.matrix("c"))


def test_docstring_example_numbers() -> None:
    rows = np.array([[0.1, -0.1], [-0.2, 0.1], [0.3, -0.4], [0.0, 0.1]])
    tracker = InterferenceTracker(["security", "functionality"], forgetting=1.0, min_effective=4)
    feed(tracker, rows, "feature_focused")
    minimum = tracker.minimum()
    assert minimum is not None
    assert minimum == pytest.approx(float(np.corrcoef(rows.T)[0, 1]), abs=1e-12)


# ----------------------------------------------------------------------------- gates


@pytest.mark.parametrize(("forgetting", "min_effective"), [(1.0, 10.0), (0.98, 10.0), (0.9, 6.5)])
def test_absent_until_the_effective_sample_size_is_reached(
    forgetting: float, min_effective: float
) -> None:
    """ready, matrix and minimum switch on exactly when n_eff = (Σλ^k)²/Σλ^{2k} ≥ threshold."""
    rng = np.random.default_rng(2)
    tracker = InterferenceTracker(OBJECTIVES, forgetting=forgetting, min_effective=min_effective)
    assert not tracker.ready() and tracker.minimum() is None
    switched = None
    for n, row in enumerate(correlated_increments(rng, 40), start=1):
        tracker.update(row, "s")
        expected = kish(n, forgetting) >= min_effective * (1.0 + 1e-12)
        if kish(n, forgetting) < min_effective * (1.0 - 1e-12):
            assert not tracker.ready() and not tracker.ready("s")
            assert tracker.minimum() is None and tracker.minimum("s") is None
            with pytest.raises(NotReadyError) as info:
                tracker.matrix()
            assert info.value.needed == math.ceil(min_effective)
            assert info.value.have == int(kish(n, forgetting) + 1e-9)
        elif expected:
            switched = n if switched is None else switched
            assert tracker.ready() and tracker.ready("s")
            assert tracker.matrix().shape == (3, 3)
            assert tracker.minimum() is not None
    assert switched is not None and switched >= min_effective


def test_unknown_strategy_and_minimum_threshold() -> None:
    tracker = InterferenceTracker(OBJECTIVES, forgetting=1.0, min_effective=0.5)  # floored at 2
    assert not tracker.ready("never")
    assert tracker.minimum("never") is None
    with pytest.raises(NotReadyError) as info:
        tracker.matrix("never")
    assert info.value.have == 0
    tracker.update(np.array([0.1, 0.2, 0.3]), "s")
    assert not tracker.ready()  # one increment has no correlation
    tracker.update(np.array([0.2, 0.1, 0.0]), "s")
    assert tracker.ready()
    # With forgetting two increments are worth less than two: n_eff = 1.9998 at λ = 0.98.
    forgetful = InterferenceTracker(OBJECTIVES, forgetting=0.98, min_effective=2)
    for increment in ([0.1, 0.2, 0.3], [0.2, 0.1, 0.0], [0.0, 0.3, 0.1]):
        assert not forgetful.ready()
        forgetful.update(np.array(increment), "s")
    assert forgetful.ready()


def test_constant_increments_give_nan_entries_never_minus_one() -> None:
    """1,000 constant scores (zero increments) or a constant drift (equal increments):
    every correlation is undefined, the minimum is absent."""
    for increment in ([0.0, 0.0, 0.0], [0.01, -0.02, 0.005]):
        tracker = InterferenceTracker(OBJECTIVES, forgetting=0.98)
        for _ in range(1000):
            tracker.update(np.array(increment), "s")
        matrix = tracker.matrix()
        assert np.isnan(matrix).all()
        assert tracker.minimum() is None and tracker.minimum("s") is None


def test_rounding_level_increments_are_undefined() -> None:
    """Scores moving by a constant 0.1 per step: increments equal up to rounding (1e-17)."""
    scores = 0.1 * np.arange(200)[:, None] * np.array([1.0, -1.0, 0.5])
    tracker = InterferenceTracker(OBJECTIVES, forgetting=0.98)
    feed(tracker, np.diff(scores, axis=0))
    assert tracker.minimum() is None


def test_constant_component_gives_nan_row_and_column() -> None:
    rng = np.random.default_rng(3)
    tracker = InterferenceTracker(OBJECTIVES, forgetting=0.9, min_effective=5)
    for _ in range(20):
        tracker.update(np.array([rng.normal(), 0.0, rng.normal()]), "s")
    matrix = tracker.matrix()
    assert np.isnan(matrix[1]).all() and np.isnan(matrix[:, 1]).all()
    assert matrix[0, 0] == 1.0 and matrix[2, 2] == 1.0
    assert np.isfinite(matrix[0, 2]) and matrix[0, 2] == matrix[2, 0]
    assert tracker.minimum() == matrix[0, 2]  # NaN entries are ignored


def test_single_objective_has_no_minimum() -> None:
    tracker = InterferenceTracker(["only"], forgetting=1.0, min_effective=2)
    tracker.update(np.array([0.1]), "s")
    tracker.update(np.array([-0.1]), "s")
    assert tracker.matrix().tolist() == [[1.0]]
    assert tracker.minimum() is None


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [np.zeros(2), np.zeros(4), np.zeros((3, 1)), np.zeros((1, 3))])
def test_wrong_shape_raises_shape_error_and_changes_nothing(bad: FloatArray) -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    before = tracker.to_state()
    with pytest.raises(ShapeError) as info:
        tracker.update(bad, "s")
    assert info.value.expected == (3,)
    assert_same_state(tracker.to_state(), before)


@pytest.mark.parametrize("bad", [[np.nan, 0.0, 0.0], [0.0, np.inf, 0.0], [0.0, 0.0, -np.inf]])
def test_non_finite_increment_raises_and_changes_nothing(bad: list[float]) -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    tracker.update(np.array([0.1, 0.2, 0.3]), "s")
    before = tracker.to_state()
    with pytest.raises(ValueError, match="finite"):
        tracker.update(np.array(bad), "t")  # a new strategy: no empty stream is left behind
    assert_same_state(tracker.to_state(), before)
    assert list(tracker.to_state().by_strategy) == ["s"]


@pytest.mark.parametrize(
    ("objectives", "kwargs"),
    [
        ([], {}),
        (["a", "a"], {}),
        (["a", "b"], {"forgetting": 0.0}),
        (["a", "b"], {"forgetting": 1.01}),
    ],
)
def test_invalid_configuration(objectives: list[str], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InterferenceTracker(objectives, **kwargs)


def test_matrix_returns_a_new_array() -> None:
    tracker = InterferenceTracker(["a", "b"], forgetting=1.0, min_effective=2)
    tracker.update(np.array([0.1, 0.2]), "s")
    tracker.update(np.array([0.2, 0.1]), "s")
    tracker.matrix()[0, 1] = 5.0
    assert tracker.matrix()[0, 1] == pytest.approx(-1.0, abs=1e-12)
    assert tracker.objectives == ("a", "b")


# ----------------------------------------------------------------------------- order helper


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
    # Among the tied a, b, c the worst single entry decides: a and c −0.3, b −0.2; a and c
    # tie again and keep policy order. d has the smallest total and comes last.
    assert interference_order(matrix, ["a", "b", "c", "d"]) == ["a", "c", "b", "d"]


def test_order_falls_back_to_policy_order() -> None:
    no_conflict = np.array([[1.0, 0.2, np.nan], [0.2, 1.0, 0.0], [np.nan, 0.0, 1.0]])
    assert interference_order(no_conflict, ["x", "y", "z"]) == ["x", "y", "z"]
    symmetric_tie = np.array([[1.0, -0.5], [-0.5, 1.0]])
    assert interference_order(symmetric_tie, ["x", "y"]) == ["x", "y"]
    assert interference_order(symmetric_tie, ["y", "x"]) == ["y", "x"]
    undefined = np.full((3, 3), np.nan)  # constant scores: no evidence at all
    assert interference_order(undefined, ["x", "y", "z"]) == ["x", "y", "z"]


def test_order_ignores_the_diagonal_and_checks_shape() -> None:
    matrix = np.array([[-5.0, -0.1], [-0.1, np.nan]])
    assert interference_order(matrix, ["x", "y"]) == ["x", "y"]
    with pytest.raises(ShapeError):
        interference_order(np.eye(3), ["x", "y"])


def test_off_diagonal_minimum() -> None:
    matrix = np.array([[1.0, -0.2, 0.1], [-0.2, 1.0, np.nan], [0.1, np.nan, 1.0]])
    assert off_diagonal_minimum(matrix) == -0.2
    assert math.isnan(off_diagonal_minimum(np.full((2, 2), np.nan)))
    assert math.isnan(off_diagonal_minimum(np.ones((1, 1))))
    lower_only = np.array([[1.0, 0.3], [-0.9, 1.0]])  # only the upper triangle is read
    assert off_diagonal_minimum(lower_only) == 0.3


# ----------------------------------------------------------------------------- snapshots


def test_round_trip_continues_bit_identically() -> None:
    rng = np.random.default_rng(5)
    rows = correlated_increments(rng, 40)
    labels = ["a", "b", "a", "c"] * 10
    settings_ = {"forgetting": 0.97, "min_effective": 3.0}
    original = InterferenceTracker(OBJECTIVES, **settings_)
    for row, label in zip(rows[:20], labels[:20], strict=True):
        original.update(row, label)
    restored = InterferenceTracker.from_state(original.to_state(), OBJECTIVES, **settings_)
    assert_same_state(restored.to_state(), original.to_state())
    for row, label in zip(rows[20:], labels[20:], strict=True):
        original.update(row, label)
        restored.update(row, label)
    assert_same_state(restored.to_state(), original.to_state())
    for name in (None, "a", "b", "c"):
        assert np.array_equal(restored.matrix(name), original.matrix(name), equal_nan=True)


def test_from_state_rejects_other_dimension() -> None:
    tracker = InterferenceTracker(OBJECTIVES)
    tracker.update(np.array([0.1, 0.2, 0.3]), "s")
    with pytest.raises(ShapeError):
        InterferenceTracker.from_state(tracker.to_state(), ["a", "b"])


# ----------------------------------------------------------------------------- properties

increment_streams = st.integers(1, 4).flatmap(
    lambda d: hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 25), st.just(d)),
        elements=st.floats(-10.0, 10.0, allow_nan=False, allow_subnormal=False),
    )
)


@settings(max_examples=100, deadline=None)
@given(rows=increment_streams, forgetting=st.sampled_from([1.0, 0.98, 0.7]))
def test_matrix_invariants(rows: FloatArray, forgetting: float) -> None:
    d = rows.shape[1]
    tracker = InterferenceTracker([f"o{i}" for i in range(d)], forgetting=forgetting)
    feed(tracker, rows)
    if not tracker.ready():
        assert tracker.minimum() is None
        return
    matrix = tracker.matrix()
    finite = matrix[np.isfinite(matrix)]
    assert np.all((finite >= -1.0) & (finite <= 1.0))
    assert np.array_equal(matrix, matrix.T, equal_nan=True)
    diagonal = np.diag(matrix)
    assert np.all(np.isnan(diagonal) | (diagonal == 1.0))
    undefined = np.isnan(diagonal)  # a component without variance
    assert np.array_equal(np.isnan(matrix), undefined[:, None] | undefined[None, :])
    minimum = tracker.minimum()
    off = matrix[~np.eye(d, dtype=bool)]
    if np.isnan(off).all():
        assert minimum is None
    else:
        assert minimum == np.nanmin(off)
    assert sorted(interference_order(matrix, tracker.objectives)) == sorted(tracker.objectives)


@settings(max_examples=60, deadline=None)
@given(rows=increment_streams)
def test_readiness_follows_the_effective_sample_size(rows: FloatArray) -> None:
    d = rows.shape[1]
    tracker = InterferenceTracker([f"o{i}" for i in range(d)], forgetting=0.9, min_effective=4)
    feed(tracker, rows)
    assert tracker.ready() == (kish(rows.shape[0], 0.9) >= 4.0)
