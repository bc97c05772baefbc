"""The model-based actions: ``plan`` (horizon planning) and ``best_predicted`` (equilibria).

``plan`` (the ``predictive`` preset's rule) decides in three stages, every step:

1. **Explore the unknown.** A strategy whose drift is known from fewer than ``warmup``
   effective transitions (the session's own plus what the fleet pool lends) cannot be
   planned. While the session's exploration budget lasts (``explore`` × the loop's expected
   length), and enough steps remain to use what is learnt (twice the learning: a warm-up,
   or what is left of the budget when that is shorter — a short loop's few exploring steps
   still teach the fleet pool), the least known of them is run until it is known (ties broken
   per session, so that concurrent sessions explore different strategies) — never the
   strategy left fewer than four steps ago (e.g. when an override pulled the loop off it):
   exploring waits out that window rather than go straight back. A fleet explores once:
   what one session learns reaches the pool, so later sessions find the strategy known.
2. **Plan.** Every known strategy held to the horizon, and two-phase schedules, are valued by
   :func:`steerloop.estimators.planner.plan` from the filtered state (expected utility at
   the horizon, with the drift's own uncertainty).
3. **No thrash, bounded curiosity.** The plan in force (or, without one, holding the
   current strategy) is kept unless the best plan beats it by ``margin`` — by four times
   the margin to go back to the strategy just left within four steps of leaving it. While the budget
   lasts, and enough steps remain to try a strategy for four steps and use what the trial
   taught for as long again, the plan is also made once with one draw of every strategy's
   drift from its posterior (Thompson sampling); when that draw prefers another first
   strategy by the margin, it is taken, tried for four steps, and counted against the
   budget. A trial is never a return to the strategy left fewer than four steps ago. Near
   the end of a told horizon a trial can only cost: nothing learnt is used.

A first phase shorter than the reversal window is not planned either (the controller sets
the planner's shortest phase to four steps, or the policy's dwell when longer): every
switch the ``plan`` action makes on its own holds for at least four steps.

``best_predicted`` picks the strategy whose predicted equilibrium x*_π = −A_π⁻¹b_π (clipped to
[0, 1]) maximises the utility, after trying every strategy whose drift is not estimated yet.

References
----------
W. R. Thompson, "On the likelihood that one unknown probability exceeds another in view of the
evidence of two samples", Biometrika 25(3/4), 1933 (posterior sampling).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.planner import Plan, Schedule
from steerloop.policies.memory import EngineMemory
from steerloop.policies.outcome import Verdict
from steerloop.policies.schema import BestPredictedAction, PlanAction

__all__ = ["PlanningContext", "best_predicted", "plan_action", "utility_of"]


class PlanningContext(Protocol):
    """What the session offers the model-based actions (built per step, read lazily)."""

    @property
    def expected_length(self) -> float:
        """The loop's expected length (constant over a session when the horizon is unknown)."""
        ...

    @property
    def steps_left(self) -> int | None:
        """Steps left when the user told the horizon, else ``None``."""
        ...

    @property
    def seed(self) -> int:
        """A number stable for the session (spreads exploration across a fleet's sessions)."""
        ...

    def knowledge(self) -> Mapping[str, float]:
        """Transitions known per strategy (the session's own, or lent by the pool)."""
        ...

    def plan(
        self,
        action: PlanAction,
        current: Schedule | None,
        *,
        draw: bool,
        also_draw: bool = False,
    ) -> Plan | None:
        """The planner's result (``draw``: with one posterior draw of every drift;
        ``also_draw``: the draw's plan will be asked for next, so make both at once)."""
        ...

    def equilibria(self) -> Mapping[str, NDArray[np.float64] | None]:
        """Predicted equilibrium of every known strategy."""
        ...


def _explore(
    action: PlanAction,
    memory: EngineMemory,
    context: PlanningContext,
    strategies: Sequence[str],
    current: str,
    warmup: int,
    step: int,
) -> Verdict | None:
    """Stage 1 of the module docstring: a verdict while exploring, else ``None``."""
    known = context.knowledge()
    unknown = [name for name in strategies if known.get(name, 0.0) < warmup]
    budget = action.explore * context.expected_length
    if memory.explore_target is not None:
        target = memory.explore_target
        if target in unknown and memory.explore_steps < budget and current == target:
            if memory.last_switch_step is not None:  # learning the initial strategy is free
                memory.explore_steps += 1
            return Verdict(
                None,
                f"exploring {target}: {known.get(target, 0.0):.0f} of {warmup} transitions known",
            )
        memory.explore_target = None
    steps_left = context.steps_left
    # Learning takes a warm-up, or what is left of the budget when that is shorter (the
    # fleet pool then completes what one session's budget cannot): as many steps must follow.
    learning = min(float(warmup), budget - memory.explore_steps)
    room = steps_left is None or steps_left >= 2 * learning
    if not unknown or memory.explore_steps >= budget or not room:
        return None

    def rank(name: str) -> tuple[float, int]:
        # Least known first; ties broken per session, so concurrent sessions of a fleet
        # explore different strategies instead of all the same one.
        return known.get(name, 0.0), zlib.crc32(f"{context.seed}:{name}".encode())

    if current not in unknown:
        # Exploring never returns to the strategy just left (e.g. after an override): it
        # waits out the reversal window instead (a switch straight back is a thrash).
        left = _recently_left(memory, step)
        unknown = [name for name in unknown if name != left]
        if not unknown:
            return None
    target = current if current in unknown else min(unknown, key=rank)
    memory.explore_target = target
    if target != current or memory.last_switch_step is not None:
        memory.explore_steps += 1
    memory.forget_plan()
    return Verdict(
        target,
        f"explore {target}: its drift is unknown ({known.get(target, 0.0):.0f} of {warmup} "
        f"transitions; exploration {memory.explore_steps} of {budget:.0f} steps)",
    )


#: Steps after a switch during which going back to the strategy just left needs
#: :data:`REVERSAL_FACTOR` times the margin (hysteresis against thrash).
REVERSAL_WINDOW = 4
REVERSAL_FACTOR = 4.0


def _room(context: PlanningContext, learning: int) -> bool:
    """Whether a loop that learns for ``learning`` steps can then use what it learnt for as
    long again: ``steps_left ≥ 2 × learning`` (always, when the horizon is not told).

    A trial pays the session back only in the steps that follow it; the fleet gains either
    way, but a session is not made to pay for it at the very end of its loop.
    """
    steps_left = context.steps_left
    return steps_left is None or steps_left >= 2 * max(1, learning)


def _recently_left(memory: EngineMemory, step: int) -> str | None:
    """The strategy left by a switch fewer than :data:`REVERSAL_WINDOW` steps ago."""
    if memory.last_switch_step is None or step - memory.last_switch_step >= REVERSAL_WINDOW:
        return None
    return memory.left_strategy


def _margin(action: PlanAction, memory: EngineMemory, target: str, step: int) -> float:
    """The no-thrash margin for switching to ``target`` now (module docstring)."""
    if target == _recently_left(memory, step):
        return REVERSAL_FACTOR * action.margin
    return action.margin


def plan_action(
    action: PlanAction,
    memory: EngineMemory,
    context: PlanningContext,
    strategies: Sequence[str],
    current: str,
    warmup: int,
    step: int = 0,
) -> Verdict:
    """Decide by the ``plan`` action (module docstring)."""
    exploring = _explore(action, memory, context, strategies, current, warmup, step)
    if exploring is not None:
        return exploring
    until = memory.committed_until
    if until is not None and step < until and current == memory.plan_first:
        return Verdict(None, f"trying {current} (posterior draw) until step {until}")
    memory.committed_until = None
    in_force = None
    if memory.plan_first is not None:
        in_force = Schedule(memory.plan_first, memory.plan_switch_after, memory.plan_second)
        in_force = in_force.advanced()
    incumbent = (
        in_force if in_force is not None and in_force.first == current else Schedule(current)
    )
    budget = action.explore * context.expected_length
    trial = (
        action.posterior_sampling
        and memory.explore_steps < budget
        and _room(context, REVERSAL_WINDOW)
    )
    result = context.plan(action, incumbent, draw=False, also_draw=trial)
    if result is None or not math.isfinite(result.value):
        return Verdict(None, "no strategy can be planned yet; holding")
    choice, value = result.schedule, result.value
    kept = result.values.get(incumbent)
    note = ""
    margin = _margin(action, memory, choice.first, step)
    if kept is not None and choice != incumbent and value < kept + margin:
        note = f" (best {choice.describe()} = {value:.3g} is within the margin {margin:g})"
        choice, value = incumbent, kept
    if trial:
        sampled = context.plan(action, incumbent, draw=True)
        returning = sampled is not None and sampled.schedule.first == _recently_left(memory, step)
        if sampled is not None and sampled.schedule.first != choice.first and not returning:
            rival = sampled.values.get(choice)
            if rival is None or sampled.value >= rival + action.margin:
                memory.explore_steps += 1
                memory.committed_until = step + REVERSAL_WINDOW
                choice = sampled.schedule
                note += "; a posterior draw prefers it (Thompson exploration)"
    memory.plan_first = choice.first
    memory.plan_switch_after = choice.switch_after
    memory.plan_second = choice.second
    return Verdict(choice.first, f"plan {choice.describe()}: expected utility {value:.3g}{note}")


def utility_of(
    equilibrium: NDArray[np.float64],
    action: BestPredictedAction | PlanAction,
    objectives: Sequence[str],
) -> float:
    """The action's utility of a state (clipped to [0, 1]): min, mean or weighted mean."""
    clipped = np.clip(equilibrium, 0.0, 1.0)
    if action.utility == "min":
        return float(clipped.min())
    weights = np.array([action.weights.get(name, 0.0) for name in objectives])
    if action.utility == "mean" or weights.sum() <= 0:
        return float(clipped.mean())
    return float(weights @ clipped / weights.sum())


def best_predicted(
    action: BestPredictedAction,
    context: PlanningContext,
    strategies: Sequence[str],
    current: str,
    warmup: int,
    objectives: Sequence[str],
) -> Verdict:
    """Decide by the ``best_predicted`` action (module docstring)."""
    known = context.knowledge()
    if known.get(current, 0.0) < warmup:
        return Verdict(None, f"exploring {current} until its drift model is estimated")
    untried = [name for name in strategies if known.get(name, 0.0) < warmup]
    if untried:
        return Verdict(untried[0], "explore untried")
    equilibria = context.equilibria()
    scored = [
        (utility_of(eq, action, objectives) if eq is not None else -math.inf, -index, name)
        for index, name in enumerate(strategies)
        for eq in (equilibria.get(name),)
    ]
    best_value, _, best = max(scored)
    if not math.isfinite(best_value):
        return Verdict(None, "no strategy has a predicted equilibrium")
    current_value = next(value for value, _, name in scored if name == current)
    detail = f"predicted utility {best} = {best_value:.3g}"
    if best != current:
        detail += f" vs {current} = {current_value:.3g}"
    return Verdict(best, detail)
