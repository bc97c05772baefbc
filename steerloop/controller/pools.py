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
in the store under the same compare-and-set discipline (:class:`StoredPool`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.rls import LeastSquaresStats, RecursiveLeastSquares

if TYPE_CHECKING:
    from steerloop.stores.base import StateStore

__all__ = ["FleetPool", "PoolState", "StoredPool"]

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
        self._memory = float(memory)
        self._forgetting = 1.0 - 1.0 / memory
        self._prior_weight = float(prior_weight)
        self._fits: dict[str, RecursiveLeastSquares] = {}
        self._sessions = 0
        self._lock = threading.Lock()
        self._version = 0
        self._priors: dict[str, tuple[LeastSquaresStats, LeastSquaresStats]] = {}

    @property
    def dim(self) -> int:
        """Number of objectives d."""
        return self._dim

    @property
    def memory(self) -> float:
        """Effective transitions kept per strategy."""
        return self._memory

    @property
    def prior_weight(self) -> float:
        """Largest weight the pool lends one session."""
        return self._prior_weight

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

    def add(
        self, strategy: str, previous: FloatArray, current: FloatArray, dt: float, *, first: bool
    ) -> None:
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


class StoredPool:
    """A :class:`FleetPool` kept in a session store (one value per pool key).

    The store holds the pooled statistics; this worker keeps a copy and the transitions it
    added since it last wrote (its *delta*). :meth:`refresh` brings the copy up to date
    (one read, the value only when another worker changed it); :meth:`flush` adds the delta to
    the stored statistics by the stores' compare-and-set read–modify–write
    (:func:`steerloop.stores.sync.read_modify_write`), so workers never overwrite each other's
    transitions and the store stays the one source of truth. The session store path of
    :meth:`steerloop.Session.update` refreshes before a step and flushes after it, so workers
    sharing a store decide as one process would.

    Parameters
    ----------
    pool : FleetPool
        The local copy (what sessions of this worker read).
    store : StateStore
        The shared store.
    key : str
        The pool's key in the store (``"pool:" + fleet key``).
    every : int
        Updates between two syncs (``fleet.sync_every``): 1 keeps every worker's pool equal to
        the store's at every step (workers then decide exactly as one process; two more round
        trips per update); the default 10 costs them on one update in ten.
    """

    def __init__(self, pool: FleetPool, store: StateStore, key: str, every: int = 10) -> None:
        from steerloop.stores.sync import StoredCopy

        self.pool = pool
        self._store = store
        self._key = key
        self._stored = StoredCopy()
        self._delta = FleetPool(pool.dim, memory=pool.memory, prior_weight=pool.prior_weight)
        self._base = PoolState({}, 0)  # the stored statistics, as far as this worker knows
        self._lock = threading.Lock()
        self._every = max(1, int(every))
        self._updates = 0

    def due(self) -> bool:
        """Whether this update syncs (every ``every`` updates of this worker, the first one
        included); call once per update."""
        due = self._updates % self._every == 0
        self._updates += 1
        return due

    @property
    def sessions(self) -> int:
        """Sessions in the local copy."""
        return self.pool.sessions

    def transitions(self, strategy: str) -> float:
        """Effective transitions of ``strategy`` in the local copy."""
        return self.pool.transitions(strategy)

    def prior(self, strategy: str) -> LeastSquaresStats | None:
        """The local copy's prior for ``strategy`` (:meth:`FleetPool.prior`)."""
        return self.pool.prior(strategy)

    def add(
        self, strategy: str, previous: FloatArray, current: FloatArray, dt: float, *, first: bool
    ) -> None:
        """Pool a transition locally and remember it for the next :meth:`flush`."""
        with self._lock:
            self.pool.add(strategy, previous, current, dt, first=first)
            self._delta.add(strategy, previous, current, dt, first=first)

    def refresh(self) -> None:
        """Load the stored pool if another worker changed it (keeping the unsent delta)."""
        from steerloop.stores.sync import sync

        with self._lock:
            sync(self._store, self._key, self._stored, load=self._load, fresh=self._fresh)

    def flush(self) -> None:
        """Add the unsent delta to the stored pool (compare-and-set; nothing when empty)."""
        from steerloop.stores.sync import read_modify_write

        with self._lock:
            delta = self._delta.to_state()
            if not delta.strategies and not delta.sessions:
                return

            def load(value: bytes) -> None:
                self._base = _decode(value)

            def fresh() -> None:
                self._base = PoolState({}, 0)

            def step() -> None:
                merged = FleetPool(self.pool.dim, memory=self.pool.memory)
                merged.load(self._base)
                merged.merge(delta)
                self._base = merged.to_state()

            read_modify_write(
                self._store,
                self._key,
                self._stored,
                load=load,
                fresh=fresh,
                step=step,
                dump=lambda: _encode(self._base),
                dump_result=lambda _none: b"",
                load_result=lambda _bytes: None,
            )
            self.pool.load(self._base)
            self._delta = FleetPool(
                self.pool.dim, memory=self.pool.memory, prior_weight=self.pool.prior_weight
            )

    def _load(self, value: bytes) -> None:
        self._base = _decode(value)
        self.pool.load(self._base)
        self.pool.merge(self._delta.to_state())

    def _fresh(self) -> None:
        self._base = PoolState({}, 0)
        self.pool.load(self._base)
        self.pool.merge(self._delta.to_state())


def _encode(state: PoolState) -> bytes:
    from steerloop.controller.tree import to_tree
    from steerloop.stores import codec

    return codec.encode(to_tree(state, arrays="raw"))


def _decode(value: bytes) -> PoolState:
    from steerloop.controller.tree import from_tree
    from steerloop.stores import codec

    return from_tree(PoolState, codec.decode(value))
