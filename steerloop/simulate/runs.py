"""Static-strategy runs of an environment as trajectory data (the analysis input).

:func:`rollout_arrays` runs ``sessions`` sessions per strategy with
:meth:`~steerloop.simulate.environment.Environment.rollout` and returns them as
:class:`~steerloop.analysis.trajectory.TrajectoryArrays` (one row per session and step, the
scores of eq. (3) of :mod:`steerloop.simulate.environment`), ready for
:func:`steerloop.analysis.fit_trajectories` or for writing as JSONL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from steerloop.analysis.trajectory import TrajectoryArrays
from steerloop.simulate.environment import Environment, Rollout

__all__ = ["rollout_arrays", "rollout_to_arrays"]


def rollout_to_arrays(
    env: Environment,
    rollout: Rollout,
    *,
    session_names: Sequence[str] | None = None,
) -> TrajectoryArrays:
    """Convert one :class:`Rollout` (steps, sessions, d) into rows ordered by session, step.

    Session names default to ``"s0000"``, ``"s0001"``, ….
    """
    steps, sessions, d = rollout.scores.shape
    names = (
        tuple(session_names)
        if session_names is not None
        else tuple(f"s{i:04d}" for i in range(sessions))
    )
    if len(names) != sessions:
        raise ValueError(f"need {sessions} session names, got {len(names)}")
    session = np.repeat(np.arange(sessions, dtype=np.intp), steps)
    step = np.tile(np.arange(steps, dtype=np.intp), sessions)
    scores = rollout.scores.transpose(1, 0, 2).reshape(sessions * steps, d)
    strategy = rollout.strategies.T.reshape(-1).astype(np.intp)
    return TrajectoryArrays(
        objectives=env.objectives,
        session_names=names,
        strategy_names=env.strategy_names,
        session=session,
        step=step,
        strategy=strategy,
        scores=np.ascontiguousarray(scores),
        severity=np.full(sessions * steps, np.nan),
        dt=env.dt,
    )


def rollout_arrays(
    env: Environment,
    strategies: Sequence[str],
    *,
    sessions: int,
    steps: int,
    rng: np.random.Generator,
) -> TrajectoryArrays:
    """Run ``sessions`` static sessions of each strategy; sessions are named ``<strategy>-NNNN``.

    The strategies are simulated in the order given, each with one
    :meth:`Environment.rollout` call on ``rng`` (so a seed fixes the whole data set).

    Examples
    --------
    >>> from steerloop.simulate.paper import paper_environment
    >>> data = rollout_arrays(paper_environment(), ["feature_focused", "adaptive_integration"],
    ...                       sessions=3, steps=5, rng=np.random.default_rng(0))
    >>> len(data), data.session_names[3], data.strategy_names[int(data.strategy[-1])]
    (30, 'adaptive_integration-0000', 'adaptive_integration')
    """
    parts: list[TrajectoryArrays] = []
    for name in strategies:
        run = env.rollout(name, sessions, steps, rng)
        parts.append(
            rollout_to_arrays(env, run, session_names=[f"{name}-{i:04d}" for i in range(sessions)])
        )
    offsets = np.cumsum([0] + [len(p.session_names) for p in parts[:-1]])
    return TrajectoryArrays(
        objectives=env.objectives,
        session_names=tuple(n for p in parts for n in p.session_names),
        strategy_names=env.strategy_names,
        session=np.concatenate([p.session + off for p, off in zip(parts, offsets, strict=True)]),
        step=np.concatenate([p.step for p in parts]),
        strategy=np.concatenate([p.strategy for p in parts]),
        scores=np.concatenate([p.scores for p in parts]),
        severity=np.concatenate([p.severity for p in parts]),
        dt=env.dt,
    )
