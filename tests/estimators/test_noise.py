"""Measurement and process noise (steerloop.estimators.noise): closed forms and ALS recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.estimators.drift import DriftConfig, DriftModel
from steerloop.estimators.noise import (
    MAX_MEASUREMENT_NOISE,
    MIN_MEASUREMENT_NOISE,
    PROCESS_NOISE_FLOOR,
    lag_evidence,
    pooled_measurement_noise,
    process_noise,
)

FloatArray = NDArray[np.float64]


# ----------------------------------------------------------------------------- closed forms


def test_lag_evidence_of_the_exact_lag_covariance_is_r_times_d() -> None:
    """C₁ = −F R ⇒ N_j = R_jj Σ_i F_ij² = R_jj D_j (module docstring, eq. 1)."""
    rng = np.random.default_rng(1)
    F = np.eye(3) + rng.normal(scale=0.3, size=(3, 3))
    R = np.array([1e-3, 4e-3, 2e-2])
    numerator, denominator = lag_evidence(F, -F @ np.diag(R))
    np.testing.assert_allclose(denominator, (F * F).sum(axis=0), rtol=1e-15)
    np.testing.assert_allclose(numerator, R * denominator, rtol=1e-13)


def test_pooled_measurement_noise_is_eq_2() -> None:
    """R_jj = (n₀R₀ + Σ W₁ N_j) / (n₀ + Σ W₁ D_j) over strategies, then clipped."""
    first = (np.array([2e-3, 1e-3]), np.array([1.0, 0.5]))
    second = (np.array([1e-3, 3e-3]), np.array([0.8, 1.2]))
    prior, prior_weight = np.array([1e-4, 5e-4]), 3.0
    got = pooled_measurement_noise(
        [(first, 10.0), (second, 30.0)], prior=prior, prior_weight=prior_weight
    )
    expected = (prior_weight * prior + 10.0 * first[0] + 30.0 * second[0]) / (
        prior_weight + 10.0 * first[1] + 30.0 * second[1]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    # Only the prior: R₀. A scalar prior broadcasts to the evidence's dimension.
    np.testing.assert_allclose(
        pooled_measurement_noise([], prior=prior, prior_weight=1.0), prior, rtol=1e-15
    )
    scalar = pooled_measurement_noise([(first, 10.0)], prior=1e-4, prior_weight=1.0)
    np.testing.assert_allclose(
        scalar, (1e-4 + 10.0 * first[0]) / (1.0 + 10.0 * first[1]), rtol=1e-14
    )


def test_pooled_measurement_noise_bounds_and_empty_evidence() -> None:
    huge = (np.array([10.0, -1.0]), np.array([1.0, 1.0]))
    clipped = pooled_measurement_noise([(huge, 100.0)], prior=1e-4, prior_weight=0.0)
    assert clipped.tolist() == [MAX_MEASUREMENT_NOISE, MIN_MEASUREMENT_NOISE]
    custom = pooled_measurement_noise(
        [(huge, 100.0)], prior=1e-4, prior_weight=0.0, bounds=(1e-3, 0.5)
    )
    assert custom.tolist() == [0.5, 1e-3]
    # No evidence and no prior: the upper bound (a filter trusting nothing it cannot check).
    none = pooled_measurement_noise([], prior=np.zeros(2), prior_weight=0.0)
    assert none.tolist() == [MAX_MEASUREMENT_NOISE] * 2
    # A component without leverage (D = 0) and no prior: the upper bound as well.
    flat = (np.array([0.0, 1e-3]), np.array([0.0, 1.0]))
    result = pooled_measurement_noise([(flat, 5.0)], prior=np.zeros(2), prior_weight=0.0)
    assert result[0] == MAX_MEASUREMENT_NOISE
    assert result[1] == pytest.approx(1e-3, rel=1e-14)


def test_docstring_example_numbers() -> None:
    F = np.diag([0.5, 0.8])
    R_true = np.array([0.01, 0.02])
    evidence = lag_evidence(F, -F @ np.diag(R_true))
    got = pooled_measurement_noise([(evidence, 100.0)], prior=1e-4, prior_weight=1.0)
    expected = (1e-4 + 100.0 * R_true * np.diag(F) ** 2) / (1.0 + 100.0 * np.diag(F) ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_process_noise_is_the_remainder_of_eq_1() -> None:
    """Cov(ε) = Q + R + F R Fᵀ ⇒ process_noise returns Q (to rounding)."""
    rng = np.random.default_rng(2)
    F = np.eye(3) + rng.normal(scale=0.2, size=(3, 3))
    root = rng.normal(scale=0.05, size=(3, 3))
    Q = root @ root.T + 1e-4 * np.eye(3)
    R = np.array([1e-3, 2e-3, 5e-4])
    step = Q + np.diag(R) + F @ np.diag(R) @ F.T
    np.testing.assert_allclose(process_noise(step, R, F), Q, rtol=1e-10, atol=1e-15)


def test_process_noise_floors_the_eigenvalues() -> None:
    """A remainder with a negative eigenvalue is projected onto eigenvalues ≥ floor."""
    F = np.eye(2)
    R = np.array([1e-3, 1e-3])
    step = np.diag([5e-3, 1e-3]) + np.diag(R) + np.diag(R)  # remainder diag(5e-3, 1e-3)
    too_small = step - np.diag([0.0, 3e-3])  # remainder diag(5e-3, −2e-3)
    Q = process_noise(too_small, R, F)
    np.testing.assert_allclose(Q, np.diag([5e-3, PROCESS_NOISE_FLOOR]), rtol=1e-12, atol=1e-18)
    Q = process_noise(too_small, R, F, floor=1e-4)
    np.testing.assert_allclose(Q, np.diag([5e-3, 1e-4]), rtol=1e-12, atol=1e-18)


@settings(max_examples=100, deadline=None)
@given(
    step=hnp.arrays(np.float64, (3, 3), elements=st.floats(-0.1, 0.1)),
    noise=hnp.arrays(np.float64, 3, elements=st.floats(0.0, 0.05)),
    F=hnp.arrays(np.float64, (3, 3), elements=st.floats(-1.5, 1.5)),
    floor=st.sampled_from([0.0, PROCESS_NOISE_FLOOR, 1e-3]),
)
def test_process_noise_is_symmetric_with_eigenvalues_at_least_the_floor(
    step: FloatArray, noise: FloatArray, F: FloatArray, floor: float
) -> None:
    Q = process_noise(step, noise, F, floor=floor)
    assert np.isfinite(Q).all()
    np.testing.assert_allclose(Q, Q.T, rtol=0, atol=1e-15)
    assert np.linalg.eigvalsh(Q).min() >= floor - 1e-12
    # Where the remainder already satisfies the floor, it is returned unchanged.
    remainder = step - np.diag(noise) - F @ np.diag(noise) @ F.T
    remainder = 0.5 * (remainder + remainder.T)
    if np.linalg.eigvalsh(remainder).min() >= floor:
        np.testing.assert_allclose(Q, remainder, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- ALS recovery

#: Scorer noise shared by every strategy, and two strategies' drifts and process noises.
SCORER_NOISE = np.array([1e-3, 2e-3])
STRATEGIES = {
    "a": (
        np.array([[-0.3, 0.1], [0.05, -0.5]]),
        np.array([0.6, 0.4]),
        np.array([[2e-3, 5e-4], [5e-4, 3e-3]]),
    ),
    "b": (
        np.array([[-0.6, -0.2], [0.0, -0.2]]),
        np.array([0.3, 0.7]),
        np.array([[2e-3, 0.0], [0.0, 4e-3]]),
    ),
}


def simulate_scores(
    rng: np.random.Generator, A: FloatArray, equilibrium: FloatArray, Q: FloatArray, n: int
) -> FloatArray:
    """Raw scores y_t = x_t + v_t of x_{t+1} = F x_t + c + w_t, started at the equilibrium."""
    F = np.eye(2) + A
    offset = -A @ equilibrium
    root = np.linalg.cholesky(Q)
    x = equilibrium.copy()
    scores = np.empty((n + 1, 2))
    for t in range(n + 1):
        scores[t] = x + np.sqrt(SCORER_NOISE) * rng.standard_normal(2)
        x = F @ x + offset + root @ rng.standard_normal(2)
    return scores


def test_autocovariance_least_squares_recovers_r_and_q_on_long_runs() -> None:
    """Two strategies, 10,000 raw-score transitions each, one scorer noise R.

    R̂ is the fixed point of R ← pooled(lag evidence of the fits corrected with R), started
    at the prior 1e-4 (the session makes one such step per update); Q̂ = process_noise of
    each corrected fit. Tolerance: R̂ within 20 % per component, Q̂ within 20 % of Q's
    largest entry, entrywise (over 12 seeds the worst errors were 11 % and 11 %).
    """
    rng = np.random.default_rng(0)
    models = {}
    for name, (A, equilibrium, Q) in STRATEGIES.items():
        model = DriftModel(DriftConfig(2, forgetting=1.0))
        for previous, current in itertools.pairwise(
            simulate_scores(rng, A, equilibrium, Q, 10_000)
        ):
            model.update(previous, current)
        models[name] = model
    estimate = np.full(2, 1e-4)
    for _ in range(40):
        evidence = []
        for model in models.values():
            fit = model.fit(None, estimate)
            lag = fit.step_lag_covariance
            assert lag is not None
            evidence.append((lag_evidence(fit.F, lag), fit.lag_weight))
        estimate = pooled_measurement_noise(evidence, prior=1e-4, prior_weight=1.0)
    r_error = np.abs(estimate / SCORER_NOISE - 1.0)
    assert (r_error <= 0.2).all(), f"R̂ = {estimate.tolist()}, errors {r_error.round(3).tolist()}"
    for name, model in models.items():
        fit = model.fit(None, estimate)
        step = fit.step_covariance
        assert step is not None
        Q = STRATEGIES[name][2]
        Q_hat = process_noise(step, estimate, fit.F)
        q_error = float(np.abs(Q_hat - Q).max() / np.abs(Q).max())
        assert q_error <= 0.2, f"{name}: Q̂ = {Q_hat.round(5).tolist()}, error {q_error:.1%}"
        np.testing.assert_allclose(fit.A, STRATEGIES[name][0], atol=0.05)
