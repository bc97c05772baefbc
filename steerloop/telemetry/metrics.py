"""Prometheus metrics of steered loops: per-step counters and histograms, fleet gauges.

:class:`SteerloopMetrics` creates every metric on one explicit
:class:`~prometheus_client.CollectorRegistry` (nothing is created at import time, so two
controllers reporting to two registries never clash) and :meth:`SteerloopMetrics.bind` hooks
it to a :class:`~steerloop.controller.session.Controller`:

* a step listener reads each :class:`~steerloop.controller.session.Decision` (the
  controller's snapshot; nothing is measured inside the math) and updates cached label
  children — a few dictionary lookups and lock-protected additions per step;
* a step hook times each step from the outside (the controller reads no clock);
* a reload listener refreshes the label sets and counts policy reloads;
* a custom collector reports the fleet at scrape time from counts the listener maintains
  incrementally, so a scrape costs O(number of label values), not O(sessions) or
  O(per-session state).

Metrics
-------
Names are ``steerloop_<subsystem>_<quantity>_<unit>`` in base units; counters end in
``_total``. :data:`METRICS` lists them all:

=============================================  =========  ======================================
name                                           type       labels
=============================================  =========  ======================================
steerloop_controller_steps_total               counter    strategy
steerloop_controller_step_duration_seconds     histogram  —
steerloop_controller_faults_total              counter    —
steerloop_controller_missing_scores_total      counter    objective
steerloop_controller_listener_errors_total     counter    — (scrape time)
steerloop_policy_switches_total                counter    from_strategy, to_strategy, rule
steerloop_policy_alerts_total                  counter    rule, severity
steerloop_policy_rule_errors_total             counter    —
steerloop_policy_reloads_total                 counter    —
steerloop_scorer_errors_total                  counter    scorer, reason
steerloop_objective_filtered_ratio             histogram  objective
steerloop_severity_value_ratio                 histogram  —
steerloop_drift_convergence_rate_per_step      histogram  strategy
steerloop_sessions_active                      gauge      — (scrape time)
steerloop_sessions_in_regime                   gauge      regime (scrape time)
steerloop_sessions_in_phase                    gauge      phase (scrape time)
steerloop_sessions_in_mode                     gauge      mode (scrape time)
steerloop_telemetry_errors_total               counter    —
steerloop_store_operations_total               counter    outcome (scrape time)
=============================================  =========  ======================================

``steps`` and ``convergence_rate`` are labelled by the strategy that produced the observed
response (``Decision.previous_strategy``). The convergence rate ρ = −max Re λ(A_π) is per
unit Δt (per loop iteration with the default Δt = 1).

Labels
------
Label values come only from small fixed sets: the policy's strategy, objective and rule
names, the scorer names of the policy's composite scorer, the documented regimes, phases,
modes, alert severities and scorer failure reasons. Anything else — a name not in the policy
in force, an over-long name, a value with quotes, newlines or braces that is not configured —
is reported as ``"other"``; a switch or alert without a rule is ``rule="none"``; errors
reported through ``session.update(..., scorer_errors=n)`` without a composite scorer are
``scorer="external", reason="reported"``. Session ids are never labels: the number of series
is bounded by the policy, whatever the number of sessions.

Fleet gauges
------------
``steerloop_sessions_in_regime``/``_in_phase``/``_in_mode`` count every session the
controller holds by its last step (sessions that have not stepped yet are ``unknown`` /
``direct``), so each sums to ``steerloop_sessions_active``. Dropped sessions leave the
counts at the next scrapes (see :mod:`steerloop.telemetry._tracking`).

Multiprocess mode
-----------------
Under gunicorn-style pre-fork servers each worker has its own controller and metrics. Use
prometheus_client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory *before* the workers import ``prometheus_client``, create one
:class:`SteerloopMetrics` per worker, and expose a registry holding a
:class:`~prometheus_client.multiprocess.MultiProcessCollector`
(:func:`multiprocess_registry`; :func:`serve_metrics` builds one when the variable is set).
Counters and histograms of all workers are summed. Scrape-time collectors do not work in
that mode, so ``SteerloopMetrics(multiprocess=True)`` (the default when the variable is set)
keeps the fleet gauges as ``livesum`` gauges updated by the step listener instead (summed
over live workers; call :func:`prometheus_client.multiprocess.mark_process_dead` from
gunicorn's ``child_exit`` hook), and ``steerloop_controller_listener_errors_total`` and
``steerloop_store_operations_total`` are not reported.

Session stores
--------------
``steerloop_store_operations_total{outcome}`` sums the :class:`~steerloop.stores.StoreStats`
counters of the stores of the bound controllers (``Controller(store=...)``; each store
counted once): ``loads``, ``saves``, ``conflicts``, ``lease_waits``, ``lease_timeouts``,
``errors``, and — for ``RedisStore(fallback="memory")`` — ``fallback_operations`` (served
from local memory while Redis failed), ``fallback_reconciled`` and ``fallback_discarded``.
Alert on ``rate(steerloop_store_operations_total{outcome="fallback_operations"}[5m]) > 0``.

Examples
--------
>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from steerloop import Controller
>>> registry = CollectorRegistry()
>>> metrics = SteerloopMetrics(registry)
>>> controller = Controller(preset="paper")
>>> metrics.bind(controller)
>>> session = controller.session("user-42")
>>> _ = session.update({"security": 0.8, "efficiency": 0.6, "functionality": 0.7})
>>> registry.get_sample_value(
...     "steerloop_controller_steps_total", {"strategy": "adaptive_integration"})
1.0
>>> registry.get_sample_value("steerloop_sessions_active")
1.0
>>> b"user-42" in generate_latest(registry)
False
>>> metrics.unbind(controller)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import threading
import time
from bisect import bisect_left
from collections import Counter as _Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, NamedTuple, TypeVar, get_args

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server
from prometheus_client import values as _prometheus_values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from steerloop.controller.diagnostics import CATEGORICAL_VALUES, LazyDiagnostics
from steerloop.scoring.base import FailureReason
from steerloop.stores.base import StoreStats
from steerloop.telemetry._tracking import (
    OTHER,
    FailureDelta,
    SessionRecord,
    SessionTable,
    finite,
    label_set,
    pick,
)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from steerloop.controller.session import Controller, Decision, Session
    from steerloop.policies.schema import Policy

__all__ = [
    "DEFAULT_RATE_BUCKETS",
    "DEFAULT_RATIO_BUCKETS",
    "DEFAULT_STEP_BUCKETS",
    "METRICS",
    "MetricSpec",
    "MetricsServer",
    "SteerloopMetrics",
    "multiprocess_registry",
    "serve_metrics",
]

#: Step duration buckets in seconds (a step takes about 0.1-5 ms).
DEFAULT_STEP_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
#: Buckets for values in [0, 1] (filtered objectives, severity).
DEFAULT_RATIO_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Convergence-rate buckets: negative means unstable, above 1.5 overshoot (paper 1: 0.33-1.29).
DEFAULT_RATE_BUCKETS: tuple[float, ...] = (
    -0.5,
    0.0,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.25,
    1.5,
    2.0,
)

_REGIMES: tuple[str, ...] = CATEGORICAL_VALUES["drift.regime"]
_PHASES: tuple[str, ...] = CATEGORICAL_VALUES["severity.phase"]
_MODES: tuple[str, ...] = CATEGORICAL_VALUES["mode"]
_STORE_OUTCOMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(StoreStats))
_REGIME_SET = frozenset(_REGIMES)
_PHASE_SET = frozenset(_PHASES)
_MODE_SET = frozenset(_MODES)
_ALERT_SEVERITIES = frozenset({"info", "warning", "critical"})
_EXTERNAL = "external"
_REPORTED = "reported"
_NONE = "none"
_REASONS = frozenset((*get_args(FailureReason), _REPORTED))
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: exposition name (counters with ``_total``), type, labels, help text."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str
    scrape_time: bool = False


#: Every metric :class:`SteerloopMetrics` exposes.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "steerloop_controller_steps_total",
        "counter",
        ("strategy",),
        "Controller steps, by the strategy that produced the observed response.",
    ),
    MetricSpec(
        "steerloop_controller_step_duration_seconds",
        "histogram",
        (),
        "Wall time of one controller step (filter, estimators, policy), in seconds.",
    ),
    MetricSpec(
        "steerloop_controller_faults_total",
        "counter",
        (),
        "Steps on which the controller failed open and held the strategy.",
    ),
    MetricSpec(
        "steerloop_controller_missing_scores_total",
        "counter",
        ("objective",),
        "Objective scores that were missing or invalid on a step.",
    ),
    MetricSpec(
        "steerloop_controller_listener_errors_total",
        "counter",
        (),
        "Exceptions raised by controller listeners and hooks (swallowed).",
        scrape_time=True,
    ),
    MetricSpec(
        "steerloop_policy_switches_total",
        "counter",
        ("from_strategy", "to_strategy", "rule"),
        "Strategy switches, by previous and next strategy and the rule that acted.",
    ),
    MetricSpec(
        "steerloop_policy_alerts_total",
        "counter",
        ("rule", "severity"),
        "Alert actions fired by policy rules.",
    ),
    MetricSpec(
        "steerloop_policy_rule_errors_total",
        "counter",
        (),
        "Exceptions raised while evaluating policy rules (the rule was skipped).",
    ),
    MetricSpec(
        "steerloop_policy_reloads_total",
        "counter",
        (),
        "Successful policy hot reloads.",
    ),
    MetricSpec(
        "steerloop_scorer_errors_total",
        "counter",
        ("scorer", "reason"),
        "Scorer failures (the score counted as missing), by scorer and reason.",
    ),
    MetricSpec(
        "steerloop_objective_filtered_ratio",
        "histogram",
        ("objective",),
        "Kalman-filtered objective value after each step.",
    ),
    MetricSpec(
        "steerloop_severity_value_ratio",
        "histogram",
        (),
        "Severity s in [0, 1] after each step.",
    ),
    MetricSpec(
        "steerloop_drift_convergence_rate_per_step",
        "histogram",
        ("strategy",),
        "Convergence rate -max Re eig(A) of the strategy's drift, per unit dt.",
    ),
    MetricSpec(
        "steerloop_sessions_active",
        "gauge",
        (),
        "Sessions held by the bound controllers.",
        scrape_time=True,
    ),
    MetricSpec(
        "steerloop_sessions_in_regime",
        "gauge",
        ("regime",),
        "Sessions by the drift regime of their last step.",
        scrape_time=True,
    ),
    MetricSpec(
        "steerloop_sessions_in_phase",
        "gauge",
        ("phase",),
        "Sessions by the severity phase of their last step.",
        scrape_time=True,
    ),
    MetricSpec(
        "steerloop_sessions_in_mode",
        "gauge",
        ("mode",),
        "Sessions by policy mode (direct or sequential) of their last step.",
        scrape_time=True,
    ),
    MetricSpec(
        "steerloop_telemetry_errors_total",
        "counter",
        (),
        "Failures inside steerloop telemetry (the step went on; the first is logged).",
    ),
    MetricSpec(
        "steerloop_store_operations_total",
        "counter",
        ("outcome",),
        "Session store operations of the bound controllers' stores, by outcome "
        "(fallback_operations: served from local memory because the server failed).",
        scrape_time=True,
    ),
)
_SPEC = {spec.name: spec for spec in METRICS}

_M = TypeVar("_M", Counter, Gauge, Histogram)


class _Children(Generic[_M]):
    """Cached label children of one metric (keys are normalized, so the cache is bounded)."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: _M) -> None:
        self._metric: _M = metric
        self._cache: dict[tuple[str, ...], _M] = {}

    def __call__(self, *values: str) -> _M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child


#: prometheus_client's single-process value class (internal: when a release renames it, the
#: fast paths below step aside and use ``inc``).
_MUTEX_VALUE: type | None = getattr(_prometheus_values, "MutexValue", None)


def _plain_value(value: object) -> bool:
    """Whether ``value`` is prometheus_client's single-process ``MutexValue``.

    Its ``inc(amount)`` is exactly ``with self._lock: self._value += amount``; the fast paths
    below do that inline. Any other value class (the multiprocess mmap value, a future
    implementation) goes through its own ``inc``.
    """
    return (
        _MUTEX_VALUE is not None
        and type(value) is _MUTEX_VALUE
        and isinstance(getattr(value, "_value", None), float)
        and hasattr(value, "_lock")
    )


def fast_observer(histogram: Histogram) -> Callable[[float], None]:
    """``histogram.observe`` for *finite* values, without its per-call Python overhead.

    ``Histogram.observe`` checks the series, then walks the bucket bounds in Python and
    takes two locks; per step that is a large share of the listener. The returned function
    does the same two increments (the sum, and the first bucket whose upper bound is at least
    the value: ``bisect_left`` on the sorted bounds, which end with ``+Inf``), so the
    exposition is identical (tests/telemetry/test_metrics.py checks it against ``observe``).
    With single-process values each increment is the value's own locked addition written
    inline (see :func:`_plain_value`). It reads prometheus_client internals
    (``_upper_bounds``, ``_buckets``, ``_sum``, and ``_lock``/``_value`` of ``MutexValue``),
    checked here once; when they are not as expected it is ``histogram.observe`` itself, or
    the values' ``inc``.

    ``histogram`` must be a series (a label child, or a histogram without labels), and the
    values must be finite (NaN would be counted in the lowest bucket).
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if not (
        isinstance(bounds, list | tuple)
        and isinstance(buckets, list)
        and len(bounds) == len(buckets) > 0
        and all(isinstance(bound, float) for bound in bounds)
        and list(bounds) == sorted(bounds)
        and bounds[-1] == float("inf")
        and callable(getattr(total, "inc", None))
        and all(callable(getattr(bucket, "inc", None)) for bucket in buckets)
    ):
        return histogram.observe
    edges = tuple(bounds)
    if _plain_value(total) and all(_plain_value(bucket) for bucket in buckets):
        cells = tuple(buckets)
        total_lock = total._lock  # type: ignore[union-attr]

        def observe_inline(value: float) -> None:
            with total_lock:
                total._value += value  # type: ignore[union-attr]
            cell = cells[bisect_left(edges, value)]
            with cell._lock:
                cell._value += 1.0

        return observe_inline
    increments = tuple(bucket.inc for bucket in buckets)
    add: Callable[[float], None] = getattr(total, "inc")  # noqa: B009 - checked above

    def observe(value: float) -> None:
        add(value)
        increments[bisect_left(edges, value)](1)

    return observe


def fast_increment(counter: Counter) -> Callable[[float], None]:
    """``counter.inc`` for non-negative amounts, without its per-call checks.

    ``counter`` must be a series (a label child, or a counter without labels). With a
    single-process value it is the value's locked addition written inline (the exposition is
    the same; tests/telemetry/test_metrics.py checks it), else ``counter.inc``.
    """
    value = getattr(counter, "_value", None)
    if not _plain_value(value):
        return counter.inc
    lock = value._lock  # type: ignore[union-attr]

    def increment(amount: float) -> None:
        with lock:
            value._value += amount  # type: ignore[union-attr]

    return increment


def _counter(name: str, registry: CollectorRegistry) -> Counter:
    spec = _SPEC[name]
    return Counter(name, spec.help, spec.labels, registry=registry)


def _histogram(name: str, registry: CollectorRegistry, buckets: Sequence[float]) -> Histogram:
    spec = _SPEC[name]
    return Histogram(name, spec.help, spec.labels, registry=registry, buckets=tuple(buckets))


class _Fleet:
    """Session counts by regime, phase and mode, maintained incrementally."""

    __slots__ = ("modes", "phases", "regimes")

    def __init__(self) -> None:
        self.regimes: _Tally[str] = _Tally()
        self.phases: _Tally[str] = _Tally()
        self.modes: _Tally[str] = _Tally()

    def move(self, record: SessionRecord, regime: str, phase: str, mode: str) -> None:
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
        for tally, old in (
            (self.regimes, record.regime),
            (self.phases, record.phase),
            (self.modes, record.mode),
        ):
            if old is not None:
                tally[old] -= 1


class _Binding:
    """The link between one :class:`SteerloopMetrics` and one controller."""

    def __init__(self, owner: SteerloopMetrics, controller: Controller) -> None:
        self.owner = owner
        self.controller = controller
        self.lock = threading.Lock()
        self.table = SessionTable()
        self.fleet = _Fleet()
        self.failures = FailureDelta(controller.scorer)
        self.steps_since_maintenance = 0
        self.refresh_labels(controller.policy)
        # Sessions that stepped before binding are counted from their last decision.
        for session in controller:
            decision = session.last_decision
            if decision is not None:
                record, first = self.table.get(session.id)
                record.error_deltas(decision, first)
                self.fleet.move(record, *self.categories(decision, record))

    def refresh_labels(self, policy: Policy) -> None:
        self.strategies = label_set(policy.strategies)
        self.objectives = label_set(policy.objectives)
        self.rules = label_set([*(rule.name for rule in policy.rules), _NONE])
        scorer = self.controller.scorer
        names = [s.name for s in scorer.scorers] if scorer is not None else []
        self.scorers = label_set([*names, _EXTERNAL])
        self.objective_keys = tuple(
            (f"objective.{name}", pick(name, self.objectives)) for name in policy.objectives
        )
        # Known label values start at 0 so that rate() sees them from the first scrape.
        owner = self.owner
        for strategy in self.strategies:
            owner._steps(strategy)
        for objective in self.objectives:
            owner._missing(objective)
            owner._objective(objective)
        # Per-step callables of each series, looked up once (label value -> bound method).
        self.objective_observers = tuple(
            (key, owner._objective_observer(label)) for key, label in self.objective_keys
        )
        self.step_increments: dict[str, Callable[[float], None]] = {}
        self.rate_observers: dict[str, Callable[[float], None]] = {}

    @staticmethod
    def categories(decision: Decision, record: SessionRecord) -> tuple[str, str, str]:
        mode = pick(decision.mode, _MODE_SET)
        if decision.error is not None:  # a fault carries no estimates: keep the last ones
            return record.regime or "unknown", record.phase or "unknown", mode
        diagnostics = decision.diagnostics
        regime = diagnostics.get("drift.regime")
        phase = diagnostics.get("severity.phase")
        regime = "unknown" if regime is None else pick(regime, _REGIME_SET)
        phase = "unknown" if phase is None else pick(phase, _PHASE_SET)
        return regime, phase, mode

    # -- controller callbacks ------------------------------------------------------------

    def on_step(self, session: Session) -> Callable[[], None]:
        del session
        start = time.perf_counter()
        owner = self.owner

        def done() -> None:
            try:
                owner._step_observe(time.perf_counter() - start)
            except Exception as error:
                owner._failed("step_duration", error)

        return done

    def on_reload(self, old: Policy, new: Policy) -> None:
        del old
        try:
            with self.lock:
                self.refresh_labels(new)
            self.owner._reloads.inc()
        except Exception as error:
            self.owner._failed("reload", error)

    def on_decision(self, session: Session, decision: Decision) -> None:
        try:
            self._record(session, decision)
        except Exception as error:
            self.owner._failed("step", error)

    def _record(self, session: Session, decision: Decision) -> None:
        owner = self.owner
        previous = pick(decision.previous_strategy, self.strategies)
        step_increment = self.step_increments.get(previous)
        if step_increment is None:
            step_increment = self.step_increments[previous] = fast_increment(owner._steps(previous))
        step_increment(1.0)
        if decision.changed:
            owner._switches(
                previous,
                pick(decision.strategy, self.strategies),
                pick(decision.rule or _NONE, self.rules),
            ).inc()
        for name in decision.missing:
            owner._missing(pick(name, self.objectives)).inc()
        for alert in decision.alerts:
            owner._alerts(
                pick(alert.rule, self.rules), pick(alert.severity, _ALERT_SEVERITIES)
            ).inc()
        if decision.error is not None:
            owner._faults.inc()
        else:
            diagnostics = decision.diagnostics
            if type(diagnostics) is LazyDiagnostics:  # these entries are never lazy
                diagnostics = diagnostics.computed
            for key, observe in self.objective_observers:
                value = diagnostics.get(key)
                if type(value) is float:  # the common case: a float, finite or not
                    if math.isfinite(value):
                        observe(value)
                else:
                    value = finite(value)
                    if value is not None:
                        observe(value)
            severity = finite(diagnostics.get("severity.value"))
            if severity is not None:
                owner._severity_observe(severity)
            rate = finite(diagnostics.get("drift.rate"))
            if rate is not None:
                observe_rate = self.rate_observers.get(previous)
                if observe_rate is None:
                    observe_rate = fast_observer(owner._rate(previous))
                    self.rate_observers[previous] = observe_rate
                observe_rate(rate)

        with self.lock:
            record, first = self.table.get(session.id)
            scorer_errors, rule_errors = record.error_deltas(decision, first)
            self.fleet.move(record, *self.categories(decision, record))
            failures = self.failures.take(self.controller.scorer) if scorer_errors else None
            scorers = self.scorers
            if owner.multiprocess:
                self.steps_since_maintenance += 1
                if self.steps_since_maintenance >= 256:
                    self.steps_since_maintenance = 0
                    self._prune_locked()
        if rule_errors:
            owner._rule_errors.inc(rule_errors)
        if failures:
            for (scorer, reason), count in failures.items():
                owner._scorer_errors(pick(scorer, scorers), pick(reason, _REASONS)).inc(count)
        elif scorer_errors:
            owner._scorer_errors(_EXTERNAL, _REPORTED).inc(scorer_errors)
        if owner.multiprocess:
            owner._publish_fleet()

    # -- fleet --------------------------------------------------------------------------

    def _prune_locked(self) -> None:
        for record in self.table.prune(self.controller):
            self.fleet.remove(record)

    def fleet_counts(self, prune: bool = True) -> tuple[int, _Tally[str], _Tally[str], _Tally[str]]:
        """Active sessions and counts by regime, phase and mode (unstepped sessions included)."""
        alive = len(self.controller)
        with self.lock:
            if prune:
                self._prune_locked()
            untracked = max(0, alive - len(self.table))
            regimes, phases, modes = (
                _Tally(self.fleet.regimes),
                _Tally(self.fleet.phases),
                _Tally(self.fleet.modes),
            )
        regimes["unknown"] += untracked
        phases["unknown"] += untracked
        modes["direct"] += untracked
        return alive, regimes, phases, modes


class _FleetCollector(Collector):
    """Scrape-time fleet gauges (and listener errors) of the bound controllers."""

    def __init__(self, owner: SteerloopMetrics) -> None:
        self._owner = owner

    def describe(self) -> Iterator[Metric]:
        yield from self._families(0, _Tally(), _Tally(), _Tally(), 0, _Tally())

    def collect(self) -> Iterator[Metric]:
        try:
            active, regimes, phases, modes = self._owner._fleet_totals()
            bound = self._owner._bound()
            listener_errors = sum(b.controller.listener_errors for b in bound)
            store_operations = _store_totals(b.controller for b in bound)
        except Exception as error:
            self._owner._failed("scrape", error)
            return
        yield from self._families(active, regimes, phases, modes, listener_errors, store_operations)

    @staticmethod
    def _families(
        active: int,
        regimes: _Tally[str],
        phases: _Tally[str],
        modes: _Tally[str],
        listener_errors: int,
        store_operations: _Tally[str],
    ) -> Iterator[Metric]:
        spec = _SPEC["steerloop_sessions_active"]
        yield GaugeMetricFamily(spec.name, spec.help, value=float(active))
        for name, tally, fixed in (
            ("steerloop_sessions_in_regime", regimes, _REGIMES),
            ("steerloop_sessions_in_phase", phases, _PHASES),
            ("steerloop_sessions_in_mode", modes, _MODES),
        ):
            spec = _SPEC[name]
            family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for value in fixed:
                family.add_metric([value], float(tally.get(value, 0)))
            if tally.get(OTHER, 0) > 0:
                family.add_metric([OTHER], float(tally[OTHER]))
            yield family
        spec = _SPEC["steerloop_controller_listener_errors_total"]
        yield CounterMetricFamily(
            spec.name.removesuffix("_total"), spec.help, value=float(listener_errors)
        )
        spec = _SPEC["steerloop_store_operations_total"]
        operations = CounterMetricFamily(
            spec.name.removesuffix("_total"), spec.help, labels=spec.labels
        )
        for outcome in _STORE_OUTCOMES:
            operations.add_metric([outcome], float(store_operations.get(outcome, 0)))
        yield operations


def _store_totals(controllers: Iterable[Controller]) -> _Tally[str]:
    """Sum of the :class:`StoreStats` of the controllers' stores, each store counted once."""
    stores = {id(c.store): c.store for c in controllers if c.store is not None}
    totals: _Tally[str] = _Tally()
    for store in stores.values():
        totals.update(dataclasses.asdict(store.stats()))
    return totals


class SteerloopMetrics:
    """Prometheus metrics of one or more controllers, on an explicit registry.

    Parameters
    ----------
    registry : CollectorRegistry | None
        Where every metric is created. ``None`` (default) creates a new registry (expose it
        with :func:`serve_metrics` or read :attr:`registry`); pass
        ``prometheus_client.REGISTRY`` to use the global one. One ``SteerloopMetrics`` per
        registry: bind several controllers to it rather than creating a second one.
    multiprocess : bool | None
        prometheus_client multiprocess mode (module docstring): fleet gauges become
        ``livesum`` gauges updated per step instead of a scrape-time collector. Default:
        on when ``PROMETHEUS_MULTIPROC_DIR`` is set.
    step_buckets, ratio_buckets, rate_buckets : Sequence[float]
        Histogram buckets for step duration (seconds), values in [0, 1] (objectives,
        severity) and the convergence rate.

    Notes
    -----
    Telemetry fails open: an exception inside it never reaches the step (even for a
    ``strict`` controller); it is counted in ``steerloop_telemetry_errors_total`` and
    :attr:`errors`, and the first one is logged as ``steerloop.telemetry.error``.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry
    >>> from steerloop import Controller
    >>> metrics = SteerloopMetrics(CollectorRegistry())
    >>> first, second = Controller(preset="paper"), Controller(preset="paper")
    >>> metrics.bind(first); metrics.bind(second)
    >>> _ = first.session("a"), second.session("b"), second.session("c")
    >>> metrics.registry.get_sample_value("steerloop_sessions_active")
    3.0
    >>> metrics.registry.get_sample_value("steerloop_sessions_in_regime", {"regime": "unknown"})
    3.0
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess: bool | None = None,
        step_buckets: Sequence[float] = DEFAULT_STEP_BUCKETS,
        ratio_buckets: Sequence[float] = DEFAULT_RATIO_BUCKETS,
        rate_buckets: Sequence[float] = DEFAULT_RATE_BUCKETS,
    ) -> None:
        self._registry = CollectorRegistry() if registry is None else registry
        self.multiprocess = (
            bool(os.environ.get(_MULTIPROC_ENV)) if multiprocess is None else multiprocess
        )
        self._lock = threading.Lock()
        self._bindings: dict[int, _Binding] = {}
        self._errors = 0
        self._logged = False
        reg = self._registry
        self._telemetry_errors = _counter("steerloop_telemetry_errors_total", reg)
        self._steps = _Children(_counter("steerloop_controller_steps_total", reg))
        self._step_seconds = _histogram(
            "steerloop_controller_step_duration_seconds", reg, step_buckets
        )
        self._faults = _counter("steerloop_controller_faults_total", reg)
        self._missing = _Children(_counter("steerloop_controller_missing_scores_total", reg))
        self._switches = _Children(_counter("steerloop_policy_switches_total", reg))
        self._alerts = _Children(_counter("steerloop_policy_alerts_total", reg))
        self._rule_errors = _counter("steerloop_policy_rule_errors_total", reg)
        self._reloads = _counter("steerloop_policy_reloads_total", reg)
        self._scorer_errors = _Children(_counter("steerloop_scorer_errors_total", reg))
        self._objective = _Children(
            _histogram("steerloop_objective_filtered_ratio", reg, ratio_buckets)
        )
        self._severity = _histogram("steerloop_severity_value_ratio", reg, ratio_buckets)
        self._rate = _Children(
            _histogram("steerloop_drift_convergence_rate_per_step", reg, rate_buckets)
        )
        self._step_observe = fast_observer(self._step_seconds)
        self._severity_observe = fast_observer(self._severity)
        self._mp_gauges: dict[str, _Children[Gauge]] = {}
        self._mp_active: Gauge | None = None
        self._published: dict[tuple[str, str], int] = {}
        self._publish_lock = threading.Lock()
        if self.multiprocess:
            active = _SPEC["steerloop_sessions_active"]
            self._mp_active = Gauge(
                active.name, active.help, registry=reg, multiprocess_mode="livesum"
            )
            for name in (
                "steerloop_sessions_in_regime",
                "steerloop_sessions_in_phase",
                "steerloop_sessions_in_mode",
            ):
                spec = _SPEC[name]
                self._mp_gauges[name] = _Children(
                    Gauge(
                        spec.name,
                        spec.help,
                        spec.labels,
                        registry=reg,
                        multiprocess_mode="livesum",
                    )
                )
            self._publish_fleet()
        else:
            reg.register(_FleetCollector(self))

    def _objective_observer(self, objective: str) -> Callable[[float], None]:
        return fast_observer(self._objective(objective))

    @property
    def registry(self) -> CollectorRegistry:
        """The registry holding every metric."""
        return self._registry

    @property
    def errors(self) -> int:
        """Telemetry failures so far (each was swallowed)."""
        return self._errors

    def bind(self, controller: Controller) -> None:
        """Report ``controller``: register the step listener, step timer and reload listener.

        Sessions that already stepped are counted in the fleet gauges from their last
        decision. Binding the same controller twice raises ``ValueError``.
        """
        with self._lock:
            if id(controller) in self._bindings:
                raise ValueError("this controller is already bound to these metrics")
            binding = _Binding(self, controller)
            self._bindings[id(controller)] = binding
        controller.add_step_hook(binding.on_step)
        controller.add_reload_listener(binding.on_reload)
        controller.add_listener(binding.on_decision)
        if self.multiprocess:
            self._publish_fleet()

    def unbind(self, controller: Controller) -> None:
        """Stop reporting ``controller`` (its sessions leave the fleet gauges).

        Raises ``KeyError`` when it is not bound.
        """
        with self._lock:
            binding = self._bindings.pop(id(controller))
        controller.remove_listener(binding.on_decision)
        controller.remove_step_hook(binding.on_step)
        controller.remove_reload_listener(binding.on_reload)
        if self.multiprocess:
            self._publish_fleet()

    def _bound(self) -> list[_Binding]:
        with self._lock:
            return list(self._bindings.values())

    def _fleet_totals(
        self, prune: bool = True
    ) -> tuple[int, _Tally[str], _Tally[str], _Tally[str]]:
        active = 0
        regimes: _Tally[str] = _Tally()
        phases: _Tally[str] = _Tally()
        modes: _Tally[str] = _Tally()
        for binding in self._bound():
            alive, r, p, m = binding.fleet_counts(prune)
            active += alive
            regimes.update(r)
            phases.update(p)
            modes.update(m)
        return active, regimes, phases, modes

    def _publish_fleet(self) -> None:
        """Multiprocess mode: copy the fleet counts into this worker's livesum gauges."""
        with self._publish_lock:
            self._publish_fleet_locked()

    def _publish_fleet_locked(self) -> None:
        active, regimes, phases, modes = self._fleet_totals(prune=False)
        values = {("steerloop_sessions_active", ""): active}
        for name, tally, fixed in (
            ("steerloop_sessions_in_regime", regimes, _REGIMES),
            ("steerloop_sessions_in_phase", phases, _PHASES),
            ("steerloop_sessions_in_mode", modes, _MODES),
        ):
            for value in (*fixed, OTHER):
                values[name, value] = tally.get(value, 0)
        changed = {k: v for k, v in values.items() if self._published.get(k) != v}
        self._published.update(changed)
        for (name, value), count in changed.items():
            if name == "steerloop_sessions_active":
                assert self._mp_active is not None
                self._mp_active.set(count)
            else:
                self._mp_gauges[name](value).set(count)

    def _failed(self, where: str, error: BaseException) -> None:
        """Count a telemetry failure; log the first one (never raises)."""
        with self._lock:
            self._errors += 1
            first = not self._logged
            self._logged = True
        with contextlib.suppress(Exception):  # the counter failing must not break a step
            self._telemetry_errors.inc()
        if first:
            from steerloop.telemetry.events import log_telemetry_error

            log_telemetry_error(where, error, errors=self._errors, layer="metrics")


class MetricsServer(NamedTuple):
    """The exporter started by :func:`serve_metrics`: ``(server, thread)`` plus helpers."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on (useful after ``serve_metrics(0)``)."""
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = str(self.server.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


def multiprocess_registry(path: str | None = None) -> CollectorRegistry:
    """A new registry that sums the metrics of all worker processes (multiprocess mode).

    ``path`` defaults to ``PROMETHEUS_MULTIPROC_DIR``. Do not create metrics on it.
    """
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | SteerloopMetrics | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` over HTTP in a daemon thread (``prometheus_client`` exporter).

    Parameters
    ----------
    port : int
        TCP port; ``0`` picks a free one (read :attr:`MetricsServer.port`).
    addr : str
        Bind address; loopback only by default. ``"0.0.0.0"`` exposes it on every interface.
    registry : CollectorRegistry | SteerloopMetrics | None
        What to expose. ``None``: a :func:`multiprocess_registry` when
        ``PROMETHEUS_MULTIPROC_DIR`` is set, else the global ``prometheus_client.REGISTRY``.

    Returns
    -------
    MetricsServer
        ``(server, thread)``; call :meth:`MetricsServer.close` to stop it.

    Examples
    --------
    >>> from urllib.request import urlopen
    >>> metrics = SteerloopMetrics()
    >>> exporter = serve_metrics(0, registry=metrics)
    >>> b"steerloop_sessions_active 0.0" in urlopen(exporter.url, timeout=5).read()
    True
    >>> exporter.close()
    """
    if isinstance(registry, SteerloopMetrics):
        target = registry.registry
    elif registry is None:
        target = multiprocess_registry() if os.environ.get(_MULTIPROC_ENV) else REGISTRY
    else:
        target = registry
    server, thread = _start_http_server(port, addr=addr, registry=target)
    return MetricsServer(server, thread)
