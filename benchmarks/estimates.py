"""Honest estimates: the online drift rate against the simulator's truth, as users run it.

For each strategy of the paper environment held static, ``SESSIONS`` sessions of ``STEPS``
steps run through a controller with a shipped preset's ``estimation`` block (no rules, so the
strategy stays), and the last step's ``drift.rate`` and ``drift.regime`` are read. Rows:

* the ``paper`` and ``predictive`` presets as shipped (``measurement_noise: auto``, raw input
  with the errors-in-variables correction);
* ``measurement_noise`` mis-set 100× either way (auto off: the configured variance is used by
  the filter; the drift, learnt from raw scores, does not depend on it);
* ``input: filtered`` (the drift learnt from the filtered state), for comparison;
* longer loops (300 steps).

It also reports the measurement-noise estimate R̂ against the truth (variance 1e-4).

Usage::

    python -m benchmarks.estimates [--sessions 25]
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Sequence
from typing import Any

import numpy as np

from steerloop import Controller, load_preset
from steerloop.policies.schema import Policy
from steerloop.simulate.paper import paper_environment

__all__ = ["VARIANTS", "main", "measure"]

#: (label, preset, steps, estimation overrides); "fleet" rows run the sessions of a strategy
#: through one controller, so they share the preset's fleet pool; the others run each
#: session alone (pool off).
VARIANTS: tuple[tuple[str, str, int, dict[str, Any]], ...] = (
    ("paper, 50 steps, each session alone", "paper", 50, {}),
    ("paper, 50 steps, as a fleet", "paper", 50, {"fleet": True}),
    ("predictive, 50 steps, as a fleet", "predictive", 50, {"fleet": True}),
    ("R set to 0.01 (100x too large)", "paper", 50, {"measurement_noise": 0.01, "fleet": True}),
    ("R set to 1e-6 (100x too small)", "paper", 50, {"measurement_noise": 1e-6, "fleet": True}),
    ("input: filtered", "paper", 50, {"input": "filtered", "fleet": True}),
    ("paper, 80 steps, as a fleet", "paper", 80, {"fleet": True}),
    ("paper, 300 steps, as a fleet", "paper", 300, {"fleet": True}),
    ("paper, 300 steps, each session alone", "paper", 300, {}),
)


def _static(preset: str, strategy: str, overrides: dict[str, Any]) -> Policy:
    policy = load_preset(preset)
    overrides = dict(overrides)
    pooled = bool(overrides.pop("fleet", False))
    estimation = policy.estimation.model_copy(update=overrides)
    fleet = policy.fleet.model_copy(update={"pool": pooled})
    return policy.model_copy(
        update={"rules": [], "initial": strategy, "estimation": estimation, "fleet": fleet}
    )


def measure(preset: str, steps: int, overrides: dict[str, Any], sessions: int) -> dict[str, Any]:
    """Median rate, its error, regime shares and median R̂ per strategy."""
    env = paper_environment()
    out: dict[str, Any] = {}
    for name in env.strategy_names:
        truth = -float(np.linalg.eigvals(np.array(env.strategies[name].A)).real.max())
        policy = _static(preset, name, overrides)
        fleet = Controller(policy, events=False)
        rates: list[float] = []
        regimes: collections.Counter[str] = collections.Counter()
        noise: list[list[float]] = []
        for seed in range(sessions):
            rng = np.random.default_rng(seed)
            controller = fleet if policy.fleet.pool else Controller(policy, events=False)
            session = controller.session(f"s{seed}")
            x = env.reset(1, rng)
            for _ in range(steps + 1):
                y = env.observe(x, rng)[0]
                decision = session.update(dict(zip(env.objectives, y.tolist(), strict=True)))
                x = env.step(x, name, rng)
            d = decision.diagnostics
            rate = d["drift.rate"]
            rates.append(float(rate) if isinstance(rate, float) else float("nan"))
            regimes[str(d["drift.regime"])] += 1
            noise.append([float(d[f"noise.{o}"] or 0.0) for o in env.objectives])
        median = float(np.nanmedian(rates))
        out[name] = {
            "truth": truth,
            "median": median,
            "error": median / truth - 1.0,
            "regimes": {k: v / sessions for k, v in regimes.items()},
            "noise": np.median(noise, axis=0).tolist(),
        }
    return out


def render(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per variant, one column per strategy (median rate, error)."""
    names = list(next(iter(results.values())))
    head = (
        "| setting | "
        + " | ".join(f"{n} (true {results[next(iter(results))][n]['truth']:.3f})" for n in names)
        + " |"
    )
    lines = [head, "|---" * (len(names) + 1) + "|"]
    for label, row in results.items():
        cells = [f"{row[n]['median']:.3f} ({row[n]['error']:+.0%})" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=25)
    args = parser.parse_args(argv)
    results = {
        label: measure(preset, steps, overrides, args.sessions)
        for label, preset, steps, overrides in VARIANTS
    }
    print(render(results))
    shipped = results[VARIANTS[1][0]]
    print("\nregimes, paper preset, 50 steps, as a fleet:")
    for name, row in shipped.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(row["regimes"].items())))
    print("\nmedian R̂ (true 1e-4 per objective), paper preset, 50 and 300 steps:")
    for label in (VARIANTS[1][0], VARIANTS[-1][0]):
        for name, row in results[label].items():
            print(f"  {label}, {name}: " + ", ".join(f"{v:.2e}" for v in row["noise"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
