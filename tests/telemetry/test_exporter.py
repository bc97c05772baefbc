"""serve_metrics, prometheus_client multiprocess mode, and promtool on a real exposition."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from telemetry_helpers import (
    exposition,
    promtool_check_metrics,
    samples,
    small_policy,
    steered_run,
    total,
)

from steerloop import Controller
from steerloop.scoring.base import CallableScorer
from steerloop.telemetry import SteerloopMetrics, multiprocess_registry, serve_metrics


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_serve_metrics_listens_on_loopback_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    controller.session("s").update({"security": 0.5})
    exporter = serve_metrics(0, registry=metrics)
    try:
        assert exporter.server.server_address[0] == "127.0.0.1"
        assert exporter.thread.is_alive()
        text = fetch(exporter.url)
        assert 'steerloop_controller_steps_total{strategy="balanced"} 1.0' in text
        assert "python_info" not in text  # only the given registry
    finally:
        exporter.close()
    assert not exporter.thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", exporter.port), 1):
        pass

    # Without a registry: the global one (no PROMETHEUS_MULTIPROC_DIR).
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    exporter = serve_metrics(0)
    try:
        assert isinstance(exporter, tuple) and len(exporter) == 2  # (server, thread)
        assert "python_info" in fetch(exporter.url)
    finally:
        exporter.close()


WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from prometheus_client import CollectorRegistry
    from steerloop import Controller
    from steerloop.telemetry import SteerloopMetrics

    index, sessions, steps = map(int, sys.argv[1:4])
    controller = Controller(preset="paper", events=False)  # stdout carries the result only
    metrics = SteerloopMetrics(CollectorRegistry())
    assert metrics.multiprocess, "PROMETHEUS_MULTIPROC_DIR should switch multiprocess mode on"
    metrics.bind(controller)
    rng = np.random.default_rng(index)
    for number in range(sessions):
        session = controller.session(f"worker{index}-{number}")
        for _ in range(steps):
            low, high = rng.uniform(0.0, 0.3), rng.uniform(0.6, 1.0)
            session.update({"security": low, "efficiency": high, "functionality": high})
    print("done", index)
    """
)


def test_multiprocess_workers_are_summed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gunicorn-style: workers write to one PROMETHEUS_MULTIPROC_DIR, one endpoint sums them."""
    directory = tmp_path / "multiproc"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    plan = [(0, 1, 10), (1, 2, 15), (2, 3, 20)]  # (worker, sessions, steps per session)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *map(str, job)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in plan
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        assert out.startswith("done")
    steps = sum(sessions * per for _, sessions, per in plan)
    sessions = sum(sessions for _, sessions, _ in plan)

    registry = multiprocess_registry(str(directory))
    assert total(registry, "steerloop_controller_steps_total") == steps == 100
    assert total(registry, "steerloop_controller_step_duration_seconds_count") == steps
    assert total(registry, "steerloop_objective_filtered_ratio_count", objective="security") == (
        steps
    )
    assert total(registry, "steerloop_sessions_active") == sessions == 6
    regimes = [v for n, _, v in samples(registry) if n == "steerloop_sessions_in_regime"]
    assert sum(regimes) == sessions
    switches = total(registry, "steerloop_policy_switches_total")
    assert switches > 0
    # No per-process label survives aggregation (pid is summed away).
    assert all("pid" not in labels for _, labels, _ in samples(registry))

    # serve_metrics picks the multiprocess registry from the environment.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    exporter = serve_metrics(0)
    try:
        text = fetch(exporter.url)
    finally:
        exporter.close()
    assert "steerloop_controller_steps_total" in text
    assert "steerloop_sessions_active 6.0" in text


def test_promtool_accepts_a_real_exposition() -> None:
    def crash(response: object) -> float:
        raise RuntimeError("boom")

    evil = 'ev"il\n{scorer="x"}\\'
    controller = Controller(
        preset="paper",
        scorers=[  # type: ignore[list-item]
            CallableScorer(crash, "security", name=evil),
            CallableScorer(lambda r: {"efficiency": 0.7, "functionality": 0.8}, ["efficiency"]),
        ],
    )
    metrics = SteerloopMetrics(CollectorRegistry())
    metrics.bind(controller)
    steered_run(controller, sessions=3, steps=40, seed=2)
    controller.session("scored").observe("response")
    text = exposition(metrics.registry)
    assert "steerloop_scorer_errors_total" in text
    result = promtool_check_metrics(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
