"""Sequential mode: optimise one objective at a time (Shukla & Joshi, appendix B.3).

When objectives interfere strongly, a ``sequential`` action focuses one objective at a time
with the strategy that emphasises it most (largest share of its ``emphasis``). The order is
the policy's, or ``auto``: the objective that interferes most first
(:func:`~steerloop.estimators.interference.interference_order`). The focus advances when the
filtered objective reaches ``target`` or has not improved (by more than
:data:`IMPROVEMENT_EPSILON`) for ``patience`` steps on its strategy; the mode ends when the
schedule completes or ``interference.min`` recovers above ``exit_above`` (hysteresis), and the
session returns to the policy's initial strategy.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739, appendix B.3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.interference import interference_order
from steerloop.policies.memory import EngineMemory
from steerloop.policies.metrics import Diagnostics
from steerloop.policies.outcome import Verdict
from steerloop.policies.schema import SequentialAction

__all__ = ["IMPROVEMENT_EPSILON", "SequentialMode"]

#: Smallest rise of the focused objective that counts as improvement.
IMPROVEMENT_EPSILON = 1e-3


class SequentialMode:
    """Sequential-mode logic of one policy (stateless; the schedule lives in EngineMemory).

    Parameters
    ----------
    objectives : sequence of str
        The policy's objectives.
    focus_strategy : mapping
        Objective → the strategy that emphasises it most (``None`` when none does).
    initial : str
        Strategy to return to when the mode ends.
    """

    def __init__(
        self, objectives: Sequence[str], focus_strategy: Mapping[str, str | None], initial: str
    ) -> None:
        self._objectives = list(objectives)
        self._focus_strategy = dict(focus_strategy)
        self._initial = initial

    def start(
        self,
        memory: EngineMemory,
        rule: str,
        action: SequentialAction,
        interference: NDArray[np.float64] | None,
    ) -> str | None:
        """Enter the mode; the reason's suffix, or ``None`` when no objective can be focused."""
        if action.order != "auto":
            order = list(action.order)
        elif interference is None:
            order = list(self._objectives)
        else:
            order = interference_order(interference, self._objectives)
        order = [name for name in order if self._focus_strategy.get(name) is not None]
        if not order:
            return None
        memory.sequential_active = True
        memory.sequential_rule = rule
        memory.sequential_order = order
        memory.sequential_index = 0
        memory.sequential_best = None
        memory.sequential_stall = 0
        return f"sequential order {order}"

    def proceed(
        self,
        memory: EngineMemory,
        action: SequentialAction,
        diagnostics: Diagnostics,
        strategy: str,
        *,
        just_matched: bool,
    ) -> Verdict:
        """Advance the schedule and say which strategy the current focus needs."""
        notes: list[str] = []
        lowest = diagnostics.get("interference.min")
        if (
            isinstance(lowest, float)
            and math.isfinite(lowest)
            and lowest > action.exit_above
            and not just_matched
        ):
            memory.leave_sequential()
            return Verdict(
                self._initial,
                f"interference.min = {lowest:.3g} > {action.exit_above:g}: interference "
                "recovered, leaving sequential mode",
            )
        while memory.sequential_index < len(memory.sequential_order):
            focus = memory.sequential_order[memory.sequential_index]
            note = self._check_focus(memory, action, diagnostics, focus, strategy)
            if note is None:
                break
            notes.append(note)
            memory.sequential_index += 1
            memory.sequential_best = None
            memory.sequential_stall = 0
        if memory.sequential_index >= len(memory.sequential_order):
            memory.leave_sequential()
            notes.append("sequential schedule complete")
            return Verdict(self._initial, "; ".join(notes))
        focus = memory.sequential_order[memory.sequential_index]
        notes.append(f"focus {focus}")
        return Verdict(self._focus_strategy[focus], "; ".join(notes), "sequential", focus)

    def _check_focus(
        self,
        memory: EngineMemory,
        action: SequentialAction,
        diagnostics: Diagnostics,
        focus: str,
        strategy: str,
    ) -> str | None:
        """Why the focus is done (target met or stalled), or ``None`` while it is not."""
        value = diagnostics.get(f"objective.{focus}")
        level = value if isinstance(value, float) and math.isfinite(value) else None
        on_focus = strategy == self._focus_strategy.get(focus)
        if level is not None and on_focus:
            best = memory.sequential_best
            if best is None or level > best + IMPROVEMENT_EPSILON:
                memory.sequential_best = level
                memory.sequential_stall = 0
            else:
                memory.sequential_stall += 1
        if level is not None and level >= action.target:
            return f"objective.{focus} = {level:.3g} >= target {action.target:g}"
        if on_focus and memory.sequential_stall >= action.patience:
            return f"objective.{focus} stalled for {memory.sequential_stall} steps"
        return None
