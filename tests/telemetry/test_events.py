"""SteerloopEvents: stable names and fields, events against ground truth, no text leaks."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs
from telemetry_helpers import OBJECTIVES, Recorder, small_policy, steered_run

from steerloop import Controller, Decision
from steerloop.errors import ScorerError
from steerloop.scoring.base import CallableScorer
from steerloop.telemetry import SteerloopEvents, SteerloopMetrics
from steerloop.telemetry.events import (
    CONTROLLER_FAULT,
    EVENT_FIELDS,
    POLICY_ALERT,
    POLICY_RELOAD,
    REGIME_CHANGE,
    RULE_ERROR,
    SCORER_ERROR,
    SEVERITY_ALARM,
    STRATEGY_SWITCH,
    TELEMETRY_ERROR,
    TEXT_FIELDS,
)

Logs = list[dict[str, Any]]


def run_with_events(
    controller: Controller, *, include_text: bool = False, sessions: int = 4, steps: int = 60
) -> tuple[Logs, Recorder]:
    recorder = Recorder()
    controller.add_listener(recorder)
    SteerloopEvents(include_text=include_text).bind(controller)
    with capture_logs() as logs:
        steered_run(controller, sessions=sessions, steps=steps, seed=3)
    return logs, recorder


@pytest.fixture(scope="module")
def paper_logs() -> tuple[Logs, Recorder]:
    return run_with_events(Controller(preset="paper"))


def of(logs: Logs, name: str) -> Logs:
    return [entry for entry in logs if entry["event"] == name]


def test_every_event_has_exactly_its_documented_fields(paper_logs: tuple[Logs, Recorder]) -> None:
    logs, _ = paper_logs
    assert logs
    kinds = {entry["event"] for entry in logs}
    assert {STRATEGY_SWITCH, SEVERITY_ALARM, REGIME_CHANGE} <= kinds
    for entry in logs:
        assert entry["event"] in EVENT_FIELDS, entry["event"]
        fields = set(entry) - {"event", "log_level"}
        assert fields == set(EVENT_FIELDS[entry["event"]]), entry["event"]
    for name in EVENT_FIELDS:
        assert name.startswith("steerloop.")
    assert set(TEXT_FIELDS) <= set(EVENT_FIELDS)


def test_switch_events_match_the_decisions(paper_logs: tuple[Logs, Recorder]) -> None:
    logs, recorder = paper_logs
    events = of(logs, STRATEGY_SWITCH)
    expected = [(sid, d) for sid, d in recorder.decisions if d.changed]
    assert len(events) == len(expected) > 0
    for entry, (sid, decision) in zip(events, expected, strict=True):
        assert entry["log_level"] == "info"
        assert entry["session_id"] == sid
        assert entry["step"] == decision.step
        assert entry["from_strategy"] == decision.previous_strategy
        assert entry["to_strategy"] == decision.strategy
        assert entry["rule"] == decision.rule
        assert entry["reason"] == decision.reason
        assert entry["mode"] == decision.mode
        assert entry["focus"] == decision.focus
        assert entry["objectives"] == {
            name: decision.diagnostics[f"objective.{name}"] for name in OBJECTIVES
        }
        assert entry["severity"] == decision.diagnostics["severity.value"]
        assert entry["drift_regime"] == decision.diagnostics["drift.regime"]
        json.dumps(entry)  # renderable by any JSON renderer


def test_severity_alarms_fire_once_per_excursion(paper_logs: tuple[Logs, Recorder]) -> None:
    logs, recorder = paper_logs
    threshold = Controller(preset="paper").policy.severity.threshold
    active: dict[str, bool] = defaultdict(bool)
    expected = []
    for sid, decision in recorder.decisions:
        severity = decision.diagnostics.get("severity.value")
        over = isinstance(severity, float) and severity >= threshold
        hot = over or decision.diagnostics.get("severity.phase") == "supercritical"
        if hot and not active[sid]:
            expected.append((sid, decision.step))
        active[sid] = hot
    alarms = of(logs, SEVERITY_ALARM)
    assert [(e["session_id"], e["step"]) for e in alarms] == expected
    assert alarms and all(e["log_level"] == "warning" for e in alarms)
    assert {e["trigger"] for e in alarms} <= {"threshold", "supercritical", "both"}
    assert all(e["threshold"] == threshold for e in alarms)


def test_regime_changes_follow_the_estimated_regimes(paper_logs: tuple[Logs, Recorder]) -> None:
    logs, recorder = paper_logs
    known: dict[str, str] = defaultdict(lambda: "unknown")
    expected = []
    for sid, decision in recorder.decisions:
        regime = decision.diagnostics.get("drift.regime")
        if regime not in (None, "unknown") and regime != known[sid]:
            expected.append((sid, decision.step, known[sid], regime))
            known[sid] = str(regime)
    changes = of(logs, REGIME_CHANGE)
    assert [
        (e["session_id"], e["step"], e["from_regime"], e["to_regime"]) for e in changes
    ] == expected
    assert len(changes) > len(recorder.last_by_session())


def test_scorer_errors_rule_errors_alerts_and_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(response: object) -> float:
        raise RuntimeError("boom")

    policy = small_policy()
    rules = [r.model_dump(by_alias=True) for r in policy.rules]
    rules[2]["priority"] = 50
    rules[2]["when"] = {"metric": "objective.efficiency", "below": 0.99}
    scorers = [
        CallableScorer(crash, "security", name="crashy"),
        CallableScorer(lambda r: {"efficiency": 0.5, "functionality": 0.6}, OBJECTIVES[1:]),
    ]
    controller = Controller(small_policy(rules=rules), scorers=scorers)  # type: ignore[arg-type]
    SteerloopEvents().bind(controller)
    session = controller.session("s")
    with capture_logs() as logs:
        for _ in range(6):
            decision = session.observe("response")
        bumped = dataclasses.replace(
            decision, step=7, diagnostics={**decision.diagnostics, "errors.rule": 2.0}
        )
        controller._notify(session, bumped)

        def boom(*args: Any) -> Any:
            raise ValueError("cannot invert")

        monkeypatch.setattr(session._core.models.kalman, "update", boom)
        session.observe("response")
    scorer_events = of(logs, SCORER_ERROR)
    assert [(e["scorer"], e["reason"], e["count"], e["step"]) for e in scorer_events] == [
        ("crashy", "raised", 1, step) for step in range(1, 7)
    ]  # the faulted 7th step carries no diagnostics (the controller drops its counts too)
    assert of(logs, RULE_ERROR) == [
        {
            "event": RULE_ERROR,
            "log_level": "error",
            "session_id": "s",
            "step": 7,
            "strategy": decision.previous_strategy,
            "count": 2,
            "total": 2.0,
        }
    ]
    alerts = of(logs, POLICY_ALERT)
    assert alerts and {a["rule"] for a in alerts} == {"watch-efficiency"}
    assert alerts[0]["message"] == "efficiency is low" and alerts[0]["log_level"] == "warning"
    faults = of(logs, CONTROLLER_FAULT)
    assert len(faults) == 1 and faults[0]["error_type"] == "ValueError"
    assert "cannot invert" not in str(logs)


def test_policy_reload_event() -> None:
    controller = Controller(small_policy())
    SteerloopEvents().bind(controller)
    controller.session("a")
    with capture_logs() as logs:
        controller.reload_policy(small_policy(name="small-v2"))
    assert logs == [
        {
            "event": POLICY_RELOAD,
            "log_level": "info",
            "policy": "small-v2",
            "previous_policy": "small",
            "objectives": OBJECTIVES,
            "strategies": ["balanced", "fast", "features", "secure"],
            "rules": ["low-security", "interference", "watch-efficiency"],
            "sessions": 1,
        }
    ]


# -- no prompts, responses or secrets in the logs --------------------------------------------

PROMPT_CANARY = "CANARY-PROMPT-7f3a"
RESPONSE_CANARY = "CANARY-RESPONSE-91bc"
SECRET_CANARY = "sk-CANARY-SECRET-55de"


def canary_controller() -> Controller:
    strategies = {
        name: {**spec, "prompt": f"{spec['prompt']} {PROMPT_CANARY}-{name}"}
        for name, spec in small_policy().model_dump(by_alias=True)["strategies"].items()
    }

    def leaky(response: object, context: dict[str, Any]) -> dict[str, float]:
        text = str(response)
        if "fail" in text:
            raise RuntimeError(f"could not score {text} with key {context['api_key']}")
        if "judge" in text:
            raise ScorerError("leaky", "malformed", f"judge said {text} {context['api_key']}")
        value = 0.1 if "low" in text else 0.9
        return {"security": value, "efficiency": 0.6, "functionality": 0.7}

    return Controller(
        small_policy(strategies=strategies),
        scorers=[CallableScorer(leaky, OBJECTIVES, name="leaky")],  # type: ignore[arg-type]
    )


def drive_canaries(controller: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    session = controller.session("c")
    context = {"api_key": SECRET_CANARY, "task": f"task {SECRET_CANARY}"}
    for step in range(30):
        kind = ("low", "fail", "low", "judge")[step % 4] if step < 16 else "ok"
        session.observe(f"{RESPONSE_CANARY} {kind} response", context)

    def boom(*args: Any) -> Any:
        raise ValueError(f"bad state near {RESPONSE_CANARY}")

    monkeypatch.setattr(session._core.models.kalman, "update", boom)
    session.observe(f"{RESPONSE_CANARY} ok", context)


def test_prompts_responses_and_secrets_never_reach_the_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller = canary_controller()
    recorder = Recorder()
    controller.add_listener(recorder)
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    SteerloopEvents().bind(controller)
    with capture_logs() as logs:
        drive_canaries(controller, monkeypatch)
    kinds = {entry["event"] for entry in logs}
    assert {STRATEGY_SWITCH, SCORER_ERROR, CONTROLLER_FAULT} <= kinds, kinds
    assert any(PROMPT_CANARY in d.prompt for d in recorder.switches)
    text = repr(logs)
    exposed = generate_latest(metrics.registry).decode()
    for canary in (PROMPT_CANARY, RESPONSE_CANARY, SECRET_CANARY, "CANARY"):
        assert canary not in text
        assert canary not in exposed


def test_include_text_opts_in_to_prompts_and_error_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller = canary_controller()
    SteerloopEvents(include_text=True).bind(controller)
    with capture_logs() as logs:
        drive_canaries(controller, monkeypatch)
    switches = of(logs, STRATEGY_SWITCH)
    assert switches and all(PROMPT_CANARY in e["prompt"] for e in switches)
    for entry in logs:
        extra = set(TEXT_FIELDS.get(entry["event"], ()))
        assert set(entry) - {"event", "log_level"} == set(EVENT_FIELDS[entry["event"]]) | extra
    (fault,) = of(logs, CONTROLLER_FAULT)
    assert RESPONSE_CANARY in fault["error"]
    # Scorer messages and responses stay out even then: only the numbers reach telemetry.
    assert SECRET_CANARY not in repr(logs)


# -- structlog configuration and failures ------------------------------------------------------


def test_the_library_never_configures_structlog() -> None:
    package = Path(__file__).parents[2] / "steerloop"
    sources = [*(package / "telemetry").glob("*.py"), *(package / "controller").glob("*.py")]
    for path in sources:
        assert "structlog.configure(" not in path.read_text(), path
    code = """
import logging, structlog
from steerloop import Controller
from steerloop.telemetry import SteerloopEvents
controller = Controller(preset="paper")
SteerloopEvents().bind(controller)
controller.reload_policy(controller.policy)
assert not structlog.is_configured()
# Once the application routes structlog to stdlib logging, events use the "steerloop" logger.
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.INFO)
structlog.configure(logger_factory=structlog.stdlib.LoggerFactory(),
                    wrapper_class=structlog.stdlib.BoundLogger)
controller.reload_policy(controller.policy)
print(sorted({r.name for r in records}), len(records))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    # Before that, an info event such as the first reload is not printed (structlog's
    # unconfigured default would print it to stdout); after it, the stdlib logger gets it.
    assert result.stdout.splitlines() == ["['steerloop'] 1"]


class ExplodingLogger:
    def __init__(self) -> None:
        self.errors: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        raise OSError("disk full")

    debug = warning = info

    def error(self, event: str, **fields: Any) -> None:
        self.errors.append((event, fields))


def test_a_failing_logger_never_breaks_a_strict_step() -> None:
    controller = Controller(preset="paper", strict=True)
    logger = ExplodingLogger()
    events = SteerloopEvents(logger)
    events.bind(controller)
    decisions: list[Decision] = []
    session = controller.session("s")
    for _ in range(15):
        decisions.append(
            session.update({"security": 0.05, "efficiency": 0.9, "functionality": 0.9})
        )
    assert decisions[-1].step == 15
    assert any(d.changed for d in decisions)
    assert events.errors >= 2
    assert controller.listener_errors == 0
    assert [event for event, _ in logger.errors] == [TELEMETRY_ERROR]
    assert logger.errors[0][1] == {
        "layer": "events",
        "where": "log",
        "error_type": "OSError",
        "errors": 1,
    }
