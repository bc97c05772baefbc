"""Shared helpers of the telemetry tests: policies, a simulated steered run, exposition tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from steerloop import Controller, Decision, Policy, Session
from steerloop.policies.references import validate_policy

OBJECTIVES = ["security", "efficiency", "functionality"]

# Equilibria each paper strategy drives the objectives to (feature_focused drives security to
# ~0, as in arXiv 2510.10739), used by the simulated loop below.
PAPER_TARGETS: dict[str, tuple[float, float, float]] = {
    "adaptive_integration": (0.15, 0.7, 0.7),
    "security_focused": (0.9, 0.5, 0.6),
    "efficiency_focused": (0.5, 0.95, 0.5),
    "feature_focused": (0.05, 0.5, 0.95),
}


def small_policy(**extra: Any) -> Policy:
    """Four strategies, a severity rule, an interference rule (sequential) and an alert."""
    base: dict[str, Any] = {
        "name": "small",
        "objectives": OBJECTIVES,
        "strategies": {
            "balanced": {
                "prompt": "Balance {objectives}.",
                "emphasis": dict.fromkeys(OBJECTIVES, 1.0),
            },
            "secure": {"prompt": "Focus on security.", "emphasis": {"security": 1.0}},
            "fast": {"prompt": "Make it fast.", "emphasis": {"efficiency": 1.0}},
            "features": {"prompt": "Add features.", "emphasis": {"functionality": 1.0}},
        },
        "initial": "balanced",
        "estimation": {"forgetting": 0.98, "warmup": 5},
        "switching": {"min_dwell": 2},
        "rules": [
            {
                "name": "low-security",
                "priority": 10,
                "when": {"metric": "objective.security", "below": 0.35},
                "then": {"switch_to": "secure"},
            },
            {
                "name": "interference",
                "priority": 5,
                "when": {"metric": "interference.min", "below": -0.3},
                "then": {"sequential": {"order": "auto", "target": 0.75, "patience": 3}},
            },
            {
                "name": "watch-efficiency",
                "priority": 1,
                "when": {"metric": "objective.efficiency", "below": 0.3},
                "then": {"alert": {"message": "efficiency is low", "severity": "warning"}},
            },
        ],
    }
    base.update(extra)
    return validate_policy(Policy.model_validate(base))


@dataclass
class Recorder:
    """Ground truth: every (session id, decision) the controller reported."""

    decisions: list[tuple[str, Decision]] = field(default_factory=list)

    def __call__(self, session: Session, decision: Decision) -> None:
        self.decisions.append((session.id, decision))

    @property
    def switches(self) -> list[Decision]:
        return [d for _, d in self.decisions if d.changed]

    def last_by_session(self) -> dict[str, Decision]:
        return {sid: d for sid, d in self.decisions}


def simulate(
    session: Session,
    steps: int,
    rng: np.random.Generator,
    *,
    targets: Mapping[str, tuple[float, ...]] = PAPER_TARGETS,
    start: tuple[float, ...] = (0.6, 0.5, 0.5),
    rate: float = 0.4,
    noise: float = 0.03,
    fight: float = 0.0,
) -> list[Decision]:
    """Drive ``session`` through a linear SDE whose equilibrium follows the steered strategy.

    ``fight`` > 0 adds anti-correlated increments to efficiency and functionality (strong
    negative interference, which sends the small policy into sequential mode).
    """
    x = np.asarray(start, dtype=np.float64)
    decisions = []
    for _ in range(steps):
        scores = np.clip(x + rng.normal(0.0, 0.01, 3), 0.0, 1.0)
        decision = session.update(dict(zip(OBJECTIVES, scores.tolist(), strict=True)))
        decisions.append(decision)
        target = np.asarray(targets.get(decision.strategy, (0.5, 0.5, 0.5)))
        shock = rng.normal(0.0, noise, 3)
        if fight:
            common = rng.normal(0.0, fight)
            shock[1] += common
            shock[2] -= common
        x = np.clip(x + rate * (target - x) + shock, 0.0, 1.0)
    return decisions


SMALL_TARGETS: dict[str, tuple[float, float, float]] = {
    "balanced": (0.2, 0.6, 0.6),
    "secure": (0.9, 0.5, 0.5),
    "fast": (0.5, 0.9, 0.4),
    "features": (0.4, 0.4, 0.9),
}


def steered_run(
    controller: Controller, sessions: int, steps: int, seed: int = 0
) -> dict[str, list[Decision]]:
    """A demo fleet: ``sessions`` sessions of ``steps`` steps, some with fighting objectives."""
    rng = np.random.default_rng(seed)
    paper = "adaptive_integration" in controller.policy.strategies
    out: dict[str, list[Decision]] = {}
    for index in range(sessions):
        session = controller.session(f"session-{index}")
        out[session.id] = simulate(
            session,
            steps,
            rng,
            targets=PAPER_TARGETS if paper else SMALL_TARGETS,
            fight=0.08 if index % 2 else 0.0,
        )
    return out


# -- exposition ---------------------------------------------------------------------------


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the text exposition, parsed by prometheus_client's own parser."""
    out = []
    for family in text_string_to_metric_families(exposition(registry)):
        for sample in family.samples:
            out.append((sample.name, dict(sample.labels), sample.value))
    return out


def steerloop_series(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [s for s in samples(registry) if s[0].startswith("steerloop_")]


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples(registry)
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


# -- the Grafana dashboard -----------------------------------------------------------------

DASHBOARD = Path(__file__).parents[2] / "examples" / "grafana" / "steerloop.json"
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$job": ".*",
    "$objective": ".*",
}


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def concrete(expr: str) -> str:
    """The expression as Grafana would send it, with its variables substituted."""
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


# -- system tools (Debian package "prometheus": promtool and the server) ------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of ``name``; fails in CI (``CI=true``) when missing, skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"`{name}` is not on PATH; install the Debian package `prometheus` "
            "(scripts/install-system-deps.sh does it; `make test` runs it in CI)"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- a controller stand-in for fleet-scale tests -------------------------------------------


class StubSession:
    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.last_decision: Decision | None = None


class FleetController:
    """Duck-typed stand-in for Controller holding many cheap sessions.

    Records how the telemetry layer touches it, to check that a scrape reads no per-session
    state beyond a bounded number of membership tests.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.scorer = None
        self.listener_errors = 0
        self.store = None  # no shared session store
        self.sessions: dict[str, StubSession] = {}
        self.listeners: list[Any] = []
        self.hooks: list[Any] = []
        self.reload_listeners: list[Any] = []
        self.contains_calls = 0
        self.iter_calls = 0

    def add_listener(self, fn: Any) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Any) -> None:
        self.listeners.remove(fn)

    def add_step_hook(self, fn: Any) -> None:
        self.hooks.append(fn)

    def remove_step_hook(self, fn: Any) -> None:
        self.hooks.remove(fn)

    def add_reload_listener(self, fn: Any) -> None:
        self.reload_listeners.append(fn)

    def remove_reload_listener(self, fn: Any) -> None:
        self.reload_listeners.remove(fn)

    def __len__(self) -> int:
        return len(self.sessions)

    def __contains__(self, session_id: object) -> bool:
        self.contains_calls += 1
        return session_id in self.sessions

    def __iter__(self) -> Iterator[StubSession]:
        self.iter_calls += 1
        return iter(list(self.sessions.values()))

    def step(self, session_id: str, decision: Decision) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = StubSession(session_id)
        session.last_decision = decision
        for fn in self.listeners:
            fn(session, decision)
