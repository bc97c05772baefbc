"""The severity phase test's ROC: how often each α − β is called supercritical, per z.

The phase rule is α̂ − β̂ > margin + z · se(α̂ − β̂) (:mod:`steerloop.estimators.severity`).
This runs the shipped online fit (the ``paper`` preset's severity settings: forgetting 1,
margin 0.05, phase after 20 transitions) on simulated severity paths of 300 steps for
α − β from −0.8 to +0.8 (α + β = 1, γ = 0.02, σ₀ ∈ [0.03, 0.08], start 0.05) and prints the
share called supercritical for several z. Recall is the row of a positive α − β, false
alarms the rows of a negative one. The shipped z (0.25) was chosen from this table.

Usage::

    python -m benchmarks.severity_roc [--runs 150] [--steps 300]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from steerloop.controller.settings import ModelSettings
from steerloop.estimators.severity import simulate
from steerloop.estimators.severity_model import SeverityModel
from steerloop.policies.loader import load_preset

__all__ = ["MARGINS", "ZS", "main", "roc"]

MARGINS = (-0.8, -0.4, -0.2, -0.1, 0.0, 0.1, 0.2, 0.4, 0.8)
ZS = (0.0, 0.25, 0.5, 1.0, 1.645)


def roc(runs: int, steps: int, seed: int = 123) -> dict[float, list[float]]:
    """Share of runs called supercritical, per α − β and per z of :data:`ZS`."""
    config = ModelSettings.from_policy(load_preset("paper")).severity
    rng = np.random.default_rng(seed)
    table: dict[float, list[float]] = {}
    for margin in MARGINS:
        alpha, beta = 0.5 + margin / 2, 0.5 - margin / 2
        calls = np.zeros(len(ZS))
        for _ in range(runs):
            sigma0 = float(rng.uniform(0.03, 0.08))
            path = simulate(0.05, alpha, beta, 0.02, sigma0, 0.0, dt=1.0, n_steps=steps, rng=rng)
            model = SeverityModel(config)
            for value in path[:, 0]:
                model.update(float(value))
            estimate, stderr = model.margin, model.margin_stderr
            calls += [estimate > config.phase_margin + z * stderr for z in ZS]
        table[margin] = (calls / runs).tolist()
    return table


def render(table: dict[float, list[float]]) -> str:
    """The table as Markdown."""
    head = "| α − β | " + " | ".join(f"z = {z:g}" for z in ZS) + " |"
    rule = "|---" * (len(ZS) + 1) + "|"
    rows = [
        f"| {m:+.1f} | " + " | ".join(f"{v:.0%}" for v in values) + " |"
        for m, values in table.items()
    ]
    return "\n".join([head, rule, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    print(render(roc(args.runs, args.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
