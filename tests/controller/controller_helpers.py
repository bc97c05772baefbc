"""Shared helpers of the controller tests: a small four-strategy policy, a known drift."""

from __future__ import annotations

from typing import Any

import numpy as np

from steerloop import Controller, Decision, Policy
from steerloop.policies.references import validate_policy

OBJECTIVES = ["security", "efficiency", "functionality"]
#: A stable linear drift (eigenvalues −0.39, −0.53, −0.58: per-step rate 0.39) and its target.
A_TRUE = np.array([[-0.5, 0.05, 0.0], [0.0, -0.4, 0.1], [0.05, 0.0, -0.6]])
X_STAR = np.array([0.7, 0.6, 0.8])


def policy_dict(**extra: Any) -> dict[str, Any]:
    """A four-strategy policy: a low-security rule and a sequential rule; no fleet pool."""
    base: dict[str, Any] = {
        "name": "small",
        "objectives": OBJECTIVES,
        "strategies": {
            "balanced": {
                "prompt": "Balance {objectives}.",
                "emphasis": dict.fromkeys(OBJECTIVES, 1.0),
            },
            "secure": {"prompt": "Focus on {focus}.", "emphasis": {"security": 1.0}},
            "fast": {"prompt": "Make it fast.", "emphasis": {"efficiency": 1.0}},
            "features": {"prompt": "Add features.", "emphasis": {"functionality": 1.0}},
        },
        "initial": "balanced",
        "estimation": {"forgetting": 0.99, "warmup": 5},
        "fleet": {"pool": False},
        "rules": [
            {
                "name": "low-security",
                "priority": 10,
                "when": {"metric": "objective.security", "below": 0.35},
                "then": {"switch_to": "secure"},
            },
            {
                "name": "interference",
                "when": {"metric": "interference.min", "below": -0.3},
                "then": {"sequential": {"order": "auto", "target": 0.75, "patience": 3}},
            },
        ],
    }
    base.update(extra)
    return base


def make_policy(**extra: Any) -> Policy:
    return validate_policy(Policy.model_validate(policy_dict(**extra)))


def make_controller(**extra: Any) -> Controller:
    """A controller of :func:`policy_dict` (``extra`` overrides policy fields), no events."""
    return Controller(make_policy(**extra), events=False)


def comparable(decision: Decision) -> tuple[Any, ...]:
    """Everything a decision says, for exact comparisons within one process."""
    return (
        decision.session_id,
        decision.strategy,
        decision.prompt,
        decision.changed,
        decision.rule,
        decision.reason,
        decision.mode,
        decision.focus,
        dict(decision.diagnostics),
        decision.step,
        decision.missing,
        decision.alerts,
        decision.error,
    )


def constant(vector: tuple[float, float, float]) -> dict[str, float]:
    return dict(zip(OBJECTIVES, vector, strict=True))
