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
from typing import NamedTuple

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

#: Largest dimension kept in Python floats by :func:`ew_moments`: an update does d(d+1)/2
#: products, and up to d = 4 a Python loop over them still beats the half-dozen numpy calls
#: of the array update (measured ~40 % faster at d = 4).
SMALL_DIM = 4

_NAN = math.nan


class _Stream:
    """What both storages share: configuration, total weight and count."""

    __slots__ = ("_count", "_dim", "_forgetting", "_weight")

    def __init__(self, dim: int, forgetting: float) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
        self._dim = dim
        self._forgetting = forgetting
        self._weight = 0.0
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


class EWMoments(_Stream):
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

    __slots__ = ("_mean", "_scatter")

    def __init__(self, dim: int, *, forgetting: float = 1.0) -> None:
        super().__init__(dim, forgetting)
        self._mean: FloatArray = np.zeros(dim)
        self._scatter: FloatArray = np.zeros((dim, dim))

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


class SmallEWMoments(_Stream):
    """:class:`EWMoments` with m and S held as Python floats (d ≤ :data:`SMALL_DIM`).

    Same interface and bit-identical numbers (module docstring); the array properties build
    new arrays. ``update`` also takes a list of floats. The state is one list
    [m, S above and on the diagonal, row by row]: S stays exactly symmetric under the
    recurrence (δ_i δ_j = δ_j δ_i in IEEE arithmetic), so its upper triangle is all of it.

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

    __slots__ = ("_layout", "_values")

    def __init__(self, dim: int, *, forgetting: float = 1.0) -> None:
        if dim > SMALL_DIM:
            raise ValueError(f"SmallEWMoments holds d <= {SMALL_DIM}, got {dim}; use EWMoments")
        super().__init__(dim, forgetting)
        self._layout = _layout(dim)
        self._values: list[float] = [0.0] * (dim + len(self._layout.upper))

    @property
    def mean(self) -> FloatArray:
        """Weighted mean m (a new array)."""
        return np.array(self._values[: self._dim], dtype=np.float64)

    def _scatter_rows(self) -> list[list[float]]:
        values = self._values
        return [[values[k] for k in row] for row in self._layout.positions]

    @property
    def scatter(self) -> FloatArray:
        """Unnormalized weighted scatter S (a new array)."""
        return np.array(self._scatter_rows(), dtype=np.float64)

    def update(self, value: FloatArray | Sequence[float]) -> None:
        """Add one observation ``value`` of length d (must be finite)."""
        values = value if type(value) is list else self._as_list(value)
        if len(values) != self._dim:
            raise ShapeError("value", (self._dim,), (len(values),))
        forgetting = self._forgetting
        decayed = forgetting * self._weight
        weight = decayed + 1.0
        state = self._values
        # zip stops at the d entries of the observation: the first d of the state are m.
        delta = [v - m for v, m in zip(values, state, strict=False)]
        scale = decayed / weight
        updated = [m + e / weight for m, e in zip(state, delta, strict=False)]
        updated += [
            forgetting * state[k] + (delta[i] * delta[j]) * scale for k, i, j in self._layout.upper
        ]
        self._values = updated
        self._weight = weight
        self._count += 1

    def _as_list(self, value: FloatArray | Sequence[float]) -> list[float]:
        if isinstance(value, np.ndarray):
            if value.shape != (self._dim,):
                raise ShapeError("value", (self._dim,), value.shape)
            values: list[float] = value.tolist()
            return values
        return list(value)

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
        values = self._values
        scale = [math.sqrt(values[k]) for k in self._layout.diagonal]
        rows: list[list[float]] = []
        for i, positions in enumerate(self._layout.positions):
            row: list[float] = []
            for j, k in enumerate(positions):
                product = scale[i] * scale[j]
                # S / (√S_ii √S_jj) with numpy's results where the product is 0 (0/0 and
                # x/0 are NaN there), then clipped to [−1, 1] with NaN kept.
                entry = values[k] / product if product != 0.0 else _NAN
                if entry < -1.0:  # NaN fails both tests and stays NaN
                    entry = -1.0
                elif entry > 1.0:
                    entry = 1.0
                row.append(entry)
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
        values = self._values
        trace = 0.0
        for k in self._layout.diagonal:
            trace += values[k]
        square = 0.0
        for m in values[: self._dim]:
            square += m * m
        return trace / self._weight, square

    def packed(self) -> FloatArray:
        """The state as one vector [W, n, m, S row by row] (as :meth:`EWMoments.packed`)."""
        values = self._values
        return np.array(
            [
                self._weight,
                float(self._count),
                *values[: self._dim],
                *(values[k] for row in self._layout.positions for k in row),
            ],
            dtype=np.float64,
        )

    def load_packed(self, packed: FloatArray) -> None:
        """Take the state from a :meth:`packed` vector of this dimension."""
        d = self._dim
        values: list[float] = packed.tolist()
        self._weight = values[0]
        self._count = int(values[1])
        self._values = values[2 : 2 + d] + [
            values[2 + d + i * d + j] for _, i, j in self._layout.upper
        ]

    def reset(self) -> None:
        """Forget every observation."""
        self._weight = 0.0
        self._values = [0.0] * len(self._values)
        self._count = 0

    def to_state(self) -> EWMomentsState:
        """Serializable state (exact round trip)."""
        return EWMomentsState(
            weight=self._weight,
            mean=self._values[: self._dim],
            scatter=self._scatter_rows(),
            count=self._count,
        )

    @classmethod
    def from_state(cls, state: EWMomentsState, *, forgetting: float) -> SmallEWMoments:
        """Rebuild from :meth:`to_state` output; ``forgetting`` comes from configuration.

        The scatter is read from its upper triangle (states hold symmetric matrices).
        """
        d = len(state.mean)
        moments = cls(d, forgetting=forgetting)
        if len(state.scatter) != d or any(len(row) != d for row in state.scatter):
            raise ShapeError("scatter", (d, d), (len(state.scatter), -1))
        moments._weight = state.weight
        moments._values = [float(v) for v in state.mean] + [
            float(state.scatter[i][j]) for _, i, j in moments._layout.upper
        ]
        moments._count = state.count
        return moments


class _Layout(NamedTuple):
    """Where S_ij sits in a :class:`SmallEWMoments` state [m, upper(S)] of dimension d."""

    upper: tuple[tuple[int, int, int], ...]  # (position, i, j) for i ≤ j, row by row
    positions: tuple[tuple[int, ...], ...]  # positions[i][j]: where S_ij (= S_ji) is
    diagonal: tuple[int, ...]  # positions of S_ii


_LAYOUTS: dict[int, _Layout] = {}


def _layout(dim: int) -> _Layout:
    """The :class:`_Layout` of dimension ``dim``, built once."""
    found = _LAYOUTS.get(dim)
    if found is None:
        pairs = [(i, j) for i in range(dim) for j in range(i, dim)]
        position = {pair: dim + k for k, pair in enumerate(pairs)}
        found = _LAYOUTS[dim] = _Layout(
            upper=tuple((position[i, j], i, j) for i, j in pairs),
            positions=tuple(
                tuple(position[min(i, j), max(i, j)] for j in range(dim)) for i in range(dim)
            ),
            diagonal=tuple(position[i, i] for i in range(dim)),
        )
    return found


#: Either storage; both have the same interface.
Moments = EWMoments | SmallEWMoments


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
