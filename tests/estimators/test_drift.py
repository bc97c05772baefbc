"""Drift model (steerloop.estimators.drift): batch least squares, lag statistics, noise."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.errors import NotReadyError, NumericalError, ShapeError
from steerloop.estimators.drift import (
    EIV_KEEP,
    EQUILIBRIUM_MAX_CONDITION,
    DriftConfig,
    DriftModel,
    DriftState,
    correct_for_noise,
    equilibrium_of,
)
from steerloop.estimators.rls import LeastSquaresStats, RecursiveLeastSquares

FloatArray = NDArray[np.float64]
Transition = tuple[FloatArray, FloatArray]

SIGMA = 0.05


def known_drift() -> tuple[FloatArray, FloatArray, FloatArray]:
    """A stable, non-symmetric A with eigenvalues −0.3, −0.55, −0.8 and x* = (0.6, 0.5, 0.4)."""
    angle = 0.4
    rotation = np.array(
        [
            [math.cos(angle), -math.sin(angle), 0.0],
            [math.sin(angle), math.cos(angle), 0.0],
            [0.0, 0.0, 1.0],
        ]
    )
    basis = rotation @ np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]])
    A = basis @ np.diag([-0.3, -0.55, -0.8]) @ np.linalg.inv(basis)
    equilibrium = np.array([0.6, 0.5, 0.4])
    return A, -A @ equilibrium, equilibrium


def simulate(
    rng: np.random.Generator,
    A: FloatArray,
    b: FloatArray,
    *,
    loops: int,
    steps: int,
    sigma: float = SIGMA,
    dt: float = 1.0,
) -> list[list[Transition]]:
    """Euler–Maruyama transitions x → x + (Ax + b)Δt + σ√Δt ε, one list per loop.

    Each loop starts at a uniform point of [0, 1]^d, like a refinement loop on a new task.
    """
    d = A.shape[0]
    out: list[list[Transition]] = []
    for _ in range(loops):
        x: FloatArray = rng.uniform(0.0, 1.0, size=(d,))
        loop: list[Transition] = []
        for _ in range(steps):
            x_next = x + (A @ x + b) * dt + sigma * math.sqrt(dt) * rng.standard_normal(d)
            loop.append((x, x_next))
            x = x_next
        out.append(loop)
    return out


def learn(loops: list[list[Transition]], config: DriftConfig) -> DriftModel:
    model = DriftModel(config)
    for loop in loops:
        for previous, current in loop:
            model.update(previous, current)
        model.break_chain()
    return model


def weights_of(n: int, forgetting: float) -> FloatArray:
    return np.asarray(forgetting ** np.arange(n - 1, -1, -1.0), dtype=np.float64)


def regression_data(transitions: list[Transition], dt: float) -> tuple[FloatArray, FloatArray]:
    X = np.array([np.append(x0, 1.0) for x0, _ in transitions])
    Z = np.array([(x1 - x0) / dt for x0, x1 in transitions])
    return X, Z


def assert_same_state(a: DriftState, b: DriftState) -> None:
    """Exact equality of two snapshots (a promise of the round trip)."""
    for name in ("information", "cross", "target_scatter", "weight", "weight_sq", "count"):
        assert np.array_equal(getattr(a.stats, name), getattr(b.stats, name)), name
    assert np.array_equal(a.lag_scatter, b.lag_scatter)
    assert a.lag_weight == b.lag_weight
    assert (a.last is None) == (b.last is None)
    if a.last is not None and b.last is not None:
        assert np.array_equal(a.last, b.last)


# ----------------------------------------------------------------------------- least squares


def test_recovers_known_drift_within_10_percent() -> None:
    """σ = 0.05, 300 Euler–Maruyama transitions (60 loops × 5 steps), 10 seeded replications.

    The median over replications of ‖Â − A‖_F/‖A‖_F and of |ρ̂ − ρ|/ρ (ρ = −max Re eig A =
    0.3) must be below 10 % (figures in the message). The fit is exact least squares (next
    test), so what is left is sampling error.
    """
    A, b, _ = known_drift()
    a_errors, rate_errors = [], []
    for seed in range(10):
        rng = np.random.default_rng(1000 + seed)
        model = learn(simulate(rng, A, b, loops=60, steps=5), DriftConfig(3, forgetting=1.0))
        assert model.count == 300 and model.ready
        fit = model.fit()
        a_errors.append(float(np.linalg.norm(fit.A - A) / np.linalg.norm(A)))
        rate = -float(np.max(np.linalg.eigvals(A).real))
        rate_hat = -float(np.max(np.linalg.eigvals(fit.A).real))
        rate_errors.append(abs(rate_hat - rate) / rate)
    a_median, rate_median = float(np.median(a_errors)), float(np.median(rate_errors))
    figures = (
        f"median A error {a_median:.1%}, median rate error {rate_median:.1%}; per replication "
        f"A {[round(e, 3) for e in a_errors]}, rate {[round(e, 3) for e in rate_errors]}"
    )
    assert a_median < 0.10, figures
    assert rate_median < 0.10, figures


@pytest.mark.parametrize(("forgetting", "dt"), [(1.0, 1.0), (0.98, 0.5)])
def test_fit_is_weighted_ridge_least_squares_of_increments(forgetting: float, dt: float) -> None:
    """[Aᵀ; bᵀ] = (Σ w φφᵀ + I/p₀)⁻¹ Σ w φ zᵀ, φ = [y; 1], z = Δy/Δt, to relative 1e-10."""
    A, b, _ = known_drift()
    p0 = 100.0
    loops = simulate(np.random.default_rng(5), A, b, loops=1, steps=300, dt=dt)
    config = DriftConfig(3, forgetting=forgetting, dt=dt, initial_covariance=p0)
    fit = learn(loops, config).fit()
    X, Z = regression_data(loops[0], dt)
    w = weights_of(len(X), forgetting)
    theta = np.linalg.solve((X.T * w) @ X + np.eye(4) / p0, (X.T * w) @ Z)
    np.testing.assert_allclose(fit.A, theta[:3].T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.b, theta[3], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.F, np.eye(3) + theta[:3].T * dt, rtol=1e-10, atol=1e-12)
    residuals = Z - X @ theta
    n_eff = w.sum() ** 2 / (w * w).sum()
    expected = (residuals.T * w) @ residuals / (w.sum() * (1.0 - 4 / n_eff))
    assert fit.residual_covariance is not None and fit.step_covariance is not None
    np.testing.assert_allclose(fit.residual_covariance, expected, rtol=1e-9)
    np.testing.assert_allclose(fit.step_covariance, expected * dt * dt, rtol=1e-9)
    assert fit.effective_size == pytest.approx(n_eff, rel=1e-12)
    parameters = fit.parameter_covariance()
    assert parameters is not None
    np.testing.assert_allclose(parameters[0], expected, rtol=1e-9)
    np.testing.assert_allclose(
        parameters[1], fit.fit.covariance_scale * fit.fit.inverse_information, rtol=1e-15
    )


def test_step_covariance_recovers_sigma_squared() -> None:
    """Noise-free scores, 4,000 transitions (40 loops × 100, λ = 1): Cov(ε) = σ²I within 10 %
    of σ² entrywise (sampling error of 4,000 residuals: about 2 %)."""
    A, b, _ = known_drift()
    fit = learn(
        simulate(np.random.default_rng(8), A, b, loops=40, steps=100),
        DriftConfig(3, forgetting=1.0),
    ).fit()
    assert fit.step_covariance is not None
    np.testing.assert_allclose(fit.step_covariance, SIGMA**2 * np.eye(3), atol=0.1 * SIGMA**2)


def test_docstring_example_learns_a_noiseless_drift() -> None:
    model = DriftModel(DriftConfig(2, forgetting=1.0, warmup=3))
    A, b = -0.5 * np.eye(2), np.array([0.25, 0.25])
    for x in ([0.0, 1.0], [1.0, 0.0], [0.2, 0.3], [0.9, 0.6], [0.4, 0.8]):
        x0 = np.array(x)
        model.update(x0, x0 + A @ x0 + b)
    fit = model.fit()  # five points and a ridge prior p₀ = 10⁴: exact to the 3 decimals shown
    np.testing.assert_allclose(fit.A, A, atol=5e-4)
    assert fit.equilibrium is not None
    np.testing.assert_allclose(fit.equilibrium, [0.5, 0.5], atol=5e-4)


def test_equilibrium_and_predict() -> None:
    A, b, equilibrium = known_drift()
    rng = np.random.default_rng(9)
    fit = learn(simulate(rng, A, b, loops=60, steps=5), DriftConfig(3, forgetting=1.0)).fit()
    x_star = fit.equilibrium
    assert x_star is not None
    np.testing.assert_allclose(fit.A @ x_star + fit.b, 0.0, atol=1e-12)
    np.testing.assert_allclose(x_star, equilibrium, atol=0.05)  # near the true x*
    x = np.array([0.2, 0.4, 0.9])
    np.testing.assert_allclose(fit.predict(x), x + fit.A @ x + fit.b, rtol=1e-14, atol=1e-15)
    with pytest.raises(ShapeError):
        fit.predict(np.ones(2))


@pytest.mark.parametrize(
    ("A", "expected_none"),
    [
        (np.array([[-0.5, 0.0], [0.0, 0.0]]), True),  # singular
        (np.array([[-0.5, 0.5], [-0.5, 0.5]]), True),  # singular, not diagonal
        (np.array([[-1.0, 0.0], [0.0, -1e-9]]), True),  # cond = 1e9 > 1e8
        (np.array([[-1.0, 0.0], [0.0, -1e-7]]), False),  # cond = 1e7
        (np.zeros((2, 2)), True),
        (np.array([[np.nan, 0.0], [0.0, -1.0]]), True),
    ],
)
def test_equilibrium_none_when_ill_conditioned(A: FloatArray, expected_none: bool) -> None:
    b = np.array([0.1, 0.2])
    x_star = equilibrium_of(A, b)
    assert (x_star is None) == expected_none
    if x_star is not None:
        assert np.linalg.cond(A) <= EQUILIBRIUM_MAX_CONDITION
        np.testing.assert_allclose(A @ x_star, -b, rtol=1e-12)
    assert equilibrium_of(-np.eye(2), np.array([np.inf, 0.0])) is None


def test_constant_input_has_undefined_r2_and_a_zero_drift() -> None:
    """1,000 constant transitions: R² is None (never −5e74), A = 0 and b = 0 exactly."""
    model = DriftModel(DriftConfig(2, forgetting=0.98))
    x = np.array([0.4, 0.7])
    for _ in range(1000):
        model.update(x, x)
    fit = model.fit()
    assert fit.r2 is None
    assert np.array_equal(fit.A, np.zeros((2, 2))) and np.array_equal(fit.b, np.zeros(2))
    assert fit.residual_covariance is not None
    assert np.array_equal(fit.residual_covariance, np.zeros((2, 2)))


def test_fit_with_prior_and_caching() -> None:
    A, b, _ = known_drift()
    loops = simulate(np.random.default_rng(3), A, b, loops=8, steps=5)
    config = DriftConfig(3, forgetting=1.0)
    pooled = learn(loops[:4], config).stats
    own = learn(loops[4:], config)
    both = learn(loops, config)
    assert own.fit() is own.fit()  # cached until the next update
    np.testing.assert_allclose(own.fit(pooled).A, both.fit().A, rtol=1e-10, atol=1e-12)
    assert own.fit(pooled) is not own.fit(pooled)  # fits with a prior are not cached
    assert own.fit().effective_size == 20.0
    empty = DriftModel(config)
    np.testing.assert_allclose(empty.fit(pooled).A, learn(loops[:4], config).fit().A, rtol=1e-12)
    with pytest.raises(NotReadyError):
        empty.fit()


def test_ready_needs_warmup_and_effective_transitions() -> None:
    model = DriftModel(DriftConfig(2, forgetting=1.0, warmup=5))
    rng = np.random.default_rng(1)
    with pytest.raises(NotReadyError) as info:
        model.require_ready("drift")
    assert (info.value.needed, info.value.have) == (5, 0)
    for count in range(1, 8):
        model.update(rng.random(2), rng.random(2))
        assert model.ready == (count >= 5)
    model.require_ready("drift")
    # The effective size must exceed d + 1 as well: with λ = 0.5 it never exceeds 3.
    fast = DriftModel(DriftConfig(2, forgetting=0.5, warmup=0))
    for _ in range(50):
        fast.update(rng.random(2), rng.random(2))
    assert fast.stats.effective_size < 3.0 and not fast.ready
    assert fast.fit().residual_covariance is None and fast.fit().parameter_covariance() is None


# ----------------------------------------------------------------------------- lag statistics


def test_lag_covariance_matches_its_batch_definition() -> None:
    """C₁ = Σ_k w_k e_k e_{k−1}ᵀ / Σ_k w_k over consecutive transitions, e at the fitted Θ.

    Pairs across a loop boundary, across ``break_chain`` and across a transition that does
    not start where the last one ended are not pairs. Checked to relative 1e-9, with the
    weight W₁ = Σ w_k.
    """
    A, b, _ = known_drift()
    lam, dt = 0.97, 0.5
    loops = simulate(np.random.default_rng(14), A, b, loops=3, steps=40, dt=dt)
    model = DriftModel(DriftConfig(3, forgetting=lam, dt=dt))
    transitions: list[Transition] = []
    continues: list[bool] = []
    for loop_index, loop in enumerate(loops):
        for step, (x0, x1) in enumerate(loop):
            if loop_index == 1 and step == 20:
                model.break_chain()  # e.g. a missing score
            model.update(x0, x1)
            continues.append(step > 0 and not (loop_index == 1 and step == 20))
            transitions.append((x0, x1))
    fit = model.fit()
    X, Z = regression_data(transitions, dt)
    residuals = Z - X @ fit.fit.theta
    w = weights_of(len(X), lam)
    pairs = [k for k in range(len(X)) if continues[k]]
    assert len(pairs) == 3 * 39 - 1
    scatter = sum(w[k] * np.outer(residuals[k], residuals[k - 1]) for k in pairs)
    weight = float(sum(w[k] for k in pairs))
    assert fit.lag_weight == pytest.approx(weight, rel=1e-12)
    assert fit.lag_covariance is not None and fit.step_lag_covariance is not None
    np.testing.assert_allclose(fit.lag_covariance, scatter / weight, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fit.step_lag_covariance, scatter / weight * dt * dt, rtol=1e-9)


def test_lag_covariance_needs_two_pairs() -> None:
    model = DriftModel(DriftConfig(1, forgetting=1.0))
    path = [0.1, 0.3, 0.4, 0.45]
    for x0, x1 in itertools.pairwise(path):
        model.update([x0], [x1])
        fit = model.fit()
        assert (fit.lag_covariance is None) == (fit.lag_weight < 2.0)
    assert model.fit().lag_weight == 2.0
    unrelated = DriftModel(DriftConfig(1, forgetting=1.0))
    for x0 in (0.1, 0.5, 0.9, 0.2):
        unrelated.update([x0], [x0 + 0.01])  # no transition starts where the last one ended
    assert unrelated.fit().lag_weight == 0.0 and unrelated.fit().lag_covariance is None


# ----------------------------------------------------------------------------- noise correction


def raw_stats(rng: np.random.Generator, n: int, noise: FloatArray) -> LeastSquaresStats:
    rls = RecursiveLeastSquares(len(noise) + 1, len(noise))
    for _ in range(n):
        phi = np.append(rng.uniform(0.0, 1.0, len(noise)), 1.0)
        rls.update(phi, rng.normal(size=len(noise)))
    return rls.stats


def centred_information(stats: LeastSquaresStats, d: int) -> FloatArray:
    J = stats.information
    return np.asarray(J[:d, :d] - np.outer(J[:d, d], J[d, :d]) / J[d, d], dtype=np.float64)


def test_correction_is_the_closed_form_when_the_signal_is_strong() -> None:
    """J_c = J − W diag(R, 0), H_c = H + W [diag(R); 0]/Δt when s = 1 (eq. 3)."""
    rng = np.random.default_rng(2)
    noise = np.array([1e-3, 4e-3])
    stats = raw_stats(rng, 100, noise)
    corrected = correct_for_noise(stats, noise, 0.5)
    expected_information = stats.information.copy()
    expected_information[:2, :2] -= stats.weight * np.diag(noise)
    expected_cross = stats.cross.copy()
    expected_cross[:2] += stats.weight * np.diag(noise) / 0.5
    np.testing.assert_allclose(corrected.information, expected_information, rtol=1e-15)
    np.testing.assert_allclose(corrected.cross, expected_cross, rtol=1e-15)
    assert np.array_equal(corrected.target_scatter, stats.target_scatter)
    assert (corrected.weight, corrected.weight_sq, corrected.count) == (
        stats.weight,
        stats.weight_sq,
        stats.count,
    )
    unchanged = correct_for_noise(stats, np.zeros(2), 1.0)
    assert np.array_equal(unchanged.information, stats.information)
    assert np.array_equal(unchanged.cross, stats.cross)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 3),
    log_noise=st.floats(-6.0, 1.0),
    spread=st.floats(1e-3, 1.0),
    centre=st.floats(0.0, 1.0),
)
def test_correction_keeps_half_of_the_centred_information(
    seed: int, d: int, log_noise: float, spread: float, centre: float
) -> None:
    """J_xx − J_x1J_1x/J_11 keeps at least EIV_KEEP of itself in every direction (eq. 3).

    The regressors sit around ``centre`` with sd ``spread``: with a large noise R the full
    correction would leave no information about A given b (the bug this guards against:
    a cap on the uncentred J_xx never acts when the scores sit away from 0).
    """
    rng = np.random.default_rng(seed)
    noise = 10.0**log_noise * rng.uniform(0.5, 1.0, d)
    rls = RecursiveLeastSquares(d + 1, d)
    for _ in range(30):
        rls.update(np.append(centre + spread * rng.normal(size=d), 1.0), rng.normal(size=d))
    stats = rls.stats
    corrected = correct_for_noise(stats, noise, 1.0)
    before = centred_information(stats, d)
    after = centred_information(corrected, d)
    root = np.linalg.cholesky(before + 1e-12 * np.eye(d))
    kept = np.linalg.solve(root, np.linalg.solve(root, after).T)
    assert np.linalg.eigvalsh(0.5 * (kept + kept.T)).min() >= EIV_KEEP - 1e-6
    # The same share s ∈ (0, 1] of W·R leaves every diagonal entry (recovered by a subtraction
    # that loses up to eps·J_ii/(W R_ii) of relative precision: checked to 1e-6).
    removed = stats.information[:d, :d] - corrected.information[:d, :d]
    share = removed[0, 0] / (stats.weight * noise[0])
    assert 0.0 < share <= 1.0 + 1e-6
    np.testing.assert_allclose(removed, share * stats.weight * np.diag(noise), rtol=1e-6)


def simulate_noisy_loops(
    rng: np.random.Generator, runs: int, loops: int, steps: int, noise: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Scores y = x + v of x_{t+1} = F x_t + c + w, loops from uniform starts; (runs, loops,
    steps + 1, d) and the true A."""
    A = np.array([[-0.3, 0.1], [0.05, -0.5]])
    c = -A @ np.array([0.6, 0.4])
    F = np.eye(2) + A
    x = rng.uniform(0.0, 1.0, (runs, loops, 2))
    scores = np.empty((runs, loops, steps + 1, 2))
    for t in range(steps + 1):
        scores[:, :, t] = x + np.sqrt(noise) * rng.standard_normal(x.shape)
        x = x @ F.T + c + 0.01 * rng.standard_normal(x.shape)
    return scores, A


def test_correction_removes_most_of_the_bias_of_raw_scores() -> None:
    """Monte Carlo: 200 sessions of 10 loops × 8 steps, R = diag(0.002, 0.004), Q = 1e-4 I.

    Raw scores put the noise in the regressor: the mean of Â is biased (‖bias‖_F ≈ 0.14,
    towards faster decay); with the true R the corrected fit's bias must be below a quarter
    of it (measured ≈ 0.01, about two standard errors of the Monte Carlo mean).
    """
    noise = np.array([2e-3, 4e-3])
    scores, A = simulate_noisy_loops(np.random.default_rng(0), 200, 10, 8, noise)
    plain, corrected = [], []
    for session in scores:
        model = DriftModel(DriftConfig(2, forgetting=1.0))
        for loop in session:
            for previous, current in itertools.pairwise(loop):
                model.update(previous, current)
            model.break_chain()
        plain.append(model.fit().A)
        corrected.append(model.fit(None, noise).A)
    plain_bias = np.mean(plain, axis=0) - A
    corrected_bias = np.mean(corrected, axis=0) - A
    standard_error = np.std(plain, axis=0) / math.sqrt(len(plain))
    figures = (
        f"bias raw {np.round(plain_bias, 4).tolist()}, corrected "
        f"{np.round(corrected_bias, 4).tolist()}"
    )
    assert np.linalg.norm(plain_bias) > 0.1, figures
    assert abs(plain_bias[0, 0]) > 10 * standard_error[0, 0], figures
    assert plain_bias[0, 0] < 0 and plain_bias[1, 1] < 0, figures  # faster decay
    assert np.linalg.norm(corrected_bias) < 0.25 * np.linalg.norm(plain_bias), figures


def test_correction_stays_bounded_where_the_signal_is_weaker_than_the_noise() -> None:
    """A strategy sitting at its equilibrium 0.5: Var x = 2e-5 ≪ R = 1e-3 (100 runs × 100).

    The full correction would leave almost no information about A given b; the cap keeps
    every estimate stable and its spread comparable to the raw fit's (without a centred cap
    the estimates ranged over ±50).
    """
    rng = np.random.default_rng(7)
    runs, steps, a, noise = 100, 100, -0.3, 1e-3
    x = np.full(runs, 0.5)
    scores = np.empty((steps + 1, runs))
    for t in range(steps + 1):
        scores[t] = x + math.sqrt(noise) * rng.standard_normal(runs)
        x = x + a * (x - 0.5) + math.sqrt(1e-5) * rng.standard_normal(runs)
    plain, corrected = [], []
    for run in scores.T:
        model = DriftModel(DriftConfig(1, forgetting=1.0))
        for previous, current in itertools.pairwise(run):
            model.update([previous], [current])
        plain.append(model.fit().A[0, 0])
        corrected.append(model.fit(None, np.array([noise])).A[0, 0])
    figures = f"raw sd {np.std(plain):.3f}, corrected range [{min(corrected)}, {max(corrected)}]"
    assert max(corrected) < 0.0, figures
    assert min(corrected) > -2.0, figures
    assert np.std(corrected) < 3.0 * np.std(plain), figures


def test_corrected_fit_reports_the_raw_residuals_at_its_parameters() -> None:
    """With R given, C_e and C₁ are those of the raw data at the corrected Θ (eq. 2).

    The corrected statistics' own residual scatter differs by s (R − F R Fᵀ)/Δt²; the
    process noise Q = Cov(ε) − R − F R Fᵀ needs the raw one.
    """
    noise = np.array([2e-3, 4e-3])
    scores, _ = simulate_noisy_loops(np.random.default_rng(3), 1, 20, 10, noise)
    model = DriftModel(DriftConfig(2, forgetting=0.99, dt=0.5))
    transitions: list[Transition] = []
    for loop in scores[0]:
        for previous, current in itertools.pairwise(loop):
            model.update(previous, current)
            transitions.append((previous, current))
        model.break_chain()
    corrected = model.fit(None, noise)
    plain = model.fit()
    assert not np.allclose(corrected.A, plain.A, rtol=0.02)
    X, Z = regression_data(transitions, 0.5)
    residuals = Z - X @ corrected.fit.theta
    w = weights_of(len(X), 0.99)
    scatter = (residuals.T * w) @ residuals
    np.testing.assert_allclose(corrected.fit.residual_scatter, scatter, rtol=1e-9)
    n_eff = w.sum() ** 2 / (w * w).sum()
    assert corrected.step_covariance is not None
    np.testing.assert_allclose(
        corrected.step_covariance, scatter / (w.sum() * (1 - 3 / n_eff)) * 0.25, rtol=1e-9
    )


# ----------------------------------------------------------------------------- validation


def test_config_validation() -> None:
    for kwargs in (
        {"dim": 0},
        {"dim": 1, "dt": 0.0},
        {"dim": 1, "dt": math.inf},
        {"dim": 1, "warmup": -1},
        {"dim": 1, "forgetting": 0.0},
        {"dim": 1, "forgetting": 1.2},
    ):
        with pytest.raises(ValueError):
            DriftConfig(**kwargs)


def test_update_validates_and_leaves_state_unchanged() -> None:
    model = DriftModel(DriftConfig(2, warmup=1))
    model.update(np.array([0.1, 0.2]), np.array([0.3, 0.4]))
    before = model.to_state()
    with pytest.raises(ShapeError):
        model.update(np.ones(3), np.ones(2))
    with pytest.raises(ShapeError):
        model.update(np.ones(2), np.ones((2, 1)))
    with pytest.raises(NumericalError):
        model.update(np.array([np.nan, 0.2]), np.array([0.3, 0.4]))
    with pytest.raises(NumericalError):
        model.update(np.array([0.3, 0.4]), np.array([np.inf, 0.4]))
    assert_same_state(model.to_state(), before)


# ----------------------------------------------------------------------------- snapshots


def test_round_trip_continues_bit_identically() -> None:
    A, b, _ = known_drift()
    config = DriftConfig(3, forgetting=0.95, dt=0.5, warmup=4, initial_covariance=10.0)
    transitions = [
        t
        for loop in simulate(np.random.default_rng(12), A, b, loops=4, steps=30, dt=0.5)
        for t in loop
    ]
    reference = DriftModel(config)
    first = DriftModel(config)
    for k, (x0, x1) in enumerate(transitions):
        reference.update(x0, x1)
        if k < 45:  # mid-loop: the restored model continues the chain
            first.update(x0, x1)
    restored = DriftModel.from_state(first.to_state(), config)
    assert_same_state(restored.to_state(), first.to_state())
    for x0, x1 in transitions[45:]:
        restored.update(x0, x1)
    assert_same_state(restored.to_state(), reference.to_state())
    noise = np.array([1e-3, 2e-3, 3e-3])
    for got, want in (
        (restored.fit(), reference.fit()),
        (restored.fit(None, noise), reference.fit(None, noise)),
    ):
        assert np.array_equal(got.A, want.A) and np.array_equal(got.b, want.b)
        assert got.lag_covariance is not None and want.lag_covariance is not None
        assert np.array_equal(got.lag_covariance, want.lag_covariance)


def test_from_state_dimension_checks() -> None:
    model = DriftModel(DriftConfig(2))
    model.update([0.1, 0.2], [0.2, 0.3])
    state = model.to_state()
    with pytest.raises(ShapeError):
        DriftModel.from_state(state, DriftConfig(3))
    bad_lag = DriftState(state.stats, np.zeros((4, 4)), 0.0, None)
    with pytest.raises(ShapeError):
        DriftModel.from_state(bad_lag, DriftConfig(2))


# ----------------------------------------------------------------------------- properties

_states = st.floats(-2.0, 2.0, allow_subnormal=False)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3).flatmap(
        lambda d: hnp.arrays(
            np.float64, st.tuples(st.integers(3, 30), st.just(d)), elements=_states
        )
    ),
    st.sampled_from([0.9, 0.98, 1.0]),
    st.booleans(),
)
def test_invariants(path: FloatArray, lam: float, corrected: bool) -> None:
    """R² in [0, 1] or None; E symmetric PSD; the lag weight ≤ the transitions' weight."""
    d = path.shape[1]
    model = DriftModel(DriftConfig(d, forgetting=lam, warmup=2))
    for previous, current in itertools.pairwise(path):
        model.update(previous, current)
    fit = model.fit(None, np.full(d, 1e-3) if corrected else None)
    assert fit.r2 is None or 0.0 <= fit.r2 <= 1.0
    assert fit.lag_weight <= model.stats.weight
    scatter = fit.fit.residual_scatter
    assert np.array_equal(scatter, scatter.T)
    assert (np.diag(scatter) >= 0.0).all()
    # E = Z − ΘᵀH − HᵀΘ + ΘᵀJΘ is PSD up to the rounding of its terms (scale of Z).
    rounding = 1e-10 * max(1.0, float(np.abs(model.stats.target_scatter).max()))
    assert np.linalg.eigvalsh(scatter).min() >= -rounding
