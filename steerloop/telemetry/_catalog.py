"""The catalogue of steerloop's Prometheus metrics: names, types, labels, help, buckets.

:data:`METRICS` is the single list every other part reads (the metrics themselves, the
scrape-time collector, the Grafana dashboard test). Public names are re-exported by
:mod:`steerloop.telemetry.metrics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from steerloop.policies.metrics import CATEGORICAL_VALUES
from steerloop.scoring.base import FailureReason
from steerloop.stores.base import StoreStats

__all__ = [
    "DEFAULT_RATE_BUCKETS",
    "DEFAULT_RATIO_BUCKETS",
    "DEFAULT_STEP_BUCKETS",
    "METRICS",
    "MetricSpec",
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
#: Convergence-rate buckets: negative means unstable, above 1.5 overshoot (the SDE paper,
#: arXiv:2510.10739, measured 0.33-1.29).
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

REGIMES: tuple[str, ...] = CATEGORICAL_VALUES["drift.regime"]
PHASES: tuple[str, ...] = CATEGORICAL_VALUES["severity.phase"]
MODES: tuple[str, ...] = CATEGORICAL_VALUES["mode"]
STORE_OUTCOMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(StoreStats))
REGIME_SET = frozenset(REGIMES)
PHASE_SET = frozenset(PHASES)
MODE_SET = frozenset(MODES)
ALERT_SEVERITIES = frozenset({"info", "warning", "critical"})
EXTERNAL = "external"
REPORTED = "reported"
NONE = "none"
REASONS = frozenset((*get_args(FailureReason), REPORTED))
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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
SPEC = {spec.name: spec for spec in METRICS}

_M = TypeVar("_M", Counter, Gauge, Histogram)


class Children(Generic[_M]):
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


def new_counter(name: str, registry: CollectorRegistry) -> Counter:
    """The counter ``name`` of :data:`METRICS` on ``registry``."""
    spec = SPEC[name]
    return Counter(name, spec.help, spec.labels, registry=registry)


def new_histogram(name: str, registry: CollectorRegistry, buckets: Sequence[float]) -> Histogram:
    """The histogram ``name`` of :data:`METRICS` on ``registry``."""
    spec = SPEC[name]
    return Histogram(name, spec.help, spec.labels, registry=registry, buckets=tuple(buckets))


def new_livesum_gauge(name: str, registry: CollectorRegistry) -> Gauge:
    """The gauge ``name`` of :data:`METRICS` summed over live processes (multiprocess mode)."""
    spec = SPEC[name]
    return Gauge(name, spec.help, spec.labels, registry=registry, multiprocess_mode="livesum")
