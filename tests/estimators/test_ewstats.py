"""EW moments: both storages against the batch weighted moments, and against each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerloop.estimators.ewstats import (
    SMALL_DIM,
    EWMoments,
    SmallEWMoments,
    ew_moments,
    moments_from_state,
    packed_state,
)
from steerloop.errors import NotReadyError, ShapeError


def _batch(values: np.ndarray, forgetting: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Σ w_k, the weighted mean and scatter with w_k = λ^{n−k}, computed over the whole batch."""
    n = values.shape[0]
    weights = forgetting ** np.arange(n - 1, -1, -1, dtype=np.float64)
    total = float(weights.sum())
    mean = weights @ values / total
    centred = values - mean
    scatter = (weights[:, None] * centred).T @ centred
    return total, mean, scatter


def _pair(dim: int, forgetting: float) -> tuple[SmallEWMoments, EWMoments]:
    return SmallEWMoments(dim, forgetting=forgetting), EWMoments(dim, forgetting=forgetting)


def _assert_identical(small: SmallEWMoments, large: EWMoments) -> None:
    assert small.count == large.count
    assert small.weight == large.weight
    assert small.mean.tolist() == large.mean.tolist()
    assert small.scatter.tolist() == large.scatter.tolist()
    assert small.packed().tolist() == large.packed().tolist()
    if small.count:
        assert small.variance_total() == large.variance_total()
    else:
        for moments in (small, large):
            with pytest.raises(NotReadyError):
                moments.variance_total()
    assert small.to_state() == large.to_state()


@pytest.mark.parametrize("dim", range(1, SMALL_DIM + 1))
@pytest.mark.parametrize("forgetting", [1.0, 0.98, 0.6])
def test_both_storages_match_the_batch_weighted_moments(dim: int, forgetting: float) -> None:
    rng = np.random.default_rng(10 * dim + int(forgetting * 10))
    values = rng.normal(0.3, 0.2, size=(400, dim))
    small, large = _pair(dim, forgetting)
    for value in values:
        small.update(value)
        large.update(value)
    weight, mean, scatter = _batch(values, forgetting)
    for moments in (small, large):
        assert moments.weight == pytest.approx(weight, rel=1e-12)
        np.testing.assert_allclose(moments.mean, mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(moments.scatter, scatter, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(moments.covariance, scatter / weight, rtol=1e-9, atol=1e-12)
        scale = np.sqrt(np.diag(scatter))
        np.testing.assert_allclose(
            moments.correlation, scatter / np.outer(scale, scale), rtol=1e-9, atol=1e-12
        )


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=64)


@settings(max_examples=150, deadline=None)
@given(
    dim=st.integers(1, SMALL_DIM),
    data=st.data(),
    forgetting=st.sampled_from([1.0, 0.98, 0.5]),
    constant=st.booleans(),
)
def test_small_storage_is_bit_identical_to_the_array_storage(
    dim: int, data: st.DataObject, forgetting: float, constant: bool
) -> None:
    rows = data.draw(st.lists(st.lists(finite, min_size=dim, max_size=dim), max_size=30))
    if constant:  # an objective that never moves: zero variance, NaN correlation rows
        rows = [[*row[:-1], 0.25] for row in rows]
    small, large = _pair(dim, forgetting)
    for row in rows:
        small.update(row)
        large.update(np.array(row))
    _assert_identical(small, large)
    if len(rows) >= 2:
        expected = large.correlation
        got = small.correlation
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(np.array(small.correlation_rows()), expected, equal_nan=True)
        assert np.array_equal(np.array(large.correlation_rows()), expected, equal_nan=True)
        assert np.all(np.isnan(got) | ((got >= -1.0) & (got <= 1.0)))


def test_zero_variance_component_has_nan_correlation() -> None:
    small, large = _pair(2, 0.9)
    for value in ([0.1, 0.5], [0.4, 0.5], [0.2, 0.5]):
        small.update(value)
        large.update(np.array(value))
    rows = small.correlation_rows()
    assert rows[0][0] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in (rows[0][1], rows[1][0], rows[1][1]))
    assert np.array_equal(np.array(rows), large.correlation, equal_nan=True)


def test_state_and_packed_round_trips_continue_bit_identically() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(60, 3))
    reference = SmallEWMoments(3, forgetting=0.95)
    for value in values[:30]:
        reference.update(value)
    from_state = moments_from_state(reference.to_state(), forgetting=0.95)
    from_packed = ew_moments(3, forgetting=0.95)
    from_packed.load_packed(reference.packed())
    assert isinstance(from_state, SmallEWMoments)
    assert packed_state(reference.packed(), 3) == reference.to_state()
    for value in values[30:]:
        for moments in (reference, from_state, from_packed):
            moments.update(value)
    assert from_state.packed().tolist() == reference.packed().tolist()
    assert from_packed.packed().tolist() == reference.packed().tolist()
    # A saved small stream restores into the array storage with the same numbers, and back.
    as_array = EWMoments.from_state(reference.to_state(), forgetting=0.95)
    assert as_array.packed().tolist() == reference.packed().tolist()


def test_ew_moments_picks_the_storage_by_dimension() -> None:
    assert isinstance(ew_moments(1), SmallEWMoments)
    assert isinstance(ew_moments(SMALL_DIM), SmallEWMoments)
    assert isinstance(ew_moments(SMALL_DIM + 1), EWMoments)
    state = EWMoments(SMALL_DIM + 1).to_state()
    assert isinstance(moments_from_state(state, forgetting=1.0), EWMoments)


def test_small_storage_errors() -> None:
    with pytest.raises(ValueError, match="SmallEWMoments holds"):
        SmallEWMoments(SMALL_DIM + 1)
    with pytest.raises(ValueError, match="dim"):
        SmallEWMoments(0)
    with pytest.raises(ValueError, match="forgetting"):
        SmallEWMoments(2, forgetting=1.5)
    moments = SmallEWMoments(2)
    with pytest.raises(ShapeError):
        moments.update([1.0, 2.0, 3.0])
    with pytest.raises(ShapeError):
        moments.update(np.zeros((2, 2)))
    with pytest.raises(NotReadyError):
        _ = moments.covariance
    moments.update([0.0, 1.0])
    with pytest.raises(NotReadyError):
        moments.correlation_rows()
    moments.reset()
    assert moments.count == 0 and moments.weight == 0.0
    assert moments.scatter.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    bad = EWMoments(2).to_state().model_copy(update={"scatter": [[0.0, 0.0]]})
    with pytest.raises(ShapeError):
        SmallEWMoments.from_state(bad, forgetting=1.0)
