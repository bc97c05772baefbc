"""Closed-form propagation (steerloop.estimators.propagation) against direct iteration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from direct_iteration import iterate
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from steerloop.estimators.propagation import (
    Dynamics,
    StrategyModel,
    _inverses,
    equilibrium_covariance,
)

FloatArray = NDArray[np.float64]


def propagate(
    models: list[StrategyModel],
    index: list[int],
    mean: FloatArray,
    cov: FloatArray,
    steps: list[int],
) -> tuple[FloatArray, FloatArray]:
    count = len(index)
    return Dynamics(models).propagate(
        np.array(index, dtype=np.intp),
        np.broadcast_to(mean, (count, mean.shape[0])),
        np.broadcast_to(cov, (count, *cov.shape)),
        np.array(steps, dtype=np.int64),
    )


# ----------------------------------------------------------------------------- closed form

PROPAGATION_MODELS = {
    "diagonal": StrategyModel(
        A=np.diag([-0.3, -0.8]), b=np.array([0.2, 0.4]), Q=np.diag([1e-3, 2e-3])
    ),
    "non-normal": StrategyModel(
        A=np.array([[-0.3, 0.4], [0.05, -0.5]]),
        b=np.array([0.2, 0.15]),
        Q=np.array([[4e-3, 1e-3], [1e-3, 3e-3]]),
        equilibrium_covariance=np.array([[0.01, 0.003], [0.003, 0.02]]),
    ),
    "complex pair, dt 0.5": StrategyModel(
        A=np.array([[-0.3, -0.5], [0.5, -0.3]]), b=np.array([0.3, 0.0]), Q=5e-3 * np.eye(2), dt=0.5
    ),
    "overshoot": StrategyModel(A=np.diag([-1.6, -0.4]), b=np.array([0.8, 0.2]), Q=1e-3 * np.eye(2)),
    "unit eigenvalue": StrategyModel(  # A has a zero eigenvalue: F = 1 in that direction
        A=np.array([[0.0, 0.0], [0.0, -0.5]]), b=np.array([0.01, 0.25]), Q=1e-3 * np.eye(2)
    ),
    "three objectives": StrategyModel(
        A=np.array([[-0.4, 0.1, 0.0], [0.0, -0.3, 0.2], [0.1, 0.0, -0.6]]),
        b=np.array([0.2, 0.1, 0.3]),
        Q=np.diag([1e-3, 2e-3, 3e-3]),
        equilibrium_covariance=1e-3 * np.eye(3),
    ),
}


@pytest.mark.parametrize("name", list(PROPAGATION_MODELS))
def test_propagate_equals_direct_iteration(name: str) -> None:
    """Eq. (1) in eigen form against n explicit steps of mean and covariance (rel 1e-10)."""
    model = PROPAGATION_MODELS[name]
    d = int(model.b.shape[0])
    rng = np.random.default_rng(3)
    mean = rng.uniform(0.0, 1.0, size=(d,))
    root = rng.normal(scale=0.1, size=(d, d))
    cov = root @ root.T
    steps = [0, 1, 2, 7, 40]
    got_mean, got_cov = propagate([model], [0] * len(steps), mean, cov, steps)
    for k, n in enumerate(steps):
        want_mean, want_cov = iterate(model, mean, cov, n)
        scale = max(1.0, float(np.abs(want_mean).max()))
        np.testing.assert_allclose(got_mean[k], want_mean, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(
            got_cov[k], want_cov, rtol=0, atol=1e-10 * float(np.abs(want_cov).max())
        )
        assert np.array_equal(got_cov[k], got_cov[k].T)


def test_propagate_picks_each_rows_strategy_and_steps() -> None:
    models = list(PROPAGATION_MODELS.values())[:4]
    mean, cov = np.array([0.3, 0.6]), 0.02 * np.eye(2)
    index, steps = [3, 0, 2, 1, 0], [5, 9, 1, 0, 30]
    got_mean, got_cov = propagate(models, index, mean, cov, steps)
    for k, (i, n) in enumerate(zip(index, steps, strict=True)):
        want_mean, want_cov = iterate(models[i], mean, cov, n)
        np.testing.assert_allclose(got_mean[k], want_mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got_cov[k], want_cov, rtol=0, atol=1e-12)


def test_repeated_rows_and_a_shared_belief_agree_with_direct_iteration() -> None:
    """Rows that repeat a (strategy, steps) pair share one transition; each row still gets
    its own belief, and the shared-belief form gives every row the same as propagate."""
    models = list(PROPAGATION_MODELS.values())[:3]
    dynamics = Dynamics(models)
    mean, cov = np.array([0.3, 0.6]), 0.02 * np.eye(2)
    index = np.array([2, 0, 2, 1, 0, 2], dtype=np.intp)
    steps = np.array([7, 3, 7, 0, 3, 12], dtype=np.int64)
    means = mean + 0.05 * np.arange(6)[:, None]  # a different belief per row
    got_mean, got_cov = dynamics.propagate(index, means, np.broadcast_to(cov, (6, 2, 2)), steps)
    shared_mean, shared_cov = dynamics.propagate_shared(index, mean, cov, steps)
    for k, (i, n) in enumerate(zip(index.tolist(), steps.tolist(), strict=True)):
        want_mean, want_cov = iterate(models[i], means[k], cov, n)
        np.testing.assert_allclose(got_mean[k], want_mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got_cov[k], want_cov, rtol=0, atol=1e-12)
        want_mean, want_cov = iterate(models[i], mean, cov, n)
        np.testing.assert_allclose(shared_mean[k], want_mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(shared_cov[k], want_cov, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 4),
    steps=st.integers(0, 60),
    radius=st.floats(0.05, 0.99),
)
def test_propagate_equals_direct_iteration_for_random_stable_maps(
    seed: int, d: int, steps: int, radius: float
) -> None:
    """F = T diag(μ) T⁻¹ with |μ| ≤ radius (complex pairs included) and cond(T) ≤ 4."""
    rng = np.random.default_rng(seed)
    blocks = []
    size = 0
    while size < d:
        if d - size >= 2 and rng.random() < 0.5:
            r, angle = radius * rng.uniform(0.2, 1.0), rng.uniform(0.1, 3.0)
            c, s = r * math.cos(angle), r * math.sin(angle)
            blocks.append(np.array([[c, -s], [s, c]]))
            size += 2
        else:
            blocks.append(np.array([[radius * rng.uniform(-1.0, 1.0)]]))
            size += 1
    J = np.zeros((d, d))
    start = 0
    for block in blocks:
        J[start : start + len(block), start : start + len(block)] = block
        start += len(block)
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    T = q1 @ np.diag(rng.uniform(0.5, 2.0, d)) @ q2
    F = T @ J @ np.linalg.inv(T)
    root = rng.normal(scale=0.05, size=(d, d))
    model = StrategyModel(A=F - np.eye(d), b=rng.uniform(0.0, 0.2, d), Q=root @ root.T)
    mean, cov = rng.uniform(0.0, 1.0, d), 0.01 * np.eye(d)
    got_mean, got_cov = propagate([model], [0], mean, cov, [steps])
    want_mean, want_cov = iterate(model, mean, cov, steps)
    np.testing.assert_allclose(got_mean[0], want_mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        got_cov[0], want_cov, rtol=0, atol=1e-9 * max(1.0, np.abs(want_cov).max())
    )
    assert np.linalg.eigvalsh(got_cov[0]).min() >= -1e-12


def test_one_singular_eigenbasis_does_not_fail_the_batch() -> None:
    """The eigenbases are inverted as one batch; a singular one is flagged, the others are
    still inverted (and a batch of models plans each as it would alone)."""
    good = np.array([[2.0, 1.0], [0.0, 1.0]], dtype=np.complex128)
    singular = np.array([[1.0, 1.0], [1.0, 1.0]], dtype=np.complex128)
    inverse, invertible = _inverses(np.stack([good, singular, good]))
    assert invertible.tolist() == [True, False, True]
    np.testing.assert_allclose(inverse[0] @ good, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(inverse[2] @ good, np.eye(2), atol=1e-12)
    models = [m for m in PROPAGATION_MODELS.values() if m.b.shape == (2,)]
    together = Dynamics(models)
    for i, model in enumerate(models):
        alone = Dynamics([model])
        assert together.ok[i] == alone.ok[0]
        np.testing.assert_allclose(
            np.sort_complex(together.values[i]), np.sort_complex(alone.values[0]), rtol=1e-12
        )


def test_equilibrium_covariance_is_the_delta_method() -> None:
    """Cov(x̂*) = A⁻¹ (φ*ᵀ K φ*) C_e A⁻ᵀ against 100,000 draws vec Θ ~ N(Θ̂, C_e ⊗ K) of
    x* = −A⁻¹ b (small covariance, so the linearisation holds to a few per cent)."""
    A = np.array([[-0.5, 0.1], [0.05, -0.3]])
    b = np.array([0.3, 0.2])
    C = np.array([[4e-4, 1e-4], [1e-4, 3e-4]])
    root = np.random.default_rng(0).normal(size=(3, 3))
    K = 0.05 * root @ root.T + 0.01 * np.eye(3)
    covariance = equilibrium_covariance(A, b, C, K)
    assert covariance is not None
    rng = np.random.default_rng(1)
    theta = np.vstack([A.T, b])
    draws = (
        theta
        + np.linalg.cholesky(K) @ rng.standard_normal((100_000, 3, 2)) @ np.linalg.cholesky(C).T
    )
    x_star = -np.linalg.solve(draws[:, :2].transpose(0, 2, 1), draws[:, 2][:, :, None])[:, :, 0]
    sample = np.cov(x_star.T)
    np.testing.assert_allclose(covariance, sample, rtol=0.05, atol=0.05 * np.abs(sample).max())
    np.testing.assert_array_equal(covariance, covariance.T)
    assert equilibrium_covariance(np.zeros((2, 2)), b, C, K) is None
