"""Tests of the objective-state Kalman filter (steerloop.estimators.kalman).

Numbered as in the brief:
1. agreement with filterpy's pure ``predict``/``update`` functions;
2. partial update = pure update with H, R restricted; all-missing update changes nothing;
3. 1e5 random bad measurements: state finite, P symmetric PD, every bad value missing;
4. hypothesis: observed posterior variances never exceed prior ones, P stays symmetric PD;
5. exact round trip through JSON;
6. shape errors and numerical errors on bad transition inputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from filterpy.kalman import predict as fp_predict
from filterpy.kalman import update as fp_update
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.estimators.kalman import ObjectiveFilter, clean_measurement
from steerloop.controller.state import KalmanState
from steerloop.errors import NumericalError, ShapeError

TOL = 1e-12


Array = NDArray[np.float64]


def _stable_transition(rng: np.random.Generator, d: int, radius: float = 0.95) -> Array:
    """A random F with spectral radius ``radius`` (< 1: stable)."""
    m = rng.normal(size=(d, d))
    return m * (radius / float(np.max(np.abs(np.linalg.eigvals(m)))))


def _psd(rng: np.random.Generator, d: int, scale: float) -> Array:
    """A random positive semi-definite matrix L Lᵀ · scale."""
    low = rng.normal(size=(d, d))
    return scale * (low @ low.T)


def _assert_symmetric_pd(cov: Array) -> None:
    assert np.all(np.isfinite(cov))
    assert np.max(np.abs(cov - cov.T)) <= TOL * np.max(np.abs(cov))
    assert np.linalg.eigvalsh(cov)[0] > 0.0
    np.linalg.cholesky(cov)  # raises if not positive definite


# ----------------------------------------------------------------------------- 1


def test_1_agrees_with_filterpy_pure_functions() -> None:
    """[1] A seeded sequence of predicts and full updates matches filterpy's pure functions."""
    rng = np.random.default_rng(1)
    d = 4
    noise = np.array([0.01, 0.02, 0.05, 0.1])
    kf = ObjectiveFilter(d, measurement_noise=noise, initial_mean=0.5, initial_covariance=1.0)
    x = np.full((d, 1), 0.5)
    P = np.eye(d)
    R = np.diag(noise)
    H = np.eye(d)
    for step in range(300):
        F = _stable_transition(rng, d)
        offset = rng.normal(scale=0.05, size=d)
        Q = _psd(rng, d, 1e-3)
        kf.predict(F, offset, Q)
        x, P = fp_predict(x, P, F=F, Q=Q, u=offset.reshape(d, 1), B=np.eye(d))
        np.testing.assert_allclose(kf.mean, x[:, 0], rtol=0, atol=TOL)
        np.testing.assert_allclose(kf.covariance, P, rtol=0, atol=TOL)
        y = rng.random(d)
        measurement = y.tolist() if step % 2 else y
        mask = kf.update(measurement)
        assert mask.all()
        prior_mean = x[:, 0].copy()
        x, P = fp_update(x, P, y.reshape(d, 1), R, H=H)
        np.testing.assert_allclose(kf.mean, x[:, 0], rtol=0, atol=TOL)
        np.testing.assert_allclose(kf.covariance, P, rtol=0, atol=TOL)
        innovation = kf.innovation
        assert innovation is not None
        np.testing.assert_allclose(innovation, y - prior_mean, rtol=0, atol=TOL)
    assert kf.count == 300
    _assert_symmetric_pd(kf.covariance)


# ----------------------------------------------------------------------------- 2


def test_2_partial_update_drops_rows_of_h_and_r() -> None:
    """[2] A partial update equals the pure update with H and R restricted to valid rows."""
    rng = np.random.default_rng(2)
    d = 4
    noise = np.array([0.01, 0.02, 0.05, 0.1])
    bad_values: list[object] = [math.nan, None, "0.5", True, math.inf, 1.5, -0.1, [0.5]]
    for size in range(1, d):
        for valid in itertools.combinations(range(d), size):
            mean = rng.random(d)
            cov = _psd(rng, d, 0.05) + 0.01 * np.eye(d)
            state = KalmanState(mean=mean.tolist(), covariance=cov.tolist(), count=3)
            kf = ObjectiveFilter.from_state(state, measurement_noise=noise)
            y = rng.random(d)
            measurement: list[object] = [
                float(y[i]) if i in valid else bad_values[int(rng.integers(len(bad_values)))]
                for i in range(d)
            ]
            mask = kf.update(measurement)
            index = list(valid)
            assert mask.tolist() == [i in valid for i in range(d)]
            x, P = fp_update(
                mean.reshape(d, 1),
                cov,
                y[index].reshape(-1, 1),
                np.diag(noise[index]),
                H=np.eye(d)[index],
            )
            np.testing.assert_allclose(kf.mean, x[:, 0], rtol=0, atol=TOL)
            np.testing.assert_allclose(kf.covariance, P, rtol=0, atol=TOL)
            assert kf.count == 4
            innovation = kf.innovation
            assert innovation is not None
            np.testing.assert_allclose(innovation[index], y[index] - mean[index], atol=TOL)
            assert np.isnan(np.delete(innovation, index)).all()


def test_2_all_missing_update_changes_nothing() -> None:
    """[2] An all-missing update leaves mean and covariance exactly unchanged."""
    rng = np.random.default_rng(22)
    kf = ObjectiveFilter(3, measurement_noise=[0.01, 0.02, 0.03])
    kf.predict(_stable_transition(rng, 3), rng.normal(scale=0.1, size=3), _psd(rng, 3, 0.01))
    kf.update([0.2, 0.4, 0.9])
    kf.predict_random_walk(0.01)
    mean, cov, count = kf.mean, kf.covariance, kf.count
    for measurement in (
        [None, math.nan, "x"],
        np.full(3, math.nan),
        None,
        [0.1, 0.2],
        {"security": 0.5},
        np.array([True, False, True]),
        [2.0, -1.0, math.inf],
    ):
        mask = kf.update(measurement)
        assert not mask.any()
        assert np.array_equal(kf.mean, mean)
        assert np.array_equal(kf.covariance, cov)
        assert kf.count == count
        innovation = kf.innovation
        assert innovation is not None
        assert np.isnan(innovation).all()


# ----------------------------------------------------------------------------- 3

_D = 3

# Entry makers: u ~ U(0, 1) -> (entry, is_valid). Roughly half valid.
_ENTRY_MAKERS: list[Callable[[float], tuple[object, bool]]] = [
    lambda u: (u, True),
    lambda u: (u, True),
    lambda u: (u, True),
    lambda u: (np.float64(u), True),
    lambda u: (np.float32(u), True),
    lambda u: (int(u < 0.5), True),  # integers 0 and 1 are valid scores
    lambda u: (0.0 if u < 0.5 else 1.0, True),  # the boundary is inside
    lambda u: (Fraction(1, 2 + int(u * 10)), True),
    lambda u: (math.nan, False),
    lambda u: (math.inf, False),
    lambda u: (-math.inf, False),
    lambda u: (np.float32("nan"), False),
    lambda u: (None, False),
    lambda u: (str(u), False),
    lambda u: (u < 0.5, False),  # bools are not scores
    lambda u: (np.bool_(u < 0.5), False),
    lambda u: ({"value": u}, False),
    lambda u: ([u], False),  # nested
    lambda u: ((u, u), False),
    lambda u: (1.0 + 1e-9 + u, False),  # out of range
    lambda u: (-1e-9 - u, False),
    lambda u: (1e300 * (u + 1.0), False),
    lambda u: (-1e300, False),
    lambda u: (10**400, False),  # int too large for a float
    lambda u: (2, False),
    lambda u: (complex(u, 0.0), False),
    lambda u: (object(), False),
    lambda u: (Decimal("NaN"), False),
    lambda u: (b"0.5", False),
]

# Float-array entries: u -> (value, is_valid)
_ARRAY_MAKERS: list[Callable[[float], tuple[float, bool]]] = [
    lambda u: (u, True),
    lambda u: (u, True),
    lambda u: (math.nan, False),
    lambda u: (math.inf, False),
    lambda u: (-math.inf, False),
    lambda u: (1.0 + 1e-12 + u, False),
    lambda u: (-u - 1e-12, False),
]

# Whole measurements that are entirely missing.
_WHOLE_BAD: list[object] = [
    None,
    "0.5, 0.5, 0.5",
    {"security": 0.5, "efficiency": 0.5, "functionality": 0.5},
    0.5,
    7,
    True,
    [0.5] * (_D - 1),
    [0.5] * (_D + 1),
    [],
    [[0.5, 0.5, 0.5]],
    np.full(_D + 1, 0.5),
    np.full((_D, 1), 0.5),
    np.full((1, _D), 0.5),
    np.array(0.5),
    np.array([True, False, True]),
    np.array(["0.5"] * _D),
    np.full(_D, 0.5 + 0.0j),
    {0.5, 0.6, 0.7},
    b"abc",
    range(_D),
    object(),
]


def _generate(rng: np.random.Generator, n: int) -> list[tuple[object, np.ndarray]]:
    """n random measurements with their expected masks (from the generator's own labels)."""
    kinds = rng.integers(0, 6, size=n)
    entry_kinds = rng.integers(0, len(_ENTRY_MAKERS), size=(n, _D))
    array_kinds = rng.integers(0, len(_ARRAY_MAKERS), size=(n, _D))
    whole = rng.integers(0, len(_WHOLE_BAD), size=n)
    uniform = rng.random((n, _D)).tolist()
    none_valid = np.zeros(_D, dtype=bool)
    out: list[tuple[object, np.ndarray]] = []
    for t in range(n):
        kind = int(kinds[t])
        u = uniform[t]
        if kind <= 2:  # list, tuple, object array of mixed entries
            made = [_ENTRY_MAKERS[k](u[i]) for i, k in enumerate(entry_kinds[t].tolist())]
            entries = [e for e, _ in made]
            expected = np.array([ok for _, ok in made])
            if kind == 0:
                measurement: object = entries
            elif kind == 1:
                measurement = tuple(entries)
            else:
                measurement = np.empty(_D, dtype=object)
                measurement[:] = entries
            out.append((measurement, expected))
        elif kind <= 4:  # float arrays (float64 or float32)
            made_f = [_ARRAY_MAKERS[k](u[i]) for i, k in enumerate(array_kinds[t].tolist())]
            dtype = np.float64 if kind == 3 else np.float32
            values: NDArray[np.floating[Any]] = np.array([v for v, _ in made_f], dtype=dtype)
            expected = np.array([ok for _, ok in made_f])
            if dtype is np.float32:  # 1 + 1e-12 rounds to 1.0 in float32: then it is valid
                expected = expected | ((values >= 0) & (values <= 1))
            out.append((values, expected))
        else:
            out.append((_WHOLE_BAD[int(whole[t])], none_valid))
    return out


@pytest.mark.slow
def test_3_survives_random_bad_measurements() -> None:
    """[3] 1e5 random bad measurements interleaved with predicts never break the filter."""
    n = 100_000
    rng = np.random.default_rng(3)
    measurements = _generate(rng, n)
    pool = [
        (_stable_transition(rng, _D, 0.9), rng.normal(scale=0.05, size=_D), _psd(rng, _D, 1e-3))
        for _ in range(32)
    ]
    actions = rng.integers(0, 4, size=n).tolist()
    picks = rng.integers(0, len(pool), size=n).tolist()
    kf = ObjectiveFilter(_D, measurement_noise=[0.01, 0.02, 0.04])
    used = 0
    for t, (measurement, expected) in enumerate(measurements):
        action = actions[t]
        if action <= 1:
            kf.predict(*pool[picks[t]])
        elif action == 2:
            kf.predict_random_walk(1e-3)
        mask = kf.update(measurement)
        assert np.array_equal(mask, expected), (t, measurement, mask, expected)
        used += bool(mask.any())
        assert math.isfinite(float(kf.mean.sum()) + float(kf.covariance.sum())), t
        if t % 5000 == 0:
            _assert_symmetric_pd(kf.covariance)
    _assert_symmetric_pd(kf.covariance)
    assert kf.count == used
    assert 0.3 * n < used < 0.9 * n  # the generator mixes valid values in


def test_3_clean_measurement_cases() -> None:
    """[3] Explicit cases of clean_measurement (never raises, bad entries are missing)."""
    values, mask = clean_measurement([0.25, None, True, 1.5, "0.3", 1, np.float32(0.5)], 7)
    assert mask.tolist() == [True, False, False, False, False, True, True]
    assert values[0] == 0.25 and values[5] == 1.0 and values[6] == 0.5
    assert np.isnan(values[~mask]).all()
    masked = np.ma.MaskedArray([0.1, 0.2, 0.3], mask=[False, True, False])
    assert clean_measurement(masked, 3)[1].tolist() == [True, False, True]
    assert clean_measurement(np.array([0, 1, 2]), 3)[1].tolist() == [True, True, False]
    assert clean_measurement(np.array([0.5, 0.5], dtype=np.longdouble), 2)[1].all()
    for whole in _WHOLE_BAD:
        values, mask = clean_measurement(whole, _D)
        assert values.shape == (_D,) and not mask.any() and np.isnan(values).all()


def test_3_mean_is_not_clipped() -> None:
    """[3] The filtered mean may leave [0, 1]; it is never clipped."""
    kf = ObjectiveFilter(1, initial_mean=1.0, initial_covariance=1e-4)
    kf.predict(np.eye(1), np.array([0.2]), np.zeros((1, 1)))
    kf.update([1.0])
    assert kf.mean[0] > 1.0


# ----------------------------------------------------------------------------- 4


@st.composite
def _scenario(draw: st.DrawFn) -> dict[str, Any]:
    d = draw(st.integers(1, 4))
    elements = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
    steps = draw(st.integers(1, 4))
    return {
        "d": d,
        "noise": draw(hnp.arrays(np.float64, d, elements=st.floats(1e-4, 1.0))),
        "mean": draw(hnp.arrays(np.float64, d, elements=unit)),
        "root": draw(hnp.arrays(np.float64, (d, d), elements=elements)),
        "steps": [
            (
                draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1.5, 1.5))),
                draw(hnp.arrays(np.float64, d, elements=elements)),
                draw(hnp.arrays(np.float64, (d, d), elements=elements)),
                draw(hnp.arrays(np.float64, d, elements=unit)),
                draw(hnp.arrays(np.bool_, d)),
            )
            for _ in range(steps)
        ],
    }


@settings(max_examples=150, deadline=None)
@given(_scenario())
def test_4_posterior_variance_never_exceeds_prior(scenario: dict[str, Any]) -> None:
    """[4] Observed posterior variances ≤ prior variances; P stays symmetric PD."""
    root = scenario["root"]
    state = KalmanState(
        mean=np.asarray(scenario["mean"]).tolist(), covariance=(root @ root.T).tolist(), count=0
    )
    kf = ObjectiveFilter.from_state(state, measurement_noise=scenario["noise"])
    for F, offset, q_root, y, valid in scenario["steps"]:
        kf.predict(F, offset, 0.1 * q_root @ q_root.T)  # PSD, possibly singular
        prior = kf.covariance
        assert np.array_equal(prior, prior.T)
        assert np.linalg.eigvalsh(prior)[0] > 0.0
        measurement = np.where(valid, y, np.nan)
        mask = kf.update(measurement)
        assert np.array_equal(mask, valid)
        post = kf.covariance
        assert np.array_equal(post, post.T)
        assert np.linalg.eigvalsh(post)[0] > 0.0
        slack = 1e-10 * max(1.0, float(np.max(np.diag(prior))))
        assert np.all(np.diag(post)[valid] <= np.diag(prior)[valid] + slack)
        assert np.all(np.isfinite(kf.mean))


# ----------------------------------------------------------------------------- 5


def test_5_json_round_trip_is_exact() -> None:
    """[5] Continuing after a JSON round trip gives bit-identical mean and covariance."""
    rng = np.random.default_rng(5)
    d = 3
    noise = np.array([0.011, 0.023, 0.037])
    kf = ObjectiveFilter(d, measurement_noise=noise, initial_mean=[0.3, 0.5, 0.7])
    for _ in range(25):
        kf.predict(_stable_transition(rng, d), rng.normal(scale=0.1, size=d), _psd(rng, d, 1e-2))
        kf.update(rng.random(d))
    state = kf.to_state()
    restored_state = KalmanState.model_validate_json(state.model_dump_json())
    assert restored_state == state
    restored = ObjectiveFilter.from_state(restored_state, measurement_noise=noise)
    assert np.array_equal(restored.mean, kf.mean)
    assert np.array_equal(restored.covariance, kf.covariance)
    assert restored.count == kf.count and restored.dim == d
    assert restored.innovation is None
    for step in range(50):
        F = _stable_transition(rng, d)
        offset = rng.normal(scale=0.1, size=d)
        Q = _psd(rng, d, 1e-2)
        y = rng.random(d)
        if step % 3 == 0:
            y[step % d] = np.nan
        if step % 7 == 0:
            y[:] = np.nan
        for f in (kf, restored):
            if step % 4 == 0:
                f.predict_random_walk(1e-3)
            else:
                f.predict(F, offset, Q)
            f.update(y)
        assert np.array_equal(restored.mean, kf.mean)
        assert np.array_equal(restored.covariance, kf.covariance)
        assert restored.count == kf.count
    assert restored.to_state() == kf.to_state()


# ----------------------------------------------------------------------------- 6


def test_6_shape_errors() -> None:
    """[6] Wrong-shaped configuration or transition arrays raise ShapeError."""
    d = 3
    kf = ObjectiveFilter(d)
    good_F, good_offset, good_Q = np.eye(d), np.zeros(d), np.eye(d) * 1e-3
    with pytest.raises(ShapeError) as info:
        kf.predict(np.eye(d + 1), good_offset, good_Q)
    assert info.value.name == "F" and info.value.expected == (d, d)
    with pytest.raises(ShapeError):
        kf.predict(np.ones(d), good_offset, good_Q)
    with pytest.raises(ShapeError) as info:
        kf.predict(good_F, np.zeros((d, 1)), good_Q)
    assert info.value.name == "offset" and info.value.got == (d, 1)
    with pytest.raises(ShapeError):
        kf.predict(good_F, np.zeros(d + 1), good_Q)
    with pytest.raises(ShapeError) as info:
        kf.predict(good_F, good_offset, np.eye(d)[:2])
    assert info.value.name == "Q"
    with pytest.raises(ShapeError):
        ObjectiveFilter(d, measurement_noise=[0.01, 0.02])
    with pytest.raises(ShapeError):
        ObjectiveFilter(d, initial_mean=np.full((d, 1), 0.5))
    with pytest.raises(ShapeError):
        ObjectiveFilter.from_state(
            KalmanState(mean=[0.5] * d, covariance=np.eye(d - 1).tolist(), count=0),
            measurement_noise=0.01,
        )
    for kwargs in (
        {"measurement_noise": 0.0},
        {"measurement_noise": [0.01, -0.01, 0.01]},
        {"measurement_noise": math.nan},
        {"initial_mean": math.inf},
        {"initial_covariance": 0.0},
    ):
        with pytest.raises(ValueError):
            ObjectiveFilter(d, **kwargs)
    with pytest.raises(ValueError):
        ObjectiveFilter(0)


def test_6_numerical_errors_leave_the_filter_unchanged() -> None:
    """[6] Non-finite transitions raise NumericalError and do not touch the state."""
    d = 3
    kf = ObjectiveFilter(d)
    kf.update([0.2, 0.5, 0.8])
    mean, cov = kf.mean, kf.covariance
    F, offset, Q = np.eye(d), np.zeros(d), np.eye(d) * 1e-3
    bad_F = F.copy()
    bad_F[0, 1] = np.nan
    bad_offset = offset.copy()
    bad_offset[2] = np.inf
    bad_Q = Q.copy()
    bad_Q[1, 1] = -np.inf
    for args in ((bad_F, offset, Q), (F, bad_offset, Q), (F, offset, bad_Q)):
        with pytest.raises(NumericalError):
            kf.predict(*args)
    with pytest.raises(NumericalError):  # finite inputs, overflowing result
        kf.predict(1e200 * F, offset, Q)
    for q in (math.nan, math.inf):
        with pytest.raises(NumericalError):
            kf.predict_random_walk(q)
    with pytest.raises(NumericalError):
        kf.predict_random_walk(1e308 * 10)  # inf
    with pytest.raises(ValueError):
        kf.predict_random_walk(-1.0)
    assert np.array_equal(kf.mean, mean)
    assert np.array_equal(kf.covariance, cov)
    with pytest.raises(NumericalError):
        ObjectiveFilter.from_state(
            KalmanState(mean=[0.5, math.nan, 0.5], covariance=np.eye(d).tolist(), count=0),
            measurement_noise=0.01,
        )


def test_6_eigenvalue_floor_restores_positive_definiteness() -> None:
    """[6] A singular predicted covariance (F = 0, Q = 0) is floored to positive definite."""
    kf = ObjectiveFilter(2)
    kf.predict(np.zeros((2, 2)), np.array([0.4, 0.6]), np.zeros((2, 2)))
    cov = kf.covariance
    _assert_symmetric_pd(cov)
    assert np.max(cov) <= 1e-11
    np.testing.assert_array_equal(kf.mean, [0.4, 0.6])
    kf.update([0.9, 0.1])
    _assert_symmetric_pd(kf.covariance)
    assert np.all(np.isfinite(kf.mean))
