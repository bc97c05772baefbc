"""Reproduce the table of Shukla & Joshi (arXiv 2510.10739), then ask its open question 3.

1. 100 sessions per static strategy (400 in all), 50 iterations, on the calibrated paper
   environment; the offline analysis (steerloop.analysis.fit_trajectories) recovers the rates,
   regimes, R² and interference, printed next to the paper's figures.
2. Sequential (one objective at a time) vs simultaneous (adaptive_integration) optimisation on
   an environment whose objectives interfere with strength kappa (the same paper, appendix B.3).

A progress bar shows on a terminal when the cli extra (rich) is installed; it stays silent when
the output is redirected, or with --quiet.

Run: python examples/simulate_paper.py [--quiet]
"""

from __future__ import annotations

import argparse

import numpy as np

from steerloop.analysis import fit_trajectories
from steerloop.cli.progress import ProgressBar
from steerloop.simulate import (
    PAPER_STRATEGIES,
    paper_environment,
    paper_table,
    rollout_arrays,
    sequential_vs_simultaneous,
)

STRENGTHS = (0.0, 0.25, 0.45)
SESSIONS, STEPS = 40, 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    quiet = parser.parse_args().quiet

    with ProgressBar(1, "paper table", enabled=not quiet):
        data = rollout_arrays(
            paper_environment(),
            PAPER_STRATEGIES,
            sessions=100,
            steps=STEPS,
            rng=np.random.default_rng(0),
        )
        report = fit_trajectories(data)
    print(f"{'figure':40s} {'paper':>18s}  reproduced")
    for row in paper_table(report):
        mark = "" if row["ok"] else "   (outside tolerance)"
        print(f"{row['figure']:40s} {row['paper']:>18s}  {row['reproduced']}{mark}")

    print(f"\nOpen question 3: sequential vs simultaneous ({SESSIONS} sessions x {STEPS} steps)")
    total = len(STRENGTHS) * 2 * STEPS  # two policies per strength, one call per step
    with ProgressBar(total, "open question 3", enabled=not quiet) as bar:
        study = sequential_vs_simultaneous(
            strengths=STRENGTHS, sessions=SESSIONS, steps=STEPS, progress=bar.step_callback()
        )
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
