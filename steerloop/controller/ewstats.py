"""Exponentially weighted mean, covariance and correlation of a vector stream.

With forgetting λ ∈ (0, 1], observation k of n carries weight w_k = λ^{n−k}. The estimator
keeps W = Σ w_k, the weighted mean m = Σ w_k v_k / W and the scatter
S = Σ w_k (v_k − m)(v_k − m)ᵀ, updated in O(d²) per observation by West's weighted
recurrence with decay:

    W' = λW + 1,   δ = v − m,   m' = m + δ / W',   S' = λS + (λW / W') δ δᵀ

(the last term equals δ (v − m')ᵀ and is written in its symmetric form). Covariance is
S / W (the weighted population covariance); correlation is S_ij / √(S_ii S_jj).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.state import EWMomentsState
from steerloop.errors import NotReadyError, ShapeError

__all__ = ["EWMoments"]

FloatArray = NDArray[np.float64]


class EWMoments:
    """Exponentially weighted first and second moments of vectors of dimension ``dim``.

    Parameters
    ----------
    dim : int
        Vector dimension d.
    forgetting : float
        λ ∈ (0, 1]; λ = 1 weights every observation equally.

    Examples
    --------
    >>> import numpy as np
    >>> moments = EWMoments(2, forgetting=1.0)
    >>> for v in ([0.0, 0.0], [1.0, 2.0], [2.0, 4.0]):
    ...     moments.update(np.array(v))
    >>> moments.mean.tolist(), round(float(moments.correlation[0, 1]), 12)
    ([1.0, 2.0], 1.0)
    """

    __slots__ = ("_count", "_dim", "_forgetting", "_mean", "_scatter", "_weight")

    def __init__(self, dim: int, *, forgetting: float = 1.0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
        self._dim = dim
        self._forgetting = forgetting
        self._weight = 0.0
        self._mean: FloatArray = np.zeros(dim)
        self._scatter: FloatArray = np.zeros((dim, dim))
        self._count = 0

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return self._dim

    @property
    def count(self) -> int:
        """Number of observations seen."""
        return self._count

    @property
    def weight(self) -> float:
        """Total weight W = Σ λ^{n−k}."""
        return self._weight

    @property
    def mean(self) -> FloatArray:
        """Weighted mean m (a copy)."""
        return self._mean.copy()

    @property
    def scatter(self) -> FloatArray:
        """Unnormalized weighted scatter S (a copy)."""
        return self._scatter.copy()

    def update(self, value: FloatArray) -> None:
        """Add one observation ``value`` of shape (d,) (must be finite)."""
        if value.shape != (self._dim,):
            raise ShapeError("value", (self._dim,), value.shape)
        decayed = self._forgetting * self._weight
        weight = decayed + 1.0
        delta = value - self._mean
        # In place, with the same roundings as m + δ/W' and λS + (λW/W') δδᵀ (the arrays are
        # private: the properties hand out copies).
        self._mean += delta / weight
        term = delta[:, None] * delta  # np.outer(δ, δ)
        term *= decayed / weight
        self._scatter *= self._forgetting
        self._scatter += term
        self._weight = weight
        self._count += 1

    @property
    def covariance(self) -> FloatArray:
        """Weighted population covariance S / W; needs one observation."""
        if self._count < 1:
            raise NotReadyError("EW covariance", 1, self._count)
        return self._scatter / self._weight

    @property
    def correlation(self) -> FloatArray:
        """Weighted correlation S_ij / √(S_ii S_jj); entries with a zero variance are NaN.

        The diagonal is 1 where the variance is positive. Needs two observations.
        """
        if self._count < 2:
            raise NotReadyError("EW correlation", 2, self._count)
        scatter = self._scatter
        scale = np.sqrt(scatter.diagonal())
        product = scale[:, None] * scale  # np.outer(scale, scale)
        corr: FloatArray
        if float(product.min()) > 0.0:
            # Every variance is positive: no division by zero, every entry finite.
            corr = scatter / product
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                corr = scatter / product
            corr[~np.isfinite(corr)] = np.nan
        # np.clip(corr, -1, 1) (NaN stays NaN), in place.
        np.maximum(corr, -1.0, out=corr)
        np.minimum(corr, 1.0, out=corr)
        return corr

    def reset(self) -> None:
        """Forget every observation."""
        self._weight = 0.0
        self._mean = np.zeros(self._dim)
        self._scatter = np.zeros((self._dim, self._dim))
        self._count = 0

    def to_state(self) -> EWMomentsState:
        """Serializable state (exact round trip)."""
        return EWMomentsState(
            weight=self._weight,
            mean=self._mean.tolist(),
            scatter=self._scatter.tolist(),
            count=self._count,
        )

    @classmethod
    def from_state(cls, state: EWMomentsState, *, forgetting: float) -> EWMoments:
        """Rebuild from :meth:`to_state` output; ``forgetting`` comes from configuration."""
        mean = np.asarray(state.mean, dtype=np.float64)
        moments = cls(mean.shape[0], forgetting=forgetting)
        scatter = np.asarray(state.scatter, dtype=np.float64)
        if scatter.shape != (moments.dim, moments.dim):
            raise ShapeError("scatter", (moments.dim, moments.dim), scatter.shape)
        moments._weight = state.weight
        moments._mean = mean
        moments._scatter = scatter
        moments._count = state.count
        return moments
