"""The decision a session returns after every response."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steerloop.policies.metrics import DiagnosticValue
from steerloop.policies.outcome import Alert

__all__ = ["Decision"]


@dataclass(frozen=True)
class Decision:
    """What the controller decided after one response.

    Attributes
    ----------
    strategy : str
        Strategy to use for the next call.
    prompt : str
        Its rendered prompt (inject it as the system/steering prompt).
    changed : bool
        Whether ``strategy`` differs from the strategy of the step just observed.
    rule : str | None
        Name of the rule that acted (or matched during dwell), ``None`` when none did.
    reason : str
        One human-readable line with the numbers behind the decision.
    mode : str
        ``"direct"`` or ``"sequential"``.
    focus : str | None
        Objective in focus in sequential mode.
    diagnostics : Mapping[str, float | str | None]
        The step's snapshot in the namespace rule conditions read
        (:mod:`steerloop.policies.metrics`).
    previous_strategy : str
        Strategy that produced the observed response.
    step : int
        Number of updates this session has seen, this one included.
    missing : tuple[str, ...]
        Objectives whose score was missing or invalid this step.
    alerts : tuple[Alert, ...]
        ``alert`` actions that fired.
    error : str | None
        Set when the controller failed open on this step (the strategy was held).
    session_id : str
        The session that decided.

    Examples
    --------
    >>> from steerloop import Controller
    >>> decision = Controller(preset="paper").session("doc").update(
    ...     {"security": 0.8, "efficiency": 0.6, "functionality": 0.7})
    >>> data = decision.to_dict()
    >>> data["strategy"], data["step"], data["diagnostics"]["objective.min"] is not None
    ('adaptive_integration', 1, True)
    >>> '"strategy": "adaptive_integration"' in decision.to_json()
    True
    """

    strategy: str
    prompt: str
    changed: bool
    rule: str | None
    reason: str
    mode: str
    focus: str | None
    diagnostics: Mapping[str, DiagnosticValue]
    previous_strategy: str
    step: int
    missing: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    error: str | None = None
    session_id: str = ""

    def to_dict(self, *, prompt: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict (every diagnostic computed; the prompt only if asked)."""
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "step": self.step,
            "strategy": self.strategy,
            "previous_strategy": self.previous_strategy,
            "changed": self.changed,
            "rule": self.rule,
            "reason": self.reason,
            "mode": self.mode,
            "focus": self.focus,
            "missing": list(self.missing),
            "alerts": [
                {"rule": a.rule, "message": a.message, "severity": a.severity, "reason": a.reason}
                for a in self.alerts
            ],
            "error": self.error,
            "diagnostics": dict(self.diagnostics),
        }
        if prompt:
            data["prompt"] = self.prompt
        return data

    def to_json(self, *, prompt: bool = False) -> str:
        """:meth:`to_dict` as JSON (NaN written as ``null``: JSON has no NaN)."""
        return json.dumps(_without_nan(self.to_dict(prompt=prompt)))

    def __repr__(self) -> str:
        switch = f"{self.previous_strategy} -> {self.strategy}" if self.changed else self.strategy
        rule = f", rule={self.rule!r}" if self.rule else ""
        return f"Decision(session={self.session_id!r}, step={self.step}, {switch}{rule})"


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return value
