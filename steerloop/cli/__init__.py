"""The ``steerloop`` command line: ``demo``, ``simulate``, ``analyze``, ``plot``, ``validate``,
``schema`` (``steerloop --help``; also ``python -m steerloop``).

Layout: :mod:`~steerloop.cli.command` holds the registry (:class:`Command`, :func:`register`),
:mod:`~steerloop.cli.app` the parser and :func:`main`; one module per command
(:mod:`~steerloop.cli.demo`, :mod:`~steerloop.cli.simulate`, :mod:`~steerloop.cli.analyze`,
:mod:`~steerloop.cli.plot`, :mod:`~steerloop.cli.validate`, :mod:`~steerloop.cli.schema`),
and the shared :mod:`~steerloop.cli.output` (tables, JSON, errors),
:mod:`~steerloop.cli.tables` (the rows the commands print) and
:mod:`~steerloop.cli.progress` (progress bar). Modules import only the standard library at
import time; each command imports its work when it runs, so ``--help`` stays fast.

Conventions shared by every command: ``--help`` with examples, ``--json`` (one JSON document on
standard output instead of text), errors as one line on standard error, exit status 0 success,
1 bad input or failed output, 2 usage error, 130 interrupted. Long commands show a progress bar
on a terminal (extra ``cli``), never when the output is not a terminal or with ``--quiet``.
"""

from steerloop.cli.app import build_parser, main
from steerloop.cli.command import COMMANDS, Command, register

__all__ = ["COMMANDS", "Command", "build_parser", "main", "register"]
