"""Tests of steerloop.analysis.fit: recovery of known dynamics, batch identities, bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerloop.analysis import (
    AnalysisReport,
    TrajectoryArrays,
    TrajectoryHeader,
    TrajectoryLog,
    TrajectoryRecord,
    fit_drift,
    fit_severity,
    fit_trajectories,
    increment_correlation,
)
from steerloop.estimators.severity import simulate as simulate_severity
from steerloop.estimators.spectrum import analyze_spectrum
from steerloop.simulate import Environment, StrategyDynamics, rollout_arrays

A_TRUE = np.array([[-0.5, 0.1, 0.0], [0.0, -0.3, 0.05], [0.1, 0.0, -0.8]])
X_STAR = np.array([0.5, 0.45, 0.55])
D_TRUE = np.array([[4.0, 1.0, 0.0], [1.0, 2.0, -0.5], [0.0, -0.5, 3.0]]) * 1e-4


def known_environment() -> Environment:
    """Interior dynamics, no score noise (so raw scores are the state, no errors-in-variables)."""
    return Environment(
        objectives=("a", "b", "c"),
        strategies={
            "known": StrategyDynamics.from_equilibrium(A_TRUE, X_STAR, D_TRUE),
            "rotation": StrategyDynamics.from_equilibrium(
                [[-0.3, -0.6, 0.0], [0.6, -0.3, 0.0], [0.0, 0.0, -0.5]], X_STAR, D_TRUE
            ),
        },
        noise_sd=0.0,
        initial_mean=X_STAR,
        initial_std=0.15,
    )


@pytest.fixture(scope="module")
def known_report() -> AnalysisReport:
    data = rollout_arrays(
        known_environment(),
        ["known", "rotation"],
        sessions=200,
        steps=50,
        rng=np.random.default_rng(11),
    )
    return fit_trajectories(data)


def test_recovers_known_drift_within_10_percent(known_report: AnalysisReport) -> None:
    fit = known_report.strategies["known"]
    assert fit.drift is not None
    A = np.asarray(fit.drift.A)
    assert np.linalg.norm(A - A_TRUE) / np.linalg.norm(A_TRUE) < 0.10
    np.testing.assert_allclose(np.diag(A), np.diag(A_TRUE), rtol=0.10)
    np.testing.assert_allclose(np.asarray(fit.drift.equilibrium), X_STAR, atol=0.01)
    true = analyze_spectrum(A_TRUE)
    assert fit.rate is not None and fit.rate == pytest.approx(true.rate, rel=0.10)
    assert fit.regime == "exponential"


def test_recovers_diffusion_within_10_percent(known_report: AnalysisReport) -> None:
    fit = known_report.strategies["known"]
    assert fit.drift is not None
    diffusion = np.asarray(fit.drift.diffusion, dtype=np.float64)
    np.testing.assert_allclose(np.diag(diffusion), np.diag(D_TRUE), rtol=0.10)


def test_recovers_oscillation(known_report: AnalysisReport) -> None:
    fit = known_report.strategies["rotation"]
    assert fit.regime == "oscillatory"
    assert fit.eigenvalues is not None
    re, im = fit.eigenvalues[0]
    assert re == pytest.approx(-0.3, rel=0.10) and abs(im) == pytest.approx(0.6, rel=0.10)


def test_fit_drift_equals_normal_equations() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(300, 3))
    z = rng.normal(size=(300, 3))
    fit = fit_drift(x, z, dt=2.0)
    phi = np.column_stack([x, np.ones(300)])
    theta = np.linalg.solve(phi.T @ phi, phi.T @ z)
    np.testing.assert_allclose(np.asarray(fit.A), theta[:3].T, atol=1e-10)
    np.testing.assert_allclose(fit.b, theta[3], atol=1e-10)
    e = z - phi @ theta
    np.testing.assert_allclose(
        np.asarray(fit.diffusion, dtype=float), e.T @ e / (300 - 4) * 2.0, atol=1e-12
    )
    sst = ((z - z.mean(axis=0)) ** 2).sum()
    assert fit.r2 == pytest.approx(1.0 - (e**2).sum() / sst)
    assert not fit.rank_deficient


def test_fit_drift_flags_rank_deficiency_and_needs_data() -> None:
    x = np.column_stack([np.linspace(0, 1, 10), np.zeros(10)])
    fit = fit_drift(x, np.zeros((10, 2)))
    assert fit.rank_deficient
    assert fit.r2 is None  # targets without variance
    with pytest.raises(ValueError, match="at least 4"):
        fit_drift(np.zeros((3, 2)), np.zeros((3, 2)))


def test_increment_correlation() -> None:
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, -0.5], [-0.5, 1.0]])
    inc = rng.multivariate_normal([0, 0], cov, size=50_000)
    corr = increment_correlation(inc)
    assert corr[0, 1] == pytest.approx(-0.5, abs=0.01)
    constant = increment_correlation(np.column_stack([inc[:, 0], np.zeros(50_000)]))
    assert math.isnan(constant[0, 1])


def test_severity_fit_recovers_parameters() -> None:
    paths = simulate_severity(
        0.1,
        1.0,
        0.4,
        0.03,
        0.04,
        0.02,
        dt=1.0,
        n_steps=80,
        rng=np.random.default_rng(5),
        n_paths=300,
    )
    fit = fit_severity(paths[:-1].ravel(), paths[1:].ravel())
    assert fit.alpha == pytest.approx(1.0, abs=0.1)
    assert fit.beta == pytest.approx(0.4, abs=0.1)
    assert fit.gamma == pytest.approx(0.03, abs=0.01)
    assert fit.phase == "supercritical"
    assert fit.sigma0 + fit.sigma1 * 0.5 == pytest.approx(0.05, rel=0.25)
    sub = simulate_severity(
        0.1,
        0.3,
        0.9,
        0.05,
        0.04,
        0.0,
        dt=1.0,
        n_steps=80,
        rng=np.random.default_rng(6),
        n_paths=300,
    )
    assert fit_severity(sub[:-1].ravel(), sub[1:].ravel()).phase == "subcritical"


def rec(
    session: str, step: int, strategy: str, a: float | None, b: float | None, **kw: float
) -> TrajectoryRecord:
    return TrajectoryRecord(
        session=session, step=step, strategy=strategy, scores={"a": a, "b": b}, **kw
    )


def test_transitions_attribution_gaps_and_missing() -> None:
    records = [
        rec("s", 0, "x", 0.1, 0.2),
        rec("s", 1, "y", 0.2, 0.3),  # x->y transition belongs to y
        rec("s", 2, "y", 0.3, None),  # missing: breaks 1->2 and 2->3
        rec("s", 3, "y", 0.4, 0.5),
        rec("s", 5, "y", 0.5, 0.6),  # gap: 3->5 is not a transition
        rec("t", 1, "x", 0.5, 0.5),  # out of order on purpose
        rec("t", 0, "x", 0.4, 0.4),
    ]
    log = TrajectoryLog(header=TrajectoryHeader(objectives=["a", "b"]), records=records)
    report = fit_trajectories(log)
    assert report.transitions == 2
    assert report.skipped_transitions == 3
    assert report.strategies["y"].transitions == 1
    assert report.strategies["x"].transitions == 1
    assert report.strategies["x"].drift is None and report.strategies["x"].regime == "unknown"
    assert report.final_means == {"a": pytest.approx(0.5), "b": pytest.approx(0.55)}
    assert report.strategies["y"].final_means == {"a": 0.5, "b": 0.6}


def test_duplicate_steps_are_an_error() -> None:
    with pytest.raises(ValueError, match="step 0 twice"):
        fit_trajectories([rec("s", 0, "x", 0.1, 0.1), rec("s", 0, "x", 0.2, 0.2)])


def test_bare_records_infer_objectives_and_empty_input() -> None:
    report = fit_trajectories([rec("s", i, "x", 0.1 * i, 0.5) for i in range(8)])
    assert report.objectives == ["a", "b"]
    with pytest.raises(ValueError, match="no trajectory records"):
        fit_trajectories(TrajectoryLog(header=TrajectoryHeader(objectives=["a"]), records=[]))


def test_severity_from_records_when_every_record_has_one() -> None:
    rng = np.random.default_rng(2)
    paths = simulate_severity(
        0.2, 0.8, 0.2, 0.02, 0.05, 0.0, dt=1.0, n_steps=30, rng=rng, n_paths=40
    )
    records = [
        rec(f"s{j}", t, "x", 0.5, 0.5, severity=float(paths[t, j]))
        for j in range(40)
        for t in range(31)
    ]
    report = fit_trajectories(records)
    assert report.severity is not None and report.severity.source == "records"
    assert "x" in report.severity_by_strategy
    without = fit_trajectories([r.model_copy(update={"severity": None}) for r in records])
    assert without.severity is not None and without.severity.source == "1 - min objective"


def test_report_json_round_trip(known_report: AnalysisReport) -> None:
    text = known_report.model_dump_json()
    assert "NaN" not in text
    assert AnalysisReport.model_validate_json(text) == known_report


def test_arrays_input_must_match_objectives() -> None:
    data = TrajectoryArrays.from_records([rec("s", 0, "x", 0.1, 0.2)], ["a", "b"])
    with pytest.raises(ValueError, match="differ"):
        fit_trajectories(data, objectives=["b", "a"])


def test_warnings_name_every_fit_the_data_cannot_support() -> None:
    records = [rec("s", i, "x", 0.1 + 0.05 * i, 0.5 - 0.02 * i**1.5) for i in range(9)]
    records += [rec("s", 9, "y", 0.6, 0.4), rec("s", 10, "y", 0.62, 0.41)]
    report = fit_trajectories(records)
    x, y = report.strategies["x"], report.strategies["y"]
    assert x.drift is not None and x.rate_stderr is not None and "only 8 transitions" in x.note
    assert y.drift is None and "too few transitions (2; a fit needs at least 4)" in y.note
    lines = report.warnings()
    assert lines[0].startswith("strategy x: only 8 transitions for 3 regressors")
    assert lines[1] == "strategy y: too few transitions (2; a fit needs at least 4)"
    assert any(line.startswith("interference: only 10 increments") for line in lines)
    assert lines[-1].startswith("severity: only 10 transitions")


def test_known_dynamics_need_no_warning(known_report: AnalysisReport) -> None:
    assert known_report.warnings() == []
    for fit in known_report.strategies.values():
        assert fit.rate_stderr is not None and 0.0 < fit.rate_stderr < 0.05
