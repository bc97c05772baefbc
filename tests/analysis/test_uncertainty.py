"""Tests of steerloop.analysis.uncertainty: the rate's standard error and correlation intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerloop.analysis import fit_trajectories
from steerloop.analysis.uncertainty import correlation_interval, rate_stderr
from steerloop.simulate import paper_environment, rollout_arrays


def numeric_rate_variance(a: np.ndarray, s: np.ndarray, m: np.ndarray) -> float:
    """Σ S_ik (G M Gᵀ)_ik with G the central finite-difference gradient of −max Re λ(A)."""
    d = a.shape[0]
    gradient = np.zeros((d, d))
    h = 1e-6
    for i in range(d):
        for j in range(d):
            step = np.zeros((d, d))
            step[i, j] = h
            up = -np.linalg.eigvals(a + step).real.max()
            down = -np.linalg.eigvals(a - step).real.max()
            gradient[i, j] = (up - down) / (2 * h)
    return float(np.sum(s * (gradient @ m @ gradient.T)))


@pytest.mark.parametrize(
    "a",
    [
        np.array([[-0.5, 0.2, 0.0], [0.1, -0.9, 0.3], [0.0, -0.2, -1.3]]),
        np.array([[-0.35, 0.0, -0.45], [0.0, -0.6, 0.0], [0.45, 0.0, -0.35]]),  # complex pair
    ],
)
def test_gradient_matches_finite_differences(a: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    root = rng.normal(size=(3, 3))
    s = root @ root.T * 1e-3
    gram = rng.normal(size=(4, 4))
    m = np.linalg.inv(gram @ gram.T + 4 * np.eye(4))
    se = rate_stderr(a, s, m)
    assert se is not None
    assert se**2 == pytest.approx(numeric_rate_variance(a, s, m[:3, :3]), rel=1e-6)


def test_ill_conditioned_eigenvectors_give_no_standard_error() -> None:
    jordan = np.array([[-0.5, 1.0], [0.0, -0.5]])  # defective: no eigenvector basis
    assert rate_stderr(jordan, np.eye(2) * 1e-3, np.eye(3)) is None
    assert rate_stderr(np.array([[math.nan]]), np.eye(1), np.eye(2)) is None


def rates(strategy: str, noise_sd: float, seeds: int) -> tuple[float, float]:
    env = paper_environment(noise_sd=noise_sd)
    estimates, errors = [], []
    for seed in range(seeds):
        data = rollout_arrays(
            env, [strategy], sessions=20, steps=30, rng=np.random.default_rng(seed)
        )
        fit = fit_trajectories(data).strategies[strategy]
        assert fit.rate is not None and fit.rate_stderr is not None
        estimates.append(fit.rate)
        errors.append(fit.rate_stderr)
    return float(np.std(estimates, ddof=1)), float(np.median(errors))


@pytest.mark.parametrize(
    "strategy",
    ["efficiency_focused", "security_focused", "feature_focused", "adaptive_integration"],
)
def test_standard_error_matches_the_spread_over_independent_data_sets(strategy: str) -> None:
    spread, stderr = rates(strategy, noise_sd=0.0, seeds=60)
    assert 0.7 < spread / stderr < 1.35  # 60 estimates: their sd is uncertain by about 10 %


def test_standard_error_is_conservative_under_noise_sd() -> None:
    """Score noise makes consecutive residuals correlated; the OLS error then overstates."""
    spread, stderr = rates("efficiency_focused", noise_sd=0.01, seeds=60)
    assert spread / stderr < 1.0


def test_correlation_interval() -> None:
    low, high = correlation_interval(0.3, 103) or (0.0, 0.0)
    assert math.atanh(high) - math.atanh(0.3) == pytest.approx(0.196, rel=1e-9)
    assert math.atanh(0.3) - math.atanh(low) == pytest.approx(0.196, rel=1e-9)
    narrow = correlation_interval(0.3, 10_003) or (0.0, 0.0)
    assert low < narrow[0] < 0.3 < narrow[1] < high
    assert correlation_interval(0.3, 3) is None and correlation_interval(math.nan, 50) is None


def test_correlation_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(4)
    rho, n, covered = -0.4, 80, 0
    cov = np.array([[1.0, rho], [rho, 1.0]])
    for _ in range(400):
        x = rng.multivariate_normal([0.0, 0.0], cov, size=n)
        low, high = correlation_interval(float(np.corrcoef(x.T)[0, 1]), n) or (0.0, 0.0)
        covered += low <= rho <= high
    assert 0.92 <= covered / 400 <= 0.98
