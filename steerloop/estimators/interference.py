"""Interference between objectives: exponentially weighted correlation of score increments.

Shukla & Joshi (§4.4) measure how improving one objective moves the others by the correlation
of the per-step increments of the scores, Δy_t = y_t − y_{t−1}:

    I_ij = Corr_w(Δy_i, Δy_j) = S_ij / √(S_ii S_jj),   w_k = λ^{n−k},

S the weighted scatter of the increments (:mod:`steerloop.estimators.ewstats`). I_ij < 0 means
steps that raise objective i tend to lower objective j (the paper measured
functionality–efficiency −0.17 and functionality–security −0.09). The session feeds the raw
score increments of complete score vectors, as the paper's offline analysis does — never the
increments of the filtered state, whose approach from the filter's prior looks like opposed
moves (constant scores used to read −1 within 8 steps).

A matrix is *reported* only when its stream's effective sample size n_eff = W²/W₂ reaches
``min_effective`` (default 10 increments), and an entry only when both objectives' increment
variances exceed ``min_variance`` (a correlation with a constant is undefined, not −1).

:class:`InterferenceTracker` keeps one stream pooled over all steps and one per strategy;
``interference.min`` is the most negative defined off-diagonal entry of the pooled matrix, and
:func:`interference_order` ranks objectives for the sequential mode (appendix B.3: the
objective that interferes most goes first).

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739, §4.4 and appendix B.3.

Examples
--------
>>> import numpy as np
>>> tracker = InterferenceTracker(["security", "functionality"], forgetting=1.0, min_effective=4)
>>> for step in ([0.1, -0.1], [-0.2, 0.1], [0.3, -0.4], [0.0, 0.1]):
...     tracker.update(np.array(step), "feature_focused")
>>> round(tracker.minimum(), 4)
-0.9149
>>> interference_order(tracker.matrix(), tracker.objectives)
['security', 'functionality']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerloop.errors import NotReadyError, ShapeError
from steerloop.estimators.ewstats import EWMoments, EWMomentsState

__all__ = [
    "InterferenceState",
    "InterferenceTracker",
    "interference_order",
    "off_diagonal_minimum",
]

FloatArray = NDArray[np.float64]

#: Increment variances at or below this make a component's correlations undefined.
MIN_VARIANCE = 1e-12


@dataclass(frozen=True)
class InterferenceState:
    """Snapshot of an :class:`InterferenceTracker`: the pooled and per-strategy streams."""

    pooled: EWMomentsState
    by_strategy: Mapping[str, EWMomentsState]


class InterferenceTracker:
    """Exponentially weighted interference matrix, pooled and per strategy.

    Parameters
    ----------
    objectives : sequence of str
        Objective names in vector order (d ≥ 1, unique).
    forgetting : float, default 0.98
        λ ∈ (0, 1]; each stream forgets per its own observations.
    min_effective : float, default 10
        Effective sample size a stream needs before its matrix is reported (≥ 2).
    """

    def __init__(
        self, objectives: Sequence[str], *, forgetting: float = 0.98, min_effective: float = 10.0
    ) -> None:
        names = tuple(objectives)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"objectives must be non-empty and unique, got {list(names)}")
        self._objectives = names
        self._forgetting = forgetting
        self._min_effective = max(2.0, float(min_effective))
        self._pooled = EWMoments(len(names), forgetting=forgetting)
        self._by_strategy: dict[str, EWMoments] = {}

    @property
    def objectives(self) -> tuple[str, ...]:
        """Objective names in vector order."""
        return self._objectives

    def update(self, increment: ArrayLike, strategy: str) -> None:
        """Add one finite increment Δy (shape (d,)) to the pooled and the strategy's stream.

        Raises
        ------
        ShapeError
            If the increment does not have shape (d,).
        ValueError
            If it has a non-finite entry. Either way nothing changes (no stream is created).
        """
        vector = np.asarray(increment, dtype=np.float64)
        if vector.shape != (len(self._objectives),):
            raise ShapeError("increment", (len(self._objectives),), vector.shape)
        if not np.isfinite(vector).all():
            raise ValueError("interference takes finite increments only")
        stream = self._by_strategy.get(strategy)
        if stream is None:
            stream = self._by_strategy[strategy] = EWMoments(
                len(self._objectives), forgetting=self._forgetting
            )
        self._pooled.update(vector)
        stream.update(vector)

    def ready(self, strategy: str | None = None) -> bool:
        """Whether the stream (pooled when ``strategy`` is None) has n_eff ≥ ``min_effective``."""
        stream = self._pooled if strategy is None else self._by_strategy.get(strategy)
        return stream is not None and stream.effective_size >= self._min_effective

    def matrix(self, strategy: str | None = None) -> FloatArray:
        """I (d, d), NaN where undefined (module docstring). Needs :meth:`ready`.

        Raises
        ------
        NotReadyError
            Before the stream's effective sample size reaches ``min_effective``.
        """
        stream = self._pooled if strategy is None else self._by_strategy.get(strategy)
        if stream is None or not self.ready(strategy):
            have = 0 if stream is None else int(stream.effective_size)
            raise NotReadyError("interference", math.ceil(self._min_effective), have)
        corr = stream.correlation(min_variance=MIN_VARIANCE)
        np.fill_diagonal(corr, np.where(np.isnan(np.diagonal(corr)), np.nan, 1.0))
        return corr

    def minimum(self, strategy: str | None = None) -> float | None:
        """The most negative defined off-diagonal entry, or ``None`` (not ready or undefined)."""
        if not self.ready(strategy):
            return None
        value = off_diagonal_minimum(self.matrix(strategy))
        return None if math.isnan(value) else value

    def to_state(self) -> InterferenceState:
        """Snapshot (copies; an exact round trip)."""
        return InterferenceState(
            self._pooled.to_state(),
            {name: stream.to_state() for name, stream in self._by_strategy.items()},
        )

    @classmethod
    def from_state(
        cls,
        state: InterferenceState,
        objectives: Sequence[str],
        *,
        forgetting: float = 0.98,
        min_effective: float = 10.0,
    ) -> InterferenceTracker:
        """Rebuild from :meth:`to_state` output; settings come from configuration.

        Raises
        ------
        ShapeError
            If a stream's dimension differs from ``len(objectives)``.
        """
        tracker = cls(objectives, forgetting=forgetting, min_effective=min_effective)
        streams: dict[str | None, EWMomentsState] = {None: state.pooled}
        streams.update(state.by_strategy)
        for name, stream_state in streams.items():
            stream = EWMoments.from_state(stream_state, forgetting=forgetting)
            if stream.dim != len(tracker._objectives):
                raise ShapeError(f"interference stream {name!r}", (len(objectives),), (stream.dim,))
            if name is None:
                tracker._pooled = stream
            else:
                tracker._by_strategy[name] = stream
        return tracker


def off_diagonal_minimum(matrix: FloatArray) -> float:
    """The most negative non-NaN entry above the diagonal (NaN if there is none).

    Examples
    --------
    >>> import numpy as np
    >>> off_diagonal_minimum(np.array([[1.0, -0.2, 0.1], [-0.2, 1.0, np.nan], [0.1, np.nan, 1.0]]))
    -0.2
    """
    rows, cols = np.triu_indices(matrix.shape[0], k=1)
    values = matrix[rows, cols]
    values = values[~np.isnan(values)]
    return float(values.min()) if values.size else math.nan


def interference_order(matrix: ArrayLike, objectives: Sequence[str]) -> list[str]:
    """Objectives ordered from the most to the least interfering (sequential mode, B.3).

    With n_ij = min(I_ij, 0) for j ≠ i (NaN entries count as 0: no evidence of interference),
    objective i is ranked by the key (Σ_{j≠i} n_ij, min_{j≠i} n_ij, position in
    ``objectives``) in increasing order: total negative interference first, then its single
    worst conflict, then policy order.

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
    values = np.asarray(matrix, dtype=np.float64)
    if values.shape != (dim, dim):
        raise ShapeError("interference matrix", (dim, dim), values.shape)
    negative = np.where(np.isnan(values), 0.0, np.minimum(values, 0.0))
    np.fill_diagonal(negative, 0.0)
    total = negative.sum(axis=1)
    worst = negative.min(axis=1)
    order = np.lexsort((np.arange(dim), worst, total))
    return [names[int(i)] for i in order]
