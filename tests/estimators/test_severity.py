"""Severity SDE, pure functions (steerloop.estimators.severity).

Every function is checked against a closed form, a boundary-value solver or a Monte Carlo
run; each numeric test puts the figure it achieved in its assertion message. The online fit
is tested in test_severity_model.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import integrate, stats

from steerloop.estimators.severity import (
    PHASE_Z,
    diffusion,
    drift,
    features,
    mean_first_passage,
    phase,
    simulate,
    stationary_density,
)

FloatArray = NDArray[np.float64]
Params = tuple[float, float, float, float, float]


# ----------------------------------------------------------------------------- helpers


def _cdf(params: Params, grid: int = 4001) -> tuple[FloatArray, FloatArray]:
    """CDF of the stationary density by cumulative trapezoid."""
    s, p = stationary_density(*params, grid=grid)
    cdf = np.concatenate(([0.0], np.cumsum(np.diff(s) * (p[1:] + p[:-1]) / 2.0)))
    return s, cdf


def _mc_first_passage(
    s0: float,
    threshold: float,
    params: Params,
    *,
    dt: float,
    n_paths: int,
    rng: np.random.Generator,
    chunk: int = 200,
) -> FloatArray:
    """Monte Carlo passage times of (1) from s0 to the threshold, reflecting at 0 and 1.

    Paths come from :func:`simulate` in chunks; absorbed paths are dropped. Between two grid
    points the crossing is detected with the Brownian-bridge probability
    exp(−2 (s* − s_k)(s* − s_{k+1}) / (σ(s_k)² Δt)), which removes the O(√Δt) bias of
    monitoring the path only at the grid points.
    """
    state = np.full(n_paths, s0)
    times = np.full(n_paths, np.nan)
    alive = np.arange(n_paths)
    elapsed = 0.0
    while alive.size and elapsed < 1e4:
        path = simulate(state, *params, dt=dt, n_steps=chunk, rng=rng)
        before, after = path[:-1], path[1:]
        sigma = diffusion(before, params[3], params[4])
        gap = np.maximum(threshold - before, 0.0) * np.maximum(threshold - after, 0.0)
        bridge = np.exp(-2.0 * gap / (sigma * sigma * dt))
        hit = (after >= threshold) | (rng.random(after.shape) < bridge)
        done = hit.any(axis=0)
        first = np.argmax(hit, axis=0)
        times[alive[done]] = elapsed + (first[done] + 1) * dt
        state = path[-1][~done]
        alive = alive[~done]
        elapsed += chunk * dt
    return times


# ----------------------------------------------------------------------------- phase


def test_phase_rule() -> None:
    assert phase(0.9, 0.3, 0.05) == "supercritical"
    assert phase(0.3, 0.9, 0.05) == "subcritical"
    assert phase(0.5, 0.5, 0.0) == "subcritical"  # α = β is not supercritical
    assert phase(0.9, 0.3, 0.05, stderr=0.4, z=1.645) == "subcritical"  # 0.6 < 0.05 + 1.645 · 0.4
    assert phase(0.9, 0.3, 0.05, stderr=0.4) == "supercritical"  # default z = 0.25 (ROC)
    assert phase(0.9, 0.3, 0.05, stderr=0.4, z=1.0) == "supercritical"  # 0.6 > 0.45
    assert phase(math.nan, 0.3, 0.05) == "subcritical"
    assert phase(0.9, 0.3, 0.05, stderr=math.nan) == "subcritical"
    # The default z is the one-sided 95 % normal quantile.
    assert PHASE_Z == 0.25  # chosen from the ROC of benchmarks/severity_roc.py (README)
    assert phase(0.6, 0.0, 0.0, stderr=0.99 * 0.6 / PHASE_Z) == "supercritical"
    assert phase(0.6, 0.0, 0.0, stderr=1.01 * 0.6 / PHASE_Z) == "subcritical"


# ----------------------------------------------------------------------------- density


@pytest.mark.parametrize(
    "params",
    [
        (0.8, 0.3, 0.01, 0.06, 0.06),  # supercritical, heteroscedastic, mode ≈ 0.85
        (0.1, 1.0, 0.005, 0.1, 0.0),  # subcritical, much mass reflected at 0
    ],
)
def test_stationary_density_matches_long_simulation(params: Params) -> None:
    """KS distance between (2) and 20 000 paths after t = 30 (Δt = 0.01) is ≤ 0.02."""
    rng = np.random.default_rng(7)
    n_steps = 3000
    final = simulate(
        rng.uniform(0.0, 1.0, 20_000),
        *params,
        dt=0.01,
        n_steps=n_steps,
        rng=rng,
        record_every=n_steps,
    )[-1]
    grid, cdf = _cdf(params)
    distance = float(stats.kstest(final, lambda q: np.interp(q, grid, cdf)).statistic)
    assert distance <= 0.02, f"KS distance {distance:.4f}"


# ----------------------------------------------------------------------------- passage


@pytest.mark.parametrize(
    ("s0", "threshold", "params"),
    [
        (0.05, 0.5, (0.6, 0.4, 0.02, 0.08, 0.04)),  # supercritical: driven up
        (0.1, 0.5, (0.2, 0.6, 0.02, 0.1, 0.0)),  # subcritical: noise-driven escape
        (0.0, 0.3, (0.1, 1.0, 0.01, 0.1, 0.05)),  # from the reflecting boundary
    ],
)
def test_first_passage_matches_monte_carlo(s0: float, threshold: float, params: Params) -> None:
    """Quadrature (4) vs 10 000 Euler paths (Δt = 0.01): relative error ≤ 5 %."""
    expected = mean_first_passage(s0, threshold, *params)
    times = _mc_first_passage(
        s0, threshold, params, dt=0.01, n_paths=10_000, rng=np.random.default_rng(4)
    )
    assert not np.isnan(times).any()
    estimate = float(times.mean())
    error = abs(estimate / expected - 1.0)
    assert error <= 0.05, f"T = {expected:.4f}, Monte Carlo {estimate:.4f}: {error:.2%} off"


def test_first_passage_matches_boundary_value_solver() -> None:
    """(4) against scipy's collocation solution of (σ²/2)T'' + μT' = −1, T'(0) = 0, T(s*) = 0."""
    params = (0.7, 0.4, 0.03, 0.1, 0.05)
    threshold = 0.6

    def rhs(s: FloatArray, y: FloatArray) -> FloatArray:
        sig = diffusion(s, params[3], params[4])
        mu = drift(s, *params[:3])
        return np.vstack([y[1], (-1.0 - mu * y[1]) * 2.0 / (sig * sig)])

    def bc(left: FloatArray, right: FloatArray) -> FloatArray:
        return np.array([left[1], right[0]])

    mesh = np.linspace(0.0, threshold, 200)
    solution = integrate.solve_bvp(
        rhs, bc, mesh, np.zeros((2, mesh.size)), tol=1e-6, max_nodes=100_000
    )
    assert solution.success
    worst = 0.0
    for s0 in (0.0, 0.2, 0.45):
        reference = float(solution.sol(s0)[0])
        worst = max(worst, abs(mean_first_passage(s0, threshold, *params) / reference - 1.0))
    assert worst <= 1e-5, f"largest relative difference {worst:.2e}"


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize(
    ("mu", "sigma", "s0", "threshold"),
    [
        (0.05, 0.1, 0.1, 0.6),
        (-0.05, 0.1, 0.1, 0.6),
        (0.02, 0.03, 0.0, 0.5),
        (-0.01, 0.05, 0.3, 0.4),
        (0.3, 0.02, 0.2, 1.0),
    ],
)
def test_first_passage_constant_coefficients(
    mu: float, sigma: float, s0: float, threshold: float
) -> None:
    """μ = γ, σ = σ₀ constant: T'(y) = −(1 − e^{−ky})/μ with k = 2μ/σ², so
    T(s₀) = (s* − s₀)/μ − (e^{−k s₀} − e^{−k s*})/(μ k)."""
    k = 2.0 * mu / sigma**2
    expected = (threshold - s0) / mu - (math.exp(-k * s0) - math.exp(-k * threshold)) / (mu * k)
    value = mean_first_passage(s0, threshold, 0.0, 0.0, mu, sigma, 0.0)
    error = abs(value / expected - 1.0)
    assert error <= 1e-6, f"T = {value}, closed form {expected}: {error:.2e}"


@pytest.mark.parametrize(("sigma", "s0", "threshold"), [(0.1, 0.0, 0.5), (0.05, 0.2, 0.9)])
def test_first_passage_without_drift(sigma: float, s0: float, threshold: float) -> None:
    """μ = 0: T(s₀) = (s*² − s₀²)/σ²."""
    expected = (threshold**2 - s0**2) / sigma**2
    value = mean_first_passage(s0, threshold, 0.0, 0.0, 0.0, sigma, 0.0)
    error = abs(value / expected - 1.0)
    assert error <= 1e-6, f"T = {value}, closed form {expected}: {error:.2e}"


def test_first_passage_edge_cases() -> None:
    params = (0.5, 0.5, 0.02, 0.05, 0.0)
    assert mean_first_passage(0.6, 0.5, *params) == 0.0
    assert mean_first_passage(0.5, 0.5, *params) == 0.0
    assert mean_first_passage(0.2, 1.5, *params) == math.inf
    # strongly subcritical with tiny noise: far beyond the double range
    assert mean_first_passage(0.0, 0.9, 0.0, 3.0, 0.0, 0.01, 0.0) == math.inf
    with pytest.raises(ValueError, match="s0"):
        mean_first_passage(-0.1, 0.5, *params)
    with pytest.raises(ValueError, match="positive"):
        mean_first_passage(0.1, 0.5, 0.5, 0.5, 0.02, 0.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        mean_first_passage(0.1, math.nan, *params)


def test_density_uniform_without_drift() -> None:
    grid, density = stationary_density(0.0, 0.0, 0.0, 0.2, 0.0)
    assert grid[0] == 0.0 and grid[-1] == 1.0
    worst = float(np.max(np.abs(density - 1.0)))
    assert worst <= 1e-12, f"max |P − 1| = {worst:.2e}"


def test_density_closed_forms() -> None:
    # μ = 0, σ(s) = σ₀ + σ₁ s: P ∝ σ⁻², normalised P = σ₀(σ₀ + σ₁)/σ(s)²
    grid, density = stationary_density(0.0, 0.0, 0.0, 0.05, 0.1)
    expected = 0.05 * 0.15 / (0.05 + 0.1 * grid) ** 2
    worst = float(np.max(np.abs(density / expected - 1.0)))
    assert worst <= 1e-5, f"σ⁻² density: max relative error {worst:.2e}"
    # μ = γ, σ constant: P = k e^{ks}/(e^k − 1), k = 2γ/σ²
    k = 2.0 * 0.02 / 0.1**2
    grid, density = stationary_density(0.0, 0.0, 0.02, 0.1, 0.0)
    expected = k * np.exp(k * grid) / math.expm1(k)
    worst = float(np.max(np.abs(density / expected - 1.0)))
    assert worst <= 1e-4, f"exponential density: max relative error {worst:.2e}"


def test_density_integrates_to_one_and_peaks_at_the_stable_point() -> None:
    params = (0.8, 0.3, 0.02, 0.05, 0.02)
    grid, density = stationary_density(*params)
    total = float(np.trapezoid(density, grid))
    assert abs(total - 1.0) <= 1e-12, f"∫P = {total!r}"
    # stable zero of μ: α s(1−s) − β s² + γ = 0 ⇒ s = (α + √(α² + 4(α+β)γ)) / (2(α+β))
    root = (0.8 + math.sqrt(0.64 + 4 * 1.1 * 0.02)) / 2.2
    mode = float(grid[np.argmax(density)])
    assert abs(mode - root) <= 0.02, f"mode {mode:.3f}, zero of μ {root:.3f}"


def test_drift_and_diffusion_functions() -> None:
    s = np.linspace(0.0, 1.0, 11)
    alpha, beta, gamma = 0.7, 0.2, 0.03
    assert np.allclose(drift(s, alpha, beta, gamma), features_matrix(s) @ [alpha, beta, gamma])
    assert drift(0.0, alpha, beta, gamma) == gamma
    assert drift(1.0, alpha, beta, gamma) == pytest.approx(gamma - beta)
    # α − β = 4(μ(½) − μ(0))
    assert 4 * (drift(0.5, alpha, beta, gamma) - gamma) == pytest.approx(alpha - beta)
    assert np.allclose(diffusion(s, 0.05, 0.1), 0.05 + 0.1 * s)
    assert diffusion(1.0, 0.05, 0.1) == pytest.approx(0.15)


def features_matrix(s: FloatArray) -> FloatArray:
    return np.array([features(float(x)) for x in s])


# ----------------------------------------------------------------------------- simulate


def test_simulate_shapes_bounds_and_reproducibility() -> None:
    first = simulate(
        0.5, 1.5, 0.1, 0.2, 0.3, 0.2, dt=1.0, n_steps=100, rng=np.random.default_rng(1), n_paths=50
    )
    again = simulate(
        0.5, 1.5, 0.1, 0.2, 0.3, 0.2, dt=1.0, n_steps=100, rng=np.random.default_rng(1), n_paths=50
    )
    assert first.shape == (101, 50)
    assert np.array_equal(first, again)
    assert ((first >= 0.0) & (first <= 1.0)).all()  # large steps fold back into [0, 1]
    thinned = simulate(
        [0.1, 0.9],
        0.5,
        0.5,
        0.0,
        0.1,
        0.0,
        dt=0.1,
        n_steps=10,
        rng=np.random.default_rng(2),
        record_every=3,
    )
    assert thinned.shape == (4, 2)
    assert thinned[0].tolist() == [0.1, 0.9]
    # per-path parameters; σ = 0 is deterministic Euler
    paths = simulate(
        0.2,
        [0.5, 0.0],
        [0.1, 0.0],
        [0.0, 0.0],
        0.0,
        0.0,
        dt=1.0,
        n_steps=1,
        rng=np.random.default_rng(3),
    )
    assert paths[1].tolist() == pytest.approx([0.2 + 0.5 * 0.16 - 0.1 * 0.04, 0.2])
    with pytest.raises(ValueError, match="number of paths"):
        simulate(
            [0.1, 0.2],
            [0.5, 0.5, 0.5],
            0.1,
            0.0,
            0.1,
            0.0,
            dt=1.0,
            n_steps=1,
            rng=np.random.default_rng(),
        )
    with pytest.raises(ValueError, match="≥ 0"):
        simulate(0.1, 0.5, 0.1, 0.0, 0.1, -0.2, dt=1.0, n_steps=1, rng=np.random.default_rng())
    with pytest.raises(ValueError, match="dt"):
        simulate(0.1, 0.5, 0.1, 0.0, 0.1, 0.0, dt=0.0, n_steps=1, rng=np.random.default_rng())


# ----------------------------------------------------------------------------- properties


@st.composite
def sde_params(draw: st.DrawFn) -> Params:
    alpha = draw(st.floats(-1.0, 2.0))
    beta = draw(st.floats(-1.0, 2.0))
    gamma = draw(st.floats(-0.1, 0.2))
    sigma0 = draw(st.floats(0.01, 0.5))
    sigma1 = draw(st.floats(0.01 - sigma0, 0.5))
    return alpha, beta, gamma, sigma0, sigma1


@settings(max_examples=60, deadline=None)
@given(params=sde_params(), grid=st.integers(3, 3001))
def test_density_is_a_density(params: Params, grid: int) -> None:
    s, density = stationary_density(*params, grid=grid)
    assert s.shape == density.shape == (grid,)
    assert np.isfinite(density).all() and (density >= 0.0).all()
    assert abs(float(np.trapezoid(density, s)) - 1.0) <= 1e-9


@settings(max_examples=60, deadline=None)
@given(
    params=sde_params(),
    points=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3, unique=True),
)
def test_first_passage_decreases_with_the_start(params: Params, points: list[float]) -> None:
    low, mid, threshold = sorted(points)
    t_low = mean_first_passage(low, threshold, *params)
    t_mid = mean_first_passage(mid, threshold, *params)
    assert t_low >= 0.0 and t_mid >= 0.0
    assert not (math.isnan(t_low) or math.isnan(t_mid))
    assert t_low >= t_mid * (1.0 - 1e-9)
    assert mean_first_passage(threshold, threshold, *params) == 0.0
