"""Interference between objectives: exponentially weighted correlation of increments.

Paper 1 (§4.4) measures how improving one objective moves the others by the correlation of
the per-step increments Δx_t = x̂_t − x̂_{t−1} of the filtered objective state:

    I_ij = Corr_w(Δx_i, Δx_j) = S_ij / √(S_ii S_jj),
    S = Σ_k w_k (Δx_k − m)(Δx_k − m)ᵀ,   m = Σ_k w_k Δx_k / Σ_k w_k,   w_k = λ^{n−k},

with forgetting λ ∈ (0, 1] over the n increments of a stream (λ = 1: the ordinary sample
correlation). I_ij < 0 means steps that raise objective i tend to lower objective j (the
paper measured functionality–efficiency −0.17 and functionality–security −0.09).
:class:`InterferenceTracker` keeps one EW moments stream (:mod:`steerloop.controller.ewstats`)
pooled over all steps and one per strategy; ``interference.min`` is the most negative
off-diagonal entry of the pooled matrix, and :func:`interference_order` ranks objectives for
the sequential mode (paper 1, appendix B.3: the objective that interferes most goes first).

Examples
--------
>>> import numpy as np
>>> tracker = InterferenceTracker(["security", "functionality"], forgetting=1.0, warmup=3)
>>> for step in ([0.1, -0.1], [-0.2, 0.1], [0.3, -0.4], [0.0, 0.1]):
...     tracker.update(np.array(step), "feature_focused")
>>> round(tracker.minimum(), 4)
-0.9149
>>> tracker.minimum_pair("feature_focused")[:2]
('security', 'functionality')
>>> interference_order(tracker.matrix(), tracker.objectives)
['security', 'functionality']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.controller.ewstats import (
    Moments,
    SmallEWMoments,
    ew_moments,
    moments_from_state,
    packed_state,
)
from steerloop.controller.state import EWMomentsState, InterferenceState
from steerloop.errors import NotReadyError, NumericalError, ShapeError

__all__ = ["InterferenceTracker", "interference_order", "off_diagonal_minimum"]

FloatArray = NDArray[np.float64]


class InterferenceTracker:
    """Exponentially weighted interference matrix I_ij = Corr(Δx_i, Δx_j), pooled and per strategy.

    Every :meth:`update` feeds the increment into the pooled stream and into the stream of the
    strategy that produced it. Each stream forgets per its own observations: the pooled weights
    are λ^{n−k} over all n increments, a strategy's weights are λ^{n_π−k} over the n_π
    increments of that strategy (a strategy that is not used does not forget).

    Parameters
    ----------
    objectives : sequence of str
        Objective names, in vector order (d ≥ 1, unique).
    forgetting : float, default 0.98
        λ ∈ (0, 1]; effective memory ≈ 1 / (1 − λ) increments.
    warmup : int, default 5
        Observations a stream needs before its matrix is read. A correlation needs at least
        two, so a stream is ready after max(warmup, 2) increments.

    Raises
    ------
    ValueError
        On an empty or duplicated objective list, λ outside (0, 1] or a negative warm-up.

    Examples
    --------
    >>> import numpy as np
    >>> tracker = InterferenceTracker(["a", "b", "c"], warmup=2)
    >>> tracker.update(np.array([0.1, -0.1, 0.0]), "s1")
    >>> tracker.ready(), tracker.count(), tracker.count("s1"), tracker.strategies
    (False, 1, 1, ('s1',))
    >>> tracker.update(np.array([-0.1, 0.2, 0.0]), "s2")
    >>> tracker.matrix().round(12).tolist()  # c never moved: its row is NaN
    [[1.0, -1.0, nan], [-1.0, 1.0, nan], [nan, nan, nan]]
    >>> tracker.ready("s1")
    False
    """

    def __init__(
        self, objectives: Sequence[str], *, forgetting: float = 0.98, warmup: int = 5
    ) -> None:
        names = tuple(objectives)
        if not names:
            raise ValueError("objectives must name at least one objective")
        if len(set(names)) != len(names):
            raise ValueError(f"objectives must be unique, got {list(names)}")
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self._objectives = names
        self._forgetting = forgetting
        self._warmup = warmup
        self._needed = max(warmup, 2)
        self._pooled: Moments = ew_moments(len(names), forgetting=forgetting)
        # A parked stream (see park()) is held as one vector [W, n, m, S row by row].
        self._by_strategy: dict[str, Moments | FloatArray] = {}

    @property
    def objectives(self) -> tuple[str, ...]:
        """Objective names in vector order."""
        return self._objectives

    @property
    def dim(self) -> int:
        """Number of objectives d."""
        return len(self._objectives)

    @property
    def forgetting(self) -> float:
        """Forgetting factor λ."""
        return self._forgetting

    @property
    def warmup(self) -> int:
        """Configured warm-up (a stream is ready after max(warmup, 2) observations)."""
        return self._warmup

    @property
    def strategies(self) -> tuple[str, ...]:
        """Strategies with at least one increment, in the order they were first seen."""
        return tuple(self._by_strategy)

    def update(self, increment: ArrayLike, strategy: str) -> None:
        """Add the increment Δx̂_t (shape (d,), finite) produced under ``strategy``.

        Raises
        ------
        ShapeError
            If ``increment`` does not have shape (d,).
        NumericalError
            If ``increment`` contains NaN or inf. Nothing is updated in either case.
        """
        value: FloatArray = np.asarray(increment, dtype=np.float64)
        if value.shape != (self.dim,):
            raise ShapeError("increment", (self.dim,), value.shape)
        # A finite sum of squares means every entry is finite (the cheap test); when it is
        # not (a NaN or inf, or entries beyond ~1e154), decide entry by entry.
        if not math.isfinite(float(value.dot(value))) and not np.isfinite(value).all():
            raise NumericalError(
                "interference increment",
                f"contains NaN or inf ({value.tolist()}); pass the finite filtered increment "
                "Δx̂ and skip the step when the state is not available",
            )
        stream = self._by_strategy.get(strategy)
        if stream is None:
            stream = ew_moments(self.dim, forgetting=self._forgetting)
            self._by_strategy[strategy] = stream
        elif isinstance(stream, np.ndarray):
            stream = self._unpark(strategy, stream)
        if isinstance(stream, SmallEWMoments):  # convert once for both streams
            values = value.tolist()
            self._pooled.update(values)
            stream.update(values)
        else:
            self._pooled.update(value)
            stream.update(value)

    def _stream(self, strategy: str | None) -> Moments | None:
        if strategy is None:
            return self._pooled
        stream = self._by_strategy.get(strategy)
        if stream is None or not isinstance(stream, np.ndarray):
            return stream
        return self._unpark(strategy, stream)

    def park(self, strategy: str) -> None:
        """Hold ``strategy``'s stream in one packed vector until it is used again.

        A session feeds only the running strategy's stream (and the pooled one) and reads
        only the pooled matrix; the streams of the other strategies wait, each packed as
        [W, n, m, S row by row] in one array (~0.2 kB instead of ~0.4 kB at d = 3). Exact;
        any use of the stream unpacks it. A strategy without a stream is ignored.
        """
        stream = self._by_strategy.get(strategy)
        if stream is not None and not isinstance(stream, np.ndarray):
            self._by_strategy[strategy] = stream.packed()

    def _unpark(self, strategy: str, packed: FloatArray) -> Moments:
        stream = ew_moments(self.dim, forgetting=self._forgetting)
        stream.load_packed(packed)
        self._by_strategy[strategy] = stream
        return stream

    def count(self, strategy: str | None = None) -> int:
        """Increments seen by the pooled stream (None) or by ``strategy`` (0 if never seen)."""
        stream = self._stream(strategy)
        return 0 if stream is None else stream.count

    def ready(self, strategy: str | None = None) -> bool:
        """Whether :meth:`matrix` can be read for the pooled stream or ``strategy``."""
        return self.count(strategy) >= self._needed

    def matrix(self, strategy: str | None = None) -> FloatArray:
        """Interference matrix I (d × d) of the pooled stream (None) or of ``strategy``.

        I_ij = S_ij / √(S_ii S_jj) (weighted correlation of increments, clipped to [−1, 1]);
        symmetric, with diagonal exactly 1 where the weighted variance S_ii is positive. Rows
        and columns of components with zero variance (an objective that never moved) are NaN,
        diagonal included. Returns a new array.

        Raises
        ------
        NotReadyError
            Before the stream has max(warmup, 2) increments (a strategy never seen has 0).
        """
        stream = self._ready_stream(strategy)
        if isinstance(stream, SmallEWMoments):
            return np.array(_with_unit_diagonal(stream.correlation_rows()), dtype=np.float64)
        corr = stream.correlation
        if math.isnan(float(corr.trace())):  # some objective never moved: NaN rows
            positive = np.flatnonzero(np.isfinite(np.diagonal(corr)))
            corr[positive, positive] = 1.0
        else:  # clipped entries are finite or NaN: no NaN on the diagonal, all of it is 1
            corr.flat[:: corr.shape[0] + 1] = 1.0
        return corr

    def matrix_rows(self, strategy: str | None = None) -> list[list[float]]:
        """:meth:`matrix` as nested lists (same numbers; no array at small d). Same errors."""
        stream = self._ready_stream(strategy)
        if isinstance(stream, SmallEWMoments):
            return _with_unit_diagonal(stream.correlation_rows())
        rows: list[list[float]] = self.matrix(strategy).tolist()
        return rows

    def _ready_stream(self, strategy: str | None) -> Moments:
        stream = self._stream(strategy)
        have = 0 if stream is None else stream.count
        if stream is None or have < self._needed:
            what = (
                "interference matrix (pooled)"
                if strategy is None
                else f"interference matrix of strategy {strategy!r}"
            )
            raise NotReadyError(what, self._needed, have)
        return stream

    def minimum_pair(self, strategy: str | None = None) -> tuple[str, str, float] | None:
        """The most negative off-diagonal entry I_ij and its objectives (i before j).

        NaN entries are ignored; ties go to the first pair (i, j), i < j, in objective order.
        Returns None when no off-diagonal entry is finite (d = 1, or every pair involves an
        objective that never moved).

        Raises
        ------
        NotReadyError
            As :meth:`matrix`.
        """
        found = _upper_minimum(self.matrix(strategy))
        if found is None:
            return None
        i, j, value = found
        return self._objectives[i], self._objectives[j], value

    def minimum(self, strategy: str | None = None) -> float:
        """``interference.min``: the most negative off-diagonal entry (NaN if none is finite).

        Raises
        ------
        NotReadyError
            As :meth:`matrix`.
        """
        found = _upper_minimum(self.matrix(strategy))
        return math.nan if found is None else found[2]

    def to_state(self) -> InterferenceState:
        """Serializable state (exact round trip); configuration is not included."""
        return InterferenceState(
            pooled=self._pooled.to_state(),
            by_strategy={name: _stream_state(stream) for name, stream in self._by_strategy.items()},
        )

    @classmethod
    def from_state(
        cls,
        state: InterferenceState,
        *,
        objectives: Sequence[str],
        forgetting: float,
        warmup: int,
    ) -> InterferenceTracker:
        """Rebuild from :meth:`to_state` output; configuration comes from the policy.

        Raises
        ------
        ShapeError
            If a stream's dimension differs from ``len(objectives)``.
        """
        tracker = cls(objectives, forgetting=forgetting, warmup=warmup)
        tracker._pooled = _restore(state.pooled, tracker.dim, forgetting, "pooled")
        for name, stream in state.by_strategy.items():
            tracker._by_strategy[name] = _restore(stream, tracker.dim, forgetting, name)
        return tracker


def _stream_state(stream: Moments | FloatArray) -> EWMomentsState:
    """``stream.to_state()``, also for a parked stream (read without unpacking it)."""
    if not isinstance(stream, np.ndarray):
        return stream.to_state()
    d = math.isqrt(stream.shape[0] - 2)  # length 2 + d + d², and d² ≤ d + d² < (d + 1)²
    return packed_state(stream, d)


def _restore(state: EWMomentsState, dim: int, forgetting: float, label: str) -> Moments:
    if len(state.mean) != dim:
        raise ShapeError(f"interference state {label!r} mean", (dim,), (len(state.mean),))
    return moments_from_state(state, forgetting=forgetting)


def _with_unit_diagonal(rows: list[list[float]]) -> list[list[float]]:
    """Correlation rows with the diagonal set to exactly 1 where it is not NaN (in place)."""
    for i, row in enumerate(rows):
        if row[i] == row[i]:  # not NaN: the variance is positive
            row[i] = 1.0
    return rows


def off_diagonal_minimum(matrix: FloatArray) -> float:
    """The most negative finite off-diagonal entry of an interference matrix (NaN if none).

    Same value as :meth:`InterferenceTracker.minimum` for a matrix already computed.
    """
    found = _upper_minimum(matrix)
    return math.nan if found is None else found[2]


_UPPER: dict[int, tuple[NDArray[np.intp], NDArray[np.intp]]] = {}


def _upper_indices(dim: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``np.triu_indices(dim, k=1)``, computed once per dimension (read-only arrays)."""
    found = _UPPER.get(dim)
    if found is None:
        rows, cols = np.triu_indices(dim, k=1)
        rows.flags.writeable = False
        cols.flags.writeable = False
        found = _UPPER[dim] = (rows, cols)
    return found


def _upper_minimum(matrix: FloatArray) -> tuple[int, int, float] | None:
    """(i, j, I_ij) of the smallest finite entry above the diagonal, first in row-major order."""
    rows, cols = _upper_indices(matrix.shape[0])
    values = matrix[rows, cols]
    finite = ~np.isnan(values)
    if not finite.any():
        return None
    k = int(np.argmin(np.where(finite, values, np.inf)))
    return int(rows[k]), int(cols[k]), float(values[k])


def interference_order(matrix: ArrayLike, objectives: Sequence[str]) -> list[str]:
    """Objectives ordered from the most to the least interfering (sequential mode, B.3).

    With n_ij = min(I_ij, 0) for j ≠ i (NaN entries count as 0: no evidence of interference),
    objective i is ranked by the key

        (Σ_{j≠i} n_ij,  min_{j≠i} n_ij,  position of i in ``objectives``)

    in increasing order: first the total negative interference of its row (positive
    correlations do not offset conflicts), then its single worst conflict, then policy order.
    Objectives without any negative entry keep policy order at the end. Row i is used as
    given (the interference matrix is symmetric, so rows and columns agree).

    Parameters
    ----------
    matrix : array_like, shape (d, d)
        Interference matrix, e.g. :meth:`InterferenceTracker.matrix`.
    objectives : sequence of str
        Names of the d objectives in matrix (policy) order.

    Raises
    ------
    ShapeError
        If ``matrix`` is not (d, d) with d = ``len(objectives)``.

    Examples
    --------
    >>> import numpy as np
    >>> paper = np.array([[1.0, 0.05, -0.09],     # security
    ...                   [0.05, 1.0, -0.17],     # efficiency
    ...                   [-0.09, -0.17, 1.0]])   # functionality
    >>> interference_order(paper, ["security", "efficiency", "functionality"])
    ['functionality', 'efficiency', 'security']
    """
    names = list(objectives)
    dim = len(names)
    values: FloatArray = np.asarray(matrix, dtype=np.float64)
    if values.shape != (dim, dim):
        raise ShapeError("interference matrix", (dim, dim), values.shape)
    negative = np.where(np.isnan(values), 0.0, np.minimum(values, 0.0))
    np.fill_diagonal(negative, 0.0)
    total = negative.sum(axis=1)
    worst = negative.min(axis=1) if dim else total
    order = np.lexsort((np.arange(dim), worst, total))
    return [names[int(i)] for i in order]
