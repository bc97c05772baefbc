"""Reproduce paper 1's table with the simulator, then ask its open question 3.

1. 100 sessions per static strategy (400 in all), 50 iterations, on the calibrated paper
   environment; the offline analysis (steerloop.analysis.fit_trajectories) recovers the rates,
   regimes, R² and interference, printed next to the paper's figures.
2. Sequential (one objective at a time) vs simultaneous (adaptive_integration) optimisation on
   an environment whose objectives interfere with strength kappa (paper 1, appendix B.3).

Run: python examples/simulate_paper.py
"""

from __future__ import annotations

import numpy as np

from steerloop.analysis import fit_trajectories
from steerloop.simulate import PAPER_STRATEGIES, paper_environment, rollout_arrays
from steerloop.simulate.commands import paper_table
from steerloop.simulate.experiment import sequential_vs_simultaneous


def main() -> None:
    data = rollout_arrays(
        paper_environment(),
        PAPER_STRATEGIES,
        sessions=100,
        steps=50,
        rng=np.random.default_rng(0),
    )
    report = fit_trajectories(data)
    print(f"{'figure':40s} {'paper':>18s}  reproduced")
    for row in paper_table(report):
        mark = "" if row["ok"] else "   (outside tolerance)"
        print(f"{row['figure']:40s} {row['paper']:>18s}  {row['reproduced']}{mark}")

    print("\nOpen question 3: sequential vs simultaneous (40 sessions x 50 steps per cell)")
    study = sequential_vs_simultaneous(strengths=(0.0, 0.25, 0.45), sessions=40, steps=50)
    print(
        f"{'kappa':>5s} {'policy':12s} {'worst objective':>15s} {'hypervolume':>11s} "
        f"{'end>=0.7':>8s}"
    )
    for kappa, experiment in zip(study.strengths, study.experiments, strict=True):
        for outcome in experiment.policies.values():
            print(
                f"{kappa:5.2f} {outcome.name:12s} {outcome.final_min_mean:15.3f} "
                f"{outcome.hypervolume or 0.0:11.3f} {outcome.final_reached_fraction:8.0%}"
            )


if __name__ == "__main__":
    main()
