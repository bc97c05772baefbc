"""Fleet pools: what sessions of one kind of task learn, shared as pooled statistics.

Every transition a session learns (regressor φ = [y; 1], target z = Δy/Δt, strategy π) is
also added to its controller's pool, whose per-strategy statistics are the sum over sessions
discounted per added transition by λ_p = 1 − 1/``memory`` (:mod:`steerloop.estimators.rls`
statistics: they add). A session's drift fit then takes the pool as a prior of at most
``prior_weight`` effective transitions (a conjugate prior — the pooled estimate each
session's own shrinks towards), so the tenth session of a task starts knowing which strategy
moves which objective, and needs no blind exploration:

    Θ_session = (J_own + κ J_pool + P₀⁻¹)⁻¹ (H_own + κ H_pool),   κ = min(1, prior_weight / W_pool).

The session's own transitions are in the pool too; with many sessions their share is small,
and κ caps the pool's weight so that a session's own data dominate after ``prior_weight``
steps (a session whose task differs from the fleet's soon follows its own data).

Pools are keyed by the policy's ``fleet.key`` (default: the policy's name) and live in the
controller's process; :class:`FleetPool` is thread-safe. With a session store, pools are kept
in the store under the same compare-and-set discipline (:mod:`steerloop.controller.store_sync`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.rls import LeastSquaresStats, RecursiveLeastSquares

__all__ = ["FleetPool", "PoolState"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PoolState:
    """Snapshot of a :class:`FleetPool`: statistics per strategy and the session count."""

    strategies: Mapping[str, LeastSquaresStats]
    sessions: int


class FleetPool:
    """Pooled drift statistics per strategy (module docstring).

    Parameters
    ----------
    dim : int
        Number of objectives d.
    memory : float
        Effective transitions kept per strategy (discount 1 − 1/memory per transition).
    prior_weight : float
        Largest weight, in transitions, the pool lends one session's fit.
    """

    def __init__(self, dim: int, *, memory: float = 2000.0, prior_weight: float = 100.0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not memory >= 1.0:
            raise ValueError(f"memory must be >= 1 transition, got {memory}")
        self._dim = dim
        self._forgetting = 1.0 - 1.0 / memory
        self._prior_weight = float(prior_weight)
        self._fits: dict[str, RecursiveLeastSquares] = {}
        self._sessions = 0
        self._lock = threading.Lock()
        self._version = 0
        self._priors: dict[str, tuple[LeastSquaresStats, LeastSquaresStats]] = {}

    @property
    def sessions(self) -> int:
        """Sessions that have contributed at least one transition."""
        return self._sessions

    @property
    def version(self) -> int:
        """Grows with every change (a cache key for fits that use the pool)."""
        return self._version

    def transitions(self, strategy: str) -> float:
        """Effective (discounted) transitions pooled for ``strategy``."""
        fit = self._fits.get(strategy)
        return 0.0 if fit is None else fit.stats.weight

    def add(self, strategy: str, previous: FloatArray, current: FloatArray, dt: float, *, first: bool) -> None:
        """Pool one transition ``previous`` → ``current`` of ``strategy``.

        ``first`` says it is the contributing session's first transition (counted in
        :attr:`sessions`).
        """
        phi = np.append(previous, 1.0)
        target = (current - previous) / dt
        with self._lock:
            fit = self._fits.get(strategy)
            if fit is None:
                fit = self._fits[strategy] = RecursiveLeastSquares(
                    self._dim + 1, self._dim, forgetting=self._forgetting
                )
            fit.update(phi, target)
            if first:
                self._sessions += 1
            self._version += 1

    def prior(self, strategy: str) -> LeastSquaresStats | None:
        """The pool's statistics for ``strategy`` scaled to at most ``prior_weight``."""
        fit = self._fits.get(strategy)
        if fit is None or self._prior_weight <= 0.0:
            return None
        stats = fit.stats
        if stats.weight <= 0.0:
            return None
        cached = self._priors.get(strategy)
        if cached is not None and cached[0] is stats:
            return cached[1]  # the same object while the strategy's pool is unchanged
        scaled = stats.scaled(min(1.0, self._prior_weight / stats.weight))
        self._priors[strategy] = (stats, scaled)
        return scaled

    def merge(self, delta: PoolState) -> None:
        """Add another pool's contributions (e.g. a worker's unsent transitions).

        The statistics here are discounted by λ_p per transition of ``delta`` first, as if
        those transitions had been added one by one after them.
        """
        with self._lock:
            for name, stats in delta.strategies.items():
                fit = self._fits.get(name)
                if fit is None:
                    base = LeastSquaresStats.zeros(self._dim + 1, self._dim)
                else:
                    base = fit.stats.scaled(self._forgetting**stats.count)
                self._fits[name] = RecursiveLeastSquares.from_state(
                    base.plus(stats), forgetting=self._forgetting, initial_covariance=1e4
                )
            self._sessions += delta.sessions
            self._version += 1

    def to_state(self) -> PoolState:
        """Snapshot."""
        with self._lock:
            return PoolState({name: fit.stats for name, fit in self._fits.items()}, self._sessions)

    def load(self, state: PoolState) -> None:
        """Replace the contents with ``state``."""
        with self._lock:
            self._fits = {
                name: RecursiveLeastSquares.from_state(
                    stats, forgetting=self._forgetting, initial_covariance=1e4
                )
                for name, stats in state.strategies.items()
            }
            self._sessions = state.sessions
            self._version += 1
