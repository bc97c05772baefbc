"""Prometheus metrics of steered loops: per-step counters and histograms, fleet gauges.

:class:`SteerloopMetrics` creates every metric on one explicit
:class:`~prometheus_client.CollectorRegistry` (nothing is created at import time, so two
controllers reporting to two registries never clash) and :meth:`SteerloopMetrics.bind` hooks
it to a :class:`~steerloop.controller.session.Controller`:

* a step listener reads each :class:`~steerloop.controller.session.Decision` (the
  controller's snapshot; nothing is measured inside the math) and updates cached label
  children through their public ``inc``/``observe`` methods;
* a step hook times each step from the outside (the controller reads no clock);
* a reload listener refreshes the label sets and counts policy reloads;
* a custom collector reports the fleet at scrape time from counts the listener maintains
  incrementally (:mod:`steerloop.telemetry._fleet`), so a scrape costs O(number of label
  values), not O(sessions) or O(per-session state).

Only public prometheus_client APIs are used (metric methods, custom collectors).

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
counts at the next scrapes (see :mod:`steerloop.controller.listeners`).

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

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from steerloop.controller.listeners import (
    Binding,
    ListenerGroup,
    ObservedController,
    SessionRecord,
    finite,
    label_set,
    pick,
)
from steerloop.telemetry import _catalog
from steerloop.telemetry._catalog import *  # noqa: F403 - the catalogue and bucket defaults
from steerloop.telemetry._catalog import (
    ALERT_SEVERITIES,
    DEFAULT_RATE_BUCKETS,
    DEFAULT_RATIO_BUCKETS,
    DEFAULT_STEP_BUCKETS,
    EXTERNAL,
    MODE_SET,
    MULTIPROC_ENV,
    NONE,
    PHASE_SET,
    REASONS,
    REGIME_SET,
    REPORTED,
    Children,
    new_counter,
    new_histogram,
)
from steerloop.telemetry._fleet import Fleet, FleetCollector, FleetCounts, LivesumFleet
from steerloop.telemetry.exporter import MetricsServer, multiprocess_registry, serve_metrics

if TYPE_CHECKING:
    from steerloop.controller import Decision, Session
    from steerloop.policies.schema import Policy

__all__ = ["MetricsServer", "SteerloopMetrics", "multiprocess_registry", "serve_metrics"]
__all__ += _catalog.__all__  # the metric catalogue and bucket defaults

_PRUNE_EVERY = 256


class _MetricsBinding(Binding["SteerloopMetrics"]):
    """The link between one :class:`SteerloopMetrics` and one controller."""

    def __init__(self, owner: SteerloopMetrics, controller: ObservedController) -> None:
        super().__init__(owner, controller)
        self.fleet = Fleet()
        self.steps_since_maintenance = 0
        self.refresh_labels(controller.policy)
        self.seed_sessions()

    def seed(self, record: SessionRecord, decision: Decision) -> None:
        self.fleet.move(record, *self.categories(decision, record))

    def refresh_labels(self, policy: Policy) -> None:
        """Label sets of ``policy``; known label values start at 0 (``rate()`` sees them)."""
        self.strategies = label_set(policy.strategies)
        self.objectives = label_set(policy.objectives)
        self.rules = label_set([*(rule.name for rule in policy.rules), NONE])
        scorer = self.controller.scorer
        names = [s.name for s in scorer.scorers] if scorer is not None else []
        self.scorers = label_set([*names, EXTERNAL])
        owner = self.owner
        for strategy in self.strategies:
            owner.steps(strategy)
        for objective in self.objectives:
            owner.missing(objective)
        # Per-step series of each objective, looked up once.
        self.objective_series = tuple(
            (f"objective.{name}", owner.objective(pick(name, self.objectives)))
            for name in policy.objectives
        )

    @staticmethod
    def categories(decision: Decision, record: SessionRecord) -> tuple[str, str, str]:
        """The regime, phase and mode a session is counted under after ``decision``."""
        mode = pick(decision.mode, MODE_SET)
        if decision.error is not None:  # a fault carries no estimates: keep the last ones
            return record.regime or "unknown", record.phase or "unknown", mode
        diagnostics = decision.diagnostics
        regime = diagnostics.get("drift.regime")
        phase = diagnostics.get("severity.phase")
        regime = "unknown" if regime is None else pick(regime, REGIME_SET)
        phase = "unknown" if phase is None else pick(phase, PHASE_SET)
        return regime, phase, mode

    # -- controller callbacks ------------------------------------------------------------

    def attach(self) -> None:
        self.controller.add_step_hook(self.on_step)
        super().attach()

    def detach(self) -> None:
        super().detach()
        self.controller.remove_step_hook(self.on_step)

    def on_step(self, session: Session) -> Callable[[], None]:
        """Step hook: time the step from the outside."""
        del session
        start = time.perf_counter()
        owner = self.owner

        def done() -> None:
            try:
                owner.step_seconds.observe(time.perf_counter() - start)
            except Exception as error:
                owner.failed("step_duration", error)

        return done

    def reload(self, old: Policy, new: Policy) -> None:
        del old
        with self.lock:
            self.refresh_labels(new)
        self.owner.reloads.inc()

    def record(self, session: Session, decision: Decision) -> None:
        owner = self.owner
        previous = pick(decision.previous_strategy, self.strategies)
        owner.steps(previous).inc()
        if decision.changed:
            owner.switches(
                previous,
                pick(decision.strategy, self.strategies),
                pick(decision.rule or NONE, self.rules),
            ).inc()
        for name in decision.missing:
            owner.missing(pick(name, self.objectives)).inc()
        for alert in decision.alerts:
            owner.alerts(pick(alert.rule, self.rules), pick(alert.severity, ALERT_SEVERITIES)).inc()
        if decision.error is not None:
            owner.faults.inc()
        else:
            self._observe_estimates(decision, previous)
        self._count_errors_and_fleet(session, decision)

    def _observe_estimates(self, decision: Decision, strategy: str) -> None:
        diagnostics = decision.diagnostics  # these entries are never lazy: .get is cheap
        for key, series in self.objective_series:
            value = finite(diagnostics.get(key))
            if value is not None:
                series.observe(value)
        severity = finite(diagnostics.get("severity.value"))
        if severity is not None:
            self.owner.severity.observe(severity)
        rate = finite(diagnostics.get("drift.rate"))
        if rate is not None:
            self.owner.rate(strategy).observe(rate)

    def _count_errors_and_fleet(self, session: Session, decision: Decision) -> None:
        owner = self.owner
        with self.lock:
            record, first = self.table.get(session.id)
            scorer_errors, rule_errors = record.error_deltas(decision, first)
            self.fleet.move(record, *self.categories(decision, record))
            failures = self.failures.take(self.controller.scorer) if scorer_errors else None
            scorers = self.scorers
            if owner.livesum is not None:
                self.steps_since_maintenance += 1
                if self.steps_since_maintenance >= _PRUNE_EVERY:
                    self.steps_since_maintenance = 0
                    self._prune_locked()
        if rule_errors:
            owner.rule_errors.inc(rule_errors)
        if failures:
            for (scorer, reason), count in failures.items():
                owner.scorer_errors(pick(scorer, scorers), pick(reason, REASONS)).inc(count)
        elif scorer_errors:
            owner.scorer_errors(EXTERNAL, REPORTED).inc(scorer_errors)
        owner.publish_fleet()

    # -- fleet --------------------------------------------------------------------------

    def _prune_locked(self) -> None:
        for record in self.table.prune(self.controller):
            self.fleet.remove(record)

    def fleet_counts(self, prune: bool = True) -> FleetCounts:
        """Active sessions and counts by regime, phase and mode (unstepped sessions included)."""
        alive = len(self.controller)
        with self.lock:
            if prune:
                self._prune_locked()
            return self.fleet.counts(alive, len(self.table))


class SteerloopMetrics(ListenerGroup[_MetricsBinding]):
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

    layer = "metrics"

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess: bool | None = None,
        step_buckets: Sequence[float] = DEFAULT_STEP_BUCKETS,
        ratio_buckets: Sequence[float] = DEFAULT_RATIO_BUCKETS,
        rate_buckets: Sequence[float] = DEFAULT_RATE_BUCKETS,
    ) -> None:
        super().__init__()
        self._registry = reg = CollectorRegistry() if registry is None else registry
        self.multiprocess = (
            bool(os.environ.get(MULTIPROC_ENV)) if multiprocess is None else multiprocess
        )
        self.telemetry_errors = new_counter("steerloop_telemetry_errors_total", reg)
        self.steps = Children(new_counter("steerloop_controller_steps_total", reg))
        self.step_seconds = new_histogram(
            "steerloop_controller_step_duration_seconds", reg, step_buckets
        )
        self.faults = new_counter("steerloop_controller_faults_total", reg)
        self.missing = Children(new_counter("steerloop_controller_missing_scores_total", reg))
        self.switches = Children(new_counter("steerloop_policy_switches_total", reg))
        self.alerts = Children(new_counter("steerloop_policy_alerts_total", reg))
        self.rule_errors = new_counter("steerloop_policy_rule_errors_total", reg)
        self.reloads = new_counter("steerloop_policy_reloads_total", reg)
        self.scorer_errors = Children(new_counter("steerloop_scorer_errors_total", reg))
        self.objective = Children(
            new_histogram("steerloop_objective_filtered_ratio", reg, ratio_buckets)
        )
        self.severity = new_histogram("steerloop_severity_value_ratio", reg, ratio_buckets)
        self.rate = Children(
            new_histogram("steerloop_drift_convergence_rate_per_step", reg, rate_buckets)
        )
        self.livesum: LivesumFleet | None = None
        if self.multiprocess:
            self.livesum = LivesumFleet(reg)
            self.publish_fleet()
        else:
            reg.register(FleetCollector(self))

    @property
    def registry(self) -> CollectorRegistry:
        """The registry holding every metric."""
        return self._registry

    def new_binding(self, controller: ObservedController) -> _MetricsBinding:
        return _MetricsBinding(self, controller)

    def bind(self, controller: ObservedController) -> None:
        """Report ``controller``: register the step listener, step timer and reload listener.

        Sessions that already stepped are counted in the fleet gauges from their last
        decision. Binding the same controller twice raises ``ValueError``.
        """
        super().bind(controller)
        self.publish_fleet()

    def unbind(self, controller: ObservedController) -> None:
        """Stop reporting ``controller`` (its sessions leave the fleet gauges).

        Raises ``KeyError`` when it is not bound.
        """
        super().unbind(controller)
        self.publish_fleet()

    def controllers(self) -> list[ObservedController]:
        """The bound controllers."""
        return [binding.controller for binding in self.bindings()]

    def fleet_counts(self, prune: bool = True) -> FleetCounts:
        """Sessions of every bound controller by regime, phase and mode."""
        counts = FleetCounts.empty()
        for binding in self.bindings():
            counts = counts.plus(binding.fleet_counts(prune))
        return counts

    def publish_fleet(self) -> None:
        """Multiprocess mode: copy the fleet counts into this worker's livesum gauges."""
        if self.livesum is not None:
            self.livesum.publish(lambda: self.fleet_counts(prune=False))

    def count_failure(self) -> None:
        self.telemetry_errors.inc()
