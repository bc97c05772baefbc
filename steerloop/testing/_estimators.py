"""Estimator checks of :mod:`steerloop.testing` (:func:`check_estimator`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["EstimatorCheck", "EstimatorKind", "check_estimator"]

# ------------------------------------------------------------------------------ estimators

#: The estimators :func:`check_estimator` knows, with the batch solution each is checked by.
EstimatorKind = Literal["rls", "kalman"]


@dataclass(frozen=True)
class EstimatorCheck:
    """The result of :func:`check_estimator`.

    Attributes
    ----------
    estimator : str
        ``"rls"`` or ``"kalman"``.
    reference : str
        The batch solution it was compared with.
    max_relative_error : float
        The largest relative difference (Frobenius norm) over the checked steps and outputs.
    tolerance : float
        The bound it was checked against.
    steps : int
        Observations fed.
    """

    estimator: str
    reference: str
    max_relative_error: float
    tolerance: float
    steps: int

    @property
    def passed(self) -> bool:
        """``max_relative_error <= tolerance``."""
        return self.max_relative_error <= self.tolerance


def check_estimator(
    estimator: EstimatorKind,
    *,
    forgetting: float = 1.0,
    initial_covariance: float = 1e4,
    measurement_noise: float = 0.01,
    dim: int = 3,
    steps: int = 200,
    seed: int = 0,
    tolerance: float = 1e-9,
    check: bool = True,
) -> EstimatorCheck:
    """Run an estimator configured like yours against its batch solution.

    * ``"rls"`` — :class:`~steerloop.estimators.rls.RecursiveLeastSquares` with your
      ``forgetting`` λ and ``initial_covariance`` p₀ learns the drift regression of a seeded
      simulated trajectory (regressors φ = [x; 1], targets z = A x + b + noise, ``dim``
      objectives). Every 10 steps and at the end, Θ and P = (Σ λ^{n−k} φφᵀ + I/p₀)⁻¹ are
      compared with the λ-weighted ridge regression solved in one batch.
    * ``"kalman"`` — :class:`~steerloop.estimators.kalman.ObjectiveFilter` with prior
      N(0.5, ``initial_covariance`` I) is updated with noisy measurements (variance
      ``measurement_noise``, about 20 % missing) of a constant state; its mean and
      covariance are compared with the batch Gaussian posterior, per objective:
      P = (1/p₀ + Σ 1/r)⁻¹, x̂ = P (0.5/p₀ + Σ y/r), the sums over the observed values.

    The agreement is to rounding, not bit for bit: the batch and recursive computations
    differ in operation order and BLAS kernels. The default 1e-9 leaves a wide margin over
    what the library's configurations show (about 1e-13 or less); an ill-conditioned
    configuration may legitimately need a looser bound.

    Parameters
    ----------
    estimator : {"rls", "kalman"}
        Which estimator.
    forgetting, initial_covariance : float
        The policy's ``estimation.forgetting`` and ``estimation.initial_covariance`` (RLS);
        ``initial_covariance`` is also the filter's prior variance p₀.
    measurement_noise : float
        Measurement variance r (Kalman).
    dim : int
        Number of objectives d.
    steps : int
        Observations fed.
    seed : int
        Seed of the simulated data (:func:`numpy.random.default_rng`).
    tolerance : float
        Largest relative difference accepted.
    check : bool
        Raise ``AssertionError`` when the difference exceeds ``tolerance`` (default);
        ``False`` only reports it.

    Returns
    -------
    EstimatorCheck

    Examples
    --------
    >>> result = check_estimator("rls", forgetting=0.98, initial_covariance=1e4)
    >>> result.passed, result.max_relative_error < 1e-9
    (True, True)
    >>> check_estimator("kalman", measurement_noise=0.02, steps=50).passed
    True
    """
    if estimator not in ("rls", "kalman"):
        raise ValueError(f"estimator must be 'rls' or 'kalman', got {estimator!r}")
    if dim < 1 or steps < 1:
        raise ValueError(f"dim and steps must be >= 1, got {dim}, {steps}")
    run = _check_rls if estimator == "rls" else _check_kalman
    reference, error = run(forgetting, initial_covariance, measurement_noise, dim, steps, seed)
    result = EstimatorCheck(estimator, reference, error, float(tolerance), steps)
    if check and not result.passed:
        raise AssertionError(
            f"{estimator} differs from the {reference} by {error:.3g} (relative), "
            f"more than {tolerance:.3g}"
        )
    return result


def _relative(a: Any, b: Any) -> float:
    import numpy as np

    scale = float(np.linalg.norm(b))
    difference = float(np.linalg.norm(a - b))
    return difference / scale if scale > 0.0 else difference


def _check_rls(
    forgetting: float, p0: float, noise: float, dim: int, steps: int, seed: int
) -> tuple[str, float]:
    import numpy as np

    from steerloop.estimators.rls import RecursiveLeastSquares

    rng = np.random.default_rng(seed)
    A = -0.5 * np.eye(dim) + 0.1 * rng.normal(size=(dim, dim))
    b = rng.uniform(0.1, 0.4, dim)
    x = rng.uniform(0.2, 0.8, (steps, dim))
    X = np.column_stack([x, np.ones(steps)])
    Z = x @ A.T + b + np.sqrt(noise) * rng.normal(size=(steps, dim))
    rls = RecursiveLeastSquares(dim + 1, dim, forgetting=forgetting, initial_covariance=p0)
    worst = 0.0
    for k in range(1, steps + 1):
        rls.update(X[k - 1], Z[k - 1])
        if k % 10 and k != steps:
            continue
        weights = forgetting ** np.arange(k - 1, -1, -1.0)
        information = (X[:k].T * weights) @ X[:k] + np.eye(dim + 1) / p0
        theta = np.linalg.solve(information, (X[:k].T * weights) @ Z[:k])
        fit = rls.fit()
        worst = max(
            worst,
            _relative(fit.theta, theta),
            _relative(fit.inverse_information, np.linalg.inv(information)),
        )
    return "weighted ridge regression", worst


def _check_kalman(
    forgetting: float, p0: float, noise: float, dim: int, steps: int, seed: int
) -> tuple[str, float]:
    import numpy as np

    from steerloop.estimators.kalman import ObjectiveFilter

    del forgetting
    rng = np.random.default_rng(seed)
    state = rng.uniform(0.2, 0.8, dim)
    Y = state + np.sqrt(noise) * rng.normal(size=(steps, dim))
    Y[rng.random((steps, dim)) < 0.2] = np.nan
    kf = ObjectiveFilter(dim, initial_mean=0.5, initial_covariance=p0)
    r = np.full(dim, noise)
    for y in Y:
        kf.update(y, r)
    observed = np.isfinite(Y)
    precision = 1.0 / p0 + observed.sum(axis=0) / noise
    mean = (0.5 / p0 + np.where(observed, Y, 0.0).sum(axis=0) / noise) / precision
    worst = max(_relative(kf.mean, mean), _relative(kf.covariance, np.diag(1.0 / precision)))
    return "batch Gaussian posterior", worst
