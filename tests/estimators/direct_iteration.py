"""Reference for the planner's closed forms: a belief propagated one step at a time."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.propagation import StrategyModel

FloatArray = NDArray[np.float64]


def iterate(
    model: StrategyModel, mean: FloatArray, cov: FloatArray, steps: int
) -> tuple[FloatArray, FloatArray]:
    """m ← F m + c, C ← F C Fᵀ + Q, n times, then + (I − Fⁿ) Cov(x̂*) (I − Fⁿ)ᵀ."""
    d = mean.shape[0]
    F = np.eye(d) + model.A * model.dt
    offset = model.b * model.dt
    power = np.eye(d)
    for _ in range(steps):
        mean = F @ mean + offset
        cov = F @ cov @ F.T + model.Q
        power = F @ power
    if model.equilibrium_covariance is not None:
        gap = np.eye(d) - power
        cov = cov + gap @ model.equilibrium_covariance @ gap.T
    return mean, cov
