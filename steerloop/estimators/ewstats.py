"""Exponentially weighted mean, covariance and correlation of a vector stream.

With forgetting λ ∈ (0, 1], observation k of n carries weight w_k = λ^{n−k}. The estimator
keeps W = Σ w_k, W₂ = Σ w_k², the weighted mean m = Σ w_k v_k / W and the scatter
S = Σ w_k (v_k − m)(v_k − m)ᵀ, updated in O(d²) per observation by West's weighted
recurrence with decay (West 1979):

    W' = λW + 1,   W₂' = λ²W₂ + 1,   δ = v − m,   m' = m + δ / W',   S' = λS + (λW / W') δ δᵀ

The covariance is S / W (weighted population covariance) and the correlation
S_ij / √(S_ii S_jj). The *effective sample size* n_eff = W² / W₂ (Kish 1965) says how many
equally weighted observations the weights are worth: n for λ = 1, (1 + λ)/(1 − λ) in the
limit for λ < 1 (99 for λ = 0.98). Diagnostics built on these moments are reported only once
n_eff passes a threshold (see :mod:`steerloop.estimators.interference`).

References
----------
D. H. D. West, "Updating mean and variance estimates: an improved method", Communications of
the ACM 22(9), 1979. L. Kish, *Survey Sampling*, Wiley, 1965 (effective sample size).

Examples
--------
>>> import numpy as np
>>> moments = EWMoments(2, forgetting=1.0)
>>> for v in ([0.0, 0.0], [1.0, 2.0], [2.0, 4.0]):
...     moments.update(np.array(v))
>>> moments.mean.tolist(), round(float(moments.correlation()[0, 1]), 12), moments.effective_size
([1.0, 2.0], 1.0, 3.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.errors import NotReadyError, ShapeError

__all__ = ["EWMoments", "EWMomentsState", "check_forgetting"]

FloatArray = NDArray[np.float64]


def check_forgetting(forgetting: float) -> float:
    """Return ``forgetting`` as a float after checking λ ∈ (0, 1] (``ValueError`` otherwise)."""
    value = float(forgetting)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
    return value


@dataclass(frozen=True)
class EWMomentsState:
    """Snapshot of :class:`EWMoments`: W, W₂, m, S and the observation count."""

    weight: float
    weight_sq: float
    mean: FloatArray
    scatter: FloatArray
    count: int


class EWMoments:
    """Exponentially weighted first and second moments of vectors of dimension ``dim``.

    Parameters
    ----------
    dim : int
        Vector dimension d ≥ 1.
    forgetting : float
        λ ∈ (0, 1]; λ = 1 weights every observation equally.
    """

    def __init__(self, dim: int, *, forgetting: float = 1.0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self._dim = dim
        self._forgetting = check_forgetting(forgetting)
        self._weight = 0.0
        self._weight_sq = 0.0
        self._mean: FloatArray = np.zeros(dim)
        self._scatter: FloatArray = np.zeros((dim, dim))
        self._count = 0

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return self._dim

    @property
    def count(self) -> int:
        """Number of observations."""
        return self._count

    @property
    def weight(self) -> float:
        """Total weight W = Σ λ^{n−k}."""
        return self._weight

    @property
    def effective_size(self) -> float:
        """Kish effective sample size W² / W₂ (0 before the first observation)."""
        return self._weight * self._weight / self._weight_sq if self._weight_sq > 0 else 0.0

    @property
    def mean(self) -> FloatArray:
        """Weighted mean m (a copy)."""
        return self._mean.copy()

    @property
    def scatter(self) -> FloatArray:
        """Unnormalized weighted scatter S (a copy)."""
        return self._scatter.copy()

    def update(self, value: ArrayLike) -> None:
        """Add one finite observation of shape (d,).

        Raises
        ------
        ShapeError
            If the observation does not have shape (d,).
        ValueError
            If it has a non-finite entry (the moments are left unchanged).
        """
        vector = np.asarray(value, dtype=np.float64)
        if vector.shape != (self._dim,):
            raise ShapeError("value", (self._dim,), vector.shape)
        if not np.isfinite(vector).all():
            raise ValueError("EW moments take finite observations only")
        decayed = self._forgetting * self._weight
        weight = decayed + 1.0
        delta = vector - self._mean
        self._mean = self._mean + delta / weight
        self._scatter = self._forgetting * self._scatter + (decayed / weight) * np.outer(
            delta, delta
        )
        self._weight = weight
        self._weight_sq = self._forgetting**2 * self._weight_sq + 1.0
        self._count += 1

    def covariance(self) -> FloatArray:
        """Weighted population covariance S / W; needs one observation."""
        if self._count < 1:
            raise NotReadyError("EW covariance", 1, self._count)
        return self._scatter / self._weight

    def correlation(self, *, min_variance: float = 0.0) -> FloatArray:
        """Weighted correlation S_ij / √(S_ii S_jj), clipped to [−1, 1].

        Rows and columns of a component whose variance S_ii / W is ≤ ``min_variance`` are
        NaN (a correlation with a constant is undefined), the diagonal included. Needs two
        observations.
        """
        if self._count < 2:
            raise NotReadyError("EW correlation", 2, self._count)
        variance = np.diagonal(self._scatter) / self._weight
        defined = variance > min_variance
        scale = np.sqrt(np.where(defined, np.diagonal(self._scatter), 1.0))
        corr = np.clip(self._scatter / np.outer(scale, scale), -1.0, 1.0)
        corr[~defined, :] = math.nan
        corr[:, ~defined] = math.nan
        return np.asarray(corr, dtype=np.float64)

    def to_state(self) -> EWMomentsState:
        """Snapshot (copies; an exact round trip)."""
        return EWMomentsState(
            self._weight, self._weight_sq, self._mean.copy(), self._scatter.copy(), self._count
        )

    @classmethod
    def from_state(cls, state: EWMomentsState, *, forgetting: float) -> EWMoments:
        """Rebuild from :meth:`to_state` output; ``forgetting`` comes from configuration."""
        mean = np.array(state.mean, dtype=np.float64)
        if mean.ndim != 1:
            raise ShapeError("mean", (-1,), mean.shape)
        moments = cls(mean.shape[0], forgetting=forgetting)
        scatter = np.array(state.scatter, dtype=np.float64)
        if scatter.shape != (moments.dim, moments.dim):
            raise ShapeError("scatter", (moments.dim, moments.dim), scatter.shape)
        moments._weight = float(state.weight)
        moments._weight_sq = float(state.weight_sq)
        moments._mean = mean
        moments._scatter = scatter
        moments._count = int(state.count)
        return moments
