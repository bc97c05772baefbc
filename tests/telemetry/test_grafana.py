"""examples/grafana/steerloop.json: valid dashboard JSON over the metrics the module defines."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from telemetry_helpers import concrete, expressions, load, panels, require_tool

from steerloop.telemetry.metrics import METRICS

METRIC_NAME = re.compile(r"\bsteerloop_[a-z0-9_]+")


def exposed_names() -> set[str]:
    names = set()
    for spec in METRICS:
        names.add(spec.name)
        if spec.kind == "histogram":
            names.update(f"{spec.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = load()
    for key in ("title", "uid", "panels", "schemaVersion", "templating", "time", "tags"):
        assert key in dashboard, key
    assert dashboard["uid"] == "steerloop-overview"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        assert panel["type"] in {"row", "stat", "timeseries", "heatmap", "table"}
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert x >= 0 and x + w <= 24 and h > 0
        cells = {(y + dy, x + dx) for dy in range(h) for dx in range(w)}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip()
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= {"__rate_interval", "__range", "job", "objective"}, used


def test_dashboard_references_only_defined_metrics_and_covers_the_brief() -> None:
    exprs = expressions(load())
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert referenced <= exposed_names(), referenced - exposed_names()
    for variable in load()["templating"]["list"]:
        for name in METRIC_NAME.findall(json.dumps(variable.get("query", ""))):
            assert name in exposed_names(), name
    text = "\n".join(exprs)
    # Switch rate, strategy mix, objective and severity distributions, p95 step cost.
    assert "rate(steerloop_policy_switches_total" in text
    assert "sum by (strategy) (rate(steerloop_controller_steps_total" in text
    assert "steerloop_objective_filtered_ratio_bucket" in text
    assert "steerloop_severity_value_ratio_bucket" in text
    assert (
        "histogram_quantile(0.95, sum by (le) "
        "(rate(steerloop_controller_step_duration_seconds_bucket" in text
    )
    scrape_time = {spec.name for spec in METRICS if spec.scrape_time}
    assert scrape_time - {"steerloop_controller_listener_errors_total"} <= referenced


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = tmp_path / "dashboard-rules.yml"
    lines = ["groups:", "  - name: steerloop-dashboard", "    rules:"]
    for index, expr in enumerate(expressions(load())):
        lines.append(f"      - record: steerloop_dashboard_query_{index}")
        lines.append(f"        expr: {json.dumps(concrete(expr))}")
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("expr", expressions(load()))
def test_every_query_filters_by_job(expr: str) -> None:
    assert 'job=~"$job"' in expr
