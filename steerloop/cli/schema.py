"""``steerloop schema``: the JSON Schema of the policy format, for editors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steerloop.cli.command import Command
from steerloop.cli.output import dump_json, error

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="write the schema to FILE instead of standard output",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='the schema is JSON already; with --output, print {"output": FILE, "bytes": N} '
        "instead of nothing",
    )


def _run(args: argparse.Namespace) -> int:
    from steerloop.policies.loader import policy_json_schema

    text = json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as problem:
        return error("schema", f"cannot write {args.output}: {problem.strerror}")
    if args.json:
        dump_json({"output": str(args.output), "bytes": len(text.encode("utf-8"))})
    return 0


COMMAND = Command(
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
        "  steerloop schema --json | jq '.properties | keys'\n"
        "  # then, as the first line of policy.yaml:\n"
        "  # yaml-language-server: $schema=policy.schema.json"
    ),
    configure=_configure,
    run=_run,
)
