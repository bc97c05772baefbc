"""EW moments (steerloop.estimators.ewstats) against the batch weighted moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.errors import NotReadyError, ShapeError
from steerloop.estimators.ewstats import EWMoments, EWMomentsState, check_forgetting

FloatArray = NDArray[np.float64]


def batch_moments(values: FloatArray, forgetting: float) -> dict[str, FloatArray | float]:
    """W, W₂, the weighted mean and scatter with w_k = λ^{n−k}, over the whole batch."""
    n = values.shape[0]
    weights = forgetting ** np.arange(n - 1, -1, -1, dtype=np.float64)
    total = float(weights.sum())
    mean = weights @ values / total
    centred = values - mean
    scatter = (weights[:, None] * centred).T @ centred
    return {
        "weight": total,
        "weight_sq": float((weights * weights).sum()),
        "mean": mean,
        "scatter": scatter,
    }


def fed(values: FloatArray, forgetting: float) -> EWMoments:
    moments = EWMoments(values.shape[1], forgetting=forgetting)
    for value in values:
        moments.update(value)
    return moments


def assert_same_state(a: EWMomentsState, b: EWMomentsState) -> None:
    """Exact equality of two snapshots (a promise of the round trip, not of two code paths)."""
    assert (a.weight, a.weight_sq, a.count) == (b.weight, b.weight_sq, b.count)
    assert np.array_equal(a.mean, b.mean)
    assert np.array_equal(a.scatter, b.scatter)


# ----------------------------------------------------------------------------- batch


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("forgetting", [1.0, 0.98, 0.6])
def test_matches_the_batch_weighted_moments(dim: int, forgetting: float) -> None:
    rng = np.random.default_rng(10 * dim + int(forgetting * 10))
    values = rng.normal(0.3, 0.2, size=(400, dim)) @ rng.normal(size=(dim, dim))
    moments = fed(values, forgetting)
    batch = batch_moments(values, forgetting)
    scatter = np.asarray(batch["scatter"])
    assert moments.count == 400
    assert moments.weight == pytest.approx(batch["weight"], rel=1e-12)
    np.testing.assert_allclose(moments.mean, batch["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(moments.scatter, scatter, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        moments.covariance(), scatter / batch["weight"], rtol=1e-9, atol=1e-12
    )
    scale = np.sqrt(np.diag(scatter))
    np.testing.assert_allclose(
        moments.correlation(), scatter / np.outer(scale, scale), rtol=1e-9, atol=1e-12
    )
    expected_size = float(batch["weight"]) ** 2 / float(batch["weight_sq"])
    assert moments.effective_size == pytest.approx(expected_size, rel=1e-12)


def test_docstring_example_numbers() -> None:
    moments = fed(np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]]), 1.0)
    np.testing.assert_allclose(moments.mean, [1.0, 2.0], rtol=1e-15)
    np.testing.assert_allclose(moments.covariance(), [[2 / 3, 4 / 3], [4 / 3, 8 / 3]], rtol=1e-14)
    assert moments.correlation()[0, 1] == pytest.approx(1.0, abs=1e-12)
    assert moments.effective_size == 3.0


@pytest.mark.parametrize("forgetting", [0.5, 0.9, 0.98])
def test_effective_size_is_kish_and_tends_to_its_limit(forgetting: float) -> None:
    """n_eff = (Σλ^k)² / Σλ^{2k} for n observations → (1 + λ)/(1 − λ) (99 for λ = 0.98)."""
    moments = EWMoments(1, forgetting=forgetting)
    assert moments.effective_size == 0.0
    for n in range(1, 3001):
        moments.update([0.0])
        if n in (1, 2, 10, 100):
            k = np.arange(n, dtype=np.float64)
            expected = (forgetting**k).sum() ** 2 / (forgetting ** (2 * k)).sum()
            assert moments.effective_size == pytest.approx(expected, rel=1e-12)
    limit = (1.0 + forgetting) / (1.0 - forgetting)
    assert moments.effective_size == pytest.approx(limit, rel=1e-9)
    assert moments.weight == pytest.approx(1.0 / (1.0 - forgetting), rel=1e-9)


def test_without_forgetting_effective_size_is_the_count() -> None:
    moments = EWMoments(2, forgetting=1.0)
    for n in range(1, 51):
        moments.update([float(n), -float(n)])
        assert moments.effective_size == pytest.approx(n, rel=1e-12)


# ----------------------------------------------------------------------------- undefined


def test_zero_variance_component_has_nan_correlation() -> None:
    moments = fed(np.array([[0.1, 0.5], [0.4, 0.5], [0.2, 0.5]]), 0.9)
    corr = moments.correlation()
    assert corr[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert all(math.isnan(v) for v in (corr[0, 1], corr[1, 0], corr[1, 1]))
    assert moments.scatter[1, 1] == 0.0  # a constant is reproduced exactly by the recurrence


def test_min_variance_makes_a_small_component_undefined() -> None:
    rng = np.random.default_rng(4)
    values = np.column_stack([rng.normal(size=50), 1e-4 * rng.normal(size=50)])
    moments = fed(values, 1.0)
    assert np.isfinite(moments.correlation()).all()
    variance = moments.covariance()[1, 1]
    below = moments.correlation(min_variance=2.0 * variance)
    assert np.isnan(below[1]).all() and np.isnan(below[:, 1]).all()
    assert below[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert np.isfinite(moments.correlation(min_variance=0.5 * variance)).all()


def test_not_ready_errors() -> None:
    moments = EWMoments(2)
    with pytest.raises(NotReadyError) as info:
        moments.covariance()
    assert (info.value.needed, info.value.have) == (1, 0)
    moments.update([0.0, 1.0])
    np.testing.assert_array_equal(moments.covariance(), np.zeros((2, 2)))
    with pytest.raises(NotReadyError) as info:
        moments.correlation()
    assert (info.value.needed, info.value.have) == (2, 1)


# ----------------------------------------------------------------------------- errors


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="dim"):
        EWMoments(0)
    for bad in (0.0, -0.5, 1.5, math.nan):
        with pytest.raises(ValueError, match="forgetting"):
            EWMoments(2, forgetting=bad)
        with pytest.raises(ValueError, match="forgetting"):
            check_forgetting(bad)
    assert check_forgetting(1) == 1.0 and isinstance(check_forgetting(1), float)


@pytest.mark.parametrize("bad", [[1.0, 2.0, 3.0], [[1.0, 2.0]], 1.0])
def test_wrong_shape_raises_and_changes_nothing(bad: object) -> None:
    moments = EWMoments(2, forgetting=0.9)
    moments.update([0.1, 0.2])
    before = moments.to_state()
    with pytest.raises(ShapeError):
        moments.update(bad)  # type: ignore[arg-type]
    assert_same_state(moments.to_state(), before)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_raises_and_changes_nothing(bad: float) -> None:
    moments = EWMoments(2, forgetting=0.9)
    moments.update([0.1, 0.2])
    before = moments.to_state()
    with pytest.raises(ValueError, match="finite"):
        moments.update([0.3, bad])
    assert_same_state(moments.to_state(), before)


def test_properties_are_copies() -> None:
    moments = fed(np.array([[0.1, 0.2], [0.3, 0.1]]), 1.0)
    moments.mean[:] = 99.0
    moments.scatter[:] = 99.0
    state = moments.to_state()
    state.mean[:] = 99.0
    assert not (moments.mean == 99.0).any()
    assert not (moments.scatter == 99.0).any()


# ----------------------------------------------------------------------------- snapshots


def test_round_trip_continues_bit_identically() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(60, 3))
    reference = fed(values, 0.95)
    first = fed(values[:30], 0.95)
    restored = EWMoments.from_state(first.to_state(), forgetting=0.95)
    assert_same_state(restored.to_state(), first.to_state())
    for value in values[30:]:
        restored.update(value)
    assert_same_state(restored.to_state(), reference.to_state())
    assert np.array_equal(restored.correlation(), reference.correlation())


def test_from_state_shape_errors() -> None:
    good = fed(np.array([[0.1, 0.2], [0.3, 0.1]]), 1.0).to_state()
    bad_scatter = EWMomentsState(good.weight, good.weight_sq, good.mean, np.zeros((1, 2)), 2)
    with pytest.raises(ShapeError):
        EWMoments.from_state(bad_scatter, forgetting=1.0)
    bad_mean = EWMomentsState(good.weight, good.weight_sq, np.zeros((2, 2)), good.scatter, 2)
    with pytest.raises(ShapeError):
        EWMoments.from_state(bad_mean, forgetting=1.0)


# ----------------------------------------------------------------------------- properties

streams = st.integers(1, 4).flatmap(
    lambda d: hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 30), st.just(d)),
        elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
    )
)


@settings(max_examples=150, deadline=None)
@given(values=streams, forgetting=st.sampled_from([1.0, 0.98, 0.5]), constant=st.booleans())
def test_invariants_and_batch_agreement(
    values: FloatArray, forgetting: float, constant: bool
) -> None:
    """Scatter symmetric PSD, correlation in [−1, 1] or NaN, moments equal the batch ones."""
    if constant:  # an objective that never moves: zero variance, NaN correlation row
        values = values.copy()
        values[:, -1] = 0.25
    moments = fed(values, forgetting)
    batch = batch_moments(values, forgetting)
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(moments.mean, batch["mean"], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(
        moments.scatter, batch["scatter"], rtol=0, atol=1e-10 * scale**2 * values.shape[0]
    )
    scatter = moments.scatter
    assert np.array_equal(scatter, scatter.T) or np.allclose(scatter, scatter.T, rtol=1e-14)
    assert np.linalg.eigvalsh(scatter).min() >= -1e-10 * scale**2 * values.shape[0]
    corr = moments.correlation()
    assert np.all(np.isnan(corr) | ((corr >= -1.0) & (corr <= 1.0)))
    assert np.array_equal(np.isnan(corr), np.isnan(corr.T))
    if constant:
        assert np.isnan(corr[-1]).all() and np.isnan(corr[:, -1]).all()
    assert 1.0 <= moments.effective_size <= values.shape[0] * (1.0 + 1e-12)
