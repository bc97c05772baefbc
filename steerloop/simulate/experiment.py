"""Experiments: static strategies and steered policies on one environment, compared.

:func:`run_experiment` runs every policy for ``sessions`` sessions of ``steps`` iterations on
the same environment. A *static* policy (given as a strategy name) keeps that strategy; a
*steered* policy (a :class:`~steerloop.policies.schema.Policy`) runs through the real
:class:`~steerloop.controller.session.Controller`, one
:class:`~steerloop.controller.session.Session` per simulated session:

    for t = 0 … T−1:  y_t = observe(x_t);  decision = session.update(y_t);
                      x_{t+1} = step(x_t, decision.strategy)

(the environment stays vectorised over sessions; only the controller loop is per session).
Every policy uses a generator seeded with the same ``seed`` and draws in the same order, so
all policies see the same initial states and the same noise (common random numbers): the
differences between policies are not sampling noise of the starting points.

Outcomes are measured on the **hidden state** x (the simulator knows the truth; the scores
are its noisy measurement):

``final_means``
    mean over sessions of x_{T−1}, per objective; ``min_objective`` is their minimum and
    ``final_min_mean`` the mean over sessions of min_i x_{T−1,i} (the worst objective of each
    session).
``hypervolume``
    Lebesgue measure of the region of [0, 1]^d dominated by the sessions' final vectors,
    reference point 0 (:func:`hypervolume`, exact for d ≤ 3).
``steps_to_target``
    first t with min_i x_{t,i} ≥ ``target``, averaged over the sessions that reach it
    (``reached_fraction`` of them); None when none does. ``final_reached_fraction`` is the
    share of sessions whose *final* state has every objective ≥ ``target``.
``switches_per_session``
    strategy changes (``decision.changed``) per session; ``switches_by_rule`` splits them by
    the rule that made them.
``severity_alarm_steps``
    steps per session with severity s_t = 1 − min_i x_{t,i} ≥ ``severity_threshold`` (the
    default severity of docs/architecture.md, evaluated on the true state so static and steered
    policies are measured alike); ``severity_rule_decisions`` counts decisions per session
    made by a rule whose condition reads a ``severity.*`` metric (steered policies only).

Open question 3 of the multi-objective SDE paper (sequential vs simultaneous optimisation)
is in :mod:`steerloop.simulate.sequential`.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739 (its open question 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from steerloop.simulate.environment import Environment

if TYPE_CHECKING:
    from steerloop.analysis.recorder import TrajectoryRecorder
    from steerloop.controller import Decision
    from steerloop.policies.schema import Condition, Policy

__all__ = [
    "ExperimentReport",
    "PolicyOutcome",
    "Progress",
    "hypervolume",
    "run_experiment",
]

FloatArray = NDArray[np.float64]

#: ``progress(policy_name, steps_done, steps_total)`` after every iteration of a policy.
Progress = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- hypervolume


def _area_2d(x: FloatArray, y: FloatArray) -> float:
    """Area of ⋃_k [0, x_k] × [0, y_k] (x, y ≥ 0): a staircase sum after sorting by x."""
    if x.size == 0:
        return 0.0
    order = np.argsort(-x, kind="stable")
    xs = x[order]
    ys = np.maximum.accumulate(y[order])
    widths = xs - np.append(xs[1:], 0.0)
    return float(np.dot(widths, ys))


def hypervolume(points: FloatArray, reference: FloatArray | None = None) -> float:
    """Exact hypervolume of the region dominated by ``points`` (maximisation), d ≤ 3.

    HV = λ(⋃_k [r, p_k]) for points p_k ≥ r (points not dominating r contribute nothing).
    For d = 3 the union is swept in slabs between consecutive z levels (sorted descending),
    each slab's cross-section being a 2-D staircase area: O(n² log n).

    Parameters
    ----------
    points : array, shape (n, d)
        Objective vectors, larger is better.
    reference : array, shape (d,), optional
        Reference point r (default 0).

    Examples
    --------
    >>> import numpy as np
    >>> hypervolume(np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.5]]))  # 0.25 + 0.25 − 0.125
    0.375
    >>> hypervolume(np.array([[0.5, 0.5]]))
    0.25
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"points must have shape (n, d), got {pts.shape}")
    n, d = pts.shape
    if d > 3:
        raise ValueError(f"exact hypervolume is implemented for d <= 3, got d = {d}")
    ref = np.zeros(d) if reference is None else np.asarray(reference, dtype=np.float64)
    shifted = pts - ref
    shifted = shifted[(shifted > 0.0).all(axis=1)] if n else shifted
    if shifted.shape[0] == 0:
        return 0.0
    if d == 1:
        return float(shifted[:, 0].max())
    if d == 2:
        return _area_2d(shifted[:, 0], shifted[:, 1])
    order = np.argsort(-shifted[:, 2], kind="stable")
    sorted_pts = shifted[order]
    z = sorted_pts[:, 2]
    heights = z - np.append(z[1:], 0.0)
    volume = 0.0
    for k in range(sorted_pts.shape[0]):
        if heights[k] > 0.0:
            volume += float(heights[k]) * _area_2d(sorted_pts[: k + 1, 0], sorted_pts[: k + 1, 1])
    return volume


# --------------------------------------------------------------------------- reports


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyOutcome(_Model):
    """Outcome of one policy in an experiment (see the module docstring for definitions)."""

    name: str
    kind: Literal["static", "steered"]
    sessions: int
    steps: int
    final_means: dict[str, float]
    min_objective: float
    final_min_mean: float
    hypervolume: float | None
    target: float
    reached_fraction: float
    final_reached_fraction: float
    steps_to_target: float | None
    switches_per_session: float
    switches_by_rule: dict[str, float]
    severity_threshold: float
    severity_alarm_steps: float
    severity_rule_decisions: float
    strategy_share: dict[str, float]
    sequential_share: float
    controller_updates: int
    seconds: float

    @property
    def microseconds_per_update(self) -> float | None:
        """Wall time per controller update (steered policies), in µs."""
        if self.controller_updates == 0:
            return None
        return 1e6 * self.seconds / self.controller_updates


class ExperimentReport(_Model):
    """All policies of one experiment, in the order they were given."""

    environment: str
    objectives: list[str]
    seed: int
    sessions: int
    steps: int
    target: float
    severity_threshold: float
    policies: dict[str, PolicyOutcome]


# --------------------------------------------------------------------------- running


def _severity_metrics(condition: Condition) -> Iterator[str]:
    if condition.metric is not None:
        yield condition.metric
    for children in (condition.all, condition.any):
        for child in children or ():
            yield from _severity_metrics(child)
    if condition.not_ is not None:
        yield from _severity_metrics(condition.not_)


def _severity_rules(policy: Policy) -> frozenset[str]:
    return frozenset(
        rule.name
        for rule in policy.rules
        if any(metric.startswith("severity.") for metric in _severity_metrics(rule.when))
    )


class _Tally:
    """Per-step statistics of one policy run, accumulated on the hidden states."""

    def __init__(
        self, sessions: int, steps: int, names: Sequence[str], threshold: float, target: float
    ):
        self.sessions = sessions
        self.steps = steps
        self.names = list(names)
        self.threshold = threshold
        self.target = target
        self.first_reach = np.full(sessions, -1, dtype=np.int64)
        self.alarms = np.zeros(sessions)
        self.counts = np.zeros(len(names))
        self.final: FloatArray = np.zeros((sessions, 0))

    def observe_state(self, t: int, x: FloatArray, strategy_index: NDArray[np.intp]) -> None:
        lowest = x.min(axis=1)
        newly = (self.first_reach < 0) & (lowest >= self.target)
        self.first_reach[newly] = t
        self.alarms += (1.0 - lowest) >= self.threshold
        self.counts += np.bincount(strategy_index, minlength=len(self.names))
        if t == self.steps - 1:
            self.final = x.copy()


@dataclass
class _Steering:
    """Decision statistics of a steered run (all zero for a static one)."""

    switches: int = 0
    severity_decisions: int = 0
    sequential_steps: int = 0
    updates: int = 0
    rules: dict[str, int] = field(default_factory=dict)


def _check_policy(env: Environment, name: str, policy: Policy) -> list[int]:
    if set(policy.objectives) != set(env.objectives):
        raise ValueError(
            f"policy {name!r} has objectives {list(policy.objectives)}, the environment "
            f"{list(env.objectives)}; they must name the same objectives"
        )
    missing = [s for s in policy.strategies if s not in env.strategy_names]
    if missing:
        raise ValueError(
            f"policy {name!r} uses strategies {missing} that the environment does not simulate "
            f"(it has {list(env.strategy_names)})"
        )
    return [list(env.objectives).index(o) for o in policy.objectives]


class _Recording:
    """Writes the first ``sessions`` sessions of a policy run to a recorder (or nothing)."""

    def __init__(
        self,
        recorder: TrajectoryRecorder | None,
        policy: str,
        objectives: Sequence[str],
        sessions: int,
    ) -> None:
        self._recorder = recorder
        self._policy = policy
        self._objectives = list(objectives)
        self.sessions = sessions if recorder is not None else 0

    def static(self, t: int, strategy: str, scores: FloatArray) -> None:
        """Step ``t`` of a static run: scores and strategy only."""
        if self._recorder is None:
            return
        for i, row in enumerate(scores[: self.sessions].tolist()):
            self._recorder.record(
                f"{self._policy}/{i:04d}",
                t,
                strategy,
                dict(zip(self._objectives, row, strict=True)),
            )

    def steered(self, t: int, i: int, strategy: str, row: list[float], decision: Decision) -> None:
        """Step ``t`` of steered session ``i``: also the filtered state, rule and switch."""
        if self._recorder is None or i >= self.sessions:
            return
        diagnostics = decision.diagnostics
        filtered = {o: diagnostics.get(f"objective.{o}") for o in self._objectives}
        self._recorder.record(
            f"{self._policy}/{i:04d}",
            t,
            strategy,
            dict(zip(self._objectives, row, strict=True)),
            filtered={o: v if isinstance(v, float) else None for o, v in filtered.items()},
            rule=decision.rule,
            switched=decision.changed,
        )


def _run_static(
    env: Environment,
    name: str,
    strategy: str,
    tally: _Tally,
    rng: np.random.Generator,
    progress: Progress | None,
    recording: _Recording,
) -> _Steering:
    sessions, steps = tally.sessions, tally.steps
    index = env.indices(strategy, sessions)
    x = env.reset(sessions, rng)
    for t in range(steps):
        tally.observe_state(t, x, index)
        y = env.observe(x, rng)
        recording.static(t, strategy, y)
        if t + 1 < steps:
            x = env.step(x, index, rng)
        if progress is not None:
            progress(name, t + 1, steps)
    return _Steering()


def _count(stats: _Steering, decision: Decision, severity_rules: frozenset[str]) -> None:
    stats.updates += 1
    if decision.changed:
        stats.switches += 1
        if decision.rule is not None:
            stats.rules[decision.rule] = stats.rules.get(decision.rule, 0) + 1
    if decision.rule is not None and decision.rule in severity_rules:
        stats.severity_decisions += 1
    if decision.mode == "sequential":
        stats.sequential_steps += 1


def _run_steered(
    env: Environment,
    name: str,
    policy: Policy,
    tally: _Tally,
    rng: np.random.Generator,
    progress: Progress | None,
    recording: _Recording,
) -> _Steering:
    from steerloop.controller import Controller

    order = _check_policy(env, name, policy)
    objectives = list(policy.objectives)
    severity_rules = _severity_rules(policy)
    # Hundreds of simulated sessions: their per-session events would drown the report.
    controller = Controller(policy, events=False)
    sessions, steps = tally.sessions, tally.steps
    handles = [controller.session(f"{name}/{i:04d}") for i in range(sessions)]
    current = [handle.strategy for handle in handles]
    stats = _Steering()
    x = env.reset(sessions, rng)
    for t in range(steps):
        index = env.indices(current, sessions)
        tally.observe_state(t, x, index)
        y = env.observe(x, rng)
        rows = y[:, order].tolist()
        for i, handle in enumerate(handles):
            decision = handle.update(dict(zip(objectives, rows[i], strict=True)))
            _count(stats, decision, severity_rules)
            recording.steered(t, i, current[i], rows[i], decision)
            current[i] = decision.strategy
        if t + 1 < steps:
            x = env.step(x, current, rng)
        if progress is not None:
            progress(name, t + 1, steps)
    return stats


def _outcome(
    env: Environment,
    name: str,
    kind: Literal["static", "steered"],
    tally: _Tally,
    stats: _Steering,
    seconds: float,
) -> PolicyOutcome:
    """The measured outcome of one policy run (definitions in the module docstring)."""
    sessions, steps, target = tally.sessions, tally.steps, tally.target
    final = tally.final
    means = final.mean(axis=0)
    reached = tally.first_reach >= 0
    try:
        volume: float | None = hypervolume(final)
    except ValueError:
        volume = None
    share = tally.counts / max(tally.counts.sum(), 1.0)
    return PolicyOutcome(
        name=name,
        kind=kind,
        sessions=sessions,
        steps=steps,
        final_means={o: float(v) for o, v in zip(env.objectives, means, strict=True)},
        min_objective=float(means.min()),
        final_min_mean=float(final.min(axis=1).mean()),
        hypervolume=volume,
        target=target,
        reached_fraction=float(reached.mean()),
        final_reached_fraction=float((final.min(axis=1) >= target).mean()),
        steps_to_target=float(tally.first_reach[reached].mean()) if reached.any() else None,
        switches_per_session=stats.switches / sessions,
        switches_by_rule={rule: n / sessions for rule, n in sorted(stats.rules.items())},
        severity_threshold=tally.threshold,
        severity_alarm_steps=float(tally.alarms.mean()),
        severity_rule_decisions=stats.severity_decisions / sessions,
        strategy_share={s: float(v) for s, v in zip(tally.names, share, strict=True) if v > 0},
        sequential_share=stats.sequential_steps / (sessions * steps),
        controller_updates=stats.updates,
        seconds=seconds,
    )


def run_experiment(
    env: Environment,
    policies: Mapping[str, Policy | str],
    sessions: int,
    steps: int,
    seed: int,
    *,
    target: float = 0.7,
    severity_threshold: float = 0.7,
    progress: Progress | None = None,
    recorder: TrajectoryRecorder | None = None,
    record_sessions: int | None = None,
) -> ExperimentReport:
    """Run each policy on ``env`` and measure it (see the module docstring).

    Parameters
    ----------
    env : Environment
        The simulated dynamics.
    policies : mapping of name to Policy or strategy name
        A string runs that strategy statically; a Policy runs through a Controller (its
        objectives must be the environment's, its strategies a subset of the environment's).
    sessions, steps : int
        Sessions per policy and iterations per session.
    seed : int
        Seed of every policy's generator (common random numbers).
    target : float
        Level all objectives must reach for ``steps_to_target``.
    severity_threshold : float
        Threshold of the severity alarm.
    progress : callable, optional
        ``progress(policy, done, total)`` after every iteration.
    recorder : TrajectoryRecorder, optional
        Receives every step (sessions named ``<policy>/NNNN``): scores and strategy, and for
        steered policies the filtered state, the rule and whether the strategy switched.
    record_sessions : int, optional
        Record only the first ``record_sessions`` sessions of each policy (default: all).

    Examples
    --------
    >>> from steerloop.simulate.paper import paper_environment
    >>> report = run_experiment(paper_environment(), {"AI": "adaptive_integration",
    ...                         "FF": "feature_focused"}, sessions=50, steps=30, seed=0)
    >>> report.policies["AI"].min_objective > 0.7 > report.policies["FF"].min_objective
    True
    """
    if sessions < 1 or steps < 1:
        raise ValueError("sessions and steps must be >= 1")
    outcomes: dict[str, PolicyOutcome] = {}
    names = env.strategy_names
    for name, policy in policies.items():
        rng = np.random.default_rng(seed)
        tally = _Tally(sessions, steps, names, severity_threshold, target)
        started = time.perf_counter()
        recording = _Recording(
            recorder,
            name,
            env.objectives if isinstance(policy, str) else policy.objectives,
            sessions if record_sessions is None else min(record_sessions, sessions),
        )
        if isinstance(policy, str):
            env.strategy_index(policy)
            kind: Literal["static", "steered"] = "static"
            stats = _run_static(env, name, policy, tally, rng, progress, recording)
        else:
            kind = "steered"
            stats = _run_steered(env, name, policy, tally, rng, progress, recording)
        outcomes[name] = _outcome(env, name, kind, tally, stats, time.perf_counter() - started)
    return ExperimentReport(
        environment=env.description or "custom environment",
        objectives=list(env.objectives),
        seed=seed,
        sessions=sessions,
        steps=steps,
        target=target,
        severity_threshold=severity_threshold,
        policies=outcomes,
    )


_MOVED = (
    "InterferenceStudy",
    "interference_environment",
    "sequential_policy",
    "sequential_vs_simultaneous",
)


def __getattr__(name: str) -> object:
    """Names that moved to :mod:`steerloop.simulate.sequential` say where they went.

    They are not re-exported from here: :mod:`~steerloop.simulate.sequential` imports this
    module, and a re-export would close an import cycle.
    """
    if name in _MOVED:
        raise AttributeError(
            f"steerloop.simulate.experiment.{name} moved to steerloop.simulate.sequential "
            f"(also exported by steerloop.simulate): from steerloop.simulate import {name}",
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
