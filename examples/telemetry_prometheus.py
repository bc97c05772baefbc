"""Expose a steered fleet to Prometheus and log its decisions with structlog (offline demo).

Simulated loops stand in for LLM calls: each strategy pulls the objective scores towards its
own equilibrium (feature-focused prompting drives security towards 0, as in the paper), so
the paper preset switches strategies, enters sequential mode and raises severity alarms.

* metrics: ``SteerloopMetrics`` on its own registry, served on http://127.0.0.1:9464/metrics
  (point Prometheus at it and import ``examples/grafana/steerloop.json`` into Grafana);
* events: every controller logs switches, alarms and regime changes through
  ``structlog.get_logger("steerloop")`` (and each step at debug level). The *application*
  configures structlog (here: JSON lines at info level and above); the library never does.

Run: ``python examples/telemetry_prometheus.py [--steps 200] [--serve 60]``
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import structlog

from steerloop import Controller
from steerloop.telemetry import SteerloopMetrics, serve_metrics

OBJECTIVES = ("security", "efficiency", "functionality")
TARGETS = {
    "adaptive_integration": (0.15, 0.7, 0.7),
    "security_focused": (0.9, 0.5, 0.6),
    "efficiency_focused": (0.5, 0.95, 0.5),
    "feature_focused": (0.05, 0.5, 0.95),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--serve", type=float, default=0.0, help="seconds to keep serving")
    args = parser.parse_args()

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),  # no per-step lines
    )
    controller = Controller(preset="paper")  # logs its events; events=False turns them off
    metrics = SteerloopMetrics()  # a registry of its own; pass prometheus_client.REGISTRY to share
    metrics.bind(controller)
    exporter = serve_metrics(args.port, registry=metrics)
    print(f"metrics on {exporter.url}")

    rng = np.random.default_rng(0)
    states = {f"loop-{i}": rng.uniform(0.4, 0.7, 3) for i in range(args.sessions)}
    try:
        for _ in range(args.steps):
            for session_id, x in states.items():
                session = controller.session(session_id)
                scores = np.clip(x + rng.normal(0.0, 0.01, 3), 0.0, 1.0)
                decision = session.update(dict(zip(OBJECTIVES, scores.tolist(), strict=True)))
                target = np.asarray(TARGETS[decision.strategy])
                states[session_id] = np.clip(
                    x + 0.4 * (target - x) + rng.normal(0.0, 0.03, 3), 0.0, 1.0
                )
        registry = metrics.registry
        steps = registry.get_sample_value(
            "steerloop_controller_steps_total", {"strategy": "security_focused"}
        )
        print(f"steps under security_focused: {steps:.0f}")
        time.sleep(args.serve)
    finally:
        exporter.close()


if __name__ == "__main__":
    main()
