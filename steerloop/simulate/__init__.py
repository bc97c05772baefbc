"""SDE environments (Euler–Maruyama), the paper preset, runs and experiments.

``Environment`` simulates per-strategy linear SDEs on [0, 1]^d vectorised over sessions;
``paper_environment()`` is calibrated to paper 1's table; ``rollout_arrays`` turns static runs
into trajectory data for :func:`steerloop.analysis.fit_trajectories`; ``FakeScoredModel`` and
``SimulatedScoresScorer`` let an environment stand in for an LLM behind any adapter;
``run_experiment`` compares static strategies and steered policies (through the real
Controller) and ``sequential_vs_simultaneous`` runs paper 1's open question 3.
"""

from steerloop.simulate.environment import Environment, Rollout, StrategyDynamics
from steerloop.simulate.experiment import (
    ExperimentReport,
    PolicyOutcome,
    hypervolume,
    interference_environment,
    run_experiment,
    sequential_policy,
    sequential_vs_simultaneous,
)
from steerloop.simulate.fake import FakeScoredModel, SimulatedScoresScorer
from steerloop.simulate.paper import (
    PAPER_FIGURES,
    PAPER_OBJECTIVES,
    PAPER_STRATEGIES,
    paper_environment,
)
from steerloop.simulate.runs import rollout_arrays, rollout_to_arrays

__all__ = [
    "PAPER_FIGURES",
    "PAPER_OBJECTIVES",
    "PAPER_STRATEGIES",
    "Environment",
    "ExperimentReport",
    "FakeScoredModel",
    "PolicyOutcome",
    "Rollout",
    "SimulatedScoresScorer",
    "StrategyDynamics",
    "hypervolume",
    "interference_environment",
    "paper_environment",
    "rollout_arrays",
    "rollout_to_arrays",
    "run_experiment",
    "sequential_policy",
    "sequential_vs_simultaneous",
]
