"""Recursive least squares (steerloop.estimators.rls): closed forms, windup, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from steerloop.errors import NotReadyError, NumericalError, ShapeError
from steerloop.estimators.rls import (
    LeastSquaresFit,
    LeastSquaresStats,
    RecursiveLeastSquares,
    residual_scatter,
    solve_stats,
)

FloatArray = NDArray[np.float64]


def weights_of(n: int, forgetting: float) -> FloatArray:
    return np.asarray(forgetting ** np.arange(n - 1, -1, -1.0), dtype=np.float64)


def weighted_ridge(
    X: FloatArray, Z: FloatArray, forgetting: float, p0: float
) -> tuple[FloatArray, FloatArray]:
    """Θ = (Σ w φφᵀ + I/p₀)⁻¹ Σ w φ zᵀ and P = (Σ w φφᵀ + I/p₀)⁻¹, w_k = λ^{n−k}."""
    w = weights_of(X.shape[0], forgetting)
    information = (X.T * w) @ X + np.eye(X.shape[1]) / p0
    theta = np.asarray(np.linalg.solve(information, (X.T * w) @ Z), dtype=np.float64)
    return theta, np.asarray(np.linalg.inv(information), dtype=np.float64)


def run(rls: RecursiveLeastSquares, X: FloatArray, Z: FloatArray) -> RecursiveLeastSquares:
    for phi, z in zip(X, Z, strict=True):
        rls.update(phi, z)
    return rls


def relative(error: float, scale: float) -> float:
    return error / scale if scale > 0.0 else error


def assert_same_stats(a: LeastSquaresStats, b: LeastSquaresStats) -> None:
    """Exact equality (a snapshot promise), field by field."""
    for name in ("information", "cross", "target_scatter"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.weight, a.weight_sq, a.count) == (b.weight, b.weight_sq, b.count)


def assert_close_stats(a: LeastSquaresStats, b: LeastSquaresStats, rel: float = 1e-12) -> None:
    for name in ("information", "cross", "target_scatter"):
        x, y = getattr(a, name), getattr(b, name)
        scale = max(1.0, float(np.abs(y).max()))
        np.testing.assert_allclose(x, y, rtol=0, atol=rel * scale, err_msg=name)
    assert a.weight == pytest.approx(b.weight, rel=rel)
    assert a.weight_sq == pytest.approx(b.weight_sq, rel=rel)
    assert a.count == b.count


# Bounded floats without subnormal-scale values (relative error is meaningless under underflow).
_entries = st.floats(-1.0, 1.0, allow_subnormal=False).map(lambda v: 0.0 if abs(v) < 1e-6 else v)


@st.composite
def ridge_problems(draw: st.DrawFn) -> tuple[FloatArray, FloatArray, float, float]:
    n_features = draw(st.integers(1, 6))
    n_outputs = draw(st.integers(1, 4))
    n = draw(st.integers(1, 40))
    X = draw(hnp.arrays(np.float64, (n, n_features), elements=_entries))
    Z = draw(hnp.arrays(np.float64, (n, n_outputs), elements=_entries))
    p0 = 10.0 ** draw(st.floats(-2.0, 2.0))
    forgetting = draw(st.sampled_from([1.0, 0.99, 0.9, 0.5]))
    return X, Z, p0, forgetting


# ----------------------------------------------------------------------------- closed forms


@settings(max_examples=80, deadline=None)
@given(ridge_problems())
def test_equals_weighted_ridge_regression_on_every_prefix(
    problem: tuple[FloatArray, FloatArray, float, float],
) -> None:
    """Θ_k and P_k equal the λ-weighted ridge fit (penalty 1/p₀, never forgotten), every k.

    The Θ error is relative to the largest ‖Θ_j‖_F, j ≤ k (targets may cancel so that a later
    Θ_k is ~0); both must stay below 1e-10.
    """
    X, Z, p0, forgetting = problem
    n, p = X.shape
    rls = RecursiveLeastSquares(p, Z.shape[1], forgetting=forgetting, initial_covariance=p0)
    scale = worst = 0.0
    for k in range(1, n + 1):
        rls.update(X[k - 1], Z[k - 1])
        theta, covariance = weighted_ridge(X[:k], Z[:k], forgetting, p0)
        fit = rls.fit()
        scale = max(scale, float(np.linalg.norm(theta)))
        worst = max(worst, relative(float(np.linalg.norm(fit.theta - theta)), scale))
        cov_error = relative(
            float(np.linalg.norm(fit.inverse_information - covariance)),
            float(np.linalg.norm(covariance)),
        )
        assert cov_error < 1e-10, f"step {k}: covariance relative error {cov_error:.2e}"
    assert worst < 1e-10, f"worst prefix relative error {worst:.2e}"
    assert rls.count == n


@pytest.mark.parametrize("forgetting", [1.0, 0.95])
def test_long_run_equals_weighted_ridge_to_1e_12(forgetting: float) -> None:
    """400 noisy observations with an intercept: Θ and P to relative 1e-12."""
    rng = np.random.default_rng(20240611)
    n, p, m, p0 = 400, 4, 3, 10.0
    X = rng.uniform(-1.0, 1.0, (n, p))
    X[:, -1] = 1.0
    Z = X @ rng.normal(size=(p, m)) + 0.1 * rng.normal(size=(n, m))
    rls = RecursiveLeastSquares(p, m, forgetting=forgetting, initial_covariance=p0)
    for k in range(1, n + 1):
        rls.update(X[k - 1], Z[k - 1])
        if k % 50 == 0 or k < 6:
            theta, covariance = weighted_ridge(X[:k], Z[:k], forgetting, p0)
            fit = rls.fit()
            error = np.linalg.norm(fit.theta - theta) / np.linalg.norm(theta)
            assert error < 1e-12, f"step {k}: relative error {error:.2e}"
            cov_error = np.linalg.norm(fit.inverse_information - covariance) / np.linalg.norm(
                covariance
            )
            assert cov_error < 1e-12, f"step {k}: covariance relative error {cov_error:.2e}"


def test_equals_the_textbook_covariance_form_recursion() -> None:
    """λ = 1: the information form gives the Θ and P of the covariance-form RLS.

    g = Pφ, k = g/(λ + φᵀg), Θ ← Θ + k eᵀ (e = z − Θᵀφ), P ← (P − g gᵀ/(λ + φᵀg))/λ, from
    Θ₀ = 0, P₀ = p₀I; agreement to relative 1e-10 over 500 steps.
    """
    rng = np.random.default_rng(17)
    p, m, p0, lam = 3, 2, 100.0, 1.0
    rls = RecursiveLeastSquares(p, m, forgetting=lam, initial_covariance=p0)
    theta = np.zeros((p, m))
    P = p0 * np.eye(p)
    truth = rng.normal(size=(p, m))
    for step in range(1, 501):
        phi = np.append(rng.normal(size=p - 1), 1.0)
        z = truth.T @ phi + 0.05 * rng.normal(size=m)
        gain_vector = P @ phi
        denominator = lam + phi @ gain_vector
        theta = theta + np.outer(gain_vector / denominator, z - theta.T @ phi)
        P = (P - np.outer(gain_vector, gain_vector) / denominator) / lam
        rls.update(phi, z)
        if step in (1, 2, 3, 10, 100, 500):
            fit = rls.fit()
            theta_error = np.linalg.norm(fit.theta - theta) / np.linalg.norm(theta)
            p_error = np.linalg.norm(fit.inverse_information - P) / np.linalg.norm(P)
            assert theta_error < 1e-10, f"step {step}: Θ relative error {theta_error:.2e}"
            assert p_error < 1e-10, f"step {step}: P relative error {p_error:.2e}"


def test_prior_statistics_act_as_pseudo_observations() -> None:
    """fit(prior) = the fit of one estimator that saw both data sets (λ = 1), prior unforgotten."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(60, 3))
    Z = rng.normal(size=(60, 2))
    pooled = run(RecursiveLeastSquares(3, 2, initial_covariance=50.0), X[:40], Z[:40]).stats
    own = run(RecursiveLeastSquares(3, 2, initial_covariance=50.0), X[40:], Z[40:])
    both = run(RecursiveLeastSquares(3, 2, initial_covariance=50.0), X, Z)
    with_prior = own.fit(pooled)
    np.testing.assert_allclose(with_prior.theta, both.fit().theta, rtol=1e-12, atol=1e-14)
    assert with_prior.weight == 60.0 and with_prior.effective_size == pytest.approx(60.0)
    assert own.fit() is own.fit()  # the plain fit is cached
    assert own.fit().weight == 20.0  # and a prior does not leak into it
    # A prior alone is enough to fit before any own observation.
    empty = RecursiveLeastSquares(3, 2, initial_covariance=50.0)
    np.testing.assert_allclose(
        empty.fit(pooled).theta, weighted_ridge(X[:40], Z[:40], 1.0, 50.0)[0], rtol=1e-12
    )
    with pytest.raises(NotReadyError):
        empty.fit()


# ----------------------------------------------------------------------------- stats algebra


def stats_of(X: FloatArray, Z: FloatArray, forgetting: float) -> LeastSquaresStats:
    return run(RecursiveLeastSquares(X.shape[1], Z.shape[1], forgetting=forgetting), X, Z).stats


@settings(max_examples=60, deadline=None)
@given(
    problem=ridge_problems(),
    split=st.floats(0.0, 1.0),
    factor=st.floats(0.01, 100.0),
)
def test_stats_plus_and_scaled_algebra(
    problem: tuple[FloatArray, FloatArray, float, float], split: float, factor: float
) -> None:
    """λ^{n₂}·stats(first part) + stats(second part) = stats(all); scaling multiplies weights."""
    X, Z, _, lam = problem
    n = X.shape[0]
    cut = round(split * n)
    whole = stats_of(X, Z, lam)
    first = stats_of(X[:cut], Z[:cut], lam)
    second = stats_of(X[cut:], Z[cut:], lam)
    assert_close_stats(first.scaled(lam ** (n - cut)).plus(second), whole)
    zero = LeastSquaresStats.zeros(X.shape[1], Z.shape[1])
    assert_close_stats(whole.plus(zero), whole, rel=0.0)
    assert_close_stats(first.plus(second), second.plus(first), rel=0.0)
    assert_close_stats(whole.scaled(1.0), whole, rel=0.0)
    assert_close_stats(whole.scaled(factor).scaled(1.0 / factor), whole, rel=1e-14)
    scaled = whole.scaled(factor)
    w = weights_of(n, lam)
    assert scaled.weight == pytest.approx(factor * w.sum(), rel=1e-12)
    assert scaled.weight_sq == pytest.approx(factor**2 * (w * w).sum(), rel=1e-12)
    assert scaled.count == n  # the count is of observations, not of weight
    assert scaled.effective_size == pytest.approx(whole.effective_size, rel=1e-12)
    np.testing.assert_allclose(
        whole.information, (X.T * w) @ X, rtol=0, atol=1e-12 * max(1.0, w.sum())
    )
    assert zero.effective_size == 0.0


# ----------------------------------------------------------------------------- residuals


@pytest.mark.parametrize("forgetting", [1.0, 0.9])
def test_residual_covariance_equals_the_batch_weighted_one(forgetting: float) -> None:
    """C_e = Σ w e eᵀ / (W (1 − p/n_eff)) with e = z − Θᵀφ at the fitted Θ (to 1e-10)."""
    rng = np.random.default_rng(31)
    n, p, m = 150, 3, 2
    X = np.column_stack([rng.normal(size=(n, p - 1)), np.ones(n)])
    noise = rng.normal(size=(n, m)) @ np.array([[0.2, 0.0], [0.1, 0.3]])
    Z = X @ rng.normal(size=(p, m)) + noise
    fit = run(RecursiveLeastSquares(p, m, forgetting=forgetting), X, Z).fit()
    w = weights_of(n, forgetting)
    residuals = Z - X @ fit.theta
    scatter = (residuals.T * w) @ residuals
    n_eff = w.sum() ** 2 / (w * w).sum()
    expected = scatter / (w.sum() * (1.0 - p / n_eff))
    np.testing.assert_allclose(fit.residual_scatter, scatter, rtol=1e-10)
    covariance = fit.residual_covariance
    assert covariance is not None
    np.testing.assert_allclose(covariance, expected, rtol=1e-10)
    assert fit.effective_size == pytest.approx(n_eff, rel=1e-12)
    assert fit.covariance_scale == pytest.approx((w * w).sum() / w.sum(), rel=1e-12)
    # residual_scatter() gives the same E at any other Θ as well
    other = fit.theta + 0.1
    e_other = Z - X @ other
    np.testing.assert_allclose(
        residual_scatter(
            run(RecursiveLeastSquares(p, m, forgetting=forgetting), X, Z).stats, other
        ),
        (e_other.T * w) @ e_other,
        rtol=1e-10,
    )


def test_residual_covariance_needs_a_degree_of_freedom() -> None:
    rls = RecursiveLeastSquares(3, 1, forgetting=1.0)
    rng = np.random.default_rng(2)
    for count in range(1, 6):
        rls.update(rng.normal(size=3), rng.normal(size=1))
        fit = rls.fit()
        assert (fit.residual_covariance is None) == (count <= 3)


def test_r2_equals_the_batch_formula_and_is_none_on_constant_targets() -> None:
    rng = np.random.default_rng(5)
    n, lam = 80, 0.95
    X = np.column_stack([rng.normal(size=n), np.ones(n)])
    Z = (X @ np.array([[0.8], [0.1]])) + 0.3 * rng.normal(size=(n, 1))
    fit = run(RecursiveLeastSquares(2, 1, forgetting=lam), X, Z).fit()
    w = weights_of(n, lam)
    mean = w @ Z[:, 0] / w.sum()
    variance = w @ (Z[:, 0] - mean) ** 2 / w.sum()
    residual = Z[:, 0] - X @ fit.theta[:, 0]
    expected = 1.0 - (w @ residual**2) / (w.sum() * variance)
    assert fit.target_variance == pytest.approx(variance, rel=1e-10)
    assert fit.r2 == pytest.approx(expected, rel=1e-10)
    assert 0.5 < expected < 1.0
    # Constant targets (exactly, or constant to rounding): undefined, never −5e74.
    constant = RecursiveLeastSquares(2, 1)
    for x in np.linspace(0.0, 1.0, 1000):
        constant.update([x, 1.0], [0.1 + 0.2 - 0.3])  # 5.6e-17, the same every time
    assert constant.fit().r2 is None
    # A model worse than the mean is clipped to 0, a perfect one to ≤ 1.
    perfect = run(RecursiveLeastSquares(2, 1, initial_covariance=1e8), X, X @ [[2.0], [1.0]])
    r2 = perfect.fit().r2
    assert r2 is not None and 1.0 - 1e-9 <= r2 <= 1.0


# ----------------------------------------------------------------------------- windup


def condition_bound(p0: float, max_norm_sq: float, forgetting: float) -> float:
    """The module's bound cond(P) ≤ 1 + p₀ max‖φ‖² / (1 − λ)."""
    return 1.0 + p0 * max_norm_sq / (1.0 - forgetting)


@settings(max_examples=60, deadline=None)
@given(
    rows=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 60), st.integers(1, 4)),
        elements=st.floats(-3.0, 3.0, allow_subnormal=False),
    ),
    forgetting=st.sampled_from([0.5, 0.9, 0.98]),
    p0=st.sampled_from([0.1, 1.0, 1e4]),
)
def test_covariance_is_bounded_by_the_prior_and_its_condition_number_by_the_module_bound(
    rows: FloatArray, forgetting: float, p0: float
) -> None:
    """P ⪯ p₀I always (the prior is never forgotten), cond(P) ≤ 1 + p₀ max‖φ‖²/(1 − λ)."""
    rls = RecursiveLeastSquares(rows.shape[1], 1, forgetting=forgetting, initial_covariance=p0)
    for row in rows:
        rls.update(row, [float(row.sum())])
    P = rls.fit().inverse_information
    eigenvalues = np.linalg.eigvalsh(P)
    bound = condition_bound(p0, float((rows * rows).sum(axis=1).max()), forgetting)
    slack = 1e-14 * bound  # inverting J + I/p₀ loses about eps · cond of precision
    assert eigenvalues.max() <= p0 * (1.0 + slack)
    assert eigenvalues.min() > 0.0
    assert eigenvalues.max() / eigenvalues.min() <= bound * (1.0 + slack)


@pytest.mark.slow
def test_constant_input_million_steps_condition_number_stays_below_1e8() -> None:
    """10⁶ identical updates at λ = 0.98, p₀ = 10⁴ (the shipped prior): cond(P) ≤ 10⁸.

    The excited direction is learnt (the prediction at φ is z up to the ridge pull) and P
    stays finite, symmetric and positive definite; the unexcited directions keep the prior
    variance p₀.
    """
    rls = RecursiveLeastSquares(4, 3, forgetting=0.98, initial_covariance=1e4)
    phi = np.array([0.5, 0.3, 0.7, 1.0])
    z = np.array([0.1, -0.2, 0.05])
    update = rls.update
    for _ in range(1_000_000):
        update(phi, z)
    fit = rls.fit()
    P = fit.inverse_information
    assert rls.count == 1_000_000
    assert np.isfinite(P).all() and np.isfinite(fit.theta).all()
    np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-15 * np.abs(P).max())
    eigenvalues = np.linalg.eigvalsh(P)
    condition = float(eigenvalues.max() / eigenvalues.min())
    assert condition <= 1e8, f"cond(P) = {condition:.3g}"
    # The bound is attained in the limit J → φφᵀ/(1 − λ): cond(P) = 1 + p₀‖φ‖²/(1 − λ).
    assert condition == pytest.approx(condition_bound(1e4, float(phi @ phi), 0.98), rel=1e-6)
    assert eigenvalues.max() == pytest.approx(1e4, rel=1e-14 * condition)
    # The ridge pull never decays: the prediction is z · s/(s + 1/p₀), s = ‖φ‖²/(1 − λ).
    excitation = float(phi @ phi) / (1.0 - 0.98)
    np.testing.assert_allclose(rls.predict(phi), z * excitation / (excitation + 1e-4), rtol=1e-9)
    assert fit.weight == pytest.approx(50.0, rel=1e-12)  # 1/(1 − λ)


# ----------------------------------------------------------------------------- calibration


def test_covariance_scale_calibrates_standard_errors_under_forgetting() -> None:
    """Monte Carlo: 400 runs of 250 observations at λ = 0.95 (n_eff ≈ 39), 3 coefficients.

    se_j = √(C_e · (W₂/W) · P_jj); (θ̂_j − θ_j)/se_j must have sd within [0.88, 1.12] and
    95 % intervals must cover in [92 %, 97.5 %]. Without the factor W₂/W the se is
    √(1 + λ) ≈ 1.4 times too large (sd of the z-scores ≈ 0.72): also checked.
    """
    rng = np.random.default_rng(99)
    runs, n, lam, sigma = 400, 250, 0.95, 0.3
    truth = np.array([0.7, -0.4, 0.2])
    zscores, plain = [], []
    for _ in range(runs):
        X = np.column_stack([rng.normal(size=(n, 2)), np.ones(n)])
        Z = X @ truth + sigma * rng.normal(size=n)
        fit = run(RecursiveLeastSquares(3, 1, forgetting=lam), X, Z[:, None]).fit()
        covariance = fit.residual_covariance
        assert covariance is not None
        variance = covariance[0, 0] * np.diag(fit.inverse_information)
        error = fit.theta[:, 0] - truth
        zscores.append(error / np.sqrt(variance * fit.covariance_scale))
        plain.append(error / np.sqrt(variance))
    z = np.concatenate(zscores)
    spread = float(z.std())
    coverage = float(np.mean(np.abs(z) <= 1.96))
    plain_spread = float(np.concatenate(plain).std())
    figures = f"sd {spread:.3f}, coverage {coverage:.1%}, without W₂/W sd {plain_spread:.3f}"
    assert 0.88 <= spread <= 1.12, figures
    assert 0.92 <= coverage <= 0.975, figures
    assert plain_spread < 0.8, figures


# ----------------------------------------------------------------------------- API


def test_predict_is_theta_transposed_phi_and_zero_before_any_update() -> None:
    rls = RecursiveLeastSquares(2, 2, forgetting=0.99)
    np.testing.assert_array_equal(rls.predict([0.3, -1.2]), np.zeros(2))
    rng = np.random.default_rng(3)
    for _ in range(5):
        rls.update(rng.normal(size=2), rng.normal(size=2))
    phi = np.array([0.3, -1.2])
    np.testing.assert_allclose(rls.predict(phi), rls.fit().theta.T @ phi, rtol=1e-14, atol=1e-16)
    with pytest.raises(ShapeError):
        rls.predict(np.ones(3))
    assert (rls.n_features, rls.n_outputs, rls.count) == (2, 2, 5)


def test_docstring_example_recovers_a_noiseless_model() -> None:
    rls = RecursiveLeastSquares(2, 2, initial_covariance=1e6)
    true_theta = np.array([[2.0, 0.0], [1.0, -1.0]])
    for phi in ([1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]):
        rls.update(phi, true_theta.T @ np.array(phi))
    np.testing.assert_allclose(rls.fit().theta, true_theta, atol=1e-5)


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


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["regressor", "target"])
def test_non_finite_input_raises_and_leaves_state_unchanged(bad: float, where: str) -> None:
    rls = RecursiveLeastSquares(3, 2, forgetting=0.95)
    rls.update(np.array([1.0, 2.0, 3.0]), np.array([0.5, -0.5]))
    before = rls.to_state()
    fit = rls.fit()
    phi, z = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0])
    if where == "regressor":
        phi[1] = bad
    else:
        z[0] = bad
    with pytest.raises(NumericalError):
        rls.update(phi, z)
    assert rls.to_state() is before
    assert rls.fit() is fit


def test_non_finite_statistics_raise_numerical_error() -> None:
    stats = LeastSquaresStats(
        np.array([[math.inf]]), np.zeros((1, 1)), np.zeros((1, 1)), 1.0, 1.0, 1
    )
    with pytest.raises(NumericalError):
        solve_stats(stats, 1e-4)
    rls = RecursiveLeastSquares.from_state(stats, forgetting=1.0, initial_covariance=1e4)
    with pytest.raises(NumericalError):
        rls.fit()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_features": 0, "n_outputs": 1},
        {"n_features": 1, "n_outputs": 0},
        {"n_features": 1, "n_outputs": 1, "forgetting": 0.0},
        {"n_features": 1, "n_outputs": 1, "forgetting": 1.5},
        {"n_features": 1, "n_outputs": 1, "initial_covariance": 0.0},
        {"n_features": 1, "n_outputs": 1, "initial_covariance": -1.0},
        {"n_features": 1, "n_outputs": 1, "initial_covariance": np.inf},
        {"n_features": 1, "n_outputs": 1, "initial_covariance": np.nan},
    ],
)
def test_invalid_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RecursiveLeastSquares(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- snapshots


def test_round_trip_continues_bit_identically() -> None:
    rng = np.random.default_rng(11)
    config = {"forgetting": 0.9, "initial_covariance": 50.0}
    X = rng.normal(size=(400, 4))
    X[100:250] = X[100]  # a constant stretch before the snapshot
    Z = rng.normal(size=(400, 3))
    reference = run(RecursiveLeastSquares(4, 3, **config), X, Z)
    first = run(RecursiveLeastSquares(4, 3, **config), X[:250], Z[:250])
    restored = RecursiveLeastSquares.from_state(first.to_state(), **config)
    assert restored.count == 250
    assert np.array_equal(restored.fit().theta, first.fit().theta)
    run(restored, X[250:], Z[250:])
    assert_same_stats(restored.to_state(), reference.to_state())
    assert np.array_equal(restored.fit().theta, reference.fit().theta)
    assert np.array_equal(restored.fit().inverse_information, reference.fit().inverse_information)


def test_from_state_shape_errors() -> None:
    good = run(RecursiveLeastSquares(2, 1), np.ones((3, 2)), np.ones((3, 1))).to_state()
    cases = [
        LeastSquaresStats(np.zeros(2), good.cross, good.target_scatter, 1.0, 1.0, 1),
        LeastSquaresStats(np.zeros((3, 3)), good.cross, good.target_scatter, 1.0, 1.0, 1),
        LeastSquaresStats(good.information, good.cross, np.zeros((2, 2)), 1.0, 1.0, 1),
    ]
    for state in cases:
        with pytest.raises(ShapeError):
            RecursiveLeastSquares.from_state(state, forgetting=1.0, initial_covariance=1e4)


def test_fit_fields() -> None:
    fit = run(RecursiveLeastSquares(2, 1), np.ones((3, 2)), np.ones((3, 1))).fit()
    assert isinstance(fit, LeastSquaresFit)
    assert fit.n_features == 2 and fit.weight == 3.0 and fit.weight_sq == 3.0
    assert fit.covariance_scale == 1.0  # λ = 1
