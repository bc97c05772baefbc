"""Per-session bookkeeping of the rule engine, and its snapshot.

One :class:`~steerloop.policies.engine.PolicyEngine` serves every session of a controller;
what it must remember about one session between steps lives in an :class:`EngineMemory`:
the last switch (dwell), when each rule last acted (cooldowns), the sequential schedule, the
plan in force and the exploration spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

__all__ = ["EngineMemory", "EngineState"]


@dataclass(frozen=True)
class EngineState:
    """Snapshot of an :class:`EngineMemory` (same fields, immutable)."""

    last_switch_step: int | None = None
    left_strategy: str | None = None
    rule_last_fired: Mapping[str, int] = field(default_factory=dict)
    sequential_active: bool = False
    sequential_rule: str | None = None
    sequential_order: tuple[str, ...] = ()
    sequential_index: int = 0
    sequential_best: float | None = None
    sequential_stall: int = 0
    plan_first: str | None = None
    plan_switch_after: int | None = None
    plan_second: str | None = None
    explore_steps: int = 0
    explore_target: str | None = None
    committed_until: int | None = None


@dataclass
class EngineMemory:
    """Mutable per-session engine state (module docstring)."""

    last_switch_step: int | None = None
    left_strategy: str | None = None
    rule_last_fired: dict[str, int] = field(default_factory=dict)
    sequential_active: bool = False
    sequential_rule: str | None = None
    sequential_order: list[str] = field(default_factory=list)
    sequential_index: int = 0
    sequential_best: float | None = None
    sequential_stall: int = 0
    plan_first: str | None = None
    plan_switch_after: int | None = None
    plan_second: str | None = None
    explore_steps: int = 0
    explore_target: str | None = None
    committed_until: int | None = None

    def to_state(self) -> EngineState:
        """Immutable snapshot."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["rule_last_fired"] = dict(self.rule_last_fired)
        values["sequential_order"] = tuple(self.sequential_order)
        return EngineState(**values)

    @classmethod
    def from_state(cls, state: EngineState) -> EngineMemory:
        """Rebuild from :meth:`to_state` output."""
        values = {f.name: getattr(state, f.name) for f in fields(state)}
        values["rule_last_fired"] = dict(state.rule_last_fired)
        values["sequential_order"] = list(state.sequential_order)
        return cls(**values)

    @property
    def focus(self) -> str | None:
        """The objective in focus in sequential mode."""
        if self.sequential_active and self.sequential_index < len(self.sequential_order):
            return self.sequential_order[self.sequential_index]
        return None

    def leave_sequential(self) -> None:
        """End sequential mode and forget its schedule."""
        self.sequential_active = False
        self.sequential_rule = None
        self.sequential_order = []
        self.sequential_index = 0
        self.sequential_best = None
        self.sequential_stall = 0

    def forget_plan(self) -> None:
        """Drop the plan in force (another rule took over)."""
        self.plan_first = self.plan_switch_after = self.plan_second = None
