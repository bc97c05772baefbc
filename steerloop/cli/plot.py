"""``steerloop plot``: per-session timelines, or the analysis plots, of a trajectory file."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from steerloop.cli.analyze import file_progress, read_with_progress
from steerloop.cli.command import Command
from steerloop.cli.output import dump_json, error

__all__ = ["COMMAND", "DEFAULT_PLOT_OUTPUT", "timeline_file_name"]

#: Where ``steerloop plot`` writes unless ``--out`` says otherwise.
DEFAULT_PLOT_OUTPUT = Path("steerloop-plots")


def timeline_file_name(sessions: list[str]) -> str:
    """``timeline-<sessions>.png`` with every character outside [A-Za-z0-9._-] replaced by _.

    Examples
    --------
    >>> timeline_file_name(["paper/0000"]), timeline_file_name(["a", "b c"])
    ('timeline-paper_0000.png', 'timeline-a+b_c.png')
    """
    slug = "+".join(re.sub(r"[^A-Za-z0-9._-]", "_", name) for name in sessions)
    if len(slug) > 80:
        slug = f"{slug[:60]}-and-{len(sessions) - 1}-more"
    return f"timeline-{slug}.png"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, metavar="FILE.jsonl", help="trajectory file (JSON Lines)"
    )
    parser.add_argument(
        "--session",
        action="append",
        metavar="ID",
        help="draw this session's timeline (repeat for one panel per session); without it, "
        "draw the analysis plots (trajectories, rates, interference, severity)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=DEFAULT_PLOT_OUTPUT,
        metavar="DIR",
        help=f"folder for the PNG files (default ./{DEFAULT_PLOT_OUTPUT})",
    )
    parser.add_argument(
        "--json", action="store_true", help='print {"plots": [...], ...} instead of text'
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _timelines(args: argparse.Namespace, show: bool) -> list[Path]:
    from steerloop.analysis.timeline import read_timelines, write_timelines

    sessions: list[str] = args.session
    with file_progress(args.file, enabled=show) as bar:
        timelines = read_timelines(args.file, sessions, progress=bar.update)
    titles = [
        f"session {t.session}: {len(t.switches())} switch(es), strategies "
        f"{', '.join(dict.fromkeys(t.strategies))}"
        + ("" if t.has_filtered else " (no controller: raw scores)")
        for t in timelines
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    return [write_timelines(timelines, args.out / timeline_file_name(sessions), titles=titles)]


def _analysis_plots(args: argparse.Namespace, show: bool) -> list[Path]:
    from steerloop.analysis.fit import fit_trajectories
    from steerloop.analysis.plots import write_plots
    from steerloop.analysis.trajectory import TrajectoryArrays

    data = TrajectoryArrays.from_log(read_with_progress(args.file, enabled=show))
    return write_plots(fit_trajectories(data), data, args.out)


def _run(args: argparse.Namespace) -> int:
    from steerloop.errors import TrajectoryFormatError

    show = not (args.quiet or args.json)
    try:
        paths = _timelines(args, show) if args.session else _analysis_plots(args, show)
    except TrajectoryFormatError as problem:
        return error("plot", str(problem))
    except ImportError as problem:
        return error("plot", str(problem))
    except OSError as problem:
        return error("plot", f"cannot write plots to {args.out}: {problem.strerror}")
    except ValueError as problem:
        return error("plot", f"{args.file}: {problem}")
    if args.json:
        dump_json({"plots": [str(p) for p in paths], "sessions": args.session or []})
    else:
        sys.stdout.write("".join(f"{path}\n" for path in paths))
    return 0


COMMAND = Command(
    name="plot",
    help="draw a session's timeline (or the analysis plots) from a trajectory JSONL file",
    description=(
        "With --session ID: draw that session's timeline into DIR/timeline-ID.png: the "
        "filtered objectives over the steps (raw scores as dots), the strategy in force as "
        "coloured bands, and a dashed line at every switch labelled with the rule that made "
        "it (the records of a steered run carry these; 'steerloop simulate --out' and "
        "TrajectoryRecorder write them). Repeat --session for one panel per session. Without "
        "--session: the analysis plots of 'steerloop analyze --plots'. Prints the paths "
        "written. Needs the plot extra (matplotlib). Exit status 0 on success, 1 for a "
        "malformed file, an unknown session or a missing extra."
    ),
    epilog=(
        "examples:\n"
        "  steerloop simulate --preset paper --sessions 5 --out runs.jsonl\n"
        "  steerloop plot runs.jsonl --session paper/0000\n"
        "  steerloop plot runs.jsonl --session paper/0000 --session paper/0001 -o plots/\n"
        "  steerloop plot runs.jsonl --json | jq '.plots'"
    ),
    configure=_configure,
    run=_run,
)
