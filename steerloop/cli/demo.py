"""``steerloop demo``: the SDE paper's table reproduced, then the presets against static strategies.

The demo has three parts, each built in one place so that it is easy to extend:

1. :func:`_reproduce_paper`: 100 sessions per static strategy on the paper environment, the
   offline fit, and :func:`~steerloop.simulate.paper.paper_table` (the paper's figures next to
   the reproduced ones);
2. :func:`demo_policies` lists what the comparison runs (the four static strategies and the
   presets); :func:`_compare` runs them through
   :func:`~steerloop.simulate.experiment.run_experiment` and
   :func:`~steerloop.cli.tables.experiment_table` prints them;
3. plots: the analysis plots of part 1 (:func:`~steerloop.analysis.plots.write_plots`) and the
   timeline of session 0 of every compared policy
   (:func:`~steerloop.analysis.timeline.write_timelines`) in ``timeline.png``, with its records
   in ``timeline.jsonl`` (``steerloop plot DIR/timeline.jsonl --session paper/0000``).

With two workers the ``paper`` preset runs in a forked process (:class:`_Offload`) while this
process runs the rest and draws the analysis plots; every policy seeds its own generator, so
the split changes no number.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerloop.cli.command import Command
from steerloop.cli.output import dump_json, error, print_table, rich_available
from steerloop.cli.progress import ProgressBar
from steerloop.cli.tables import experiment_table

if TYPE_CHECKING:
    from steerloop.analysis.fit import AnalysisReport
    from steerloop.analysis.trajectory import TrajectoryArrays
    from steerloop.policies.schema import Policy
    from steerloop.simulate.environment import Environment
    from steerloop.simulate.experiment import ExperimentReport

__all__ = ["COMMAND", "DEFAULT_DEMO_OUTPUT", "demo_policies"]

#: Where ``steerloop demo`` writes its plots unless ``--out`` says otherwise.
DEFAULT_DEMO_OUTPUT = Path("steerloop-demo-output")
#: Sessions of each compared policy drawn in ``timeline.png`` (the first ones).
TIMELINE_SESSIONS = 1
#: The policy the forked worker runs when ``--workers 2``.
_OFFLOADED = "paper"


def demo_policies() -> dict[str, Policy | str]:
    """What the comparison runs, in table order: static strategies (names), then presets."""
    from steerloop.policies.loader import load_preset
    from steerloop.simulate.paper import PAPER_STRATEGIES

    policies: dict[str, Policy | str] = {name: name for name in PAPER_STRATEGIES}
    for preset in ("paper", "predictive"):
        policies[preset] = load_preset(preset)
    return policies


def _configure(parser: argparse.ArgumentParser) -> None:
    def add(flag: str, default: int, help_: str) -> None:
        parser.add_argument(flag, type=int, default=default, metavar="N", help=help_)

    add("--sessions", 100, "sessions per static strategy for the paper table (default 100)")
    add("--steered-sessions", 100, "sessions per policy in the comparison (default 100)")
    add("--steps", 50, "iterations per session (default 50)")
    add("--seed", 0, "random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_DEMO_OUTPUT,
        metavar="DIR",
        help=f"folder for the PNG plots and timeline.jsonl (default ./{DEFAULT_DEMO_OUTPUT})",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not write plots")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        choices=(1, 2),
        help="processes for the controller runs (default 2: one preset runs in a forked worker)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of tables"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------- part 1


def _reproduce_paper(
    env: Environment, args: argparse.Namespace
) -> tuple[TrajectoryArrays, AnalysisReport, list[dict[str, Any]]]:
    import numpy as np

    from steerloop.analysis.fit import fit_trajectories
    from steerloop.simulate.paper import PAPER_STRATEGIES, paper_table
    from steerloop.simulate.runs import rollout_arrays

    data = rollout_arrays(
        env,
        PAPER_STRATEGIES,
        sessions=args.sessions,
        steps=args.steps,
        rng=np.random.default_rng(args.seed),
    )
    analysis = fit_trajectories(data)
    return data, analysis, paper_table(analysis)


# --------------------------------------------------------------------------- part 2


def _recorder(stream: io.StringIO | None, env: Environment) -> Any:
    if stream is None:
        return None
    from steerloop.analysis.recorder import TrajectoryRecorder

    return TrajectoryRecorder(stream, env.objectives, dt=env.dt, meta={"writer": "steerloop demo"})


def _records(stream: io.StringIO | None) -> list[str]:
    """The record lines a recorder wrote into ``stream`` (without its header)."""
    return [] if stream is None else stream.getvalue().splitlines()[1:]


class _Offload:
    """Policies run by a forked worker process (nothing when fork is unavailable)."""

    def __init__(self, names: tuple[str, ...], process: Any, conn: Any) -> None:
        self.names = names
        self._process = process
        self._conn = conn
        self._result: tuple[ExperimentReport, list[str]] | None = None
        self._error: str | None = None

    @classmethod
    def start(
        cls, env: Environment, policies: dict[str, Policy | str], args: argparse.Namespace
    ) -> _Offload:
        import multiprocessing

        if not policies or "fork" not in multiprocessing.get_all_start_methods():
            return cls((), None, None)
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_offload_main,
            args=(send, env, policies, args.steered_sessions, args.steps, args.seed, _plots(args)),
            daemon=True,
        )
        process.start()
        send.close()
        return cls(tuple(policies), process, receive)

    def _handle(self, message: tuple[Any, ...], bar: ProgressBar) -> None:
        from steerloop.simulate.experiment import ExperimentReport

        kind = message[0]
        if kind == "progress":
            bar.advance(description=f"{message[1]} {message[2]}/{message[3]}")
        elif kind == "result":
            self._result = (ExperimentReport.model_validate_json(message[1]), message[2])
        else:
            self._error = str(message[1])

    def poll(self, bar: ProgressBar) -> None:
        """Forward the worker's progress without blocking."""
        while self._conn is not None and self._conn.poll():
            try:
                self._handle(self._conn.recv(), bar)
            except EOFError:
                return

    def results(self, bar: ProgressBar) -> tuple[list[ExperimentReport], list[str]]:
        """Wait for the worker: its reports and recorded lines (RuntimeError if it failed)."""
        if self._conn is None:
            return [], []
        while self._result is None and self._error is None:
            try:
                self._handle(self._conn.recv(), bar)
            except EOFError:
                self._error = "the worker process ended without a result"
        if self._error is not None or self._result is None:
            raise RuntimeError(f"demo worker failed: {self._error}")
        return [self._result[0]], self._result[1]

    def stop(self) -> None:
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
            self._conn.close()
            self._process = None


def _offload_main(
    conn: Any,
    env: Environment,
    policies: dict[str, Policy | str],
    sessions: int,
    steps: int,
    seed: int,
    record: bool,
) -> None:
    from steerloop.simulate.experiment import run_experiment

    stream = io.StringIO() if record else None
    try:
        report = run_experiment(
            env,
            policies,
            sessions,
            steps,
            seed,
            progress=lambda policy, done, total: conn.send(("progress", policy, done, total)),
            recorder=_recorder(stream, env),
            record_sessions=TIMELINE_SESSIONS,
        )
        conn.send(("result", report.model_dump_json(), _records(stream)))
    except Exception as problem:  # reported to the parent, which fails the command
        conn.send(("error", f"{type(problem).__name__}: {problem}"))
    finally:
        conn.close()


def _plots(args: argparse.Namespace) -> bool:
    return not args.no_plots


@dataclass
class _Comparison:
    experiment: ExperimentReport
    records: list[str] = field(default_factory=list)


def _compare(
    env: Environment,
    args: argparse.Namespace,
    show: bool,
    while_waiting: Callable[[], None] = lambda: None,
) -> _Comparison:
    """Run :func:`demo_policies` (one preset in a forked worker when asked); call
    ``while_waiting`` after the local runs, before waiting for the worker."""
    from steerloop.simulate.experiment import run_experiment

    policies = demo_policies()
    offloaded = {_OFFLOADED: policies[_OFFLOADED]} if args.workers > 1 else {}
    offload = _Offload.start(env, offloaded, args)
    local = {name: p for name, p in policies.items() if name not in offload.names}
    stream = io.StringIO() if _plots(args) else None
    with ProgressBar(len(policies) * args.steps, "controller runs", enabled=show) as bar:
        step = bar.step_callback()

        def progress(policy: str, done: int, total: int) -> None:
            step(policy, done, total)
            offload.poll(bar)

        try:
            reports = [
                run_experiment(
                    env,
                    local,
                    args.steered_sessions,
                    args.steps,
                    args.seed,
                    progress=progress,
                    recorder=_recorder(stream, env),
                    record_sessions=TIMELINE_SESSIONS,
                )
            ]
            while_waiting()
            more, lines = offload.results(bar)
        finally:
            offload.stop()
    outcomes = {name: o for report in [*reports, *more] for name, o in report.policies.items()}
    merged = reports[0].model_copy(update={"policies": {name: outcomes[name] for name in policies}})
    return _Comparison(merged, _records(stream) + lines)


# --------------------------------------------------------------------------- part 3


def _timeline(out: Path, env: Environment, comparison: _Comparison) -> list[Path]:
    """``timeline.jsonl`` (the recorded sessions) and ``timeline.png`` (presets first)."""
    from steerloop.analysis.timeline import read_timelines, write_timelines
    from steerloop.analysis.trajectory import TrajectoryHeader

    jsonl = out / "timeline.jsonl"
    header = TrajectoryHeader(
        objectives=list(env.objectives), dt=env.dt, meta={"writer": "steerloop demo"}
    )
    jsonl.write_text(
        "\n".join([header.model_dump_json(), *comparison.records]) + "\n", encoding="utf-8"
    )
    policies = comparison.experiment.policies
    order = sorted(policies, key=lambda name: policies[name].kind != "steered")
    sessions = [f"{name}/0000" for name in order]
    titles = [
        f"{name} ({policies[name].kind}), session {name}/0000 — mean over all sessions: worst "
        f"objective {policies[name].final_min_mean:.2f}, {policies[name].switches_per_session:.1f}"
        " switches"
        for name in order
    ]
    png = write_timelines(
        read_timelines(jsonl, sessions),
        out / "timeline.png",
        titles=titles,
        suptitle="One session per policy: steered presets vs static strategies (same start, "
        "same noise)",
    )
    return [png, jsonl]


@dataclass
class _Plots:
    """The PNG files written so far, or why they were not (a missing extra is no failure)."""

    paths: list[Path] = field(default_factory=list)
    error: str | None = None
    failed: bool = False

    def draw(self, out: Path, make: Callable[[], list[Path]]) -> None:
        if self.error is not None:
            return
        try:
            self.paths += make()
        except ImportError as problem:  # the plot extra is missing: say so, still succeed
            self.error = str(problem)
        except OSError as problem:
            self.error = f"cannot write plots to {out}: {problem.strerror}"
            self.failed = True


def _print_text(
    args: argparse.Namespace,
    table: list[dict[str, Any]],
    experiment: ExperimentReport,
    plots: list[Path],
    plot_error: str | None,
    elapsed: float,
) -> None:
    out, use_rich = sys.stdout, rich_available()
    rows = [[r["figure"], r["paper"], r["reproduced"], "yes" if r["ok"] else "NO"] for r in table]
    print_table(
        out,
        f"Shukla & Joshi (arXiv 2510.10739) reproduced: {args.sessions} sessions per static "
        f"strategy, {args.steps} iterations, seed {args.seed}",
        ["figure", "paper", "reproduced", "within tolerance"],
        rows,
        use_rich=use_rich,
    )
    columns, rows = experiment_table(experiment)
    print_table(
        out,
        f"Static strategies vs presets: {args.steered_sessions} sessions per policy, final "
        "hidden state (min = mean worst objective, HV = hypervolume, alarms = steps per "
        "session with severity 1 − min ≥ 0.7)",
        columns,
        rows,
        use_rich=use_rich,
    )
    if plots:
        out.write(f"plots written to {args.out}/: {', '.join(p.name for p in plots)}\n")
        out.write(
            f"one session's timeline: steerloop plot {args.out}/timeline.jsonl "
            f"--session paper/0000\n"
        )
    elif plot_error:
        out.write(f"plots skipped: {plot_error}\n")
    out.write(f"finished in {elapsed:.1f} s\n")


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from steerloop.simulate.paper import paper_environment

    if min(args.sessions, args.steered_sessions, args.steps) < 2:
        return error("demo", "--sessions, --steered-sessions and --steps must be at least 2")
    show = not (args.quiet or args.json)
    env = paper_environment()
    data, analysis, table = _reproduce_paper(env, args)
    plots = _Plots()

    def analysis_plots() -> None:  # drawn while the worker runs its preset
        from steerloop.analysis.plots import write_plots

        rates = {"efficiency_focused": 0.33, "feature_focused": 1.29}
        plots.draw(args.out, lambda: write_plots(analysis, data, args.out, reference_rates=rates))

    try:
        comparison = _compare(env, args, show, analysis_plots if _plots(args) else lambda: None)
    except RuntimeError as problem:
        return error("demo", str(problem))
    if _plots(args):
        plots.draw(args.out, lambda: _timeline(args.out, env, comparison))
    elapsed = time.perf_counter() - started
    if args.json:
        dump_json(
            {
                "paper_table": table,
                "analysis": analysis.model_dump(mode="json"),
                "experiment": comparison.experiment.model_dump(mode="json"),
                "plots": [str(p) for p in plots.paths],
                "plot_error": plots.error,
                "seconds": elapsed,
            }
        )
    else:
        _print_text(args, table, comparison.experiment, plots.paths, plots.error, elapsed)
    return 1 if plots.failed else 0


COMMAND = Command(
    name="demo",
    help=(
        "reproduce the SDE paper's table (arXiv 2510.10739) and compare strategies with the "
        "presets (simulated)"
    ),
    description=(
        "Run the paper environment (steerloop.simulate.paper): 100 sessions per static "
        "strategy (400 in all) reproduce the paper's rates, regimes, R² and interference, "
        "printed next to the paper's figures; then the four static strategies and the 'paper' "
        "and 'predictive' presets (through the real Controller) are compared on the same "
        "sessions. Plots go to --out: the fitted trajectories, rates, interference and "
        "severity, and timeline.png, one session per policy (the strategy in force, the "
        "switches and the rules that made them), with its records in timeline.jsonl. Needs no "
        "LLM and no network. Exit status 0 on success, 1 when the plots could not be written."
    ),
    epilog=(
        "examples:\n"
        "  steerloop demo\n"
        "  steerloop demo --out /tmp/demo --seed 3\n"
        "  steerloop plot steerloop-demo-output/timeline.jsonl --session predictive/0000\n"
        "  steerloop demo --steered-sessions 400 --no-plots   # slower: ~0.3 ms per update\n"
        "  steerloop demo --json | jq '.paper_table'"
    ),
    configure=_configure,
    run=_run,
)
