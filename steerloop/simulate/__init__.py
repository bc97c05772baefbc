"""SDE environments (Euler–Maruyama), the paper preset, runs and experiments.

``Environment`` simulates per-strategy linear SDEs on [0, 1]^d vectorised over sessions;
``paper_environment()`` is calibrated to the table of the multi-objective SDE paper;
``rollout_arrays`` turns static runs into trajectory data for
:func:`steerloop.analysis.fit_trajectories`; ``policy_environment()`` builds an environment
for any policy from its strategies' emphasis; ``FakeScoredModel`` and
``SimulatedScoresScorer`` let an environment stand in for an LLM behind any adapter;
``run_experiment`` compares static strategies and steered policies (through the real
Controller) and ``sequential_vs_simultaneous`` runs that paper's open question 3 (module
``sequential``).

References
----------
A. Shukla and A. Joshi, "A Stochastic Differential Equation Framework for Multi-Objective LLM
Interactions", arXiv:2510.10739.
"""

from steerloop.simulate.environment import Environment, Rollout, StrategyDynamics
from steerloop.simulate.experiment import (
    ExperimentReport,
    PolicyOutcome,
    hypervolume,
    run_experiment,
)
from steerloop.simulate.fake import FakeScoredModel, SimulatedScoresScorer
from steerloop.simulate.generated import environment_for, policy_environment
from steerloop.simulate.paper import (
    PAPER_FIGURES,
    PAPER_OBJECTIVES,
    PAPER_STRATEGIES,
    paper_environment,
    paper_table,
)
from steerloop.simulate.runs import rollout_arrays, rollout_to_arrays
from steerloop.simulate.sequential import (
    InterferenceStudy,
    interference_environment,
    sequential_policy,
    sequential_vs_simultaneous,
)

__all__ = [
    "PAPER_FIGURES",
    "PAPER_OBJECTIVES",
    "PAPER_STRATEGIES",
    "Environment",
    "ExperimentReport",
    "FakeScoredModel",
    "InterferenceStudy",
    "PolicyOutcome",
    "Rollout",
    "SimulatedScoresScorer",
    "StrategyDynamics",
    "environment_for",
    "hypervolume",
    "interference_environment",
    "paper_environment",
    "paper_table",
    "policy_environment",
    "rollout_arrays",
    "rollout_to_arrays",
    "run_experiment",
    "sequential_policy",
    "sequential_vs_simultaneous",
]
