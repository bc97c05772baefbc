"""``steerloop analyze``: fit a trajectory file offline and print the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from steerloop.cli.command import Command
from steerloop.cli.output import dump_json, error, print_table, rich_available
from steerloop.cli.progress import ProgressBar
from steerloop.cli.tables import analysis_table, interference_table, severity_line, warning_lines

if TYPE_CHECKING:
    from steerloop.analysis.trajectory import TrajectoryLog

__all__ = ["COMMAND", "file_progress", "read_with_progress"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, metavar="FILE.jsonl", help="trajectory file (JSON Lines)"
    )
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG plots into DIR")
    parser.add_argument("--json", action="store_true", help="print the analysis report as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def file_progress(path: Path, *, enabled: bool) -> ProgressBar:
    """A progress bar over reading ``path`` (pass its ``update`` as the reader's progress)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # the reader reports the problem
    return ProgressBar(max(size, 1), f"reading {path.name}", enabled=enabled)


def read_with_progress(path: Path, *, enabled: bool) -> TrajectoryLog:
    """Read a whole trajectory file with a progress bar over its size."""
    from steerloop.analysis.trajectory import read_jsonl

    with file_progress(path, enabled=enabled) as bar:
        return read_jsonl(path, progress=bar.update)


def _run(args: argparse.Namespace) -> int:
    from steerloop.analysis.fit import fit_trajectories
    from steerloop.analysis.trajectory import TrajectoryArrays
    from steerloop.errors import TrajectoryFormatError

    show = not (args.quiet or args.json)
    try:
        data = TrajectoryArrays.from_log(read_with_progress(args.file, enabled=show))
        report = fit_trajectories(data)
    except TrajectoryFormatError as problem:
        return error("analyze", str(problem))
    except ValueError as problem:
        return error("analyze", f"{args.file}: {problem}")
    plots: list[str] = []
    if args.plots is not None:
        try:
            from steerloop.analysis.plots import write_plots

            with ProgressBar(1, "drawing plots", enabled=show):
                plots = [str(p) for p in write_plots(report, data, args.plots)]
        except ImportError as problem:
            return error("analyze", str(problem))
        except OSError as problem:
            return error("analyze", f"cannot write plots to {args.plots}: {problem.strerror}")
    if args.json:
        dump_json(report.model_dump(mode="json") | {"plots": plots, "warnings": report.warnings()})
        return 0
    use_rich = rich_available()
    out = sys.stdout
    columns, rows = analysis_table(report)
    print_table(
        out,
        f"{args.file}: {report.sessions} sessions, {report.records} records, "
        f"{report.transitions} transitions ({report.skipped_transitions} skipped)",
        columns,
        rows,
        use_rich=use_rich,
    )
    if report.interference is not None:
        columns, rows = interference_table(report)
        title = f"Interference Corr(Δy_i, Δy_j), pooled over {report.transitions} increments"
        print_table(out, title, columns, rows, use_rich=use_rich)
    line = severity_line(report)
    if line is not None:
        out.write(line + "\n")
    for warning in warning_lines(report):
        out.write(warning + "\n")
    if plots:
        out.write(f"plots written to {args.plots}/\n")
    return 0


COMMAND = Command(
    name="analyze",
    help="fit drift, rates, R², interference and severity from a trajectory JSONL file",
    description=(
        "Fit logged trajectories offline (the papers' pipeline, steerloop.analysis): per "
        "strategy the drift A, b and diffusion by least squares, eigenvalues, rate (with its "
        "standard error) and regime, one-step R²; the interference matrix; the severity SDE "
        "and its phase. Fits from too few transitions are flagged with warnings, and a "
        "severity fit that is not meaningful is not printed. The file format is documented in "
        "steerloop.analysis.trajectory (a header line, then one JSON object per step). Exit "
        "status 0 on success, 1 for an unreadable or malformed file (the message gives the "
        "line number)."
    ),
    epilog=(
        "examples:\n"
        "  steerloop analyze runs.jsonl\n"
        "  steerloop analyze runs.jsonl --plots plots/\n"
        "  steerloop analyze runs.jsonl --json | jq '.strategies[].rate'"
    ),
    configure=_configure,
    run=_run,
)
