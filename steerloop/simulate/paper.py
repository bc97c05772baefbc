"""The paper environment: four strategies calibrated to the measured dynamics of the
multi-objective SDE paper.

:func:`paper_environment` returns an :class:`~steerloop.simulate.environment.Environment` on
the objectives ``(security, efficiency, functionality)`` (that order) whose offline analysis
(:func:`steerloop.analysis.fit_trajectories` on 100 sessions × 50 iterations per static
strategy, 400 sessions in all) reproduces the figures of Shukla & Joshi, arXiv:2510.10739
(References):

=====================================  ===============  ================================  =========
figure                                 paper            reproduced, 30 seeds: mean ± sd   tolerance
=====================================  ===============  ================================  =========
EF rate ρ = −max Re λ; regime          0.33; exp.       0.330 ± 0.003; exponential        ± 0.02
FF rate ρ                              1.29             1.287 ± 0.012                     ± 0.06
FF final security (mean score)         0.0              0.034 ± 0.003                     ≤ 0.05
SF regime                              oscillatory      oscillatory, λ ≈ −0.37 ± 0.40i    exact
AI one-step R² (highest)               0.74, highest    0.746 ± 0.003, highest            ± 0.02
FF one-step R² (lowest)                0.50, lowest     0.667 ± 0.004, lowest             lowest
interference functionality–efficiency  −0.17            −0.167 ± 0.019                    ± 0.06
interference functionality–security    −0.09            −0.091 ± 0.007                    ± 0.03
rates span                             0.33–1.29        0.33 (EF) … 1.29 (FF)             order
=====================================  ===============  ================================  =========

(Other fitted values: SF rate 0.368, AI rate 0.613; R² EF 0.701, SF 0.720; interference
security–efficiency +0.065.) The tolerances are about three standard deviations of the
seed-to-seed spread; every seed in [0, 30) passes every row.

The tests in ``tests/simulate/test_paper.py`` assert each row with these tolerances
(seeds 0 and 17). The parameters were found by a damped Newton iteration on the 8 free knobs
below (averaging 6 seeds), the rest being fixed by the reading of the paper given per
strategy.

**Why FF's R² is 0.67, not 0.50.** For a stationary scalar series the least-squares
regression of Δy_t on y_t satisfies Var(Δy) = −2 Cov(Δy, y), hence R² = −ĉ/2 = ρ̂/2 exactly
(ĉ the fitted slope): a strategy whose *fitted* rate is 1.29 has stationary R² = 0.645, and
transients only add explained variance. For the pooled multivariate R² the same holds for a
normal drift matrix (R² is an average of ρ̂_k/2 over modes weighted by their variance); only
strongly non-normal drift with near-degenerate eigenvalues goes lower, and then the fitted rate
is not reproducible between seeds. So the paper's (1.29, 0.50) pair cannot both come from a
linear SDE; we keep the rate exact and FF's R² the lowest of the four, as the paper ranks it.

Parameters (Δt = 1, objectives ordered security, efficiency, functionality):

* initial state x_0 ~ N((0.25, 0.45, 0.60), 0.06²I) clipped; score noise r = 0.01;
* diffusion D_π = σ_π² C (FF: σ_FF² diag(0.2, 1, 1) C diag(0.2, 1, 1)) with the shared
  correlation C: corr(functionality, efficiency) = −0.202, corr(functionality, security) =
  −0.010, corr(security, efficiency) = 0 (LLM response noise that trades features against
  speed);
* **efficiency_focused** (EF): x* = (0.30, 0.85, 0.55), A = [[−0.6, 0, 0], [0, −0.3325, 0],
  [0, −0.15, −0.5]] (slow efficiency mode, faster code costs a little functionality),
  σ = 0.0038;
* **security_focused** (SF): x* = (0.90, 0.40, 0.50), a rotation in the security–
  functionality plane, A = [[−0.35, 0, −0.45], [0, −0.6, 0], [0.45, 0, −0.35]] (λ = −0.35 ±
  0.45i: hardening breaks features, fixing them weakens security), σ = 0.031;
* **feature_focused** (FF): x* = (0.03, 0.40, 0.85), A = diag(−1.8, −1.295, −1.415) (fast,
  overshooting: |1 − 1.295| < 1 is still stable), σ = 0.14, security driven to ≈ 0;
* **adaptive_integration** (AI): x* = (0.80, 0.75, 0.82), A = diag(−0.6, −0.65, −0.7),
  σ = 0.021.

The fitted values differ slightly from the true ones (the scores carry measurement noise and
the boundary clips): e.g. FF's true slowest rate is 1.295 and its fitted rate 1.29.

Examples
--------
>>> env = paper_environment()
>>> env.objectives, env.strategy_names
(('security', 'efficiency', 'functionality'), ('efficiency_focused', 'security_focused', \
'feature_focused', 'adaptive_integration'))

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739, §4.3–4.4 (the figures reproduced above).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from steerloop.simulate.environment import Environment, StrategyDynamics

if TYPE_CHECKING:
    from steerloop.analysis.fit import AnalysisReport

__all__ = [
    "PAPER_FIGURES",
    "PAPER_OBJECTIVES",
    "PAPER_STRATEGIES",
    "paper_environment",
    "paper_table",
]

#: Objective order of the paper environment.
PAPER_OBJECTIVES = ("security", "efficiency", "functionality")

#: The four static strategies of the paper, in table order.
PAPER_STRATEGIES = (
    "efficiency_focused",
    "security_focused",
    "feature_focused",
    "adaptive_integration",
)

#: The paper's figures that the calibration targets (§4.3–4.4).
PAPER_FIGURES: dict[str, float | str] = {
    "efficiency_focused.rate": 0.33,
    "efficiency_focused.regime": "exponential",
    "feature_focused.rate": 1.29,
    "feature_focused.final.security": 0.0,
    "security_focused.regime": "oscillatory",
    "adaptive_integration.r2": 0.74,
    "feature_focused.r2": 0.50,
    "interference.functionality.efficiency": -0.17,
    "interference.functionality.security": -0.09,
}

# Calibrated knobs (see the module docstring).
_SIGMA = {
    "efficiency_focused": 0.0038,
    "security_focused": 0.031,
    "feature_focused": 0.14,
    "adaptive_integration": 0.021,
}
_CORR_FUNCTIONALITY_EFFICIENCY = -0.202
_CORR_FUNCTIONALITY_SECURITY = -0.010
_EF_RATE = 0.3325
_FF_RATE = 1.295
_FF_PROFILE = np.array([0.2, 1.0, 1.0])


def _correlation() -> np.ndarray:
    c = np.eye(3)
    c[1, 2] = c[2, 1] = _CORR_FUNCTIONALITY_EFFICIENCY
    c[0, 2] = c[2, 0] = _CORR_FUNCTIONALITY_SECURITY
    return c


def paper_environment(*, noise_sd: float = 0.01) -> Environment:
    """The environment calibrated to the paper's table (see the module docstring).

    Parameters
    ----------
    noise_sd : float
        Score noise standard deviation r of eq. (3) of
        :mod:`steerloop.simulate.environment`. The calibration holds for the default 0.01.

    Returns
    -------
    Environment
        Objectives ``("security", "efficiency", "functionality")``; strategies
        ``efficiency_focused``, ``security_focused``, ``feature_focused``,
        ``adaptive_integration``; Δt = 1; clipping boundary rule.
    """
    corr = _correlation()

    def iso(sigma: float) -> np.ndarray:
        return corr * sigma * sigma

    ff_scale = _FF_PROFILE * _SIGMA["feature_focused"]
    strategies = {
        "efficiency_focused": StrategyDynamics.from_equilibrium(
            [[-0.6, 0.0, 0.0], [0.0, -_EF_RATE, 0.0], [0.0, -0.15, -0.5]],
            [0.30, 0.85, 0.55],
            iso(_SIGMA["efficiency_focused"]),
            description="EF: slow exponential approach to high efficiency (rate 0.33)",
        ),
        "security_focused": StrategyDynamics.from_equilibrium(
            [[-0.35, 0.0, -0.45], [0.0, -0.6, 0.0], [0.45, 0.0, -0.35]],
            [0.90, 0.40, 0.50],
            iso(_SIGMA["security_focused"]),
            description="SF: oscillatory security-functionality spiral (complex eigenvalues)",
        ),
        "feature_focused": StrategyDynamics.from_equilibrium(
            np.diag([-1.8, -_FF_RATE, -(_FF_RATE + 0.12)]),
            [0.03, 0.40, 0.85],
            corr * np.outer(ff_scale, ff_scale),
            description="FF: fast overshooting dynamics (rate 1.29), security driven to ~0",
        ),
        "adaptive_integration": StrategyDynamics.from_equilibrium(
            np.diag([-0.6, -0.65, -0.7]),
            [0.80, 0.75, 0.82],
            iso(_SIGMA["adaptive_integration"]),
            description="AI: balanced, low-noise, most predictable (R² 0.74)",
        ),
    }
    return Environment(
        objectives=PAPER_OBJECTIVES,
        strategies=strategies,
        noise_sd=noise_sd,
        dt=1.0,
        initial_mean=(0.25, 0.45, 0.60),
        initial_std=0.06,
        description="Calibrated to Shukla & Joshi, arXiv 2510.10739 (see steerloop.simulate.paper)",
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def _row(figure: str, paper: str, reproduced: str, ok: bool) -> dict[str, Any]:
    return {"figure": figure, "paper": paper, "reproduced": reproduced, "ok": bool(ok)}


def paper_table(report: AnalysisReport) -> list[dict[str, Any]]:
    """The reproduced paper-1 figures next to the paper's, with the tolerance tested.

    Each row: ``figure``, ``paper`` (text), ``reproduced`` (text), ``ok`` (within the
    stated tolerance of ``tests/simulate/test_paper.py``).
    """
    s = report.strategies

    def rate(name: str) -> float | None:
        return s[name].rate if name in s else None

    def r2(name: str) -> float | None:
        return s[name].r2 if name in s else None

    def regime(name: str) -> str:
        return s[name].regime if name in s else "—"

    def within(value: float | None, target: float, tol: float) -> bool:
        return value is not None and abs(value - target) <= tol

    ff = s.get("feature_focused")
    ff_final = (ff.final_means or {}).get("security") if ff is not None else None
    known = {name: v for name in s if (v := r2(name)) is not None}
    highest = max(known, key=known.__getitem__) if known else None
    lowest = min(known, key=known.__getitem__) if known else None
    fe = report.interference_value("functionality", "efficiency")
    fs = report.interference_value("functionality", "security")
    sf = s.get("security_focused")
    sf_pair = ""
    if sf is not None and sf.eigenvalues:
        re, im = sf.eigenvalues[0]
        sf_pair = f" (λ = {re:.2f} ± {abs(im):.2f}i)"
    ef_rate, ff_rate = rate("efficiency_focused"), rate("feature_focused")
    ai_r2, ff_r2 = r2("adaptive_integration"), r2("feature_focused")
    return [
        _row(
            "EF rate ρ, regime",
            "0.33, exponential",
            f"{_fmt(ef_rate)}, {regime('efficiency_focused')}",
            within(ef_rate, 0.33, 0.02) and regime("efficiency_focused") == "exponential",
        ),
        _row("FF rate ρ", "1.29", _fmt(ff_rate), within(ff_rate, 1.29, 0.06)),
        _row(
            "FF final security",
            "0.0",
            _fmt(ff_final),
            ff_final is not None and ff_final <= 0.05,
        ),
        _row(
            "SF regime",
            "oscillatory",
            regime("security_focused") + sf_pair,
            regime("security_focused") == "oscillatory",
        ),
        _row(
            "AI R² (highest)",
            "0.74",
            f"{_fmt(ai_r2)} (highest: {highest})",
            within(ai_r2, 0.74, 0.02) and highest == "adaptive_integration",
        ),
        _row(
            "FF R² (lowest)",
            "0.50",
            f"{_fmt(ff_r2)} (lowest: {lowest})",
            lowest == "feature_focused",
        ),
        _row("interference functionality–efficiency", "-0.17", _fmt(fe), within(fe, -0.17, 0.06)),
        _row("interference functionality–security", "-0.09", _fmt(fs), within(fs, -0.09, 0.03)),
    ]
