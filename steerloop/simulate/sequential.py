"""Open question 3 of the multi-objective SDE paper: one objective at a time, or all at once?

When objectives interfere (a gain on one costs the others), does sequential optimisation
(focus strategies one after the other, appendix B.3) beat simultaneous optimisation (the
balanced strategy)? :func:`sequential_vs_simultaneous` runs both with
:func:`~steerloop.simulate.experiment.run_experiment` on :func:`interference_environment` at
several interference strengths and reports both.

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739, appendix B.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from steerloop.simulate.environment import Environment, StrategyDynamics
from steerloop.simulate.experiment import ExperimentReport, Progress, _Model, run_experiment

if TYPE_CHECKING:
    from steerloop.policies.schema import Policy

__all__ = [
    "InterferenceStudy",
    "interference_environment",
    "sequential_policy",
    "sequential_vs_simultaneous",
]


_FOCUS = {
    "security": "security_focused",
    "efficiency": "efficiency_focused",
    "functionality": "feature_focused",
}


def interference_environment(
    strength: float,
    *,
    rate: float = 0.6,
    target: float = 0.9,
    relaxation: float = 0.02,
    baseline: float = 0.5,
    sigma: float = 0.02,
    noise_sd: float = 0.01,
) -> Environment:
    """Three objectives whose gains cost each other: interference as a proportional cross-cost.

    With effort weights e_π (one-hot for a focus strategy, (⅓, ⅓, ⅓) for
    ``adaptive_integration``), the gain on objective j is g_j = ρ e_{π,j} (t − x_j), and every
    gain costs each *other* objective κ times itself, while unattended objectives relax slowly
    to a baseline:

        μ_i(x) = g_i − κ Σ_{j≠i} g_j − ε (x_i − x_base),   i.e.
        A_π = −M G_π − εI,   b_π = M G_π t 1 + ε x_base 1,
        M = (1 + κ) I − κ 11ᵀ,   G_π = ρ diag(e_π).

    κ = ``strength`` is the interference: a focus strategy's increments are negatively
    correlated across objectives (≈ −κ-scaled), so the measured ``interference.min`` falls as
    κ grows. For simultaneous optimisation, M has eigenvalue 1 − 2κ along (1, 1, 1): the
    balanced direction converges at rate ρ(1 − 2κ)/3 and stalls as κ → ½. Nothing here favours
    either approach beyond this mechanism; :func:`sequential_vs_simultaneous` measures the
    outcome.

    Parameters
    ----------
    strength : float
        κ ≥ 0.
    rate, target, relaxation, baseline : float
        ρ, t, ε and x_base.
    sigma, noise_sd : float
        Diffusion σ (D = σ²I) and score noise.
    """
    if strength < 0.0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    d = 3
    mix = (1.0 + strength) * np.eye(d) - strength * np.ones((d, d))
    efforts = {
        "security_focused": np.array([1.0, 0.0, 0.0]),
        "efficiency_focused": np.array([0.0, 1.0, 0.0]),
        "feature_focused": np.array([0.0, 0.0, 1.0]),
        "adaptive_integration": np.full(d, 1.0 / 3.0),
    }
    strategies: dict[str, StrategyDynamics] = {}
    for name, effort in efforts.items():
        gain = rate * np.diag(effort)
        a = -mix @ gain - relaxation * np.eye(d)
        b = mix @ gain @ np.full(d, target) + relaxation * baseline
        strategies[name] = StrategyDynamics(
            A=a.tolist(),
            b=b.tolist(),
            diffusion=(sigma * sigma * np.eye(d)).tolist(),
            description=f"effort {effort.round(3).tolist()}",
        )
    return Environment(
        objectives=("security", "efficiency", "functionality"),
        strategies=strategies,
        noise_sd=noise_sd,
        initial_mean=0.4,
        initial_std=0.05,
        description=f"interference environment, cross-cost kappa = {strength:g}",
    )


def sequential_policy(*, target: float = 0.8, patience: int = 4, min_dwell: int = 3) -> Policy:
    """A policy in sequential mode from the end of warm-up on (the paper's appendix B.3).

    The rule ``sequential`` fires at every step after warm-up; the engine focuses one
    objective at a time (order by interference, ``auto``) with the strategy emphasising it,
    advancing when the focused objective reaches ``target`` or stalls for ``patience`` steps,
    and starts a new round when a round completes.
    """
    from steerloop.policies.schema import Policy

    prompts = {
        "security_focused": ("Make the code secure.", {"security": 1.0}),
        "efficiency_focused": ("Make the code fast.", {"efficiency": 1.0}),
        "feature_focused": ("Make the code complete.", {"functionality": 1.0}),
        "adaptive_integration": (
            "Improve {objectives} together.",
            {"security": 1.0, "efficiency": 1.0, "functionality": 1.0},
        ),
    }
    return Policy.model_validate(
        {
            "name": "sequential",
            "objectives": ["security", "efficiency", "functionality"],
            "strategies": {
                name: {"prompt": prompt, "emphasis": emphasis}
                for name, (prompt, emphasis) in prompts.items()
            },
            "initial": "adaptive_integration",
            "switching": {"min_dwell": min_dwell},
            "rules": [
                {
                    "name": "one-at-a-time",
                    "when": {"metric": "step", "above": 0},
                    "then": {
                        "sequential": {
                            "order": "auto",
                            "target": target,
                            "patience": patience,
                            "exit_above": 1.0,
                        }
                    },
                }
            ],
        }
    )


class InterferenceStudy(_Model):
    """Result of :func:`sequential_vs_simultaneous`: one experiment per strength κ."""

    strengths: list[float]
    experiments: list[ExperimentReport]

    def winner(self, strength: float, metric: str = "final_min_mean") -> str:
        """Name of the policy with the larger ``metric`` at ``strength``."""
        report = self.experiments[self.strengths.index(strength)]
        return max(report.policies.values(), key=lambda o: float(getattr(o, metric) or 0.0)).name


def sequential_vs_simultaneous(
    *,
    strengths: Sequence[float] = (0.0, 0.25, 0.45),
    sessions: int = 100,
    steps: int = 50,
    seed: int = 0,
    target: float = 0.7,
    progress: Progress | None = None,
) -> InterferenceStudy:
    """The paper's open question 3: sequential (one objective at a time) vs simultaneous.

    For each κ in ``strengths`` runs ``sequential`` (:func:`sequential_policy` through the
    Controller) and ``simultaneous`` (static ``adaptive_integration``) on
    :func:`interference_environment` (κ) with common random numbers, and reports both
    (:class:`ExperimentReport`: final means, worst objective, hypervolume, steps to target).

    Examples
    --------
    >>> study = sequential_vs_simultaneous(strengths=(0.45,), sessions=5, steps=30)
    >>> sorted(study.experiments[0].policies)
    ['sequential', 'simultaneous']
    """
    policy = sequential_policy()
    experiments = [
        run_experiment(
            interference_environment(kappa),
            {"sequential": policy, "simultaneous": "adaptive_integration"},
            sessions,
            steps,
            seed,
            target=target,
            progress=progress,
        )
        for kappa in strengths
    ]
    return InterferenceStudy(strengths=[float(k) for k in strengths], experiments=experiments)
