"""Tests of the CLI's shared output helpers and its progress bar."""

from __future__ import annotations

import io
import json
import math

import pytest

from steerloop.cli.output import dump_json, fmt_estimate, print_table
from steerloop.cli.progress import ProgressBar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_tables_without_rich() -> None:
    buffer = io.StringIO()
    print_table(
        buffer, "Title", ["name", "value"], [["a", "1.0"], ["longer", "22"]], use_rich=False
    )
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "Title"
    assert lines[1].split() == ["name", "value"]
    assert lines[3] == "a         1.0" and lines[4] == "longer     22"


def test_estimates_carry_their_standard_error() -> None:
    assert fmt_estimate(0.61234, 0.0123, 3) == "0.612 ± 0.012"
    assert fmt_estimate(0.5, math.nan) == "0.50"
    assert fmt_estimate(math.nan, 0.1) == "—"


def test_json_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    dump_json({"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


def test_progress_bar_is_silent_when_not_a_terminal_or_disabled() -> None:
    stream = io.StringIO()
    with ProgressBar(10, "work", stream=stream) as bar:
        bar.advance(4)
        bar.step_callback()("policy", 5, 10)
    assert not bar.active and bar.completed == 5.0
    assert stream.getvalue() == ""
    terminal = FakeTerminal()
    with ProgressBar(10, "work", stream=terminal, enabled=False) as bar:
        bar.advance(10)
    assert terminal.getvalue() == ""


def test_progress_bar_draws_on_a_terminal() -> None:
    pytest.importorskip("rich")
    terminal = FakeTerminal()
    with ProgressBar(3, "simulating", stream=terminal) as bar:
        assert bar.active
        for _ in range(3):
            bar.advance(description="policy-x")
    assert not bar.active
    assert "policy-x" in terminal.getvalue()
