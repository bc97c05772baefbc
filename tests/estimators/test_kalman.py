"""Objective-state Kalman filter (steerloop.estimators.kalman) against a textbook filter."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.errors import NumericalError, ShapeError
from steerloop.estimators.kalman import EIGENVALUE_FLOOR, KalmanState, ObjectiveFilter

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def stable_transition(rng: np.random.Generator, d: int, radius: float = 0.95) -> FloatArray:
    """A random F with spectral radius ``radius`` (< 1: stable)."""
    m = rng.normal(size=(d, d))
    return np.asarray(m * (radius / float(np.max(np.abs(np.linalg.eigvals(m))))))


def psd(rng: np.random.Generator, d: int, scale: float) -> FloatArray:
    """A random positive semi-definite matrix L Lᵀ · scale."""
    low = rng.normal(size=(d, d))
    return np.asarray(scale * (low @ low.T))


def assert_symmetric_pd(cov: FloatArray) -> None:
    assert np.all(np.isfinite(cov))
    assert np.array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov)[0] > 0.0
    np.linalg.cholesky(cov)  # raises if not positive definite


class TextbookFilter:
    """The Kalman filter written out in numpy (module docstring), Joseph-form update."""

    def __init__(self, mean: FloatArray, covariance: FloatArray) -> None:
        self.x = mean.astype(np.float64).copy()
        self.P = covariance.astype(np.float64).copy()

    def predict(self, F: FloatArray, offset: FloatArray, Q: FloatArray) -> None:
        self.x = F @ self.x + offset
        self.P = F @ self.P @ F.T + Q

    def update(self, y: FloatArray, r: FloatArray) -> FloatArray:
        valid = np.flatnonzero(np.isfinite(y))
        innovation = np.full(y.shape, math.nan)
        if valid.size == 0:
            return innovation
        H = np.eye(len(y))[valid]
        R = np.diag(r[valid])
        e = y[valid] - H @ self.x
        S = H @ self.P @ H.T + R
        K = np.linalg.solve(S, H @ self.P).T  # P Hᵀ S⁻¹ (S and P symmetric)
        self.x = self.x + K @ e
        I_KH = np.eye(len(y)) - K @ H
        self.P = I_KH @ self.P @ I_KH.T + K @ R @ K.T
        innovation[valid] = e
        return innovation


# ----------------------------------------------------------------------------- textbook


def test_matches_a_textbook_filter_with_missing_components() -> None:
    """300 predicts and updates (random F, Q; ~30 % of components missing, some steps all
    missing): mean, covariance and innovation agree with the numpy filter to 1e-10."""
    rng = np.random.default_rng(1)
    d = 4
    noise = np.array([0.01, 0.02, 0.05, 0.1])
    kf = ObjectiveFilter(d, initial_mean=0.5, initial_covariance=1.0)
    reference = TextbookFilter(np.full(d, 0.5), np.eye(d))
    used = 0
    for step in range(300):
        F = stable_transition(rng, d)
        offset = rng.normal(scale=0.05, size=d)
        Q = psd(rng, d, 1e-3)
        kf.predict(F, offset, Q)
        reference.predict(F, offset, Q)
        np.testing.assert_allclose(kf.mean, reference.x, rtol=0, atol=1e-10)
        np.testing.assert_allclose(kf.covariance, reference.P, rtol=1e-10, atol=1e-13)
        y = rng.random(d)
        y[rng.random(d) < 0.3] = math.nan
        if step % 17 == 0:
            y[:] = math.nan
        mask = kf.update(y, noise)
        expected_innovation = reference.update(y, noise)
        assert mask.tolist() == np.isfinite(y).tolist()
        used += bool(mask.any())
        np.testing.assert_allclose(kf.mean, reference.x, rtol=0, atol=1e-10)
        np.testing.assert_allclose(kf.covariance, reference.P, rtol=1e-10, atol=1e-13)
        innovation = kf.innovation
        assert innovation is not None
        np.testing.assert_allclose(innovation, expected_innovation, rtol=0, atol=1e-10)
    assert kf.count == used
    assert_symmetric_pd(kf.covariance)


def test_filter_is_calibrated_on_its_own_model() -> None:
    """Monte Carlo: with the true F, b, Q, R the normalized estimation error squared
    (x − x̂)ᵀ P⁻¹ (x − x̂) averages d (χ²_d) — here over 3,000 steps, d = 2, in [1.8, 2.2]."""
    rng = np.random.default_rng(5)
    d, steps = 2, 3000
    F = np.array([[0.8, 0.1], [-0.05, 0.7]])
    offset = np.array([0.1, 0.12])
    Q = np.array([[4e-4, 1e-4], [1e-4, 3e-4]])
    noise = np.array([1e-3, 4e-3])
    x = np.array([0.5, 0.4])
    kf = ObjectiveFilter(d, initial_mean=x, initial_covariance=1e-6)
    errors = []
    for _ in range(steps):
        x = F @ x + offset + np.linalg.cholesky(Q) @ rng.standard_normal(d)
        kf.predict(F, offset, Q)
        y = x + np.sqrt(noise) * rng.standard_normal(d)
        if rng.random() < 0.2:
            y[rng.integers(d)] = math.nan
        kf.update(y, noise)
        error = x - kf.mean
        errors.append(float(error @ np.linalg.solve(kf.covariance, error)))
    mean_nees = float(np.mean(errors[100:]))
    assert 1.8 <= mean_nees <= 2.2, f"mean NEES {mean_nees:.3f} (χ²_2 mean 2)"


def test_all_missing_update_is_no_update() -> None:
    """Posterior = prior exactly (a promise: nothing is computed), count unchanged."""
    rng = np.random.default_rng(22)
    kf = ObjectiveFilter(3)
    kf.predict(stable_transition(rng, 3), rng.normal(scale=0.1, size=3), psd(rng, 3, 0.01))
    kf.update(np.array([0.2, 0.4, 0.9]), np.full(3, 0.01))
    kf.predict_random_walk(0.01)
    mean, cov, count = kf.mean, kf.covariance, kf.count
    mask = kf.update(np.full(3, math.nan), np.full(3, 0.01))
    assert not mask.any()
    assert np.array_equal(kf.mean, mean) and np.array_equal(kf.covariance, cov)
    assert kf.count == count
    innovation = kf.innovation
    assert innovation is not None and np.isnan(innovation).all()


@pytest.fixture
def filterpy_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Record every argument handed to filterpy's public KalmanFilter.predict/update."""
    calls: list[dict[str, Any]] = []
    predict, update = KalmanFilter.predict, KalmanFilter.update

    def spy_predict(self: Any, u: Any = None, B: Any = None, F: Any = None, Q: Any = None) -> Any:
        calls.append({"u": u, "F": F, "Q": Q})
        return predict(self, u=u, B=B, F=F, Q=Q)

    def spy_update(self: Any, z: Any, R: Any = None, H: Any = None) -> Any:
        calls.append({"z": z, "R": R, "H": H})
        return update(self, z, R=R, H=H)

    monkeypatch.setattr(KalmanFilter, "predict", spy_predict)
    monkeypatch.setattr(KalmanFilter, "update", spy_update)
    yield calls


def test_nan_never_reaches_filterpy(filterpy_calls: list[dict[str, Any]]) -> None:
    """Missing scores are dropped before filterpy sees them: every array it gets is finite,
    and H, R, z of an update have exactly the valid rows."""
    rng = np.random.default_rng(6)
    kf = ObjectiveFilter(3)
    masks = []
    for step in range(60):
        kf.predict(stable_transition(rng, 3), rng.normal(scale=0.05, size=3), psd(rng, 3, 1e-3))
        y = rng.random(3)
        y[rng.random(3) < 0.4] = math.nan
        if step % 10 == 0:
            y[:] = math.nan
        masks.append(kf.update(y, np.full(3, 0.01)))
    updates = [call for call in filterpy_calls if "z" in call]
    assert len(updates) == sum(bool(mask.any()) for mask in masks) > 0
    for call in filterpy_calls:
        for value in call.values():
            assert value is None or np.isfinite(np.asarray(value, dtype=np.float64)).all()
    used = [mask for mask in masks if mask.any()]
    for call, mask in zip(updates, used, strict=True):
        k = int(mask.sum())
        assert np.asarray(call["z"]).shape == (k, 1)
        assert np.asarray(call["R"]).shape == (k, k)
        np.testing.assert_array_equal(call["H"], np.eye(3)[mask])


# ----------------------------------------------------------------------------- covariance


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    d = draw(st.integers(1, 4))
    elements = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
    return {
        "noise": draw(hnp.arrays(np.float64, d, elements=st.floats(1e-6, 1.0))),
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
            for _ in range(draw(st.integers(1, 5)))
        ],
    }


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_joseph_form_keeps_the_covariance_symmetric_positive_definite(
    scenario: dict[str, Any],
) -> None:
    """Any PSD prior (possibly singular), F, PSD Q and missing pattern: P stays symmetric
    positive definite, and observed posterior variances never exceed the prior ones."""
    root = scenario["root"]
    state = KalmanState(scenario["mean"], root @ root.T, 0)
    kf = ObjectiveFilter.from_state(state)
    for F, offset, q_root, y, valid in scenario["steps"]:
        kf.predict(F, offset, 0.1 * q_root @ q_root.T)
        prior = kf.covariance
        assert_symmetric_pd(prior)
        mask = kf.update(np.where(valid, y, np.nan), scenario["noise"])
        assert np.array_equal(mask, valid)
        post = kf.covariance
        assert_symmetric_pd(post)
        slack = 1e-10 * max(1.0, float(np.max(np.diag(prior))))
        assert np.all(np.diag(post)[valid] <= np.diag(prior)[valid] + slack)
        assert np.all(np.isfinite(kf.mean))


def test_eigenvalue_floor_restores_positive_definiteness() -> None:
    """A singular prior (F = 0, Q = 0) is floored to EIGENVALUE_FLOOR · I."""
    kf = ObjectiveFilter(2)
    kf.predict(np.zeros((2, 2)), np.array([0.4, 0.6]), np.zeros((2, 2)))
    np.testing.assert_allclose(kf.covariance, EIGENVALUE_FLOOR * np.eye(2), rtol=1e-12)
    assert_symmetric_pd(kf.covariance)
    np.testing.assert_array_equal(kf.mean, [0.4, 0.6])
    kf.update(np.array([0.9, 0.1]), np.array([0.01, 0.01]))
    assert_symmetric_pd(kf.covariance)
    assert np.all(np.isfinite(kf.mean))


def test_mean_is_not_clipped() -> None:
    """The filtered mean may leave [0, 1]; it is never clipped."""
    kf = ObjectiveFilter(1, initial_mean=1.0, initial_covariance=1e-4)
    kf.predict(np.eye(1), np.array([0.2]), np.zeros((1, 1)))
    kf.update(np.array([1.0]), np.array([0.01]))
    assert kf.mean[0] > 1.0


# ----------------------------------------------------------------------------- snapshots


def test_round_trip_continues_bit_identically() -> None:
    rng = np.random.default_rng(5)
    d = 3
    noise = np.array([0.011, 0.023, 0.037])
    kf = ObjectiveFilter(d, initial_mean=[0.3, 0.5, 0.7])
    for _ in range(25):
        kf.predict(stable_transition(rng, d), rng.normal(scale=0.1, size=d), psd(rng, d, 1e-2))
        kf.update(rng.random(d), noise)
    restored = ObjectiveFilter.from_state(kf.to_state())
    assert np.array_equal(restored.mean, kf.mean)
    assert np.array_equal(restored.covariance, kf.covariance)
    assert restored.count == kf.count and restored.dim == d
    assert restored.innovation is None
    for step in range(50):
        F = stable_transition(rng, d)
        offset = rng.normal(scale=0.1, size=d)
        Q = psd(rng, d, 1e-2)
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
            f.update(y, noise)
        assert np.array_equal(restored.mean, kf.mean)
        assert np.array_equal(restored.covariance, kf.covariance)
        assert restored.count == kf.count


def test_state_is_a_copy() -> None:
    kf = ObjectiveFilter(2)
    state = kf.to_state()
    state.mean[:] = 9.0
    state.covariance[:] = 9.0
    kf.mean[:] = 9.0
    assert kf.mean.tolist() == [0.5, 0.5]
    assert kf.covariance.tolist() == [[1.0, 0.0], [0.0, 1.0]]


# ----------------------------------------------------------------------------- errors


def test_shape_and_value_errors() -> None:
    d = 3
    kf = ObjectiveFilter(d)
    good_F, good_offset, good_Q = np.eye(d), np.zeros(d), np.eye(d) * 1e-3
    with pytest.raises(ShapeError) as info:
        kf.predict(np.eye(d + 1), good_offset, good_Q)
    assert info.value.name == "F" and info.value.expected == (d, d)
    with pytest.raises(ShapeError) as info:
        kf.predict(good_F, np.zeros((d, 1)), good_Q)
    assert info.value.name == "offset" and info.value.got == (d, 1)
    with pytest.raises(ShapeError) as info:
        kf.predict(good_F, good_offset, np.eye(d)[:2])
    assert info.value.name == "Q"
    with pytest.raises(ShapeError):
        kf.update(np.zeros(d + 1), np.full(d, 0.01))
    for noise in (
        np.full(d - 1, 0.01),
        np.zeros(d),
        np.array([0.01, -0.01, 0.01]),
        np.full(d, np.nan),
    ):
        with pytest.raises(ValueError, match="noise"):
            kf.update(np.full(d, 0.5), noise)
    for kwargs in (
        {"initial_mean": math.inf},
        {"initial_covariance": 0.0},
        {"initial_covariance": math.nan},
    ):
        with pytest.raises(ValueError):
            ObjectiveFilter(d, **kwargs)
    with pytest.raises(ValueError):
        ObjectiveFilter(0)
    with pytest.raises(ValueError):
        ObjectiveFilter(d, initial_mean=np.full(d + 1, 0.5))
    assert kf.count == 0 and kf.innovation is None


def test_bad_transitions_raise_and_leave_the_filter_unchanged() -> None:
    d = 3
    kf = ObjectiveFilter(d)
    kf.update(np.array([0.2, 0.5, 0.8]), np.full(d, 0.01))
    mean, cov = kf.mean, kf.covariance
    F, offset, Q = np.eye(d), np.zeros(d), np.eye(d) * 1e-3
    bad_F, bad_offset, bad_Q = F.copy(), offset.copy(), Q.copy()
    bad_F[0, 1] = np.nan
    bad_offset[2] = np.inf
    bad_Q[1, 1] = -np.inf
    for args in ((bad_F, offset, Q), (F, bad_offset, Q), (F, offset, bad_Q)):
        with pytest.raises(NumericalError):
            kf.predict(*args)
    with pytest.raises(NumericalError):  # finite inputs, overflowing result
        kf.predict(1e200 * F, offset, Q)
    for q in (math.nan, math.inf):
        with pytest.raises(NumericalError):
            kf.predict_random_walk(q)
    # A negative variance is no covariance: without the check, the eigenvalue floor turned
    # P − I into a near-certain prior (P = 1e-12 I).
    with pytest.raises(ValueError, match="covariance"):
        kf.predict_random_walk(-1.0)
    with pytest.raises(ValueError, match="covariance"):
        kf.predict(F, offset, np.diag([1e-3, -1e-3, 1e-3]))
    assert np.array_equal(kf.mean, mean)
    assert np.array_equal(kf.covariance, cov)


def test_non_finite_update_result_is_dropped() -> None:
    """y − x⁻ overflows (1e308 − (−1e308)): the update is dropped, nothing changes."""
    kf = ObjectiveFilter.from_state(KalmanState(np.array([-1e308]), np.array([[1.0]]), 4))
    mask = kf.update(np.array([1e308]), np.array([0.01]))
    assert mask.tolist() == [False]
    assert kf.mean.tolist() == [-1e308] and kf.covariance.tolist() == [[1.0]]
    assert kf.count == 4


def test_from_state_errors() -> None:
    with pytest.raises(ShapeError):
        ObjectiveFilter.from_state(KalmanState(np.full(3, 0.5), np.eye(2), 0))
    with pytest.raises(ShapeError):
        ObjectiveFilter.from_state(KalmanState(np.full((3, 1), 0.5), np.eye(3), 0))
    with pytest.raises(NumericalError):
        ObjectiveFilter.from_state(KalmanState(np.array([0.5, math.nan]), np.eye(2), 0))
    with pytest.raises(NumericalError):
        ObjectiveFilter.from_state(KalmanState(np.full(2, 0.5), np.full((2, 2), math.inf), 0))


def test_partial_updates_in_every_pattern_equal_the_restricted_update() -> None:
    """Every non-empty subset of 4 components: the textbook update with H_V, R_V."""
    rng = np.random.default_rng(2)
    d = 4
    noise = np.array([0.01, 0.02, 0.05, 0.1])
    for size in range(1, d + 1):
        for valid in itertools.combinations(range(d), size):
            mean = rng.random(d)
            cov = psd(rng, d, 0.05) + 0.01 * np.eye(d)
            kf = ObjectiveFilter.from_state(KalmanState(mean, cov, 3))
            reference = TextbookFilter(mean, cov)
            y = np.where(np.isin(np.arange(d), valid), rng.random(d), np.nan)
            mask = kf.update(y, noise)
            reference.update(y, noise)
            assert mask.tolist() == [i in valid for i in range(d)]
            np.testing.assert_allclose(kf.mean, reference.x, rtol=0, atol=1e-12)
            np.testing.assert_allclose(kf.covariance, reference.P, rtol=1e-10, atol=1e-14)
            assert kf.count == 4
