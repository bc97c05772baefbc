"""Telemetry of steered loops: Prometheus metrics and structlog events.

Both read each step's :class:`~steerloop.controller.session.Decision` through controller
listeners; nothing inside the controller's math measures or logs. Events are on by default
(every controller logs through ``structlog.get_logger("steerloop")``; ``events=False`` turns
them off); metrics are opt-in, on a registry you choose.

>>> from prometheus_client import CollectorRegistry
>>> from steerloop import Controller
>>> from steerloop.telemetry import SteerloopEvents, SteerloopMetrics
>>> controller = Controller(preset="paper")
>>> metrics = SteerloopMetrics(CollectorRegistry())
>>> metrics.bind(controller)
>>> SteerloopEvents(include_text=True).bind(controller)   # replaces the default emitter
"""

from steerloop.telemetry.events import SteerloopEvents
from steerloop.telemetry.metrics import (
    METRICS,
    MetricsServer,
    SteerloopMetrics,
    multiprocess_registry,
    serve_metrics,
)

__all__ = [
    "METRICS",
    "MetricsServer",
    "SteerloopEvents",
    "SteerloopMetrics",
    "multiprocess_registry",
    "serve_metrics",
]
