"""``steerloop validate``: check policy files and list every error with its position."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from steerloop.cli.command import Command

if TYPE_CHECKING:
    from steerloop.errors import PolicyIssue

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
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
    from steerloop.errors import PolicyError
    from steerloop.policies.loader import load_policy, parse_policy

    try:
        if name == "-":
            policy = parse_policy(sys.stdin.buffer.read(), file="<stdin>")
        else:
            policy = load_policy(name)
    except PolicyError as error:
        return list(error.issues), None
    return [], policy.name


def _result(name: str) -> dict[str, Any]:
    issues, policy_name = _validate_one(name)
    return {
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


def _run(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    for name in args.files:
        results.append(_result(name))
        if not args.json:
            _print_result(sys.stdout, results[-1], quiet=args.quiet)
    invalid = sum(not result["valid"] for result in results)
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


COMMAND = Command(
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
    configure=_configure,
    run=_run,
)
