"""Calibration of the paper environment against the table of arXiv 2510.10739 (seeded).

The analysis is run as the paper did: 100 sessions per static strategy, 50 iterations each,
400 sessions in all, objectives (security, efficiency, functionality). Tolerances (stated in
steerloop.simulate.paper and the README) are about three standard deviations of the
seed-to-seed spread measured over 30 seeds, so every seed in [0, 30) passes; two seeds run.
"""

from __future__ import annotations

import numpy as np
import pytest

from steerloop.analysis import AnalysisReport, fit_trajectories
from steerloop.simulate import PAPER_OBJECTIVES, PAPER_STRATEGIES, paper_environment, rollout_arrays

EF, SF, FF, AI = PAPER_STRATEGIES


@pytest.fixture(scope="module", params=[0, 17])
def report(request: pytest.FixtureRequest) -> AnalysisReport:
    data = rollout_arrays(
        paper_environment(),
        PAPER_STRATEGIES,
        sessions=100,
        steps=50,
        rng=np.random.default_rng(request.param),
    )
    return fit_trajectories(data)


def r2(report: AnalysisReport, name: str) -> float:
    value = report.strategies[name].r2
    assert value is not None
    return value


def rate(report: AnalysisReport, name: str) -> float:
    value = report.strategies[name].rate
    assert value is not None
    return value


def test_layout(report: AnalysisReport) -> None:
    assert report.objectives == list(PAPER_OBJECTIVES)
    assert report.sessions == 400
    assert report.transitions == 400 * 49
    assert all(report.strategies[name].sessions == 100 for name in PAPER_STRATEGIES)


def test_efficiency_focused_is_exponential_with_rate_033(report: AnalysisReport) -> None:
    """Paper: EF exponential, ρ = 0.33. Tolerance ±0.02."""
    assert report.strategies[EF].regime == "exponential"
    assert rate(report, EF) == pytest.approx(0.33, abs=0.02)
    eigenvalues = report.strategies[EF].eigenvalues
    assert eigenvalues is not None and all(abs(im) < 1e-9 for _, im in eigenvalues)


def test_feature_focused_rate_129_and_security_to_zero(report: AnalysisReport) -> None:
    """Paper: FF ρ = 1.29 (tolerance ±0.06), security driven to 0.0 (final mean ≤ 0.05)."""
    assert rate(report, FF) == pytest.approx(1.29, abs=0.06)
    finals = report.strategies[FF].final_means
    assert finals is not None and finals["security"] is not None
    assert finals["security"] <= 0.05
    fit = report.strategies[FF]
    assert fit.regime in ("exponential", "boundary-seeking")
    # |1 − 1.29| < 1: the overshooting Euler map is still stable
    assert fit.spectral_radius is not None and fit.spectral_radius < 1.0


def test_security_focused_is_oscillatory(report: AnalysisReport) -> None:
    """Paper: SF oscillatory — a complex pair with |Im λ| > 0.5 |Re λ|."""
    fit = report.strategies[SF]
    assert fit.regime == "oscillatory"
    assert fit.eigenvalues is not None
    assert any(abs(im) > 0.5 * abs(re) for re, im in fit.eigenvalues)


def test_r2_adaptive_integration_highest_074(report: AnalysisReport) -> None:
    """Paper: AI R² = 0.74, the highest. Tolerance ±0.02."""
    assert r2(report, AI) == pytest.approx(0.74, abs=0.02)
    assert r2(report, AI) == max(r2(report, name) for name in PAPER_STRATEGIES)


def test_r2_feature_focused_lowest(report: AnalysisReport) -> None:
    """Paper: FF R² = 0.50, the lowest. Reproduced: the lowest, in [0.60, 0.70].

    0.50 is not attainable together with ρ̂ = 1.29 by a linear SDE: for a stationary series
    R² = ρ̂/2 = 0.645 (see steerloop.simulate.paper). The ordering is asserted with a margin.
    """
    ff = r2(report, FF)
    assert 0.60 <= ff <= 0.70
    others = [r2(report, name) for name in PAPER_STRATEGIES if name != FF]
    assert ff < min(others) - 0.015


def test_interference_matches_paper(report: AnalysisReport) -> None:
    """Paper: I_fe = −0.17 (tolerance ±0.06), I_fs = −0.09 (tolerance ±0.03), pooled."""
    fe = report.interference_value("functionality", "efficiency")
    fs = report.interference_value("functionality", "security")
    assert fe is not None and fs is not None
    assert fe == pytest.approx(-0.17, abs=0.06)
    assert fs == pytest.approx(-0.09, abs=0.03)
    assert report.interference_min is not None
    assert report.interference_min.value < -0.1


def test_rates_span_033_to_129(report: AnalysisReport) -> None:
    """Paper: rates range from 0.33 (EF) to 1.29 (FF)."""
    rates = {name: rate(report, name) for name in PAPER_STRATEGIES}
    assert min(rates, key=rates.__getitem__) == EF
    assert max(rates, key=rates.__getitem__) == FF
