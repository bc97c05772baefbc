"""Tests of steerloop.analysis.severity: standard errors, the density on the observed range,
and the one-step chain."""

from __future__ import annotations

import numpy as np
import pytest

from steerloop.analysis.severity import (
    MIN_SEVERITY_TRANSITIONS,
    SeverityFit,
    fit_severity,
    severity_chain_sample,
    severity_density,
)
from steerloop.estimators.severity import simulate, stationary_density


def make_fit(**values: float) -> SeverityFit:
    base = {"alpha": 0.4, "beta": 0.9, "gamma": 0.1, "sigma0": 0.05, "sigma1": 0.04}
    base.update(values)
    return SeverityFit(
        source="records",
        transitions=500,
        margin=base["alpha"] - base["beta"],
        margin_stderr=0.05,
        phase="subcritical",
        phase_margin=0.05,
        r2=0.5,
        mean=0.3,
        **base,
    )


def test_standard_errors_match_the_spread_over_independent_data_sets() -> None:
    margins, stderrs = [], []
    for seed in range(60):
        paths = simulate(
            0.1, 1.0, 0.4, 0.03, 0.04, 0.02, dt=1.0, n_steps=40,
            rng=np.random.default_rng(seed), n_paths=60,
        )  # fmt: skip
        fit = fit_severity(paths[:-1].ravel(), paths[1:].ravel())
        margins.append(fit.margin)
        stderrs.append(fit.margin_stderr)
        assert fit.alpha_stderr is not None and fit.beta_stderr is not None
    ratio = float(np.std(margins, ddof=1) / np.median(stderrs))
    assert 0.7 < ratio < 1.35  # the sd of 60 estimates is itself uncertain by about 10 %


def test_few_transitions_carry_a_note() -> None:
    s = np.linspace(0.2, 0.5, MIN_SEVERITY_TRANSITIONS + 1)
    rough = fit_severity(s[:9], s[1:10] + 0.01)
    assert "only 9 transitions" in rough.note
    enough = fit_severity(s[:-1], s[1:] + 0.001 * np.sin(np.arange(s.size - 1)))
    assert enough.note == ""
    assert (enough.low, enough.high) == (pytest.approx(s[0]), pytest.approx(s[-2]))


def test_density_on_the_full_range_is_the_controller_density() -> None:
    fit = make_fit()
    s, p = severity_density(fit, 0.0, 1.0, grid=401)
    s_ref, p_ref = stationary_density(0.4, 0.9, 0.1, 0.05, 0.04, grid=401)
    assert s == pytest.approx(s_ref, abs=1e-15)
    assert p == pytest.approx(p_ref, rel=1e-9)


@pytest.mark.parametrize(("low", "high"), [(0.1, 0.6), (0.25, 0.35), (0.0, 0.3)])
def test_density_on_a_sub_range_is_the_renormalised_restriction(low: float, high: float) -> None:
    fit = make_fit()
    s, p = severity_density(fit, low, high, grid=2001)
    assert np.trapezoid(p, s) == pytest.approx(1.0, rel=1e-9)
    s_ref, p_ref = stationary_density(0.4, 0.9, 0.1, 0.05, 0.04, grid=200_001)
    inside = (s_ref >= low) & (s_ref <= high)
    restricted = p_ref / np.trapezoid(p_ref[inside], s_ref[inside])
    # the reference integral misses parts of the end intervals of its grid: agree to 0.1 %
    assert p == pytest.approx(np.interp(s, s_ref, restricted), rel=1e-3)


def test_density_range_is_checked() -> None:
    with pytest.raises(ValueError, match="low < high"):
        severity_density(make_fit(), 0.5, 0.5)
    with pytest.raises(ValueError):
        severity_density(make_fit(sigma0=0.001, sigma1=-0.5), 0.2, 0.9)  # σ < 0 on the range


@pytest.mark.parametrize("rate", [0.3, 0.9])
def test_chain_has_the_discrete_stationary_variance(rate: float) -> None:
    """Linear drift μ = rate (s* − s): the Euler chain's variance is σ² / (2 rate − rate²)."""
    sigma, centre = 0.03, 0.5
    fit = make_fit(alpha=-rate, beta=rate, gamma=rate * centre, sigma0=sigma, sigma1=0.0)
    sample = severity_chain_sample(fit, dt=1.0, rng=np.random.default_rng(1), paths=4000)
    expected = sigma / np.sqrt(2 * rate - rate * rate)
    assert float(sample.std()) == pytest.approx(expected, rel=0.03)
    assert float(sample.mean()) == pytest.approx(centre, abs=0.002)
    s, p = severity_density(fit, 0.0, 1.0, grid=4001)
    continuous = float(np.sqrt(np.trapezoid((s - centre) ** 2 * p, s)))
    assert continuous == pytest.approx(sigma / np.sqrt(2 * rate), rel=0.01)
