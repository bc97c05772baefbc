"""Does steering pay? The value benchmark (``make value``; summarised in ``make bench``).

For each environment of a seeded family (:mod:`benchmarks.environments`) plus the paper
environment, and each loop length, every scheme steers ``SESSIONS`` sessions (in ``WAVES``
waves of concurrent sessions, so a fleet pool fills as it would in service) and is scored by
the **final worst objective** of the *true* state at the end of the loop (and the
hypervolume, the product of the objectives), averaged over sessions, relative to the best
static strategy of that environment and length. Schemes:

* every static strategy, and ``balanced`` (always adaptive integration);
* ``ucb1`` and ``thompson``: model-free bandits over the strategies on the per-step
  improvement of the worst score (what a user would otherwise pick);
* the ``paper`` preset; the ``predictive`` preset with the horizon told, untold, and told
  wrongly (−40 % and +40 %); ``predictive`` without the fleet pool.

Switches that are reversed within three steps (A → B → A) are counted.

Environments used to tune anything (:data:`TUNING_SEEDS`) are separate from the reported ones
(:data:`REPORTED_SEEDS`).

Usage::

    python -m benchmarks.value [--quick] [--tuning] [--lengths 30 50 80] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.environments import OBJECTIVES, STRATEGIES, random_environment
from steerloop import Controller, load_preset
from steerloop.policies.schema import Policy
from steerloop.simulate.environment import Environment
from steerloop.simulate.paper import paper_environment

__all__ = ["REPORTED_SEEDS", "TUNING_SEEDS", "count_switches", "evaluate", "main", "summarise"]

FloatArray = NDArray[np.float64]

REPORTED_SEEDS = tuple(range(60))
TUNING_SEEDS = tuple(range(1000, 1060))
SESSIONS = 16
WAVES = 4
LENGTHS = (30, 50, 80)
STEERED = (
    "paper",
    "predictive",
    "predictive-untold",
    "predictive-short",
    "predictive-long",
    "predictive-solo",
)


@dataclass
class Outcome:
    """Mean final worst objective and hypervolume of one scheme, and its switches."""

    worst: float
    volume: float
    switches: int = 0
    reversed: int = 0


@dataclass
class EnvironmentResult:
    """Every scheme's outcome on one environment at one length."""

    name: str
    kind: str
    length: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def best_static(self) -> Outcome:
        return max((self.outcomes[s] for s in STRATEGIES), key=lambda o: o.worst)


def _final(x: FloatArray) -> Outcome:
    return Outcome(float(x.min(axis=1).mean()), float(np.prod(x, axis=1).mean()))


Chooser = Callable[[int, FloatArray], str]


def _session_rngs(seed: int) -> list[np.random.Generator]:
    """One generator per session, the same for every scheme (common random numbers: a
    session meets the same start and the same noise whatever steers it)."""
    return [np.random.default_rng([seed, index]) for index in range(SESSIONS)]


def _drive(
    env: Environment, choosers: Sequence[Chooser], rngs: Sequence[np.random.Generator], length: int
) -> tuple[FloatArray, list[list[str]]]:
    """Run sessions in lockstep: observe y_t, choose, step; final true states and trails."""
    states = [env.reset(1, rng) for rng in rngs]
    trails: list[list[str]] = [[] for _ in choosers]
    for t in range(length):
        for i, (choose, rng) in enumerate(zip(choosers, rngs, strict=True)):
            y = env.observe(states[i], rng)[0]
            strategy = choose(t, y)
            trails[i].append(strategy)
            states[i] = env.step(states[i], strategy, rng)
    return np.concatenate(states), trails


def _outcome(finals: FloatArray, trails: Sequence[Sequence[str]]) -> Outcome:
    outcome = _final(finals)
    counted = [count_switches(trail) for trail in trails]
    outcome.switches = sum(c[0] for c in counted)
    outcome.reversed = sum(c[1] for c in counted)
    return outcome


def run_static(env: Environment, strategy: str, length: int, seed: int) -> Outcome:
    choosers = [lambda _t, _y, s=strategy: s for _ in range(SESSIONS)]
    return _outcome(*_drive(env, choosers, _session_rngs(seed), length))


class _Bandit:
    """UCB1 or Gaussian Thompson sampling over strategies on the worst score's improvement."""

    def __init__(self, kind: str, rng: np.random.Generator) -> None:
        self.kind, self.rng = kind, rng
        k = len(STRATEGIES)
        self.sums, self.squares, self.counts = np.zeros(k), np.zeros(k), np.zeros(k)
        self.arm = STRATEGIES.index("adaptive_integration")
        self.previous: float | None = None

    def __call__(self, t: int, y: FloatArray) -> str:
        worst = float(y.min())
        if self.previous is not None:
            reward = worst - self.previous
            self.sums[self.arm] += reward
            self.squares[self.arm] += reward * reward
            self.counts[self.arm] += 1
        self.previous = worst
        if t == 0:
            return STRATEGIES[self.arm]
        n = np.maximum(self.counts, 1)
        mean = self.sums / n
        if self.kind == "ucb1":
            score = mean + 0.05 * np.sqrt(2.0 * math.log(t + 1) / n)
        else:
            spread = np.sqrt(np.maximum(self.squares / n - mean * mean, 1e-4) / n)
            score = mean + spread * self.rng.standard_normal(mean.shape)
        score = np.where(self.counts == 0, np.inf, score)
        self.arm = int(np.argmax(score + 1e-9 * self.rng.random(score.shape)))
        return STRATEGIES[self.arm]


def run_bandit(env: Environment, kind: str, length: int, seed: int) -> Outcome:
    """A model-free bandit per session (:class:`_Bandit`)."""
    choosers = [_Bandit(kind, np.random.default_rng([seed, 7, i])) for i in range(SESSIONS)]
    return _outcome(*_drive(env, choosers, _session_rngs(seed), length))


#: Overrides of the predictive preset for tuning runs (``--set path=value``), e.g.
#: ``{"switching.min_dwell": 2}``; empty for reported runs.
OVERRIDES: dict[str, Any] = {}


def _override(policy: Policy, overrides: dict[str, Any]) -> Policy:
    data = policy.model_dump(by_alias=True)
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return Policy.model_validate(data)


def _policy(name: str) -> Policy:
    if name == "paper":
        return load_preset("paper")
    policy = _override(load_preset("predictive"), OVERRIDES)
    if name == "predictive-solo":
        fleet = policy.fleet.model_copy(update={"pool": False})
        policy = policy.model_copy(update={"fleet": fleet})
    return policy


def _told(name: str, length: int) -> int | None:
    """The loop length the scheme is told (``None``: untold)."""
    if name in ("paper", "predictive-untold"):
        return None
    if name == "predictive-short":
        return round(0.6 * length)
    if name == "predictive-long":
        return round(1.4 * length)
    return length


def run_steered(env: Environment, name: str, length: int, seed: int) -> Outcome:
    """A preset steering SESSIONS sessions in WAVES waves (one controller: one pool)."""
    controller = Controller(_policy(name), events=False)
    told = _told(name, length)
    rngs = _session_rngs(seed)
    per_wave = SESSIONS // WAVES
    finals: list[FloatArray] = []
    trails: list[list[str]] = []
    for wave in range(WAVES):
        choosers = []
        for i in range(per_wave):
            session = controller.session(f"w{wave}-{i}")

            def choose(t: int, y: FloatArray, session: Any = session) -> str:
                left = None if told is None else max(0, told - t - 1)
                scores = dict(zip(OBJECTIVES, y.tolist(), strict=True))
                return str(session.update(scores, steps_left=left).strategy)

            choosers.append(choose)
        wave_rngs = rngs[wave * per_wave : (wave + 1) * per_wave]
        states, wave_trails = _drive(env, choosers, wave_rngs, length)
        finals.append(states)
        trails.extend(wave_trails)
    return _outcome(np.concatenate(finals), trails)


def count_switches(trail: Sequence[object], window: int = 3) -> tuple[int, int]:
    """Switches in a strategy trail, and how many return to the previous strategy within
    ``window`` steps (A → B → A)."""
    switches = undone = 0
    for k in range(1, len(trail)):
        if trail[k] == trail[k - 1]:
            continue
        switches += 1
        if any(trail[j] == trail[k - 1] for j in range(k + 1, min(len(trail), k + 1 + window))):
            undone += 1
    return switches, undone


Task = tuple[str, int, int, dict[str, Any], tuple[str, ...]]


def evaluate(task: Task) -> EnvironmentResult:
    """Every scheme on one environment (``"paper"`` or a seed) at one length."""
    label, seed, length, overrides, steered = task
    OVERRIDES.clear()
    OVERRIDES.update(overrides)
    if label == "paper":
        env, kind = paper_environment(), "paper"
    else:
        env, kind = random_environment(seed)
    result = EnvironmentResult(label, kind, length)
    base = 10_000 * seed + length
    for strategy in STRATEGIES:
        result.outcomes[strategy] = run_static(env, strategy, length, base)
    result.outcomes["ucb1"] = run_bandit(env, "ucb1", length, base)
    result.outcomes["thompson"] = run_bandit(env, "thompson", length, base)
    for name in steered:
        result.outcomes[name] = run_steered(env, name, length, base)
    return result


def summarise(results: Sequence[EnvironmentResult]) -> dict[str, dict[str, float]]:
    """Per scheme: share within 5 % of the best static, share strictly above, median ratio,
    share above the better bandit, reversed-switch share; plus the paper environment's ratio."""
    steered = [name for name in STEERED if all(name in r.outcomes for r in results)]
    schemes = [*STRATEGIES, "ucb1", "thompson", *steered]
    table: dict[str, dict[str, float]] = {}
    random_results = [r for r in results if r.kind != "paper"]
    for scheme in schemes:
        ratios = np.array([r.outcomes[scheme].worst / r.best_static.worst for r in random_results])
        bandit = np.array(
            [
                r.outcomes[scheme].worst
                > max(r.outcomes["ucb1"].worst, r.outcomes["thompson"].worst)
                for r in random_results
            ]
        )
        volume = np.array(
            [
                r.outcomes[scheme].volume / max(r.outcomes[s].volume for s in STRATEGIES)
                for r in random_results
            ]
        )
        switches = sum(r.outcomes[scheme].switches for r in random_results)
        reversed_ = sum(r.outcomes[scheme].reversed for r in random_results)
        paper = [
            r.outcomes[scheme].worst / r.outcomes["adaptive_integration"].worst
            for r in results
            if r.kind == "paper"
        ]
        table[scheme] = {
            "within_5pct": float((ratios >= 0.95).mean()) if ratios.size else math.nan,
            "above": float((ratios > 1.0 + 1e-9).mean()) if ratios.size else math.nan,
            "median_ratio": float(np.median(ratios)) if ratios.size else math.nan,
            "median_volume_ratio": float(np.median(volume)) if volume.size else math.nan,
            "beats_bandit": float(bandit.mean()) if bandit.size else math.nan,
            "reversed_share": reversed_ / switches if switches else 0.0,
            "paper_vs_ai": float(np.mean(paper)) if paper else math.nan,
        }
    return table


def render(table: dict[str, dict[str, float]], title: str) -> str:
    lines = [
        title,
        "| scheme | within 5 % of best static | strictly above | median ratio "
        "| median hypervolume ratio | beats best bandit | reversed switches "
        "| paper env vs static AI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scheme, row in table.items():
        lines.append(
            f"| {scheme} | {row['within_5pct']:.0%} | {row['above']:.0%} "
            f"| {row['median_ratio']:.3f} | {row['median_volume_ratio']:.3f} "
            f"| {row['beats_bandit']:.0%} | {row['reversed_share']:.0%} "
            f"| {row['paper_vs_ai']:.3f} |"
        )
    return "\n".join(lines)


def run(
    seeds: Sequence[int],
    lengths: Sequence[int],
    *,
    schemes: Sequence[str] | None = None,
    processes: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[int, list[EnvironmentResult]]:
    chosen = tuple(schemes or STEERED)
    tasks: list[Task] = [
        (str(seed), seed, length, dict(OVERRIDES), chosen) for length in lengths for seed in seeds
    ]
    tasks += [("paper", 0, length, dict(OVERRIDES), chosen) for length in lengths]
    results: dict[int, list[EnvironmentResult]] = {length: [] for length in lengths}
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for done, result in enumerate(pool.imap_unordered(evaluate, tasks), start=1):
            results[result.length].append(result)
            if progress is not None:
                progress(f"{done}/{len(tasks)} environments")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 environments, one length")
    parser.add_argument("--tuning", action="store_true", help="the tuning environments instead")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--json", help="also write every outcome to this file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="tuning: override a field of the predictive preset (YAML value), "
        "e.g. switching.min_dwell=2",
    )
    parser.add_argument("--schemes", nargs="+", help="only these steered schemes")
    args = parser.parse_args(argv)
    import yaml

    for item in args.set:
        path, _, text = item.partition("=")
        OVERRIDES[path] = yaml.safe_load(text)

    seeds = TUNING_SEEDS if args.tuning else REPORTED_SEEDS
    lengths = args.lengths
    if args.quick:
        seeds, lengths = seeds[:8], lengths[:1]
    started = time.perf_counter()
    results = run(
        seeds,
        lengths,
        schemes=args.schemes,
        progress=lambda m: print(m, file=sys.stderr, end="\r"),
    )
    print(file=sys.stderr)
    document: dict[str, Any] = {}
    for length in lengths:
        table = summarise(results[length])
        document[str(length)] = table
        print(render(table, f"\n### {length} iterations ({len(seeds)} environments + paper)"))
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(document, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
