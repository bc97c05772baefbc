"""Inputs of the benchmarks: score streams, policies for larger d, controllers with metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steerloop import Controller
from steerloop.policies.schema import Policy

__all__ = [
    "PAPER_OBJECTIVES",
    "Instrumented",
    "filter_logging",
    "instrumented_controller",
    "paper_like_environment",
    "scaled_policy",
    "score_stream",
]

FloatArray = NDArray[np.float64]

PAPER_OBJECTIVES = ("security", "efficiency", "functionality")


def filter_logging() -> None:
    """Drop every structlog event (and stdlib logging) so that no log I/O is measured."""
    import structlog

    def drop(_logger: object, _method: str, _event: object) -> Any:
        raise structlog.DropEvent

    structlog.configure(
        processors=[drop],
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        cache_logger_on_first_use=False,
    )
    logging.disable(logging.CRITICAL)


def score_stream(dim: int, steps: int, seed: int = 0, regime_length: int = 150) -> FloatArray:
    """Scores in [0, 1] of shape (steps, dim) from a noisy linear system with moving targets.

    x_{t+1} = x_t + k (x* − x_t) + 0.03 ε, y_t = clip(x_t + 0.05 η, 0, 1), with the target x*
    and the rate k drawn anew every ``regime_length`` steps (k ∈ [0.15, 0.6]; one target
    component in three near 0.1), so the controller sees switching, sequential mode,
    boundary-seeking and ordinary regimes rather than one stationary state.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((steps, dim))
    x = np.full(dim, 0.5)
    target = rng.uniform(0.3, 0.9, dim)
    rate = 0.3
    for t in range(steps):
        if t % regime_length == 0:
            target = rng.uniform(0.3, 0.9, dim)
            low = rng.random(dim) < 1.0 / 3.0
            target[low] = 0.1
            rate = float(rng.uniform(0.15, 0.6))
        x = np.clip(x + rate * (target - x) + 0.03 * rng.standard_normal(dim), 0.0, 1.0)
        out[t] = np.clip(x + 0.05 * rng.standard_normal(dim), 0.0, 1.0)
    return out


def as_dicts(names: Sequence[str], scores: FloatArray) -> list[dict[str, float]]:
    """Rows of ``scores`` as ``{objective: score}`` mappings (what ``Session.update`` takes)."""
    return [dict(zip(names, map(float, row), strict=True)) for row in scores]


def scaled_policy(dim: int) -> Policy:
    """The paper preset's structure for ``dim`` objectives ``o00``, ``o01``, ...

    One focus strategy per objective plus a balanced one; the paper's rules: runaway severity
    (from objective 0, inverted), strong interference -> sequential mode, overshoot and
    oscillation -> balanced, and one boundary rule per objective.
    """
    names = [f"o{i:02d}" for i in range(dim)]
    strategies: dict[str, Any] = {
        f"focus_{name}": {"prompt": f"Improve {name} first.", "emphasis": {name: 1.0}}
        for name in names
    }
    strategies["balanced"] = {
        "prompt": "Improve {objectives} together.",
        "emphasis": dict.fromkeys(names, 0.6),
    }
    rules: list[dict[str, Any]] = [
        {
            "name": "runaway-severity",
            "priority": 100,
            "when": {
                "any": [
                    {"metric": "severity.phase", "equals": "supercritical"},
                    {"metric": "severity.value", "above": 0.7},
                ]
            },
            "then": {"switch_to": f"focus_{names[0]}"},
        },
        {
            "name": "strong-interference",
            "priority": 80,
            "when": {"metric": "interference.min", "below": -0.15},
            "then": {"sequential": {"order": "auto", "target": 0.8, "patience": 4}},
        },
        {
            "name": "overshoot",
            "priority": 60,
            "when": {"metric": "drift.rate", "above": 1.5},
            "then": {"switch_to": "balanced"},
        },
        {
            "name": "oscillation",
            "priority": 60,
            "when": {"metric": "drift.regime", "equals": "oscillatory"},
            "then": {"switch_to": "balanced"},
        },
    ]
    for i, name in enumerate(names):
        rules.append(
            {
                "name": f"{name}-boundary",
                "priority": 50 - i,
                "when": {
                    "any": [
                        {"metric": f"drift.equilibrium.{name}", "below": 0.2},
                        {
                            "all": [
                                {"metric": "drift.regime", "equals": "boundary-seeking"},
                                {"metric": f"objective.{name}", "below": 0.4},
                            ]
                        },
                    ]
                },
                "then": {"switch_to": f"focus_{name}"},
            }
        )
    return Policy.model_validate(
        {
            "name": f"scaled-{dim}",
            "objectives": names,
            "strategies": strategies,
            "initial": "balanced",
            "estimation": {"forgetting": 0.98, "warmup": 5, "measurement_noise": "auto"},
            "severity": {"from": {"objective": names[0], "invert": True}, "threshold": 0.7},
            "switching": {"min_dwell": 3},
            "rules": rules,
        }
    )


@dataclass
class Instrumented:
    """A controller and what telemetry is bound to it."""

    controller: Controller
    metrics: str  # "bound" or "unavailable: <reason>"
    handle: object | None = None


def instrumented_controller(policy: Policy | None = None, *, metrics: bool = True) -> Instrumented:
    """A controller (``paper`` preset by default) with ``SteerloopMetrics`` bound when present.

    Every controller gets its own ``CollectorRegistry``. When the telemetry module is missing
    or does not bind, the controller runs without metrics and the reason is reported.
    """
    controller = Controller(preset="paper") if policy is None else Controller(policy)
    if not metrics:
        return Instrumented(controller, "off")
    try:
        from prometheus_client import CollectorRegistry

        from steerloop.telemetry.metrics import SteerloopMetrics

        handle = SteerloopMetrics(registry=CollectorRegistry())
        handle.bind(controller)
    except Exception as error:  # pragma: no cover - depends on the telemetry module's state
        return Instrumented(controller, f"unavailable: {type(error).__name__}: {error}")
    return Instrumented(controller, "bound", handle)


def paper_like_environment() -> tuple[Any, str]:
    """The paper preset's simulated environment, or a stand-in built with ``Environment``.

    Returns the environment and where it came from.
    """
    try:
        from steerloop.simulate import paper_environment

        return paper_environment(), "steerloop.simulate.paper_environment()"
    except Exception:
        pass
    from steerloop.simulate.environment import Environment, StrategyDynamics

    def dynamics(rate: float, equilibrium: Sequence[float]) -> StrategyDynamics:
        return StrategyDynamics.from_equilibrium(
            -rate * np.eye(3), list(equilibrium), 0.0004 * np.eye(3)
        )

    env = Environment(
        objectives=PAPER_OBJECTIVES,
        strategies={
            "efficiency_focused": dynamics(0.33, (0.6, 0.85, 0.7)),
            "security_focused": dynamics(0.5, (0.9, 0.6, 0.7)),
            "feature_focused": dynamics(1.29, (0.0, 0.6, 0.9)),
            "adaptive_integration": dynamics(0.8, (0.75, 0.75, 0.8)),
        },
        noise_sd=0.05,
        initial_mean=(0.5, 0.5, 0.5),
        initial_std=(0.05, 0.05, 0.05),
    )
    return env, "Environment with paper-like rates (stand-in: paper_environment() not found)"
