"""Diagnostics: lazy entries, and estimates reported only when they mean something."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from steerloop.controller.diagnostics import (
    RATE_MAX_STDERR,
    LazyDiagnostics,
    drift_diagnostics,
    interference_diagnostics,
)
from steerloop.estimators.drift import DriftConfig, DriftFit, DriftModel
from steerloop.estimators.spectrum import max_real_stderr

OBJECTIVES = ("a", "b")
A_TRUE = np.array([[-0.4, 0.1], [0.0, -0.7]])
X_STAR = np.array([0.6, 0.3])


def fitted(steps: int, *, noise: float = 0.02, forgetting: float = 1.0, seed: int = 0) -> DriftFit:
    """A drift model of x_{t+1} = x_t + A(x_t − x*) + noise ε, fitted."""
    model = DriftModel(DriftConfig(2, forgetting=forgetting, warmup=3))
    rng = np.random.default_rng(seed)
    x = np.array([0.1, 0.9])
    for _ in range(steps):
        after = x + A_TRUE @ (x - X_STAR) + noise * rng.standard_normal(2)
        model.update(x, after)
        x = after
    return model.fit()


# -- LazyDiagnostics ---------------------------------------------------------------------


def test_lazy_entries_are_computed_once_on_first_read() -> None:
    calls: list[str] = []

    def slow() -> float:
        calls.append("slow")
        return 2.0

    d = LazyDiagnostics({"step": 1.0}, {"slow": slow})
    assert (len(d), sorted(d), "slow" in d, "nope" in d) == (2, ["slow", "step"], True, False)
    assert d.pending == ("slow",) and calls == []
    assert d.get("nope", 7.0) == 7.0 and d.get("nope") is None
    with pytest.raises(KeyError):
        d["nope"]
    assert d["slow"] == 2.0 and d.get("slow") == 2.0 and dict(d) == {"step": 1.0, "slow": 2.0}
    assert calls == ["slow"] and d.pending == ()
    assert d == {"step": 1.0, "slow": 2.0}
    assert repr(d) == "LazyDiagnostics({'step': 1.0, 'slow': 2.0})"


def test_dict_of_lazy_diagnostics_computes_everything() -> None:
    d = LazyDiagnostics({}, {"x": lambda: 1.0, "y": lambda: None})
    assert dict(d) == {"x": 1.0, "y": None} and d.pending == ()


def test_concurrent_first_reads_compute_once() -> None:
    count = 0
    gate = threading.Barrier(8)

    def slow() -> float:
        nonlocal count
        count += 1
        return 3.0

    d = LazyDiagnostics({}, {"slow": slow})

    def read(_: int) -> object:
        gate.wait()
        return d["slow"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(8)))
    assert results == [3.0] * 8 and count == 1


# -- drift -------------------------------------------------------------------------------


def test_no_fit_reports_nothing() -> None:
    out = drift_diagnostics(None, OBJECTIVES, 10.0)
    assert out == {
        "drift.rate": None,
        "drift.rate_se": None,
        "drift.max_real": None,
        "drift.regime": "unknown",
        "drift.r2": None,
        "drift.samples": None,
        "drift.equilibrium.a": None,
        "drift.equilibrium.b": None,
    }


def test_a_well_determined_fit_reports_its_rate_and_standard_error() -> None:
    fit = fitted(400)
    out = drift_diagnostics(fit, OBJECTIVES, 10.0)
    eigenvalues = np.linalg.eigvals(fit.A)
    assert out["drift.rate"] == pytest.approx(-eigenvalues.real.max(), rel=1e-12)
    assert out["drift.max_real"] == pytest.approx(eigenvalues.real.max(), rel=1e-12)
    assert out["drift.rate"] == pytest.approx(0.4, abs=0.05)  # the truth, per step
    residual, scale = fit.parameter_covariance()  # type: ignore[misc]
    floored = residual + np.eye(2) * 1e-4
    assert out["drift.rate_se"] == pytest.approx(
        max_real_stderr(fit.A, floored, scale[:2, :2]), rel=1e-12
    )
    assert 0.0 < out["drift.rate_se"] < 0.05  # type: ignore[operator]
    assert out["drift.regime"] == "exponential"
    assert out["drift.samples"] == 400.0  # forgetting 1: every transition counts fully
    r2 = out["drift.r2"]
    assert isinstance(r2, float) and 0.0 <= r2 <= 1.0
    np.testing.assert_allclose(
        [out["drift.equilibrium.a"], out["drift.equilibrium.b"]], X_STAR, atol=0.02
    )


def test_too_few_effective_samples_report_no_rate() -> None:
    fit = fitted(12)
    assert fit.effective_size < 20.0
    out = drift_diagnostics(fit, OBJECTIVES, 20.0)
    assert (out["drift.rate"], out["drift.rate_se"], out["drift.regime"]) == (None, None, "unknown")
    assert out["drift.samples"] == pytest.approx(fit.effective_size)
    assert out["drift.equilibrium.a"] is not None  # the equilibrium is still reported


def test_a_rate_known_only_roughly_is_not_reported() -> None:
    # The regressors barely move (sd 0.002) while the increments are noisy (sd 0.1): enough
    # transitions, but A is known only to about ±1 a step.
    model = DriftModel(DriftConfig(2, forgetting=1.0, warmup=3))
    rng = np.random.default_rng(3)
    for _ in range(40):
        x = X_STAR + 0.002 * rng.standard_normal(2)
        model.update(x, x + 0.1 * rng.standard_normal(2))
    fit = model.fit()
    residual, scale = fit.parameter_covariance()  # type: ignore[misc]
    se = max_real_stderr(fit.A, residual + np.eye(2) * 1e-4, scale[:2, :2])
    assert se > RATE_MAX_STDERR
    out = drift_diagnostics(fit, OBJECTIVES, 10.0)
    assert out["drift.rate"] is None and out["drift.regime"] == "unknown"


def test_constant_scores_report_no_rate_and_no_r2() -> None:
    model = DriftModel(DriftConfig(2, forgetting=0.98, warmup=3))
    for _ in range(500):
        model.update([0.5, 0.5], [0.5, 0.5])
    out = drift_diagnostics(model.fit(), OBJECTIVES, 10.0)
    assert out["drift.rate"] is None and out["drift.regime"] == "unknown"
    assert out["drift.r2"] is None
    assert all(v is None or isinstance(v, str) or math.isfinite(v) for v in out.values())


# -- interference ------------------------------------------------------------------------


def test_interference_entries_and_minimum() -> None:
    names = ("a", "b", "c")
    matrix = np.array([[1.0, -0.2, 0.3], [-0.2, 1.0, math.nan], [0.3, math.nan, 1.0]])
    out = interference_diagnostics(matrix, names)
    assert out == {
        "interference.min": -0.2,
        "interference.a.b": -0.2,
        "interference.a.c": 0.3,
        "interference.b.a": -0.2,
        "interference.b.c": None,
        "interference.c.a": 0.3,
        "interference.c.b": None,
    }
    assert interference_diagnostics(None, names)["interference.min"] is None
    assert set(interference_diagnostics(None, names).values()) == {None}
    undefined = np.full((3, 3), math.nan)
    assert interference_diagnostics(undefined, names)["interference.min"] is None
