"""Exponentially weighted mean, covariance and correlation of a vector stream.

With forgetting λ ∈ (0, 1], observation k of n carries weight w_k = λ^{n−k}. The estimator
keeps W = Σ w_k, the weighted mean m = Σ w_k v_k / W and the scatter
S = Σ w_k (v_k − m)(v_k − m)ᵀ, updated in O(d²) per observation by West's weighted
recurrence with decay:

    W' = λW + 1,   δ = v − m,   m' = m + δ / W',   S' = λS + (λW / W') δ δᵀ

(the last term equals δ (v − m')ᵀ and is written in its symmetric form). Covariance is
S / W (the weighted population covariance); correlation is S_ij / √(S_ii S_jj).

Two storages, one arithmetic. :class:`EWMoments` keeps m and S in numpy arrays (any d);
:class:`SmallEWMoments` keeps them as Python floats, for d ≤ :data:`SMALL_DIM`, where one
numpy call costs more than the few flops it does (a session updates four streams per step).
Both do the same IEEE operations in the same order — S'_ij = λ S_ij + (δ_i δ_j) c with
c = λW / W' — so their numbers are bit-identical (tests/controller/test_ewstats.py);
:func:`ew_moments` picks the storage by dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from steerloop.controller.state import EWMomentsState
from steerloop.errors import NotReadyError, ShapeError

__all__ = [
    "SMALL_DIM",
    "EWMoments",
    "Moments",
    "SmallEWMoments",
    "ew_moments",
    "moments_from_state",
    "packed_state",
]

FloatArray = NDArray[np.float64]

#: Largest dimension kept in Python floats by :func:`ew_moments` (d² products per update: at
#: d = 4 a Python loop still beats the half-dozen numpy calls of the array update).
SMALL_DIM = 4

_NAN = math.nan


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

    def correlation_rows(self) -> list[list[float]]:
        """:attr:`correlation` as nested lists (the same numbers). Needs two observations."""
        rows: list[list[float]] = self.correlation.tolist()
        return rows

    def variance_total(self) -> tuple[float, float]:
        """(tr S / W, m·m): total weighted variance and squared norm of the mean.

        Read without copies (the predictive R² of the drift model uses them every step).
        Needs one observation.
        """
        if self._count < 1:
            raise NotReadyError("EW variance", 1, self._count)
        return float(self._scatter.trace()) / self._weight, float(self._mean.dot(self._mean))

    def packed(self) -> FloatArray:
        """The state as one vector [W, n, m, S row by row] (exact; see :meth:`load_packed`)."""
        return np.concatenate(
            ((self._weight, float(self._count)), self._mean, self._scatter.ravel())
        )

    def load_packed(self, packed: FloatArray) -> None:
        """Take the state from a :meth:`packed` vector of this dimension (copied)."""
        d = self._dim
        weight, count = packed[:2].tolist()
        self._weight = weight
        self._count = int(count)
        self._mean = np.array(packed[2 : 2 + d], dtype=np.float64)
        self._scatter = np.array(packed[2 + d :], dtype=np.float64).reshape(d, d)

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


class SmallEWMoments:
    """:class:`EWMoments` with m and S held as Python floats (d ≤ :data:`SMALL_DIM`).

    Same interface and bit-identical numbers (module docstring); the array properties build
    new arrays. ``update`` also takes a list of floats.

    Examples
    --------
    >>> import numpy as np
    >>> small, large = SmallEWMoments(2, forgetting=0.9), EWMoments(2, forgetting=0.9)
    >>> for v in ([0.0, 1.0], [1.0, 3.0], [2.0, 4.0]):
    ...     small.update(v)
    ...     large.update(np.array(v))
    >>> small.scatter.tolist() == large.scatter.tolist(), small.weight == large.weight
    (True, True)
    """

    __slots__ = ("_count", "_dim", "_forgetting", "_mean", "_pairs", "_scatter", "_weight")

    def __init__(self, dim: int, *, forgetting: float = 1.0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if dim > SMALL_DIM:
            raise ValueError(f"SmallEWMoments holds d <= {SMALL_DIM}, got {dim}; use EWMoments")
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
        self._dim = dim
        self._forgetting = forgetting
        self._pairs = _pairs(dim)
        self._weight = 0.0
        self._mean: list[float] = [0.0] * dim
        self._scatter: list[float] = [0.0] * (dim * dim)  # row by row
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
        """Weighted mean m (a new array)."""
        return np.array(self._mean, dtype=np.float64)

    @property
    def scatter(self) -> FloatArray:
        """Unnormalized weighted scatter S (a new array)."""
        return np.array(self._scatter, dtype=np.float64).reshape(self._dim, self._dim)

    def update(self, value: FloatArray | Sequence[float]) -> None:
        """Add one observation ``value`` of length d (must be finite)."""
        values: list[float]
        if isinstance(value, np.ndarray):
            if value.shape != (self._dim,):
                raise ShapeError("value", (self._dim,), value.shape)
            values = value.tolist()
        else:
            values = list(value)
            if len(values) != self._dim:
                raise ShapeError("value", (self._dim,), (len(values),))
        forgetting = self._forgetting
        decayed = forgetting * self._weight
        weight = decayed + 1.0
        mean = self._mean
        delta = [v - m for v, m in zip(values, mean, strict=True)]
        self._mean = [m + e / weight for m, e in zip(mean, delta, strict=True)]
        scale = decayed / weight
        self._scatter = [
            forgetting * s + (delta[i] * delta[j]) * scale
            for s, (i, j) in zip(self._scatter, self._pairs, strict=True)
        ]
        self._weight = weight
        self._count += 1

    @property
    def covariance(self) -> FloatArray:
        """Weighted population covariance S / W; needs one observation."""
        if self._count < 1:
            raise NotReadyError("EW covariance", 1, self._count)
        return self.scatter / self._weight

    def correlation_rows(self) -> list[list[float]]:
        """:attr:`correlation` as nested lists. Needs two observations."""
        if self._count < 2:
            raise NotReadyError("EW correlation", 2, self._count)
        d = self._dim
        scatter = self._scatter
        scale = [math.sqrt(scatter[i * d + i]) for i in range(d)]
        rows: list[list[float]] = []
        for i in range(d):
            row: list[float] = []
            for j in range(d):
                product = scale[i] * scale[j]
                # S / (√S_ii √S_jj) with numpy's results where the product is 0 (0/0 and
                # x/0 are NaN there), then clipped to [−1, 1] with NaN kept.
                value = scatter[i * d + j] / product if product != 0.0 else _NAN
                if value < -1.0:  # NaN fails both tests and stays NaN
                    value = -1.0
                elif value > 1.0:
                    value = 1.0
                row.append(value)
            rows.append(row)
        return rows

    @property
    def correlation(self) -> FloatArray:
        """Weighted correlation S_ij / √(S_ii S_jj) (as :attr:`EWMoments.correlation`)."""
        return np.array(self.correlation_rows(), dtype=np.float64)

    def variance_total(self) -> tuple[float, float]:
        """(tr S / W, m·m), as :meth:`EWMoments.variance_total`. Needs one observation."""
        if self._count < 1:
            raise NotReadyError("EW variance", 1, self._count)
        d = self._dim
        scatter = self._scatter
        trace = 0.0
        for i in range(d):
            trace += scatter[i * d + i]
        square = 0.0
        for m in self._mean:
            square += m * m
        return trace / self._weight, square

    def packed(self) -> FloatArray:
        """The state as one vector [W, n, m, S row by row] (as :meth:`EWMoments.packed`)."""
        return np.array(
            [self._weight, float(self._count), *self._mean, *self._scatter], dtype=np.float64
        )

    def load_packed(self, packed: FloatArray) -> None:
        """Take the state from a :meth:`packed` vector of this dimension."""
        d = self._dim
        values: list[float] = packed.tolist()
        self._weight = values[0]
        self._count = int(values[1])
        self._mean = values[2 : 2 + d]
        self._scatter = values[2 + d : 2 + d + d * d]

    def reset(self) -> None:
        """Forget every observation."""
        self._weight = 0.0
        self._mean = [0.0] * self._dim
        self._scatter = [0.0] * (self._dim * self._dim)
        self._count = 0

    def to_state(self) -> EWMomentsState:
        """Serializable state (exact round trip)."""
        d = self._dim
        return EWMomentsState(
            weight=self._weight,
            mean=list(self._mean),
            scatter=[self._scatter[i * d : (i + 1) * d] for i in range(d)],
            count=self._count,
        )

    @classmethod
    def from_state(cls, state: EWMomentsState, *, forgetting: float) -> SmallEWMoments:
        """Rebuild from :meth:`to_state` output; ``forgetting`` comes from configuration."""
        d = len(state.mean)
        moments = cls(d, forgetting=forgetting)
        if len(state.scatter) != d or any(len(row) != d for row in state.scatter):
            raise ShapeError("scatter", (d, d), (len(state.scatter), -1))
        moments._weight = state.weight
        moments._mean = [float(v) for v in state.mean]
        moments._scatter = [float(v) for row in state.scatter for v in row]
        moments._count = state.count
        return moments


#: Either storage; both have the same interface.
Moments = EWMoments | SmallEWMoments

_PAIRS: dict[int, tuple[tuple[int, int], ...]] = {}


def _pairs(dim: int) -> tuple[tuple[int, int], ...]:
    """Index pairs (i, j) of a d × d matrix in row-major order, built once per dimension."""
    found = _PAIRS.get(dim)
    if found is None:
        found = _PAIRS[dim] = tuple((i, j) for i in range(dim) for j in range(dim))
    return found


def ew_moments(dim: int, *, forgetting: float = 1.0) -> Moments:
    """EW moments of dimension ``dim``: :class:`SmallEWMoments` up to :data:`SMALL_DIM`."""
    if 1 <= dim <= SMALL_DIM:
        return SmallEWMoments(dim, forgetting=forgetting)
    return EWMoments(dim, forgetting=forgetting)


def moments_from_state(state: EWMomentsState, *, forgetting: float) -> Moments:
    """:meth:`from_state` of the storage :func:`ew_moments` picks for the state's dimension."""
    if 1 <= len(state.mean) <= SMALL_DIM:
        return SmallEWMoments.from_state(state, forgetting=forgetting)
    return EWMoments.from_state(state, forgetting=forgetting)


def packed_state(packed: FloatArray, dim: int) -> EWMomentsState:
    """The :class:`EWMomentsState` of a :meth:`EWMoments.packed` vector, read in place."""
    weight, count = packed[:2].tolist()
    return EWMomentsState(
        weight=weight,
        mean=packed[2 : 2 + dim].tolist(),
        scatter=packed[2 + dim : 2 + dim + dim * dim].reshape(dim, dim).tolist(),
        count=int(count),
    )
