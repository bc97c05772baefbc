"""What the rule engine and its actions return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Alert", "EngineOutcome", "Mode", "Verdict"]

Mode = Literal["direct", "sequential"]


@dataclass(frozen=True)
class Alert:
    """An ``alert`` action that fired."""

    rule: str
    message: str
    severity: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """An action's wish: switch to ``target`` (``None``: stay) and why."""

    target: str | None
    reason: str
    mode: Mode = "direct"
    focus: str | None = None


@dataclass(frozen=True)
class EngineOutcome:
    """The engine's verdict for one step."""

    strategy: str
    rule: str | None
    reason: str
    mode: Mode
    focus: str | None
    alerts: tuple[Alert, ...] = ()
    rule_errors: int = 0
