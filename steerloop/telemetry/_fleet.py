"""Fleet gauges: sessions by regime, phase and mode, counted incrementally and reported.

The step listener keeps, per bound controller, a :class:`Fleet` tally that moves a session
between categories only when its category changes. :class:`FleetCollector` reports the
tallies at scrape time (single-process mode), so a scrape costs O(number of label values),
not O(sessions); :class:`LivesumFleet` copies them into ``livesum`` gauges instead
(prometheus_client multiprocess mode, where collectors are not merged across workers).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from steerloop.controller.listeners import OTHER, SessionRecord
from steerloop.telemetry._catalog import (
    MODES,
    PHASES,
    REGIMES,
    SPEC,
    STORE_OUTCOMES,
    Children,
    new_livesum_gauge,
)

if TYPE_CHECKING:
    from steerloop.controller.listeners import ObservedController

__all__ = ["Fleet", "FleetCollector", "FleetCounts", "FleetOwner", "LivesumFleet"]

_CATEGORIES = (
    ("steerloop_sessions_in_regime", REGIMES),
    ("steerloop_sessions_in_phase", PHASES),
    ("steerloop_sessions_in_mode", MODES),
)


class FleetCounts(NamedTuple):
    """Active sessions and their counts by regime, phase and mode."""

    active: int
    regimes: Tally[str]
    phases: Tally[str]
    modes: Tally[str]

    @classmethod
    def empty(cls) -> FleetCounts:
        """No session at all."""
        return cls(0, Tally(), Tally(), Tally())

    def plus(self, other: FleetCounts) -> FleetCounts:
        """The sum of two counts."""
        return FleetCounts(
            self.active + other.active,
            self.regimes + other.regimes,
            self.phases + other.phases,
            self.modes + other.modes,
        )

    def tallies(self) -> Iterator[tuple[str, Tally[str], tuple[str, ...]]]:
        """``(metric name, tally, fixed label values)`` of the three categorical gauges."""
        for (name, fixed), tally in zip(
            _CATEGORIES, (self.regimes, self.phases, self.modes), strict=True
        ):
            yield name, tally, fixed


class Fleet:
    """Session counts by regime, phase and mode, maintained incrementally."""

    __slots__ = ("modes", "phases", "regimes")

    def __init__(self) -> None:
        self.regimes: Tally[str] = Tally()
        self.phases: Tally[str] = Tally()
        self.modes: Tally[str] = Tally()

    def move(self, record: SessionRecord, regime: str, phase: str, mode: str) -> None:
        """Move a session to its new categories (and record them on ``record``)."""
        if record.regime == regime and record.phase == phase and record.mode == mode:
            return  # most steps: nothing moves
        for tally, old, new in (
            (self.regimes, record.regime, regime),
            (self.phases, record.phase, phase),
            (self.modes, record.mode, mode),
        ):
            if old != new:
                if old is not None:
                    tally[old] -= 1
                tally[new] += 1
        record.regime, record.phase, record.mode = regime, phase, mode

    def remove(self, record: SessionRecord) -> None:
        """Forget a session (dropped from its controller)."""
        for tally, old in (
            (self.regimes, record.regime),
            (self.phases, record.phase),
            (self.modes, record.mode),
        ):
            if old is not None:
                tally[old] -= 1

    def counts(self, alive: int, tracked: int) -> FleetCounts:
        """The counts, with sessions that never stepped as ``unknown``/``direct``."""
        untracked = max(0, alive - tracked)
        counts = FleetCounts(alive, Tally(self.regimes), Tally(self.phases), Tally(self.modes))
        counts.regimes["unknown"] += untracked
        counts.phases["unknown"] += untracked
        counts.modes["direct"] += untracked
        return counts


class FleetOwner(Protocol):
    """What :class:`FleetCollector` needs of :class:`~steerloop.telemetry.SteerloopMetrics`."""

    def fleet_counts(self, prune: bool = True) -> FleetCounts: ...

    def controllers(self) -> list[ObservedController]: ...

    def failed(self, where: str, error: BaseException) -> None: ...


class FleetCollector(Collector):
    """Scrape-time fleet gauges, listener errors and store operations of bound controllers."""

    def __init__(self, owner: FleetOwner) -> None:
        self._owner = owner

    def describe(self) -> Iterator[Metric]:
        yield from self._families(FleetCounts.empty(), 0, Tally())

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._owner.fleet_counts()
            controllers = self._owner.controllers()
            listener_errors = sum(controller.listener_errors for controller in controllers)
            store_operations = store_totals(controllers)
        except Exception as error:
            self._owner.failed("scrape", error)
            return
        yield from self._families(counts, listener_errors, store_operations)

    @staticmethod
    def _families(
        counts: FleetCounts, listener_errors: int, store_operations: Tally[str]
    ) -> Iterator[Metric]:
        spec = SPEC["steerloop_sessions_active"]
        yield GaugeMetricFamily(spec.name, spec.help, value=float(counts.active))
        for name, tally, fixed in counts.tallies():
            spec = SPEC[name]
            family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for value in fixed:
                family.add_metric([value], float(tally.get(value, 0)))
            if tally.get(OTHER, 0) > 0:
                family.add_metric([OTHER], float(tally[OTHER]))
            yield family
        spec = SPEC["steerloop_controller_listener_errors_total"]
        yield CounterMetricFamily(
            spec.name.removesuffix("_total"), spec.help, value=float(listener_errors)
        )
        spec = SPEC["steerloop_store_operations_total"]
        operations = CounterMetricFamily(
            spec.name.removesuffix("_total"), spec.help, labels=spec.labels
        )
        for outcome in STORE_OUTCOMES:
            operations.add_metric([outcome], float(store_operations.get(outcome, 0)))
        yield operations


def store_totals(controllers: Iterable[ObservedController]) -> Tally[str]:
    """Sum of the :class:`StoreStats` of the controllers' stores, each store counted once."""
    stores = {id(c.store): c.store for c in controllers if c.store is not None}
    totals: Tally[str] = Tally()
    for store in stores.values():
        totals.update(dataclasses.asdict(store.stats()))
    return totals


class LivesumFleet:
    """Multiprocess mode: the fleet gauges as ``livesum`` gauges, updated when they change."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._active: Gauge = new_livesum_gauge("steerloop_sessions_active", registry)
        self._gauges: dict[str, Children[Gauge]] = {
            name: Children(new_livesum_gauge(name, registry)) for name, _ in _CATEGORIES
        }
        self._published: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def publish(self, read: Callable[[], FleetCounts]) -> None:
        """Set the gauges whose value changed since the last call to what ``read()`` gives.

        ``read`` runs under this object's lock, so concurrent steps publish in order.
        """
        with self._lock:
            counts = read()
            values = {("steerloop_sessions_active", ""): counts.active}
            for name, tally, fixed in counts.tallies():
                for value in (*fixed, OTHER):
                    values[name, value] = tally.get(value, 0)
            changed = {k: v for k, v in values.items() if self._published.get(k) != v}
            self._published.update(changed)
            for (name, value), count in changed.items():
                if name == "steerloop_sessions_active":
                    self._active.set(count)
                else:
                    self._gauges[name](value).set(count)
