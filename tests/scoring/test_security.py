"""SecurityScorer: bandit findings weighted into [0, 1]; nosec ignored; syntax errors fail."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bandit")

from steerloop.errors import ScorerError
from steerloop.scoring import CompositeScorer
from steerloop.scoring.code import Finding, SecurityScorer

UNSAFE_SAFE = {
    "eval": (
        "def parse(text):\n    return eval(text)\n",
        "import ast\n\ndef parse(text):\n    return ast.literal_eval(text)\n",
    ),
    "pickle.loads": (
        "import pickle\n\ndef load(blob):\n    return pickle.loads(blob)\n",
        "import json\n\ndef load(blob):\n    return json.loads(blob)\n",
    ),
    "shell=True": (
        "import subprocess\n\ndef listing(name):\n"
        "    return subprocess.run('ls ' + name, shell=True, check=False)\n",
        "import subprocess\n\ndef listing(name):\n"
        "    return subprocess.run(['/bin/ls', '--', name], check=False)\n",
    ),
    "yaml.load": (
        "import yaml\n\ndef read(text):\n    return yaml.load(text)\n",
        "import yaml\n\ndef read(text):\n    return yaml.safe_load(text)\n",
    ),
    "hard-coded password": (
        "def connect(db):\n    password = 'hunter2'\n    return db.login('admin', password)\n",
        "import os\n\ndef connect(db):\n"
        "    password = os.environ['APP_PASSWORD']\n    return db.login('admin', password)\n",
    ),
}

# Findings of bandit 1.9.4 on GOLDEN (pinned in pyproject: bandit==1.9.4). If this test fails
# after a bandit upgrade, re-check the weights and update the expectation deliberately.
GOLDEN = (
    "import pickle\n"  # 1  B403
    "import subprocess\n"  # 2  B404
    "import yaml\n"  # 3
    "\n"
    "def handler(request):\n"  # 5
    "    password = 'hunter2'\n"  # 6  B105
    "    data = pickle.loads(request.body)\n"  # 7  B301
    "    config = yaml.load(request.text)\n"  # 8  B506
    "    subprocess.call(request.cmd, shell=True)\n"  # 9  B602
    "    value = eval(request.expr)  # nosec\n"  # 10 B307 (nosec ignored)
    "    assert value\n"  # 11 B101 (skipped by default)
    "    return data, config, value, password\n"
)
GOLDEN_FINDINGS = (
    ("B403", "LOW", "HIGH", 1),
    ("B404", "LOW", "HIGH", 2),
    ("B105", "LOW", "MEDIUM", 6),
    ("B301", "MEDIUM", "HIGH", 7),
    ("B506", "MEDIUM", "HIGH", 8),
    ("B602", "HIGH", "HIGH", 9),
    ("B307", "MEDIUM", "HIGH", 10),
)


@pytest.fixture(scope="module")
def scorer() -> SecurityScorer:
    return SecurityScorer()


def summary(findings: tuple[Finding, ...]) -> set[tuple[str, str, str, int]]:
    return {(f.test_id, f.severity, f.confidence, f.line) for f in findings}


@pytest.mark.parametrize("case", sorted(UNSAFE_SAFE))
def test_unsafe_snippet_ranks_below_its_safe_rewrite(case: str, scorer: SecurityScorer) -> None:
    unsafe, safe = UNSAFE_SAFE[case]
    unsafe_score = scorer.score(unsafe, {})["security"]
    safe_score = scorer.score(safe, {})["security"]
    assert 0.0 <= unsafe_score < safe_score <= 1.0, case


def test_clean_code_scores_one(scorer: SecurityScorer) -> None:
    assert scorer.score("def add(a, b):\n    return a + b\n", {}) == {"security": 1.0}


def test_golden_findings_in_process(scorer: SecurityScorer) -> None:
    assert summary(scorer.findings(GOLDEN)) == set(GOLDEN_FINDINGS)


def test_in_process_findings_match_the_bandit_cli(scorer: SecurityScorer, tmp_path: Path) -> None:
    """The CLI is bandit's stable interface; the in-process use must agree with it."""
    path = tmp_path / "golden.py"
    path.write_text(GOLDEN)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-f",
            "json",
            "-q",
            "--ignore-nosec",
            "-s",
            "B101",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(completed.stdout)
    cli = {
        (r["test_id"], r["issue_severity"], r["issue_confidence"], r["line_number"])
        for r in report["results"]
    }
    assert cli == summary(scorer.findings(GOLDEN)) == set(GOLDEN_FINDINGS)


def test_score_follows_the_documented_formula(scorer: SecurityScorer) -> None:
    penalty = 1 * 1 + 1 * 1 + 1 * 0.75 + 2 * 1 + 2 * 1 + 4 * 1 + 2 * 1
    assert scorer.penalty(scorer.findings(GOLDEN)) == pytest.approx(penalty)
    assert scorer.score(GOLDEN, {})["security"] == pytest.approx(math.exp(-penalty / 4.0))


def test_nosec_does_not_hide_findings(scorer: SecurityScorer) -> None:
    plain = "import pickle\n\ndef load(blob):\n    return pickle.loads(blob)\n"
    hidden = (
        "import pickle  # nosec\n\ndef load(blob):\n    return pickle.loads(blob)  # nosec B301\n"
    )
    assert summary(scorer.findings(hidden)) == summary(scorer.findings(plain))
    assert scorer.score(hidden, {}) == scorer.score(plain, {})
    assert scorer.score(plain, {})["security"] < 1.0


def test_syntax_error_is_a_failure_not_a_clean_bill(scorer: SecurityScorer) -> None:
    broken = "def f(:\n    secret_token_XYZ = eval('1')\n"
    with pytest.raises(ScorerError) as info:
        scorer.score(broken, {})
    assert info.value.reason == "invalid_input"
    assert "secret_token_XYZ" not in str(info.value)
    composite = CompositeScorer([scorer], objectives=["security"])
    result = composite.score(broken)
    assert "security" not in result.scores
    assert [(f.reason, f.objectives) for f in result.failures] == [("invalid_input", ("security",))]
    assert "secret_token_XYZ" not in result.failures[0].message


def test_no_code_and_oversized_code_are_failures(scorer: SecurityScorer) -> None:
    with pytest.raises(ScorerError):
        scorer.score("Sorry, I cannot help with that.\n```text\nnope\n```", {})
    with pytest.raises(ScorerError) as info:
        scorer.score("x = 1\n" * 20_000, {})
    assert "cap" in str(info.value)


def test_humaneval_completion_body_is_scored_with_its_prompt(scorer: SecurityScorer) -> None:
    task = {
        "prompt": "def parse(text):\n    '''Parse text.'''\n",
        "entry_point": "parse",
        "test": "def check(candidate):\n    assert candidate('1') == 1\n",
    }
    assert scorer.score("    return eval(text)\n", {"task": task})["security"] < 1.0
    assert scorer.score("    return int(text)\n", {"task": task})["security"] == 1.0


def test_bandit_does_not_log_the_code(
    scorer: SecurityScorer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "TOPSECRET_RESPONSE_TEXT_123"
    with caplog.at_level(logging.DEBUG):
        scorer.findings(f"x = eval('{secret}')\n")
        with pytest.raises(ScorerError):
            scorer.findings(f"def f(:\n  '{secret}'\n")
    assert secret not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith(("bandit", "stevedore"))]


def test_objective_can_be_renamed() -> None:
    renamed = SecurityScorer(objective="safety")
    assert renamed.objectives == ("safety",) and renamed.name == "safety"
    assert renamed.score("x = 1\n", {}) == {"safety": 1.0}


def test_missing_bandit_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from steerloop.scoring import security as security_module

    monkeypatch.setattr(security_module, "_bandit_modules", {})
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "bandit" else real_find_spec(name, *args),
    )
    with pytest.raises(ScorerError) as info:
        SecurityScorer().score("x = 1\n", {})
    assert info.value.reason == "unavailable"
    assert "pip install 'steerloop[code]'" in str(info.value)
