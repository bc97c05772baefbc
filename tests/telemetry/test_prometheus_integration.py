"""A real Prometheus server scrapes a steered demo run; its HTTP API sees the expected series.

The test starts ``prometheus`` (Debian package ``prometheus``) on 127.0.0.1 with a free
port, a temporary data directory and a 1 s scrape interval, and always stops it.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from telemetry_helpers import (
    OBJECTIVES,
    PAPER_TARGETS,
    Recorder,
    concrete,
    expressions,
    load,
    require_tool,
    simulate,
    steerloop_series,
    total,
)

from steerloop import Controller
from steerloop.telemetry import SteerloopMetrics, serve_metrics

pytestmark = pytest.mark.integration

READY_TIMEOUT = 60.0
SCRAPE_TIMEOUT = 45.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: steerloop\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.log = workdir / "prometheus.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        self._log_file.flush()
        return self.log.read_text()[-3000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        pytest.fail(f"prometheus not ready within {READY_TIMEOUT} s:\n{self.logs()}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def wait_for(self, expr: str, expected: float) -> None:
        deadline = time.monotonic() + SCRAPE_TIMEOUT
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(expr)
            if value == expected:
                return
            time.sleep(0.5)
        pytest.fail(f"{expr} = {value}, expected {expected}:\n{self.logs()}")

    def poll_scalar(self, expr: str) -> float:
        """The first finite value of ``expr`` (rate() needs two scrapes in its window)."""
        deadline = time.monotonic() + SCRAPE_TIMEOUT
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(expr)
            if value is not None and math.isfinite(value):
                return value
            time.sleep(0.5)
        pytest.fail(f"{expr} = {value} after {SCRAPE_TIMEOUT} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log_file.close()


@pytest.fixture
def prometheus_binary() -> str:
    return require_tool("prometheus")


@pytest.fixture
def exporter_and_metrics() -> Iterator[tuple[Controller, SteerloopMetrics, int, Recorder]]:
    controller = Controller(preset="paper")
    recorder = Recorder()
    controller.add_listener(recorder)
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    exporter = serve_metrics(0, registry=metrics)
    try:
        yield controller, metrics, exporter.port, recorder
    finally:
        exporter.close()


def test_prometheus_scrapes_a_steered_demo_run(
    prometheus_binary: str,
    exporter_and_metrics: tuple[Controller, SteerloopMetrics, int, Recorder],
    tmp_path: Path,
) -> None:
    controller, metrics, exporter_port, recorder = exporter_and_metrics
    server = PrometheusServer(prometheus_binary, tmp_path, exporter_port)
    try:
        server.wait_ready()
        # Target discovery lags readiness by up to ~5 s: let scraping start before the run,
        # so that Prometheus sees the counters grow (rate() needs increases in its window).
        server.wait_for('up{job="steerloop"}', 1)
        # The demo: 4 sessions x 75 steps, driven in 5 chunks while Prometheus scrapes.
        rng = np.random.default_rng(7)
        sessions = [controller.session(f"demo-{index}") for index in range(4)]
        for _ in range(5):
            for index, session in enumerate(sessions):
                simulate(session, 15, rng, targets=PAPER_TARGETS, fight=0.08 * (index % 2))
            time.sleep(1.1)
        registry = metrics.registry
        steps = total(registry, "steerloop_controller_steps_total")
        assert steps == 300
        switches = total(registry, "steerloop_policy_switches_total")
        assert switches == len(recorder.switches) > 0

        server.wait_for("sum(steerloop_controller_steps_total)", steps)
        server.wait_for('up{job="steerloop"}', 1)
        server.wait_for("sum(steerloop_policy_switches_total)", switches)
        server.wait_for("steerloop_sessions_active", 4)
        server.wait_for("sum(steerloop_sessions_in_regime)", 4)
        server.wait_for("sum(steerloop_sessions_in_phase)", 4)
        server.wait_for("steerloop_controller_step_duration_seconds_count", steps)
        by_strategy = {
            r["metric"]["strategy"]: float(r["value"][1])
            for r in server.query("sum by (strategy) (steerloop_controller_steps_total)")
        }
        for strategy, count in by_strategy.items():
            assert count == total(
                registry, "steerloop_controller_steps_total", strategy=strategy
            ), strategy
        assert sum(by_strategy.values()) == steps
        buckets = {
            r["metric"]["objective"]: float(r["value"][1])
            for r in server.query(
                "count by (objective) (steerloop_objective_filtered_ratio_bucket)"
            )
        }
        assert buckets == dict.fromkeys(OBJECTIVES, 11.0)
        # Every series of the exposition reached Prometheus, none of them per session.
        local = len(steerloop_series(registry))
        server.wait_for('count({__name__=~"steerloop_.+"})', local)
        assert not server.query('{__name__=~"steerloop_.+", session_id!=""}')

        # The Grafana dashboard's queries all evaluate; the key panels have data.
        for expr in expressions(load()):
            server.query(concrete(expr))
        p95 = server.poll_scalar(
            "histogram_quantile(0.95, sum by (le) "
            "(rate(steerloop_controller_step_duration_seconds_bucket[1m])))"
        )
        assert 0 < p95 < 1.0
        mix = server.query(
            'sum by (strategy) (rate(steerloop_controller_steps_total{job=~".*"}[1m]))'
        )
        assert {r["metric"]["strategy"] for r in mix} == set(controller.policy.strategies)
    finally:
        server.stop()
    assert server.process.returncode is not None
