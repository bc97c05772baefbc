"""Every controller logs its events by default, once, cheaply, and can be told not to."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

from structlog.testing import capture_logs
from telemetry_helpers import OBJECTIVES, Recorder, small_policy, steered_run

from steerloop import Controller
from steerloop.telemetry.events import (
    DECISION,
    EVENT_FIELDS,
    POLICY_RELOAD,
    STRATEGY_SWITCH,
    SteerloopEvents,
)

Logs = list[dict[str, Any]]


def of(logs: Logs, name: str) -> Logs:
    return [entry for entry in logs if entry["event"] == name]


def test_a_controller_logs_switches_and_every_step_without_any_binding() -> None:
    controller = Controller(small_policy())
    assert isinstance(controller.events, SteerloopEvents)
    recorder = Recorder()
    controller.add_listener(recorder)
    with capture_logs() as logs:
        steered_run(controller, sessions=2, steps=30, seed=5)
    switches = of(logs, STRATEGY_SWITCH)
    assert [(e["session_id"], e["step"]) for e in switches] == [
        (sid, d.step) for sid, d in recorder.decisions if d.changed
    ]
    assert switches and all(e["log_level"] == "info" for e in switches)
    steps = of(logs, DECISION)
    assert len(steps) == len(recorder.decisions) == 60
    for entry, (sid, decision) in zip(steps, recorder.decisions, strict=True):
        assert entry["log_level"] == "debug"
        assert set(entry) - {"event", "log_level"} == set(EVENT_FIELDS[DECISION])
        assert (entry["session_id"], entry["step"]) == (sid, decision.step)
        assert entry["from_strategy"] == decision.previous_strategy
        assert entry["to_strategy"] == decision.strategy
        assert entry["changed"] is decision.changed
        assert entry["rule"] == decision.rule
        assert entry["missing"] == list(decision.missing)
        assert entry["objectives"] == {
            name: decision.diagnostics[f"objective.{name}"] for name in OBJECTIVES
        }
        assert "prompt" not in entry


def test_events_false_logs_nothing() -> None:
    controller = Controller(small_policy(), events=False)
    assert controller.events is None
    with capture_logs() as logs:
        steered_run(controller, sessions=2, steps=30, seed=5)
        controller.reload_policy(controller.policy)
    assert logs == []


def test_the_default_emitter_can_be_switched_off_at_run_time() -> None:
    controller = Controller(small_policy())
    default = controller.events
    assert default is not None
    default.unbind(controller)
    assert controller.events is None
    with capture_logs() as logs:
        steered_run(controller, sessions=1, steps=20, seed=5)
    assert logs == []


def test_binding_your_own_emitter_replaces_the_default_so_nothing_is_logged_twice() -> None:
    controller = Controller(small_policy())
    default = controller.events
    assert default is not None
    mine = SteerloopEvents(include_text=True, step_events=False)
    mine.bind(controller)
    assert controller.events is mine and not default.is_bound(controller)
    with capture_logs() as logs:
        steered_run(controller, sessions=1, steps=30, seed=5)
        controller.reload_policy(controller.policy)
    assert of(logs, DECISION) == []
    assert len(of(logs, POLICY_RELOAD)) == 1
    switches = of(logs, STRATEGY_SWITCH)
    assert switches and all("prompt" in entry for entry in switches)
    assert len({(e["session_id"], e["step"]) for e in switches}) == len(switches)
    # One emitter may serve several controllers; each keeps its own record of sessions.
    other = Controller(small_policy())
    mine.bind(other)
    assert other.events is mine and controller.events is mine


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unconfigured_structlog_shows_warnings_only() -> None:
    result = run(
        """
        import sys
        from steerloop import Controller
        controller = Controller(preset="paper")
        assert "structlog" not in sys.modules, "creating a controller must not import structlog"
        session = controller.session("demo")
        for _ in range(12):
            session.update({"security": 0.05, "efficiency": 0.9, "functionality": 0.9})
        import structlog
        assert not structlog.is_configured()
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # As the standard library's logging before it is configured: warnings and worse only.
    assert any("steerloop.severity.alarm" in line for line in lines), result.stdout
    assert not any(STRATEGY_SWITCH in line or DECISION in line for line in lines), result.stdout


def test_a_configured_level_filters_the_step_events() -> None:
    result = run(
        """
        import logging, structlog
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )
        from steerloop import Controller
        session = Controller(preset="paper").session("demo")
        for _ in range(12):
            session.update({"security": 0.05, "efficiency": 0.9, "functionality": 0.9})
        print("-- debug from here on")
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        session.update({"security": 0.05, "efficiency": 0.9, "functionality": 0.9})
        """
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("-- debug from here on")
    assert STRATEGY_SWITCH in before
    assert DECISION not in before
    assert DECISION in after  # a reconfiguration is noticed
