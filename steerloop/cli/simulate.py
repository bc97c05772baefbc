"""``steerloop simulate``: run any policy (or one static strategy) on a simulated environment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from steerloop.cli.command import Command
from steerloop.cli.output import dump_json, error, print_table, rich_available
from steerloop.cli.progress import ProgressBar
from steerloop.cli.tables import experiment_table

if TYPE_CHECKING:
    from steerloop.analysis.recorder import TrajectoryRecorder
    from steerloop.policies.schema import Policy
    from steerloop.simulate.environment import Environment

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--policy", type=Path, metavar="FILE", help="policy YAML file to steer with"
    )
    source.add_argument("--preset", metavar="NAME", help="packaged preset (paper, predictive)")
    source.add_argument(
        "--strategy",
        metavar="NAME",
        help="run one strategy of the paper environment statically (no controller)",
    )
    parser.add_argument(
        "--environment",
        choices=("auto", "paper", "policy"),
        default="auto",
        help="'paper': the calibrated paper environment; 'policy': generated from the policy's "
        "objectives and strategies (steerloop.simulate.generated); 'auto' (default): paper when "
        "the policy fits it, else generated",
    )
    parser.add_argument(
        "--environment-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the generated environment (default 0; --seed drives the noise)",
    )
    parser.add_argument(
        "--sessions", type=int, default=100, metavar="N", help="sessions (default 100)"
    )
    parser.add_argument(
        "--steps", type=int, default=50, metavar="T", help="iterations (default 50)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE.jsonl",
        help="write every step as trajectory JSONL (scores, strategy, and for a policy the "
        "filtered objectives, rule and switches that 'steerloop plot --session' draws)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace) -> tuple[Policy | str, str]:
    """The policy (or strategy name) to run and its label; raises PolicyError, OSError…"""
    if args.policy is not None:
        from steerloop.policies.loader import load_policy

        policy = load_policy(args.policy)
        return policy, policy.name or Path(args.policy).stem
    if args.preset is not None:
        from steerloop.policies.loader import load_preset

        return load_preset(args.preset), args.preset
    return args.strategy, args.strategy


def _environment(policy: Policy | str, args: argparse.Namespace) -> tuple[Environment, str]:
    """The environment and how to name it; raises ValueError for a bad combination."""
    from steerloop.simulate.generated import environment_for, fits_paper_environment
    from steerloop.simulate.paper import paper_environment

    if isinstance(policy, str):
        env = paper_environment()
        if policy not in env.strategy_names:
            raise ValueError(
                f"unknown strategy {policy!r}; choose one of {list(env.strategy_names)}"
            )
        return env, "the paper environment"
    env = environment_for(policy, args.environment, seed=args.environment_seed)
    if args.environment == "paper" or (
        args.environment == "auto" and fits_paper_environment(policy)
    ):
        return env, "the paper environment"
    return env, f"an environment generated from the policy (seed {args.environment_seed})"


def _recorder(args: argparse.Namespace, env: Environment, label: str) -> TrajectoryRecorder | None:
    if args.out is None:
        return None
    from steerloop.analysis.recorder import TrajectoryRecorder

    meta = {
        "writer": "steerloop simulate",
        "policy": label,
        "seed": args.seed,
        "environment": env.description,
    }
    return TrajectoryRecorder(args.out, env.objectives, dt=env.dt, meta=meta)


def _run(args: argparse.Namespace) -> int:
    from steerloop.errors import PolicyError
    from steerloop.simulate.experiment import run_experiment

    if args.sessions < 1 or args.steps < 1:
        return error("simulate", "--sessions and --steps must be at least 1")
    try:
        policy, label = _load(args)
        env, where = _environment(policy, args)
    except PolicyError as problem:
        return error("simulate", str(problem))
    except (KeyError, ValueError, OSError) as problem:
        return error("simulate", str(problem).strip("'\""))
    try:
        recorder = _recorder(args, env, label)
    except OSError as problem:
        return error("simulate", f"cannot write {args.out}: {problem.strerror}")
    show = not (args.quiet or args.json)
    try:
        with ProgressBar(args.steps, label, enabled=show) as bar:
            report = run_experiment(
                env,
                {label: policy},
                args.sessions,
                args.steps,
                args.seed,
                progress=bar.step_callback(),
                recorder=recorder,
            )
    except ValueError as problem:
        return error("simulate", str(problem))
    finally:
        if recorder is not None:
            recorder.close()
    if args.json:
        out = None if args.out is None else str(args.out)
        dump_json(report.model_dump(mode="json") | {"out": out, "environment_kind": where})
        return 0
    columns, rows = experiment_table(report)
    print_table(
        sys.stdout,
        f"{label} on {where}: {args.sessions} sessions × {args.steps} steps, seed {args.seed}",
        columns,
        rows,
        use_rich=rich_available(),
    )
    if args.out is not None:
        first = f"{label}/0000"
        sys.stdout.write(
            f"trajectories written to {args.out} (analyse with: steerloop analyze {args.out}; "
            f"one session's timeline: steerloop plot {args.out} --session {first})\n"
        )
    return 0


COMMAND = Command(
    name="simulate",
    help="run any policy on a simulated environment; optionally log trajectories",
    description=(
        "Steer simulated sessions with a policy file, a preset or one static strategy, and "
        "print the outcome (final objectives, worst objective, hypervolume, steps to reach "
        "0.7, switches, severity alarms). A policy with the objectives and strategies of the "
        "SDE paper (arXiv 2510.10739) runs on the calibrated paper environment; any other "
        "policy on an environment generated from its objectives and strategies (each "
        "strategy's equilibrium from its emphasis weights, seeded; see "
        "steerloop.simulate.generated). --out writes every step as trajectory JSONL for "
        "'steerloop analyze' and 'steerloop plot'. Exit status 0 on "
        "success, 1 for a bad policy file or preset."
    ),
    epilog=(
        "examples:\n"
        "  steerloop simulate --preset paper --sessions 50 --steps 50 --seed 1\n"
        "  steerloop simulate --policy my-policy.yaml --out runs.jsonl\n"
        "  steerloop plot runs.jsonl --session my-policy/0000\n"
        "  steerloop simulate --policy my-policy.yaml --environment policy --environment-seed 3\n"
        "  steerloop simulate --strategy feature_focused --json"
    ),
    configure=_configure,
    run=_run,
)
