"""Recursive least squares: closed forms (ridge, EW batch LS), windup, snapshots, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.estimators.rls import RecursiveLeastSquares
from steerloop.controller.state import RLSState
from steerloop.errors import NotReadyError, NumericalError, ShapeError

FloatArray = NDArray[np.float64]


def _relative(error: float, scale: float) -> float:
    return error / scale if scale > 0.0 else error


# Bounded floats without subnormal-scale values (relative error is meaningless under underflow).
_entries = st.floats(-1.0, 1.0, allow_subnormal=False).map(lambda v: 0.0 if abs(v) < 1e-6 else v)


@st.composite
def _ridge_problems(draw: st.DrawFn) -> tuple[FloatArray, FloatArray, float]:
    n_features = draw(st.integers(1, 6))
    n_outputs = draw(st.integers(1, 4))
    n = draw(st.integers(1, 40))
    X = draw(hnp.arrays(np.float64, (n, n_features), elements=_entries))
    Z = draw(hnp.arrays(np.float64, (n, n_outputs), elements=_entries))
    p0 = 10.0 ** draw(st.floats(-2.0, 2.0))
    return X, Z, p0


@settings(max_examples=60, deadline=None)
@given(_ridge_problems())
def test_lambda_one_equals_ridge_regression_on_every_prefix(
    problem: tuple[FloatArray, FloatArray, float],
) -> None:
    """λ = 1, P₀ = p₀I: Θ_k = (X_kᵀX_k + I/p₀)⁻¹X_kᵀZ_k and P_k = (X_kᵀX_k + I/p₀)⁻¹, all k.

    The error is measured relative to the largest ‖Θ_j‖_F, j ≤ k, seen so far (targets may
    cancel so that a later Θ_k is ~0 while the recursion carries the rounding of the larger
    earlier ones); it must stay below 1e-10 (worst found by a 3000-example targeted search:
    2.5e-14).
    """
    X, Z, p0 = problem
    n, n_features = X.shape
    rls = RecursiveLeastSquares(n_features, Z.shape[1], forgetting=1.0, initial_covariance=p0)
    scale = 0.0
    worst = 0.0
    for k in range(1, n + 1):
        rls.update(X[k - 1], Z[k - 1])
        information = X[:k].T @ X[:k] + np.eye(n_features) / p0
        ridge = np.linalg.solve(information, X[:k].T @ Z[:k])
        scale = max(scale, float(np.linalg.norm(ridge)))
        worst = max(worst, _relative(float(np.linalg.norm(rls.theta - ridge)), scale))
        covariance = np.linalg.inv(information)
        assert (
            _relative(
                float(np.linalg.norm(rls.covariance - covariance)),
                float(np.linalg.norm(covariance)),
            )
            < 1e-10
        )
    assert worst < 1e-10, f"worst prefix relative error {worst:.2e}"
    assert rls.count == n


def test_forgetting_equals_exponentially_weighted_batch_least_squares() -> None:
    """λ < 1: Θ_n = (Σ λ^{n−k} φφᵀ + λⁿP₀⁻¹)⁻¹ Σ λ^{n−k} φzᵀ to 1e-12, P likewise."""
    rng = np.random.default_rng(20240611)
    n, n_features, n_outputs, lam, p0 = 200, 4, 3, 0.95, 10.0
    X = rng.uniform(-1.0, 1.0, (n, n_features))
    X[:, -1] = 1.0  # an intercept column, as in the drift model
    theta_true = rng.normal(size=(n_features, n_outputs))
    Z = X @ theta_true + 0.1 * rng.normal(size=(n, n_outputs))
    max_trace = 1e6
    rls = RecursiveLeastSquares(
        n_features, n_outputs, forgetting=lam, initial_covariance=p0, max_trace=max_trace
    )
    largest_trace = 0.0
    for k in range(1, n + 1):
        rls.update(X[k - 1], Z[k - 1])
        largest_trace = max(largest_trace, float(np.trace(rls.covariance)))
        if k % 20 == 0 or k < 10:
            weights = lam ** np.arange(k - 1, -1, -1.0)
            information = (X[:k].T * weights) @ X[:k] + lam**k * np.eye(n_features) / p0
            batch = np.linalg.solve(information, (X[:k].T * weights) @ Z[:k])
            error = np.linalg.norm(rls.theta - batch) / np.linalg.norm(batch)
            assert error < 1e-12, f"step {k}: relative error {error:.2e}"
            covariance = np.linalg.inv(information)
            cov_error = np.linalg.norm(rls.covariance - covariance) / np.linalg.norm(covariance)
            assert cov_error < 1e-12, f"step {k}: covariance relative error {cov_error:.2e}"
    # The windup guard never acted: tr P stayed far below the bound (it is n_features·p₀ = 40
    # at most, at the prior).
    assert largest_trace <= n_features * p0 < max_trace / 1e3


def test_covariance_stays_exactly_symmetric() -> None:
    rng = np.random.default_rng(7)
    rls = RecursiveLeastSquares(5, 2, forgetting=0.9)
    for _ in range(2000):
        rls.update(rng.normal(size=5), rng.normal(size=2))
    P = rls.covariance
    assert np.array_equal(P, P.T)


@pytest.mark.slow
def test_constant_input_million_steps_no_windup() -> None:
    """10⁶ identical updates at λ = 0.98: P finite, symmetric, PD, tr P ≤ max_trace."""
    max_trace = 1e6
    rls = RecursiveLeastSquares(4, 3, forgetting=0.98, max_trace=max_trace)
    phi = np.array([0.5, 0.3, 0.7, 1.0])
    z = np.array([0.1, -0.2, 0.05])
    update = rls.update
    for _ in range(1_000_000):
        update(phi, z)
    P = rls.covariance
    theta = rls.theta
    assert rls.count == 1_000_000
    assert np.all(np.isfinite(P))
    assert np.all(np.isfinite(theta))
    assert np.linalg.norm(P - P.T) <= 1e-12 * np.linalg.norm(P)
    np.linalg.cholesky(P)  # raises LinAlgError unless positive definite
    assert np.linalg.eigvalsh(P).min() > 0.0
    assert np.trace(P) <= max_trace * (1.0 + 1e-12)
    # The excited direction is learnt: the prediction at φ is z (the prior's pull decays ~1/n).
    np.testing.assert_allclose(rls.predict(phi), z, rtol=1e-9)


def test_windup_guard_bounds_trace_quickly() -> None:
    max_trace = 1e4
    rls = RecursiveLeastSquares(3, 1, forgetting=0.9, initial_covariance=10.0, max_trace=max_trace)
    phi = np.array([1.0, 0.0, 0.0])
    for _ in range(500):
        rls.update(phi, np.array([2.0]))
        assert np.trace(rls.covariance) <= max_trace * (1.0 + 1e-12)
    assert np.trace(rls.covariance) == pytest.approx(max_trace, rel=1e-12)
    # The excited coefficient is learnt (its ridge bias decays like 1/n under the guard).
    assert rls.theta[0, 0] == pytest.approx(2.0, rel=1e-5)


def _run(rls: RecursiveLeastSquares, X: FloatArray, Z: FloatArray) -> None:
    for phi, z in zip(X, Z, strict=True):
        rls.update(phi, z)


def test_state_json_round_trip_continues_bit_identically() -> None:
    rng = np.random.default_rng(11)
    n_features, n_outputs = 4, 3
    config = {"forgetting": 0.9, "initial_covariance": 50.0, "max_trace": 2e3}
    X = rng.normal(size=(400, n_features))
    X[100:250] = X[100]  # a constant stretch so the windup guard acts before the snapshot
    Z = rng.normal(size=(400, n_outputs))
    reference = RecursiveLeastSquares(n_features, n_outputs, **config)
    _run(reference, X, Z)

    first = RecursiveLeastSquares(n_features, n_outputs, **config)
    _run(first, X[:250], Z[:250])
    assert np.trace(first.covariance) == pytest.approx(config["max_trace"], rel=1e-9)
    text = first.to_state().model_dump_json()
    json.loads(text)
    restored = RecursiveLeastSquares.from_state(RLSState.model_validate_json(text), **config)
    assert restored.count == 250
    assert np.array_equal(restored.theta, first.theta)
    assert np.array_equal(restored.covariance, first.covariance)
    _run(restored, X[250:], Z[250:])

    assert restored.count == reference.count == 400
    assert np.array_equal(restored.theta, reference.theta)
    assert np.array_equal(restored.covariance, reference.covariance)
    assert np.array_equal(restored.last_residual, reference.last_residual)


def test_a_priori_residual_and_predict() -> None:
    rls = RecursiveLeastSquares(2, 2, forgetting=0.99)
    rng = np.random.default_rng(3)
    for _ in range(5):
        rls.update(rng.normal(size=2), rng.normal(size=2))
    phi, z = np.array([0.3, -1.2]), np.array([1.0, 2.0])
    before = rls.predict(phi)
    assert before.shape == (2,)
    np.testing.assert_allclose(before, rls.theta.T @ phi, rtol=1e-14, atol=1e-16)
    rls.update(phi, z)
    np.testing.assert_array_equal(rls.last_residual, z - before)  # same product, bit for bit


def test_properties_are_copies_and_reset_restores_prior() -> None:
    rls = RecursiveLeastSquares(3, 2, forgetting=0.9, initial_covariance=5.0)
    assert (rls.n_features, rls.n_outputs, rls.forgetting, rls.count) == (3, 2, 0.9, 0)
    np.testing.assert_array_equal(rls.covariance, 5.0 * np.eye(3))
    np.testing.assert_array_equal(rls.theta, np.zeros((3, 2)))
    rls.update(np.ones(3), np.ones(2))
    theta, covariance = rls.theta, rls.covariance
    theta[:] = 99.0
    covariance[:] = 99.0
    rls.last_residual[:] = 99.0
    assert not np.any(rls.theta == 99.0)
    assert not np.any(rls.covariance == 99.0)
    assert not np.any(rls.last_residual == 99.0)
    rls.reset()
    assert rls.count == 0
    np.testing.assert_array_equal(rls.covariance, 5.0 * np.eye(3))
    np.testing.assert_array_equal(rls.theta, np.zeros((3, 2)))
    with pytest.raises(NotReadyError):
        _ = rls.last_residual


def test_last_residual_before_update_raises() -> None:
    rls = RecursiveLeastSquares(2, 1)
    with pytest.raises(NotReadyError) as info:
        _ = rls.last_residual
    assert (info.value.needed, info.value.have) == (1, 0)


@pytest.mark.parametrize(
    ("regressor", "target", "name"),
    [
        (np.ones(2), np.ones(2), "regressor"),
        (np.ones(3), np.ones(3), "target"),
        (np.ones((3, 1)), np.ones(2), "regressor"),
        (np.ones(3), np.ones((1, 2)), "target"),
        (np.float64(1.0), np.ones(2), "regressor"),
    ],
)
def test_update_shape_errors(regressor: FloatArray, target: FloatArray, name: str) -> None:
    rls = RecursiveLeastSquares(3, 2)
    with pytest.raises(ShapeError) as info:
        rls.update(regressor, target)
    assert info.value.name == name
    assert rls.count == 0


def test_predict_shape_error() -> None:
    rls = RecursiveLeastSquares(3, 2)
    with pytest.raises(ShapeError):
        rls.predict(np.ones(4))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["regressor", "target"])
def test_non_finite_input_raises_and_leaves_state_unchanged(bad: float, where: str) -> None:
    rls = RecursiveLeastSquares(3, 2, forgetting=0.95)
    rls.update(np.array([1.0, 2.0, 3.0]), np.array([0.5, -0.5]))
    before = rls.to_state()
    phi, z = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0])
    if where == "regressor":
        phi[1] = bad
    else:
        z[0] = bad
    with pytest.raises(NumericalError):
        rls.update(phi, z)
    assert rls.to_state() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_features": 0, "n_outputs": 1},
        {"n_features": 1, "n_outputs": 0},
        {"n_features": 1, "n_outputs": 1, "forgetting": 0.0},
        {"n_features": 1, "n_outputs": 1, "forgetting": 1.5},
        {"n_features": 1, "n_outputs": 1, "initial_covariance": 0.0},
        {"n_features": 1, "n_outputs": 1, "initial_covariance": np.inf},
        {"n_features": 3, "n_outputs": 1, "initial_covariance": 10.0, "max_trace": 20.0},
        {"n_features": 1, "n_outputs": 1, "max_trace": np.inf},
    ],
)
def test_invalid_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RecursiveLeastSquares(**kwargs)  # type: ignore[arg-type]


def test_from_state_shape_errors() -> None:
    with pytest.raises(ShapeError):
        RecursiveLeastSquares.from_state(
            RLSState(theta=[[0.0], [0.0]], covariance=[[1.0, 0.0]], count=0)
        )
    with pytest.raises(ShapeError):
        RecursiveLeastSquares.from_state(RLSState(theta=[], covariance=[], count=0))
