"""The ``steerloop`` command line: ``demo``, ``simulate``, ``analyze``, ``validate``, ``schema``.

Each subcommand is a :class:`Command`: a name, help texts, a function that declares its
arguments and a function that runs it and returns the exit code. Adding a command is one
:func:`register` call; :func:`main` builds the parser from the registry.

Exit codes: 0 success, 1 the command ran and found problems (e.g. an invalid policy),
2 usage error (argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies.loader import load_policy, parse_policy, policy_json_schema

__all__ = ["COMMANDS", "Command", "build_parser", "main", "register"]


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("steerloop")
    except PackageNotFoundError:  # pragma: no cover - source tree without install
        return "unknown"


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
    parser.add_argument("--version", action="version", version=f"steerloop {_version()}")
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


# ----------------------------------------------------------------------------- validate


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="policy files to check ('-' reads standard input)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document with the result of every file instead of text",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the errors (nothing for valid files, no summary)",
    )


def _validate_one(name: str) -> tuple[list[PolicyIssue], str | None]:
    """Issues of one file (empty when valid) and the policy's name."""
    try:
        if name == "-":
            policy = parse_policy(sys.stdin.buffer.read(), file="<stdin>")
        else:
            policy = load_policy(name)
    except PolicyError as error:
        return list(error.issues), None
    return [], policy.name


def _run_validate(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    invalid = 0
    for name in args.files:
        issues, policy_name = _validate_one(name)
        invalid += bool(issues)
        results.append(
            {
                "file": "<stdin>" if name == "-" else name,
                "valid": not issues,
                "name": policy_name,
                "errors": [
                    {
                        "line": issue.line,
                        "column": issue.column,
                        "field": issue.field,
                        "message": issue.message,
                        "text": str(issue),
                    }
                    for issue in issues
                ],
            }
        )
        if not args.json:
            _print_result(sys.stdout, results[-1], quiet=args.quiet)
    if args.json:
        json.dump(
            {"valid": invalid == 0, "files": results}, sys.stdout, indent=2, ensure_ascii=False
        )
        sys.stdout.write("\n")
    elif not args.quiet:
        errors = sum(len(result["errors"]) for result in results)
        summary = f"{len(results)} file(s) checked, {invalid} invalid"
        if errors:
            summary += f", {errors} error(s)"
        sys.stdout.flush()  # keep the summary after the results on a terminal
        print(summary, file=sys.stderr)
    return 1 if invalid else 0


def _print_result(out: TextIO, result: dict[str, Any], *, quiet: bool) -> None:
    if result["valid"]:
        if not quiet:
            out.write(f"{result['file']}: ok\n")
        return
    for error in result["errors"]:
        out.write(f"{error['text']}\n")


register(
    Command(
        name="validate",
        help="check policy files and list every error with its line and column",
        description=(
            "Check YAML policy files: syntax, the schema, and every name a rule uses "
            "(strategies, objectives, metrics). Every error of every file is printed as "
            "'file:line:col: field: message'. Exit status: 0 when all files are valid, "
            "1 otherwise."
        ),
        epilog=(
            "examples:\n"
            "  steerloop validate policy.yaml\n"
            "  steerloop validate policies/*.yaml --quiet\n"
            "  steerloop validate policy.yaml --json | jq '.files[].errors'\n"
            "  cat policy.yaml | steerloop validate -"
        ),
        configure=_configure_validate,
        run=_run_validate,
    )
)


# ----------------------------------------------------------------------------- schema


def _configure_schema(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="write the schema to FILE instead of standard output",
    )


def _run_schema(args: argparse.Namespace) -> int:
    text = json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"steerloop schema: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


register(
    Command(
        name="schema",
        help="print the JSON Schema of the policy format (for editors)",
        description=(
            "Print the JSON Schema (draft 2020-12) of steerloop policy files. Editors with "
            "yaml-language-server (VS Code's YAML extension, Neovim, ...) use it for completion "
            "and checks when a policy starts with a modeline comment. The schema covers the "
            "structure; 'steerloop validate' also checks the names rules use."
        ),
        epilog=(
            "examples:\n"
            "  steerloop schema --output policy.schema.json\n"
            "  # then, as the first line of policy.yaml:\n"
            "  # yaml-language-server: $schema=policy.schema.json"
        ),
        configure=_configure_schema,
        run=_run_schema,
    )
)


# ------------------------------------------------------------- demo, simulate, analyze

from steerloop.simulate.commands import COMMAND_SPECS  # noqa: E402  (after the registry exists)

for _name, _spec in COMMAND_SPECS.items():
    register(Command(_name, *_spec))


if __name__ == "__main__":
    raise SystemExit(main())
