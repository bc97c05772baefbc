"""Simulated environments for any policy: each strategy's dynamics derived from its emphasis.

The paper environment (:mod:`steerloop.simulate.paper`) only knows the three objectives
of the multi-objective SDE paper
and four strategies. :func:`policy_environment` builds an
:class:`~steerloop.simulate.environment.Environment` for **any** policy, from the policy alone
and a seed, by this documented rule (Δt = 1; objectives in the policy's order).

For a strategy π with emphasis weights w_π,i ≥ 0 (an objective it does not list weighs 0; no
weights at all, or all zero, means equal weights), normalise e_π = w_π / max_i w_π,i ∈ [0, 1]
and draw, from one generator seeded with ``seed``, strategy by strategy in policy order:

    equilibrium   x*_π,i = clip(low + (high − low) e_π,i + δ_π,i, 0.02, 0.98),
                  δ_π,i ~ N(0, jitter²)
    rate          ρ_π ~ U(rate_min, rate_max)
    drift         A_π = −ρ_π (I + C_π),   C_π,ij ~ U(−κ, κ) / (d − 1) for i ≠ j,  C_π,ii = 0
    offset        b_π = −A_π x*_π            (so μ(x) = A_π (x − x*_π))
    diffusion     D_π = σ² I

so an emphasised objective settles high and a neglected one low — the trade-off that paper
measured (its feature-focused strategy drives security towards 0) — at a strategy-specific
speed, with weak random coupling between objectives. Every row of C_π has absolute sum below
κ < 1, so A_π is strictly diagonally dominant with diagonal −ρ_π: by Gershgorin's theorem every
eigenvalue has Re λ ≤ −ρ_π (1 − κ) < 0 (the drift is stable) and the Euler map I + A_π is a
contraction when rate_max (1 + κ) < 2, which the constructor checks. Initial states and score
noise follow eq. (3) of :mod:`steerloop.simulate.environment`.

This is a *test bed*, not a model of your loop: it lets any policy be run, recorded, analysed
and plotted before a real LLM is attached. :func:`environment_for` picks the paper environment
when the policy fits it and a generated one otherwise.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739.

Examples
--------
>>> from steerloop.policies.schema import Policy
>>> policy = Policy.model_validate({
...     "objectives": ["quality", "speed"],
...     "strategies": {"careful": {"prompt": "Be careful.", "emphasis": {"quality": 1.0}},
...                    "quick": {"prompt": "Be quick.", "emphasis": {"speed": 1.0}}},
...     "initial": "careful"})
>>> env = policy_environment(policy, seed=0)
>>> env.objectives, env.strategy_names
(('quality', 'speed'), ('careful', 'quick'))
>>> x = env.equilibrium("careful")
>>> bool(x[0] > 0.75 > 0.35 > x[1])
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from steerloop.simulate.environment import Environment, StrategyDynamics
from steerloop.simulate.paper import PAPER_OBJECTIVES, PAPER_STRATEGIES, paper_environment

if TYPE_CHECKING:
    from steerloop.policies.schema import Policy

__all__ = ["EnvironmentKind", "environment_for", "fits_paper_environment", "policy_environment"]

#: Which environment :func:`environment_for` builds.
EnvironmentKind = Literal["auto", "paper", "policy"]

_EQUILIBRIUM_BOUNDS = (0.02, 0.98)


def _emphasis(policy: Policy, strategy: str) -> np.ndarray:
    weights = np.array(
        [policy.strategies[strategy].emphasis.get(o, 0.0) for o in policy.objectives],
        dtype=np.float64,
    )
    top = float(weights.max()) if weights.size else 0.0
    return weights / top if top > 0.0 else np.ones_like(weights)


def _check_settings(
    low: float,
    high: float,
    rate_min: float,
    rate_max: float,
    coupling: float,
    jitter: float,
    sigma: float,
) -> None:
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    if not 0.0 <= coupling < 1.0:
        raise ValueError(f"coupling must be in [0, 1), got {coupling}")
    if not 0.0 < rate_min <= rate_max or rate_max * (1.0 + coupling) >= 2.0:
        raise ValueError(
            f"need 0 < rate_min <= rate_max and rate_max * (1 + coupling) < 2 (a stable Euler "
            f"map), got rate_min={rate_min}, rate_max={rate_max}, coupling={coupling}"
        )
    if min(jitter, sigma) < 0.0:
        raise ValueError("jitter and sigma are standard deviations (>= 0)")


def policy_environment(
    policy: Policy,
    *,
    seed: int = 0,
    low: float = 0.3,
    high: float = 0.85,
    jitter: float = 0.03,
    rate_min: float = 0.3,
    rate_max: float = 0.9,
    coupling: float = 0.3,
    sigma: float = 0.03,
    noise_sd: float = 0.01,
    initial_mean: float = 0.4,
    initial_std: float = 0.06,
) -> Environment:
    """An environment for ``policy``'s objectives and strategies (rule in the module docstring).

    Parameters
    ----------
    policy : Policy
        Objectives (their order is the vector order) and strategies with emphasis weights.
    seed : int
        Seed of the one generator all draws come from: the same policy and seed give the same
        environment.
    low, high : float
        Equilibrium of an objective with emphasis 0 and 1 (before jitter), 0 ≤ low ≤ high ≤ 1.
    jitter : float
        Standard deviation of the per-objective equilibrium perturbation δ.
    rate_min, rate_max : float
        Range of the per-strategy rate ρ_π (0 < rate_min ≤ rate_max, rate_max (1 + κ) < 2).
    coupling : float
        κ ∈ [0, 1): bound of the off-diagonal coupling (per row).
    sigma : float
        Diffusion standard deviation σ (D = σ² I per unit time).
    noise_sd, initial_mean, initial_std : float
        Score noise standard deviation r and initial state distribution, as in
        :class:`~steerloop.simulate.environment.Environment`.

    Raises
    ------
    ValueError
        When a setting is out of range.
    """
    _check_settings(low, high, rate_min, rate_max, coupling, jitter, sigma)
    rng = np.random.default_rng(seed)
    d = len(policy.objectives)
    off_diagonal = ~np.eye(d, dtype=bool)
    strategies: dict[str, StrategyDynamics] = {}
    for name in policy.strategies:
        emphasis = _emphasis(policy, name)
        target = low + (high - low) * emphasis + jitter * rng.standard_normal(d)
        target = np.clip(target, *_EQUILIBRIUM_BOUNDS)
        rate = float(rng.uniform(rate_min, rate_max))
        mixing = rng.uniform(-coupling, coupling, size=(d, d)) / max(d - 1, 1)
        a = -rate * (np.eye(d) + np.where(off_diagonal, mixing, 0.0))
        strategies[name] = StrategyDynamics.from_equilibrium(
            a,
            target,
            sigma * sigma * np.eye(d),
            description=f"generated from emphasis {np.round(emphasis, 3).tolist()}, "
            f"rate {rate:.3f}",
        )
    return Environment(
        objectives=tuple(policy.objectives),
        strategies=strategies,
        noise_sd=noise_sd,
        dt=1.0,
        initial_mean=initial_mean,
        initial_std=initial_std,
        description=f"generated from policy {policy.name or '(unnamed)'!s} "
        f"(steerloop.simulate.generated, seed {seed})",
    )


def fits_paper_environment(policy: Policy) -> bool:
    """Whether ``policy`` uses the paper's objectives and only strategies the paper simulates."""
    return set(policy.objectives) == set(PAPER_OBJECTIVES) and set(policy.strategies) <= set(
        PAPER_STRATEGIES
    )


def environment_for(
    policy: Policy, kind: EnvironmentKind = "auto", *, seed: int = 0
) -> Environment:
    """The environment to simulate ``policy`` in.

    ``"paper"`` is :func:`~steerloop.simulate.paper.paper_environment` (the policy must fit
    it), ``"policy"`` is :func:`policy_environment` (``seed``), and ``"auto"`` the paper
    environment when :func:`fits_paper_environment`, else the generated one.

    Raises
    ------
    ValueError
        For ``"paper"`` when the policy names other objectives or strategies.
    """
    if kind == "paper" or (kind == "auto" and fits_paper_environment(policy)):
        if not fits_paper_environment(policy):
            raise ValueError(
                f"the paper environment simulates objectives {list(PAPER_OBJECTIVES)} and "
                f"strategies {list(PAPER_STRATEGIES)}; this policy has objectives "
                f"{list(policy.objectives)} and strategies {list(policy.strategies)} "
                "(use the environment generated from the policy instead)"
            )
        return paper_environment()
    if kind not in ("auto", "policy"):
        raise ValueError(f"unknown environment kind {kind!r}; choose auto, paper or policy")
    return policy_environment(policy, seed=seed)
