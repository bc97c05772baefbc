"""Decision: a JSON-serialisable dict, JSON without NaN, a useful repr, the stored form."""

from __future__ import annotations

import json
import math

from controller_helpers import make_controller

from steerloop.controller.decision import Decision
from steerloop.controller.diagnostics import LazyDiagnostics
from steerloop.controller.session import _dump_decision, _load_decision
from steerloop.policies.outcome import Alert

KEYS = [
    "session_id",
    "step",
    "strategy",
    "previous_strategy",
    "changed",
    "rule",
    "reason",
    "mode",
    "focus",
    "missing",
    "alerts",
    "error",
    "diagnostics",
]


def decision(**changes: object) -> Decision:
    fields: dict[str, object] = {
        "strategy": "secure",
        "prompt": "Focus on security.",
        "changed": True,
        "rule": "low-security",
        "reason": "objective.security = 0.1 < 0.35 -> secure",
        "mode": "direct",
        "focus": None,
        "diagnostics": LazyDiagnostics({"step": 5.0, "x": math.nan}, {"slow": lambda: 0.25}),
        "previous_strategy": "balanced",
        "step": 5,
        "missing": ("efficiency",),
        "alerts": (Alert("warn", "severity rising", "warning", "severity.value = 0.8 > 0.7"),),
        "session_id": "user-42",
    }
    fields.update(changes)
    return Decision(**fields)  # type: ignore[arg-type]


def test_to_dict_is_plain_data_with_every_diagnostic() -> None:
    data = decision().to_dict()
    assert list(data) == KEYS
    assert data["diagnostics"]["slow"] == 0.25  # lazy entries are computed
    assert data["missing"] == ["efficiency"]
    assert data["alerts"] == [
        {
            "rule": "warn",
            "message": "severity rising",
            "severity": "warning",
            "reason": "severity.value = 0.8 > 0.7",
        }
    ]
    assert "prompt" not in data
    assert decision().to_dict(prompt=True)["prompt"] == "Focus on security."


def test_to_json_writes_nan_as_null() -> None:
    text = decision().to_json()
    document = json.loads(text)
    assert document["diagnostics"] == {"step": 5.0, "x": None, "slow": 0.25}
    assert "NaN" not in text
    assert json.loads(decision().to_json(prompt=True))["prompt"] == "Focus on security."


def test_a_real_decision_serialises_strictly() -> None:
    session = make_controller().session("j")
    for step in range(12):
        made = session.update(
            {"security": 0.1 + 0.05 * step, "efficiency": 0.6, "functionality": None}
        )
    text = json.dumps(made.to_dict(), allow_nan=False)  # no NaN anywhere in a real one
    assert json.loads(text) == json.loads(made.to_json())
    assert json.loads(text)["diagnostics"]["step"] == 12.0


def test_repr_names_session_step_switch_and_rule() -> None:
    assert (
        repr(decision())
        == "Decision(session='user-42', step=5, balanced -> secure, rule='low-security')"
    )
    held = decision(changed=False, rule=None, strategy="balanced")
    assert repr(held) == "Decision(session='user-42', step=5, balanced)"


def test_the_stored_form_of_a_decision_round_trips() -> None:
    original = decision(diagnostics={"step": 5.0, "plan.strategy": "secure", "x": None})
    again = _load_decision(_dump_decision(original))
    assert again == original
    assert again.to_dict(prompt=True) == original.to_dict(prompt=True)
