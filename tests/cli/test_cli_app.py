"""The ``steerloop`` command line: the registry, conventions shared by every command,
validate and schema (in-process and as a subprocess)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from steerloop.cli import COMMANDS, Command, build_parser, main, register
from steerloop.policies import policy_json_schema

ROOT = Path(__file__).parents[2]
PAPER = ROOT / "steerloop" / "policies" / "presets" / "paper.yaml"
CORPUS = ROOT / "tests" / "policies" / "corpus"
DESIGN_EXAMPLE = ROOT / "tests" / "policies" / "data" / "design_example.yaml"


def _run(
    *args: str, stdin: bytes | None = None, module: str = "steerloop"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ----------------------------------------------------------------------------- subprocess


@pytest.mark.timeout(180)
def test_subprocess_validate_lists_every_error_of_every_file() -> None:
    bad = [CORPUS / "unknown_metric.yaml", CORPUS / "duplicate_key_top.yaml", CORPUS / "empty.yaml"]
    result = _run("validate", str(PAPER), *map(str, bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == f"{PAPER}: ok"
    assert lines[1].startswith(f"{bad[0]}:12:20: rules.0.when.metric: unknown metric 'drift.rat'")
    assert lines[2].startswith(f"{bad[1]}:14:1: initial: duplicate key 'initial'")
    assert lines[3].startswith(f"{bad[2]}:1:1: the policy is empty")
    assert len(lines) == 4
    assert "4 file(s) checked, 3 invalid, 3 error(s)" in result.stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize("module", ["steerloop", "steerloop.cli"])
def test_subprocess_schema_with_python_dash_m(module: str) -> None:
    result = _run("schema", module=module)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == policy_json_schema()


@pytest.mark.timeout(180)
def test_subprocess_version_and_help_import_nothing_heavy() -> None:
    result = _run("--version")
    assert result.returncode == 0 and result.stdout == f"steerloop {version('steerloop')}\n"
    code = (
        "import sys\n"
        "from steerloop.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('numpy', 'pydantic', 'yaml', 'matplotlib', 'rich', 'scipy', 'filterpy')\n"
        "print(','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert "usage: steerloop" in result.stdout
    assert result.stderr.strip() == ""


# ----------------------------------------------------------------------------- in-process


def test_validate_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(PAPER), str(DESIGN_EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{PAPER}: ok", f"{DESIGN_EXAMPLE}: ok"]
    assert "2 file(s) checked, 0 invalid" in err


def test_validate_every_corpus_file_fails_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = sorted(str(path) for path in CORPUS.glob("*.yaml"))
    assert main(["validate", *files]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    reported = {line.split(":", 1)[0] for line in out.splitlines()}
    assert reported == set(files)
    assert f"{len(files)} file(s) checked, {len(files)} invalid" in err


def test_validate_quiet_prints_only_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--quiet", str(PAPER), str(CORPUS / "tabs.yaml")]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{CORPUS / 'tabs.yaml'}:7:1: found character '\\t' that cannot start any token; "
        "YAML does not allow tabs for indentation, use spaces"
    ]
    assert err == ""


def test_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    missing = CORPUS / "does-not-exist.yaml"
    code = main(
        ["validate", "--json", str(PAPER), str(CORPUS / "unknown_field.yaml"), str(missing)]
    )
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    paper, unknown, absent = report["files"]
    assert paper == {"file": str(PAPER), "valid": True, "name": "paper", "errors": []}
    assert unknown["valid"] is False
    assert [(e["line"], e["column"], e["field"]) for e in unknown["errors"]] == [
        (7, 5, "strategies.fast.promt"),
        (7, 5, "strategies.fast.prompt"),
    ]
    assert unknown["errors"][0]["text"].startswith(f"{CORPUS / 'unknown_field.yaml'}:7:5: ")
    assert absent["errors"][0]["line"] is None
    assert "cannot read the policy file" in absent["errors"][0]["message"]


def test_validate_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (CORPUS / "unknown_strategy_initial.yaml").read_bytes()
    fake = io.TextIOWrapper(io.BytesIO(data))
    monkeypatch.setattr(sys, "stdin", fake)
    assert main(["validate", "-"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("<stdin>:9:10: initial: unknown strategy 'secured'")


def test_schema_to_stdout_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_json_schema()
    target = tmp_path / "policy.schema.json"
    assert main(["schema", "--output", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == policy_json_schema()
    assert capsys.readouterr().out == ""
    assert main(["schema", "-o", str(tmp_path / "no" / "such" / "dir.json")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["validate"], ["frobnicate"], ["schema", "--bogus"], ["validate", "--json"]],
)
def test_usage_errors_exit_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage: steerloop" in capsys.readouterr().err


BUILT_IN = ["demo", "simulate", "analyze", "plot", "validate", "schema"]


def test_every_built_in_command_is_registered() -> None:
    assert list(COMMANDS) == BUILT_IN


@pytest.mark.parametrize("command", BUILT_IN)
def test_help_texts_have_examples_and_json(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"steerloop {command}" in out
    assert "--json" in out  # README: every command takes --json


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"steerloop {version('steerloop')}\n"


def test_schema_json_with_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.json"
    assert main(["schema", "--json", "-o", str(target)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {"output": str(target), "bytes": target.stat().st_size}
    assert main(["schema", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_json_schema()


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "validate" in out and "schema" in out


def test_registering_a_command_extends_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--times", type=int, default=1)

    def run(args: argparse.Namespace) -> int:
        print("hello " * args.times)
        return 7

    register(Command("hello", "say hello", "Say hello.", "examples:\n  x", configure, run))
    try:
        assert "hello" in build_parser().format_help()
        assert main(["hello", "--times", "2"]) == 7
        assert capsys.readouterr().out.strip() == "hello hello"
    finally:
        del COMMANDS["hello"]
