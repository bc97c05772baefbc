"""Telemetry of steered loops: Prometheus metrics and structlog events.

Both read each step's :class:`~steerloop.controller.session.Decision` through controller
listeners; nothing inside :mod:`steerloop.controller` measures or logs.

>>> from prometheus_client import CollectorRegistry
>>> from steerloop import Controller
>>> from steerloop.telemetry import SteerloopEvents, SteerloopMetrics
>>> controller = Controller(preset="paper")
>>> metrics = SteerloopMetrics(CollectorRegistry())
>>> metrics.bind(controller)
>>> SteerloopEvents().bind(controller)
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
