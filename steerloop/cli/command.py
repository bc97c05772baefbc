"""The command registry of the ``steerloop`` CLI.

Each subcommand is a :class:`Command`: a name, help texts, a function that declares its
arguments and a function that runs it and returns the exit code. Adding a command is one
:func:`register` call; :func:`steerloop.cli.build_parser` builds the parser from
:data:`COMMANDS`.

This module and every command module import only the standard library at import time (the
work is imported inside each ``run`` function), so ``steerloop --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "register"]


@dataclass(frozen=True)
class Command:
    """A subcommand of ``steerloop``.

    Attributes
    ----------
    name
        The word typed after ``steerloop``.
    help
        One line for ``steerloop --help``.
    description
        The paragraph at the top of ``steerloop NAME --help``.
    epilog
        Examples shown at the bottom of ``steerloop NAME --help`` (kept as written).
    configure
        Adds the command's arguments to its parser.
    run
        Runs the command with the parsed arguments; returns the exit code.
    """

    name: str
    help: str
    description: str
    epilog: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: The registered subcommands, in the order ``--help`` lists them.
COMMANDS: dict[str, Command] = {}


def register(command: Command) -> Command:
    """Add ``command`` to the CLI (replacing a command of the same name) and return it."""
    COMMANDS[command.name] = command
    return command
