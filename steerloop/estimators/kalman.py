"""Objective-state Kalman filter: noisy scores y_t in, filtered objectives x̂_t out.

Model (docs/architecture.md, "Math"; Shukla & Joshi, eq. 1–2 discretised by Euler–Maruyama)::

    x_{t+1} = F x_t + b Δt + w_t,   w_t ~ N(0, Q),   F = I + A_π Δt,   Q = Σ_π Δt
    y_t     = x_t + v_t,            v_t ~ N(0, R),   R = diag(r_1, …, r_d)  (variances)

Predict (filterpy ``KalmanFilter.predict`` with control input B = I, u = b Δt)::

    x⁻ = F x + u,   P⁻ = F P Fᵀ + Q

Update on the valid components only: with V the set of valid indices, H_V the rows V of the
identity and R_V = R[V, V] (missing rows dropped from H and R)::

    e = y_V − H_V x⁻,   S = H_V P⁻ H_Vᵀ + R_V,   K = P⁻ H_Vᵀ S⁻¹
    x = x⁻ + K e,       P = (I − K H_V) P⁻ (I − K H_V)ᵀ + K R_V Kᵀ   (Joseph form, filterpy)

An all-missing measurement performs no update (posterior = prior). filterpy treats a NaN in
``z`` as a number and would poison the state for good, so only finite components ever reach
it: the caller passes NaN for a missing score and the filter drops it.

After each predict and update, P is replaced by (P + Pᵀ)/2 and, if its smallest eigenvalue
λ_min is ≤ ε = 1e-12 · max(1, λ_max), by P + (ε − λ_min) I, so that it stays positive definite.
A predict or update whose result is not finite raises :class:`~steerloop.errors.NumericalError`
(predict) or is dropped (update) and leaves the filter unchanged.

References
----------
R. E. Kalman, "A new approach to linear filtering and prediction problems", Journal of Basic
Engineering 82(1), 1960. R. R. Labbe, *Kalman and Bayesian Filters in Python* (filterpy).

Examples
--------
>>> import numpy as np
>>> kf = ObjectiveFilter(2)
>>> kf.predict_random_walk(0.001)
>>> kf.update(np.array([0.8, np.nan]), np.array([0.01, 0.01])).tolist()
[True, False]
>>> [round(v, 4) for v in kf.mean.tolist()], kf.count
([0.797, 0.5], 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.errors import NumericalError, ShapeError

__all__ = ["EIGENVALUE_FLOOR", "KalmanState", "ObjectiveFilter"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Relative eigenvalue floor of the covariance (see the module docstring).
EIGENVALUE_FLOOR = 1e-12


@dataclass(frozen=True)
class KalmanState:
    """Snapshot of an :class:`ObjectiveFilter`: mean x̂, covariance P and the update count."""

    mean: FloatArray
    covariance: FloatArray
    count: int


class ObjectiveFilter:
    """Kalman filter of the d-dimensional objective state (filterpy ``KalmanFilter``).

    Parameters
    ----------
    dim : int
        Number of objectives d ≥ 1.
    initial_mean : float or array of shape (d,)
        Initial state estimate x̂_0 (finite).
    initial_covariance : float
        Initial covariance P_0 = p_0 I, p_0 > 0.
    """

    def __init__(
        self, dim: int, *, initial_mean: float | ArrayLike = 0.5, initial_covariance: float = 1.0
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        mean = np.broadcast_to(np.asarray(initial_mean, dtype=np.float64), (dim,)).copy()
        if not np.isfinite(mean).all():
            raise ValueError(f"initial_mean must be finite, got {mean.tolist()}")
        if not (math.isfinite(initial_covariance) and initial_covariance > 0.0):
            raise ValueError(f"initial_covariance must be finite and > 0, got {initial_covariance}")
        # filterpy pulls in scipy.stats; import it on first use to keep `import steerloop` light.
        from filterpy.kalman import KalmanFilter

        self._dim = dim
        self._eye = np.eye(dim)
        self._kf: Any = KalmanFilter(dim_x=dim, dim_z=dim, dim_u=dim)
        self._kf.x = mean.reshape(dim, 1)
        self._kf.P = initial_covariance * np.eye(dim)
        self._kf.B = np.eye(dim)
        self._count = 0
        self._innovation: FloatArray | None = None

    @property
    def dim(self) -> int:
        """Number of objectives d."""
        return self._dim

    @property
    def count(self) -> int:
        """Number of updates that used at least one component."""
        return self._count

    @property
    def mean(self) -> FloatArray:
        """Filtered state x̂, shape (d,) (a copy)."""
        return np.array(self._kf.x[:, 0], dtype=np.float64)

    @property
    def covariance(self) -> FloatArray:
        """State covariance P, shape (d, d) (a copy; symmetric positive definite)."""
        return np.array(self._kf.P, dtype=np.float64)

    @property
    def innovation(self) -> FloatArray | None:
        """Residual y − x⁻ of the last update (NaN where not used); ``None`` before one."""
        return None if self._innovation is None else self._innovation.copy()

    def predict(self, F: ArrayLike, offset: ArrayLike, Q: ArrayLike) -> None:
        """Prior for the next step: x⁻ = F x + offset, P⁻ = F P Fᵀ + Q.

        Raises
        ------
        ShapeError
            On a wrong shape.
        ValueError
            If Q has a negative diagonal entry (a variance); the filter is left unchanged.
        NumericalError
            If an input or the result is not finite; the filter is left unchanged.
        """
        d = self._dim
        F_ = np.asarray(F, dtype=np.float64)
        u = np.asarray(offset, dtype=np.float64)
        Q_ = np.asarray(Q, dtype=np.float64)
        for name, value, shape in (("F", F_, (d, d)), ("offset", u, (d,)), ("Q", Q_, (d, d))):
            if value.shape != shape:
                raise ShapeError(name, shape, value.shape)
        if not (np.isfinite(F_).all() and np.isfinite(u).all() and np.isfinite(Q_).all()):
            raise NumericalError("Kalman predict", "F, offset or Q is not finite")
        if (np.diagonal(Q_) < 0.0).any():
            # The eigenvalue floor would otherwise turn P − |q| I into a near-certain prior.
            raise ValueError(f"Q is a covariance: its diagonal must be >= 0, got {Q_.tolist()}")
        x, P = self._kf.x, self._kf.P
        with np.errstate(all="ignore"):
            self._kf.predict(u=u.reshape(d, 1), F=F_, Q=Q_)
        if not self._stabilize():
            self._kf.x, self._kf.P = x, P
            raise NumericalError("Kalman predict", "the prediction is not finite")

    def predict_random_walk(self, variance: float) -> None:
        """Predict with F = I, no offset and Q = variance · I (``ValueError`` if negative)."""
        self.predict(self._eye, np.zeros(self._dim), np.diag(np.full(self._dim, float(variance))))

    def update(self, values: ArrayLike, noise: ArrayLike) -> BoolArray:
        """Update with the finite components of ``values`` (NaN = missing).

        Parameters
        ----------
        values : array of shape (d,)
            Scores y_t, NaN where missing.
        noise : array of shape (d,)
            Measurement variances r_i > 0 (the diagonal of R).

        Returns
        -------
        ndarray of bool, shape (d,)
            ``True`` for the components that entered the update (all ``False`` when the
            update was dropped as non-finite).
        """
        d = self._dim
        y = np.asarray(values, dtype=np.float64)
        r = np.asarray(noise, dtype=np.float64)
        if y.shape != (d,):
            raise ShapeError("values", (d,), y.shape)
        if r.shape != (d,) or not (np.isfinite(r).all() and (r > 0).all()):
            raise ValueError(f"noise must be {d} finite positive variances, got {r.tolist()}")
        mask = np.isfinite(y)
        self._innovation = np.full(d, math.nan)
        if not mask.any():
            return mask
        index = np.flatnonzero(mask)
        x, P = self._kf.x, self._kf.P
        try:
            with np.errstate(all="ignore"):
                self._kf.update(y[index].reshape(-1, 1), R=np.diag(r[index]), H=self._eye[index])
            stable = self._stabilize()
        except np.linalg.LinAlgError:
            stable = False
        if not stable:
            self._kf.x, self._kf.P = x, P
            return np.zeros(d, dtype=np.bool_)
        self._innovation[index] = np.asarray(self._kf.y, dtype=np.float64)[:, 0]
        self._count += 1
        return mask

    def _stabilize(self) -> bool:
        """Symmetrize P and floor its eigenvalues; False if x or P is not finite."""
        x = np.asarray(self._kf.x, dtype=np.float64)
        P = np.asarray(self._kf.P, dtype=np.float64)
        if not (np.isfinite(x).all() and np.isfinite(P).all()):
            return False
        P = 0.5 * (P + P.T)
        eigenvalues = np.linalg.eigvalsh(P)
        floor = EIGENVALUE_FLOOR * max(1.0, float(eigenvalues[-1]))
        if eigenvalues[0] <= floor:
            P = P + (floor - float(eigenvalues[0])) * self._eye
        self._kf.P = P
        return True

    def to_state(self) -> KalmanState:
        """Snapshot (copies; an exact round trip)."""
        return KalmanState(self.mean, self.covariance, self._count)

    @classmethod
    def from_state(cls, state: KalmanState) -> ObjectiveFilter:
        """Rebuild from :meth:`to_state` output.

        Raises
        ------
        ShapeError
            If the covariance is not (d, d) for a mean of length d.
        NumericalError
            If the mean or covariance has non-finite entries.
        """
        mean = np.array(state.mean, dtype=np.float64)
        if mean.ndim != 1:
            raise ShapeError("mean", (-1,), mean.shape)
        d = mean.shape[0]
        covariance = np.array(state.covariance, dtype=np.float64)
        if covariance.shape != (d, d):
            raise ShapeError("covariance", (d, d), covariance.shape)
        if not (np.isfinite(mean).all() and np.isfinite(covariance).all()):
            raise NumericalError("Kalman state", "the snapshot has non-finite entries; reset it")
        restored = cls(d, initial_mean=mean)
        restored._kf.P = covariance
        restored._count = int(state.count)
        return restored
