"""The ``steerloop`` parser and entry point; registers the built-in commands.

Exit codes: 0 success, 1 the command ran and found problems (an invalid policy, a malformed
trajectory file, plots that could not be written), 2 usage error (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from steerloop.cli import analyze, demo, plot, schema, simulate, validate
from steerloop.cli.command import COMMANDS, register

__all__ = ["build_parser", "main"]


class _VersionAction(argparse.Action):
    """``--version``: print ``steerloop X.Y.Z`` and exit (the version is looked up only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        # The installed distribution's version, as ``steerloop.__version__`` reads it (the
        # command line sits below the top-level package and does not import it).
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("steerloop")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            found = "0.0.0+unknown"
        sys.stdout.write(f"steerloop {found}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="steerloop",
        description=(
            "steerloop steers iterative LLM loops by their measured dynamics: it scores each "
            "response, filters the scores, learns each strategy's drift and switches the "
            "strategy prompt according to a YAML policy."
        ),
        epilog="Run 'steerloop COMMAND --help' for the options and examples of a command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Usage errors exit with status 2 (``SystemExit`` raised by argparse).
    """
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    run: Callable[[argparse.Namespace], int] = args._run
    try:
        return run(args)
    except BrokenPipeError:  # e.g. `steerloop schema | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


for _module in (demo, simulate, analyze, plot, validate, schema):
    register(_module.COMMAND)
