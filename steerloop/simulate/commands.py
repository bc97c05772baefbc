"""The ``steerloop demo``, ``simulate`` and ``analyze`` commands (registered by cli.py).

Each command is a pair: ``add_<name>_arguments(parser)`` declares its options and
``run_<name>(args) -> int`` runs it. :data:`COMMAND_SPECS` holds, per command name, the
help line, description, epilog (examples), configure and run functions, in the shape of
``steerloop.cli.Command``::

    for name, spec in COMMAND_SPECS.items():
        register(Command(name, *spec))

Exit codes: 0 success; 1 the command ran but its input was bad (unreadable or malformed
file, unknown preset, missing plot extra); 2 usage error (argparse). Errors are one line on
standard error, never a traceback. ``--json`` prints one JSON document on standard output
instead of tables.

Rich output (tables, progress bar) needs the ``cli`` extra (rich); without it the same
content is printed as plain text. Plots need the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from steerloop.analysis.fit import AnalysisReport
    from steerloop.policies.schema import Policy
    from steerloop.simulate.environment import Environment
    from steerloop.simulate.experiment import ExperimentReport

__all__ = [
    "COMMAND_SPECS",
    "DEFAULT_DEMO_OUTPUT",
    "add_analyze_arguments",
    "add_demo_arguments",
    "add_simulate_arguments",
    "paper_table",
    "run_analyze",
    "run_demo",
    "run_simulate",
]

#: Where ``steerloop demo`` writes its plots unless ``--out`` says otherwise.
DEFAULT_DEMO_OUTPUT = Path("steerloop-demo-output")

Row = Sequence[str]


# --------------------------------------------------------------------------- output helpers


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _print_table(
    out: TextIO, title: str, columns: Row, rows: Sequence[Row], *, use_rich: bool
) -> None:
    """A table with rich when available, else aligned plain text."""
    if use_rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for k, name in enumerate(columns):
            table.add_column(name, justify="left" if k == 0 else "right")
        for row in rows:
            table.add_row(*row)
        needed = [max(len(columns[k]), *(len(row[k]) for row in rows)) for k in range(len(columns))]
        width = max(len(title), sum(w + 3 for w in needed) + 1)
        Console(file=out, width=min(width, 200)).print(table)
        return
    widths = [max(len(columns[k]), *(len(row[k]) for row in rows)) for k in range(len(columns))]
    out.write(f"{title}\n")
    out.write(
        "  ".join(
            c.ljust(w) if k == 0 else c.rjust(w)
            for k, (c, w) in enumerate(zip(columns, widths, strict=True))
        )
        + "\n"
    )
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + "\n"
        )
    out.write("\n")


class _ProgressBar:
    """Progress over (policy, step): rich on a terminal, a few plain lines otherwise."""

    def __init__(self, total: int, *, enabled: bool, use_rich: bool) -> None:
        self._enabled = enabled
        self._total = total
        self._done = 0
        self._rich: Any = None
        self._task: Any = None
        if enabled and use_rich and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._task = self._rich.add_task("starting", total=total)
            self._rich.start()

    def __call__(self, policy: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        self._done += 1
        if self._rich is not None:
            self._rich.update(self._task, completed=self._done, description=policy)
        elif done == total:  # plain output: one line per finished policy
            print(f"  {policy}: {done}/{total} steps", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def _error(command: str, message: str) -> int:
    print(f"steerloop {command}: {message}", file=sys.stderr)
    return 1


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _dump_json(document: Any) -> None:
    json.dump(_finite(document), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- tables


def paper_table(report: AnalysisReport) -> list[dict[str, Any]]:
    """The reproduced paper-1 figures next to the paper's, with the tolerance tested.

    Each row: ``figure``, ``paper`` (text), ``reproduced`` (text), ``ok`` (within the
    stated tolerance of ``tests/simulate/test_paper.py``).
    """
    s = report.strategies

    def rate(name: str) -> float | None:
        return s[name].rate if name in s else None

    def r2(name: str) -> float | None:
        return s[name].r2 if name in s else None

    def within(value: float | None, target: float, tol: float) -> bool:
        return value is not None and abs(value - target) <= tol

    ff_final = (
        (s["feature_focused"].final_means or {}).get("security") if "feature_focused" in s else None
    )
    r2s = {name: r2(name) for name in s}
    known = {k: v for k, v in r2s.items() if v is not None}
    highest = max(known, key=known.__getitem__) if known else None
    lowest = min(known, key=known.__getitem__) if known else None
    fe = report.interference_value("functionality", "efficiency")
    fs = report.interference_value("functionality", "security")
    sf = s.get("security_focused")
    sf_pair = ""
    if sf is not None and sf.eigenvalues:
        re, im = sf.eigenvalues[0]
        sf_pair = f" (λ = {re:.2f} ± {abs(im):.2f}i)"
    rows = [
        {
            "figure": "EF rate ρ, regime",
            "paper": "0.33, exponential",
            "reproduced": f"{_fmt(rate('efficiency_focused'))}, {s['efficiency_focused'].regime}"
            if "efficiency_focused" in s
            else "—",
            "ok": within(rate("efficiency_focused"), 0.33, 0.02)
            and s["efficiency_focused"].regime == "exponential",
        },
        {
            "figure": "FF rate ρ",
            "paper": "1.29",
            "reproduced": _fmt(rate("feature_focused")),
            "ok": within(rate("feature_focused"), 1.29, 0.06),
        },
        {
            "figure": "FF final security",
            "paper": "0.0",
            "reproduced": _fmt(ff_final),
            "ok": ff_final is not None and ff_final <= 0.05,
        },
        {
            "figure": "SF regime",
            "paper": "oscillatory",
            "reproduced": (sf.regime + sf_pair) if sf is not None else "—",
            "ok": sf is not None and sf.regime == "oscillatory",
        },
        {
            "figure": "AI R² (highest)",
            "paper": "0.74",
            "reproduced": f"{_fmt(r2('adaptive_integration'))} (highest: {highest})",
            "ok": within(r2("adaptive_integration"), 0.74, 0.02)
            and highest == "adaptive_integration",
        },
        {
            "figure": "FF R² (lowest)",
            "paper": "0.50",
            "reproduced": f"{_fmt(r2('feature_focused'))} (lowest: {lowest})",
            "ok": lowest == "feature_focused",
        },
        {
            "figure": "interference functionality–efficiency",
            "paper": "-0.17",
            "reproduced": _fmt(fe),
            "ok": within(fe, -0.17, 0.06),
        },
        {
            "figure": "interference functionality–security",
            "paper": "-0.09",
            "reproduced": _fmt(fs),
            "ok": within(fs, -0.09, 0.03),
        },
    ]
    return rows


def _experiment_rows(report: ExperimentReport) -> tuple[list[str], list[list[str]]]:
    columns = [
        "policy",
        *report.objectives,
        "min",
        "HV",
        f"reach≥{report.target:g}",
        "steps",
        f"end≥{report.target:g}",
        "switches",
        "alarms",
        "ms/update",
    ]
    rows: list[list[str]] = []
    for outcome in report.policies.values():
        per_update = outcome.microseconds_per_update
        rows.append(
            [
                f"{outcome.name} ({outcome.kind})",
                *(_fmt(outcome.final_means[o], 2) for o in report.objectives),
                _fmt(outcome.final_min_mean, 2),
                _fmt(outcome.hypervolume, 3),
                f"{outcome.reached_fraction:.0%}",
                _fmt(outcome.steps_to_target, 1),
                f"{outcome.final_reached_fraction:.0%}",
                _fmt(outcome.switches_per_session, 1),
                _fmt(outcome.severity_alarm_steps, 1),
                _fmt(per_update / 1000.0 if per_update is not None else None, 2),
            ]
        )
    return columns, rows


def _analysis_rows(report: AnalysisReport) -> tuple[list[str], list[list[str]]]:
    columns = [
        "strategy",
        "sessions",
        "transitions",
        "rate ρ",
        "regime",
        "R²",
        *(f"final {o}" for o in report.objectives),
    ]
    rows = []
    for fit in report.strategies.values():
        finals = fit.final_means or {}
        rows.append(
            [
                fit.strategy,
                str(fit.sessions),
                str(fit.transitions),
                _fmt(fit.rate),
                fit.regime,
                _fmt(fit.r2),
                *(_fmt(finals.get(o), 2) for o in report.objectives),
            ]
        )
    return columns, rows


# --------------------------------------------------------------------------- demo


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``steerloop demo``."""
    parser.add_argument(
        "--sessions",
        type=int,
        default=100,
        metavar="N",
        help="sessions per static strategy for the paper table (default 100, i.e. 400 in all)",
    )
    parser.add_argument(
        "--steered-sessions",
        type=int,
        default=100,
        metavar="N",
        help="sessions per policy in the comparison, run through the Controller (default 100)",
    )
    parser.add_argument(
        "--steps", type=int, default=50, metavar="T", help="iterations per session (default 50)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_DEMO_OUTPUT,
        metavar="DIR",
        help=f"folder for the PNG plots (default ./{DEFAULT_DEMO_OUTPUT})",
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


class _Offload:
    """Policies run by a forked worker process (nothing when fork is unavailable)."""

    def __init__(self, names: tuple[str, ...], process: Any, conn: Any) -> None:
        self.names = names
        self._process = process
        self._conn = conn
        self._reports: list[ExperimentReport] = []
        self._error: str | None = None

    @classmethod
    def start(
        cls,
        env: Environment,
        policies: dict[str, Policy | str],
        sessions: int,
        steps: int,
        seed: int,
    ) -> _Offload:
        import multiprocessing

        if not policies or "fork" not in multiprocessing.get_all_start_methods():
            return cls((), None, None)
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_offload_main,
            args=(send, env, policies, sessions, steps, seed),
            daemon=True,
        )
        process.start()
        send.close()
        return cls(tuple(policies), process, receive)

    def _handle(self, message: tuple[Any, ...], bar: _ProgressBar) -> None:
        from steerloop.simulate.experiment import ExperimentReport

        kind = message[0]
        if kind == "progress":
            bar(message[1], message[2], message[3])
        elif kind == "result":
            self._reports.append(ExperimentReport.model_validate_json(message[1]))
        else:
            self._error = str(message[1])

    def poll(self, bar: _ProgressBar) -> None:
        """Forward the worker's progress without blocking."""
        while self._conn is not None and self._conn.poll():
            try:
                self._handle(self._conn.recv(), bar)
            except EOFError:
                return

    def results(self, bar: _ProgressBar) -> list[ExperimentReport]:
        """Wait for the worker; its reports (raises RuntimeError if it failed)."""
        if self._conn is None:
            return []
        while not self._reports and self._error is None:
            try:
                self._handle(self._conn.recv(), bar)
            except EOFError:
                self._error = "the worker process ended without a result"
        if self._error is not None:
            raise RuntimeError(f"demo worker failed: {self._error}")
        return self._reports

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
) -> None:
    from steerloop.simulate.experiment import run_experiment

    try:
        report = run_experiment(
            env,
            policies,
            sessions,
            steps,
            seed,
            progress=lambda policy, done, total: conn.send(("progress", policy, done, total)),
        )
        conn.send(("result", report.model_dump_json()))
    except Exception as error:  # reported to the parent, which fails the command
        conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


def _merge(reports: list[ExperimentReport], order: list[str]) -> ExperimentReport:
    """One report with the policies of ``reports`` in ``order``."""
    outcomes = {name: o for report in reports for name, o in report.policies.items()}
    first = reports[0]
    return first.model_copy(update={"policies": {name: outcomes[name] for name in order}})


def run_demo(args: argparse.Namespace) -> int:
    """Reproduce paper 1's table and compare static strategies with the presets."""
    started = time.perf_counter()
    import numpy as np

    from steerloop.analysis.fit import fit_trajectories
    from steerloop.policies.loader import load_preset
    from steerloop.simulate.experiment import run_experiment
    from steerloop.simulate.paper import PAPER_STRATEGIES, paper_environment
    from steerloop.simulate.runs import rollout_arrays

    if min(args.sessions, args.steered_sessions, args.steps) < 2:
        return _error("demo", "--sessions, --steered-sessions and --steps must be at least 2")
    env = paper_environment()
    data = rollout_arrays(
        env,
        PAPER_STRATEGIES,
        sessions=args.sessions,
        steps=args.steps,
        rng=np.random.default_rng(args.seed),
    )
    analysis = fit_trajectories(data)
    table = paper_table(analysis)

    policies: dict[str, Policy | str] = {name: name for name in PAPER_STRATEGIES}
    policies["paper"] = load_preset("paper")
    policies["predictive"] = load_preset("predictive")
    use_rich = _rich_available() and not args.json
    # The controller path costs ~0.5 ms per update; with two cores the "paper" preset runs
    # in a forked worker while this process runs the rest and draws the plots. Every policy
    # seeds its own generator, so the split does not change any number.
    offload = _Offload.start(
        env,
        {"paper": policies["paper"]} if args.workers > 1 else {},
        args.steered_sessions,
        args.steps,
        args.seed,
    )
    local = {name: p for name, p in policies.items() if name not in offload.names}
    bar = _ProgressBar(len(policies) * args.steps, enabled=not args.json, use_rich=use_rich)

    def progress(policy: str, done: int, total: int) -> None:
        bar(policy, done, total)
        offload.poll(bar)

    plots: list[str] = []
    plot_error: str | None = None
    plot_failed = False
    try:
        reports = [
            run_experiment(
                env, local, args.steered_sessions, args.steps, args.seed, progress=progress
            )
        ]
        if not args.no_plots:
            try:
                from steerloop.analysis.plots import write_plots

                paths = write_plots(
                    analysis,
                    data,
                    args.out,
                    reference_rates={"efficiency_focused": 0.33, "feature_focused": 1.29},
                )
                plots = [str(p) for p in paths]
            except ImportError as error:  # the plot extra is missing: say so, still succeed
                plot_error = str(error)
            except OSError as error:
                plot_error = f"cannot write plots to {args.out}: {error.strerror}"
                plot_failed = True
        reports.extend(offload.results(bar))
    except RuntimeError as error:
        return _error("demo", str(error))
    finally:
        bar.close()
        offload.stop()
    experiment = _merge(reports, list(policies))
    elapsed = time.perf_counter() - started

    if args.json:
        _dump_json(
            {
                "paper_table": table,
                "analysis": analysis.model_dump(mode="json"),
                "experiment": experiment.model_dump(mode="json"),
                "plots": plots,
                "plot_error": plot_error,
                "seconds": elapsed,
            }
        )
    else:
        out = sys.stdout
        rows = [
            [r["figure"], r["paper"], r["reproduced"], "yes" if r["ok"] else "NO"] for r in table
        ]
        _print_table(
            out,
            f"Paper 1 (arXiv 2510.10739) reproduced: {args.sessions} sessions per static strategy, "
            f"{args.steps} iterations, seed {args.seed}",
            ["figure", "paper", "reproduced", "within tolerance"],
            rows,
            use_rich=use_rich,
        )
        columns, rows = _experiment_rows(experiment)
        _print_table(
            out,
            f"Static strategies vs presets: {args.steered_sessions} sessions per policy, final "
            "hidden state (min = mean worst objective, HV = hypervolume, alarms = steps per "
            "session with severity 1 − min ≥ 0.7)",
            columns,
            rows,
            use_rich=use_rich,
        )
        if plots:
            out.write(f"plots written to {args.out}/: {', '.join(Path(p).name for p in plots)}\n")
        elif plot_error:
            out.write(f"plots skipped: {plot_error}\n")
        out.write(f"finished in {elapsed:.1f} s\n")
    return 1 if plot_failed else 0


# --------------------------------------------------------------------------- simulate


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``steerloop simulate``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--policy", type=Path, metavar="FILE", help="policy YAML file to steer with"
    )
    source.add_argument("--preset", metavar="NAME", help="packaged preset (paper, predictive)")
    source.add_argument(
        "--strategy", metavar="NAME", help="run one strategy statically (no controller)"
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
        help="write every step's scores as trajectory JSONL",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run_simulate(args: argparse.Namespace) -> int:
    """Run a policy (or a static strategy) on the paper environment."""
    from steerloop.errors import PolicyError
    from steerloop.simulate.experiment import run_experiment
    from steerloop.simulate.paper import paper_environment

    if args.sessions < 1 or args.steps < 1:
        return _error("simulate", "--sessions and --steps must be at least 1")
    env = paper_environment()
    policy: Policy | str
    try:
        if args.policy is not None:
            from steerloop.policies.loader import load_policy

            policy = load_policy(args.policy)
            label = policy.name or Path(args.policy).stem
        elif args.preset is not None:
            from steerloop.policies.loader import load_preset

            policy = load_preset(args.preset)
            label = args.preset
        else:
            policy = args.strategy
            label = args.strategy
            if policy not in env.strategy_names:
                return _error(
                    "simulate",
                    f"unknown strategy {policy!r}; choose one of {list(env.strategy_names)}",
                )
    except PolicyError as error:
        return _error("simulate", str(error))
    except (KeyError, ValueError, OSError) as error:
        return _error("simulate", str(error).strip("'\""))

    recorder = None
    if args.out is not None:
        from steerloop.analysis.trajectory import TrajectoryRecorder

        try:
            recorder = TrajectoryRecorder(
                args.out,
                env.objectives,
                dt=env.dt,
                meta={"writer": "steerloop simulate", "policy": label, "seed": args.seed},
            )
        except OSError as error:
            return _error("simulate", f"cannot write {args.out}: {error.strerror}")
    use_rich = _rich_available() and not args.json
    bar = _ProgressBar(args.steps, enabled=not args.json, use_rich=use_rich)
    try:
        report = run_experiment(
            env,
            {label: policy},
            args.sessions,
            args.steps,
            args.seed,
            progress=bar,
            recorder=recorder,
        )
    except ValueError as error:
        return _error("simulate", str(error))
    finally:
        bar.close()
        if recorder is not None:
            recorder.close()
    if args.json:
        _dump_json(
            report.model_dump(mode="json") | {"out": None if args.out is None else str(args.out)}
        )
        return 0
    columns, rows = _experiment_rows(report)
    _print_table(
        sys.stdout,
        f"{label} on the paper environment: {args.sessions} sessions × {args.steps} steps, "
        f"seed {args.seed}",
        columns,
        rows,
        use_rich=use_rich,
    )
    if args.out is not None:
        sys.stdout.write(
            f"trajectories written to {args.out} (analyse with: steerloop analyze {args.out})\n"
        )
    return 0


# --------------------------------------------------------------------------- analyze


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``steerloop analyze``."""
    parser.add_argument(
        "file", type=Path, metavar="FILE.jsonl", help="trajectory file (JSON Lines)"
    )
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG plots into DIR")
    parser.add_argument("--json", action="store_true", help="print the analysis report as JSON")


def run_analyze(args: argparse.Namespace) -> int:
    """Fit a trajectory file offline and print (or dump) the report."""
    from steerloop.analysis.fit import fit_trajectories
    from steerloop.analysis.trajectory import TrajectoryArrays, read_jsonl
    from steerloop.errors import TrajectoryFormatError

    try:
        log = read_jsonl(args.file)
        data = TrajectoryArrays.from_log(log)
        report = fit_trajectories(data)
    except TrajectoryFormatError as error:
        return _error("analyze", str(error))
    except ValueError as error:
        return _error("analyze", f"{args.file}: {error}")
    plots: list[str] = []
    if args.plots is not None:
        try:
            from steerloop.analysis.plots import write_plots

            plots = [str(p) for p in write_plots(report, data, args.plots)]
        except ImportError as error:
            return _error("analyze", str(error))
        except OSError as error:
            return _error("analyze", f"cannot write plots to {args.plots}: {error.strerror}")
    if args.json:
        _dump_json(report.model_dump(mode="json") | {"plots": plots})
        return 0
    use_rich = _rich_available()
    out = sys.stdout
    columns, rows = _analysis_rows(report)
    _print_table(
        out,
        f"{args.file}: {report.sessions} sessions, {report.records} records, "
        f"{report.transitions} transitions ({report.skipped_transitions} skipped)",
        columns,
        rows,
        use_rich=use_rich,
    )
    if report.interference is not None:
        names = report.objectives
        _print_table(
            out,
            "Interference Corr(Δy_i, Δy_j), pooled",
            ["", *names],
            [
                [a, *(_fmt(v, 2) for v in row)]
                for a, row in zip(names, report.interference, strict=True)
            ],
            use_rich=use_rich,
        )
    sev = report.severity
    if sev is not None:
        out.write(
            f"severity ({sev.source}): α = {sev.alpha:.3f}, β = {sev.beta:.3f}, "
            f"γ = {sev.gamma:.4f}, α − β = {sev.margin:.3f} ± {_fmt(sev.margin_stderr)} "
            f"→ {sev.phase}\n"
        )
    if plots:
        out.write(f"plots written to {args.plots}/\n")
    return 0


# --------------------------------------------------------------------------- registry

CommandSpec = tuple[
    str, str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]

#: name -> (help, description, epilog, configure, run), the fields of ``cli.Command``.
COMMAND_SPECS: dict[str, CommandSpec] = {
    "demo": (
        "reproduce paper 1's table and compare strategies with the presets (simulated)",
        "Run the paper environment (steerloop.simulate.paper): 100 sessions per static strategy "
        "(400 in all) reproduce the paper's rates, regimes, R² and interference, printed next to "
        "the paper's figures; then the four static strategies and the 'paper' and 'predictive' "
        "presets (through the real Controller) are compared on the same sessions. Plots "
        "(trajectories, rates, interference, severity density) go to --out. Needs no LLM and no "
        "network. Exit status 0 on success, 1 when the plots could not be written.",
        "examples:\n"
        "  steerloop demo\n"
        "  steerloop demo --out /tmp/demo --seed 3\n"
        "  steerloop demo --steered-sessions 400 --no-plots   # slower: ~0.6 ms per update\n"
        "  steerloop demo --json | jq '.paper_table'",
        add_demo_arguments,
        run_demo,
    ),
    "simulate": (
        "run a policy on the simulated paper environment; optionally log trajectories",
        "Steer simulated sessions of the paper environment with a policy file, a preset or one "
        "static strategy, and print the outcome (final objectives, worst objective, "
        "hypervolume, steps to reach 0.7, switches, severity alarms). --out writes every step "
        "as trajectory JSONL for 'steerloop analyze'. Exit status 0 on success, 1 for a bad "
        "policy file or preset.",
        "examples:\n"
        "  steerloop simulate --preset paper --sessions 50 --steps 50 --seed 1\n"
        "  steerloop simulate --policy my-policy.yaml --out runs.jsonl\n"
        "  steerloop simulate --strategy feature_focused --json",
        add_simulate_arguments,
        run_simulate,
    ),
    "analyze": (
        "fit drift, rates, R², interference and severity from a trajectory JSONL file",
        "Fit logged trajectories offline (the papers' pipeline, steerloop.analysis): per "
        "strategy the drift A, b and diffusion by least squares, eigenvalues, rate and regime, "
        "one-step R²; the interference matrix; the severity SDE and its phase. The file format "
        "is documented in steerloop.analysis.trajectory (a header line, then one JSON object per "
        "step). Exit status 0 on success, 1 for an unreadable or malformed file (the message "
        "gives the line number).",
        "examples:\n"
        "  steerloop analyze runs.jsonl\n"
        "  steerloop analyze runs.jsonl --plots plots/\n"
        "  steerloop analyze runs.jsonl --json | jq '.strategies[].rate'",
        add_analyze_arguments,
        run_analyze,
    ),
}
