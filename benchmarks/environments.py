"""A family of randomised paper-like environments for the value benchmark.

Each environment is built like the project's simulator (:mod:`steerloop.simulate`): the
paper's three objectives and four strategies, each strategy its own linear drift toward its
own equilibrium, its own noise and interference, and noisy scores. What varies, seeded:

* every strategy's equilibrium: high on the objectives it emphasises (the focused strategies
  on one, ``adaptive_integration`` on all, but sometimes mediocre), lower elsewhere;
* its speed: the eigenvalues of its drift matrix (per-step rates 0.06–1.4), sometimes a
  complex pair (oscillation), sometimes strong coupling between objectives;
* its noise (per-step sd 0.005–0.06) with a random correlation (interference);
* the score noise (sd 0.005–0.04) and the initial state.

Scenario kinds make sure the family holds loops where holding one strategy is best (kind
``balanced``: the balanced strategy is good and fast), where a specialist is best
(``specialist``), and where a phase schedule pays (``phase``: the strategy with the best
equilibrium is slow, and another quickly lifts its weakest objective first); ``mixed`` draws
everything at random.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from steerloop.simulate.environment import Environment, StrategyDynamics

__all__ = ["KINDS", "OBJECTIVES", "STRATEGIES", "random_environment"]

FloatArray = NDArray[np.float64]

OBJECTIVES = ("security", "efficiency", "functionality")
STRATEGIES = ("efficiency_focused", "security_focused", "feature_focused", "adaptive_integration")
#: The objective each focused strategy emphasises (index into OBJECTIVES).
_FOCUS = {"efficiency_focused": 1, "security_focused": 0, "feature_focused": 2}
KINDS = ("balanced", "specialist", "phase", "mixed")


def _drift(
    rng: np.random.Generator, rates: FloatArray, coupling: float, rotate: bool
) -> FloatArray:
    """A stable drift matrix with per-step rates ``rates`` (−eigenvalues), coupled and rotated."""
    d = rates.shape[0]
    if rotate:
        i, j = rng.choice(d, size=2, replace=False)
        base = -np.diag(rates)
        omega = rng.uniform(0.3, 0.8) * rates[i]
        base[i, j], base[j, i] = -omega, omega
        base[j, j] = base[i, i]
        return base
    basis = np.eye(d) + coupling * rng.uniform(-1.0, 1.0, (d, d))
    return np.asarray(-basis @ np.diag(rates) @ np.linalg.inv(basis), dtype=np.float64)


def _noise(rng: np.random.Generator, sd: float) -> FloatArray:
    d = len(OBJECTIVES)
    corr = np.eye(d)
    for i in range(d):
        for j in range(i + 1, d):
            corr[i, j] = corr[j, i] = rng.uniform(-0.5, 0.3)
    values, vectors = np.linalg.eigh(corr)
    corr = (vectors * np.maximum(values, 0.05)) @ vectors.T
    scale = np.sqrt(np.diag(corr))
    corr = corr / np.outer(scale, scale)
    return np.asarray(sd * sd * corr, dtype=np.float64)


def _equilibrium(rng: np.random.Generator, name: str, kind: str) -> FloatArray:
    d = len(OBJECTIVES)
    if name == "adaptive_integration":
        level = {"balanced": (0.7, 0.88), "specialist": (0.35, 0.6)}.get(kind, (0.45, 0.8))
        return rng.uniform(*level, d)
    x = rng.uniform(0.15, 0.75, d)
    x[_FOCUS[name]] = rng.uniform(0.75, 0.97)
    if kind == "specialist" and rng.random() < 0.5:
        x = np.maximum(x, rng.uniform(0.55, 0.8))
    return x


def random_environment(seed: int) -> tuple[Environment, str]:
    """The environment of ``seed`` and its scenario kind (module docstring)."""
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    d = len(OBJECTIVES)
    strategies = {}
    for name in STRATEGIES:
        x_star = _equilibrium(rng, name, kind)
        rates = rng.uniform(0.12, 1.2, d)
        if kind == "phase" and name == "adaptive_integration":
            x_star = rng.uniform(0.72, 0.9, d)
            rates = rng.uniform(0.04, 0.09, d)  # the best equilibrium, but slow
        elif kind == "balanced" and name == "adaptive_integration":
            rates = rng.uniform(0.4, 0.9, d)
        A = _drift(rng, rates, float(rng.uniform(0.0, 0.35)), bool(rng.random() < 0.25))
        sd = float(rng.uniform(0.005, 0.06))
        strategies[name] = StrategyDynamics.from_equilibrium(A, x_star, _noise(rng, sd))
    if kind == "phase":  # a fast strategy lifts what starts lowest
        first = STRATEGIES[int(rng.integers(0, 3))]
        target = rng.uniform(0.55, 0.8, d)
        strategies[first] = StrategyDynamics.from_equilibrium(
            -np.diag(rng.uniform(0.5, 1.0, d)), target, _noise(rng, 0.01)
        )
    environment = Environment(
        objectives=OBJECTIVES,
        strategies=strategies,
        noise_sd=float(rng.uniform(0.005, 0.04)),
        initial_mean=tuple(rng.uniform(0.1, 0.5, d).tolist()),
        initial_std=0.05,
        description=f"random {kind} environment, seed {seed}",
    )
    return environment, kind
