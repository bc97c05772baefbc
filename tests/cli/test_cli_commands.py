"""Tests of the demo, simulate, analyze and plot commands (in-process and end to end)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from steerloop.analysis import read_jsonl
from steerloop.cli import main

TIMEOUT = 180
POLICY = """\
version: 1
name: docs
objectives: [accuracy, brevity]
strategies:
  thorough: {prompt: "Be thorough.", emphasis: {accuracy: 1.0}}
  terse: {prompt: "Be brief.", emphasis: {brevity: 1.0, accuracy: 0.4}}
initial: thorough
rules:
  - name: too-long
    when: {metric: objective.brevity, below: 0.5}
    then: {switch_to: terse}
"""


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def looks_like_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- simulate


def test_simulate_then_analyze(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs.jsonl"
    argv = ["--preset", "paper", "--sessions", "3", "--steps", "12", "--out", str(out)]
    assert main(["simulate", *argv]) == 0
    text = capsys.readouterr().out
    assert "paper on the paper environment" in text and "trajectories written" in text
    assert "steerloop plot" in text and "--session paper/0000" in text
    log = read_jsonl(out)
    assert log.header.meta["policy"] == "paper" and len(log.records) == 36
    assert all(r.filtered is not None and r.switched is not None for r in log.records)
    assert main(["analyze", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["sessions"] == 3
    assert document["objectives"] == ["security", "efficiency", "functionality"]
    assert main(["analyze", str(out)]) == 0
    assert "Interference" in capsys.readouterr().out


def test_simulate_any_policy_on_a_generated_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "docs.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    argv = ["--policy", str(policy), "--sessions", "4", "--steps", "30"]
    assert main(["simulate", *argv, "--out", str(tmp_path / "r.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "docs on an environment generated from the policy (seed 0)" in text
    assert "accuracy" in text and "brevity" in text
    log = read_jsonl(tmp_path / "r.jsonl")
    assert log.header.objectives == ["accuracy", "brevity"]
    assert "generated from policy docs" in log.header.meta["environment"]
    assert any(r.rule == "too-long" for r in log.records)
    assert main(["simulate", "--policy", str(policy), "--environment", "paper"]) == 1
    assert "paper environment simulates" in capsys.readouterr().err
    assert main(["simulate", "--policy", str(policy), "--steps", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objectives"] == ["accuracy", "brevity"]


def test_simulate_static_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--strategy", "feature_focused", "--sessions", "5", "--steps", "10", "--json"]
    assert main(["simulate", *argv]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["policies"]["feature_focused"]["kind"] == "static"


def test_simulate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--preset", "no-such-preset"]) == 1
    assert "steerloop simulate:" in capsys.readouterr().err
    assert main(["simulate", "--strategy", "nope"]) == 1
    assert "unknown strategy" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nobjectives: [a]\nstrategies: {}\n", encoding="utf-8")
    assert main(["simulate", "--policy", str(bad)]) == 1
    assert "bad.yaml" in capsys.readouterr().err
    assert main(["simulate", "--preset", "paper", "--steps", "0"]) == 1
    with pytest.raises(SystemExit):
        main(["simulate"])  # one of --policy/--preset/--strategy is required


# ----------------------------------------------------------------------------- analyze


def test_analyze_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "missing.jsonl")]) == 1
    assert "cannot open" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        '{"format": "steerloop.trajectories", "version": 1, "objectives": ["a"]}\n{oops\n',
        encoding="utf-8",
    )
    assert main(["analyze", str(broken)]) == 1
    assert "broken.jsonl:2:" in capsys.readouterr().err


def test_analyze_tiny_run_warns_in_text_and_withholds_severity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.jsonl"
    argv = ["--preset", "paper", "--sessions", "2", "--steps", "5", "--out", str(out)]
    assert main(["simulate", *argv]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 0
    text = capsys.readouterr().out
    assert "warning: strategy adaptive_integration: only 8 transitions" in text
    assert "warning: severity: only 8 transitions (fewer than 30)" in text
    assert "not reported" in text and "α =" not in text
    assert " ± " in text  # the rate is printed with its standard error
    assert main(["analyze", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["warnings"] and document["severity"]["alpha_stderr"] > 0


def test_analyze_large_run_prints_estimates_with_standard_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs.jsonl"
    argv = ["--strategy", "adaptive_integration", "--sessions", "20", "--steps", "30"]
    assert main(["simulate", *argv, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 0
    text = capsys.readouterr().out
    assert "warning" not in text
    assert "α = " in text and "α − β = " in text and text.count(" ± ") >= 5


# ----------------------------------------------------------------------------- plot


@pytest.mark.skipif(not has_matplotlib(), reason="needs the plot extra")
def test_plot_session_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs.jsonl"
    argv = ["--preset", "paper", "--sessions", "2", "--steps", "20", "--out", str(runs)]
    assert main(["simulate", *argv]) == 0
    capsys.readouterr()
    plots = tmp_path / "plots"
    assert main(["plot", str(runs), "--session", "paper/0000", "-o", str(plots)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == plots / "timeline-paper_0000.png" and looks_like_png(written)
    two = ["--session", "paper/0000", "--session", "paper/0001", "-o", str(plots), "--json"]
    assert main(["plot", str(runs), *two]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["sessions"] == ["paper/0000", "paper/0001"]
    assert looks_like_png(Path(document["plots"][0]))
    assert main(["plot", str(runs), "--session", "nobody", "-o", str(plots)]) == 1
    err = capsys.readouterr().err
    assert "['nobody'] not in the file" in err and "'paper/0000'" in err
    assert main(["plot", str(runs), "-o", str(plots / "analysis"), "--json"]) == 0
    names = [Path(p).name for p in json.loads(capsys.readouterr().out)["plots"]]
    assert names == ["trajectories.png", "rates.png", "interference.png", "severity.png"]


def test_plot_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path / "missing.jsonl"), "--session", "x"]) == 1
    assert "cannot open" in capsys.readouterr().err


# ----------------------------------------------------------------------------- demo


def test_demo_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots"
    argv = ["--sessions", "100", "--steered-sessions", "4", "--steps", "50", "--out", str(out)]
    assert main(["demo", *argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert all(row["ok"] for row in document["paper_table"])
    policies = document["experiment"]["policies"]
    assert list(policies) == [
        "efficiency_focused",
        "security_focused",
        "feature_focused",
        "adaptive_integration",
        "paper",
        "predictive",
    ]
    if document["plot_error"] is None:
        names = [Path(p).name for p in document["plots"]]
        assert names == [
            "trajectories.png",
            "rates.png",
            "interference.png",
            "severity.png",
            "timeline.png",
            "timeline.jsonl",
        ]
        assert all(looks_like_png(Path(p)) for p in document["plots"] if p.endswith(".png"))
        sessions = {r.session for r in read_jsonl(out / "timeline.jsonl").records}
        assert sessions == {f"{name}/0000" for name in policies}


def test_demo_worker_split_changes_no_number(capsys: pytest.CaptureFixture[str]) -> None:
    """The forked worker runs the 'paper' preset; every number matches the one-process run."""

    def outcomes(workers: str) -> dict[str, dict[str, object]]:
        argv = ["--sessions", "20", "--steered-sessions", "3", "--steps", "15", "--no-plots"]
        assert main(["demo", *argv, "--workers", workers, "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        policies: dict[str, dict[str, object]] = document["experiment"]["policies"]
        for outcome in policies.values():
            outcome.pop("seconds")
        return policies

    single, split = outcomes("1"), outcomes("2")
    assert list(split) == list(single)
    for name in single:
        for key, value in single[name].items():
            expected = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            assert split[name][key] == expected, (name, key)


def test_paper_table_rows() -> None:
    import numpy as np

    from steerloop.analysis import fit_trajectories
    from steerloop.simulate import PAPER_STRATEGIES, paper_environment, paper_table, rollout_arrays

    data = rollout_arrays(
        paper_environment(), PAPER_STRATEGIES, sessions=100, steps=50, rng=np.random.default_rng(5)
    )
    rows = paper_table(fit_trajectories(data))
    assert len(rows) == 8 and all(row["ok"] for row in rows)


# ----------------------------------------------------------------------------- end to end


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steerloop", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.timeout(2 * TIMEOUT)
def test_cli_demo_end_to_end(tmp_path: Path) -> None:
    result = cli("demo", "--steered-sessions", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reproduced" in result.stdout and "predictive" in result.stdout
    assert result.stderr == ""  # not a terminal: no progress bar, no traceback
    written = tmp_path / "steerloop-demo-output"
    if "plots written" in result.stdout:
        assert "steerloop plot" in result.stdout
        assert sorted(p.name for p in written.iterdir()) == sorted(
            [
                "trajectories.png",
                "rates.png",
                "interference.png",
                "severity.png",
                "timeline.png",
                "timeline.jsonl",
            ]
        )


@pytest.mark.timeout(2 * TIMEOUT)
def test_cli_simulate_analyze_plot(tmp_path: Path) -> None:
    result = cli(
        "simulate", "--preset", "predictive", "--sessions", "3", "--steps", "10",
        "--seed", "2", "--out", "runs.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    result = cli("analyze", "runs.jsonl", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records"] == 30
    result = cli("analyze", "missing.jsonl", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    result = cli("simulate", cwd=tmp_path)
    assert result.returncode == 2
    if has_matplotlib():
        result = cli("plot", "runs.jsonl", "--session", "predictive/0001", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "steerloop-plots" / "timeline-predictive_0001.png").exists()
