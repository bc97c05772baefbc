"""SecurityScorer: bandit's findings on the code of a response (see :mod:`.code`)."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import logging
import math
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from steerloop.errors import ScorerError
from steerloop.scoring._codeinput import (
    EXTRA_HINT,
    MAX_CODE_BYTES,
    code_from_response,
    syntax_error,
    task_from_context,
)
from steerloop.scoring.tasks import assemble_program

__all__ = ["Finding", "SecurityScorer"]


@dataclass(frozen=True)
class Finding:
    """One bandit finding (the issue text is left out: it can quote the code)."""

    test_id: str
    test_name: str
    severity: Literal["LOW", "MEDIUM", "HIGH", "UNDEFINED"]
    confidence: Literal["LOW", "MEDIUM", "HIGH", "UNDEFINED"]
    line: int


class _Mute(logging.Filter):
    """Drops bandit's and stevedore's log records while *this thread* runs bandit.

    bandit logs at DEBUG the AST of the code it scans (string constants included) and warns
    about module names; the scoring package must not log the response, so records created
    while a scan runs in the current thread are dropped. Other uses of bandit are unaffected.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "active", False)


_MUTE = _Mute()
_bandit_lock = threading.Lock()
_bandit_modules: dict[str, Any] = {}


def _module_names(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return [package]
    names = [package]
    for location in spec.submodule_search_locations:
        for root, _dirs, files in os.walk(location):
            relative = os.path.relpath(root, location)
            parts = [] if relative == "." else relative.split(os.sep)
            if "__pycache__" in parts or "tests" in parts:
                continue
            for filename in files:
                if filename.endswith(".py"):
                    stem = filename[:-3]
                    dotted = [package, *parts] + ([] if stem == "__init__" else [stem])
                    names.append(".".join(dotted))
    return names


def _load_bandit() -> dict[str, Any]:
    """Import bandit once (under the lock, with its logging muted)."""
    if _bandit_modules:
        return _bandit_modules
    if importlib.util.find_spec("bandit") is None:
        raise ScorerError("security", "unavailable", f"bandit is not installed; {EXTRA_HINT}")
    for package in ("bandit", "stevedore"):
        if importlib.util.find_spec(package) is not None:
            for name in _module_names(package):
                logging.getLogger(name).addFilter(_MUTE)
    _MUTE.local.active = True
    try:
        # bandit 1.9.4 passes stevedore an argument stevedore deprecates; that warning is
        # bandit's business, not the caller's (this block runs once, at first use).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from bandit.core import config as b_config
            from bandit.core import manager as b_manager
    finally:
        _MUTE.local.active = False
    _bandit_modules.update(config=b_config, manager=b_manager)
    return _bandit_modules


class SecurityScorer:
    """Security of the code from bandit's findings, weighted by severity × confidence.

    Formula
    -------
    ``score = exp(-P / scale)`` with the penalty ``P = Σ_findings w_sev · w_conf``,
    ``w_sev`` = 1 (LOW), 2 (MEDIUM), 4 (HIGH) and ``w_conf`` = 0.5 (LOW), 0.75 (MEDIUM),
    1 (HIGH); ``scale`` = 4 by default. No finding gives 1.0; one HIGH/HIGH finding
    (``subprocess(..., shell=True)``) gives e⁻¹ ≈ 0.37; one MEDIUM/HIGH (``eval``,
    ``pickle.loads``, ``yaml.load``) e^-0.5 ≈ 0.61; one LOW/MEDIUM (a hard-coded password)
    e^-0.1875 ≈ 0.83. Findings add up, so the score falls monotonically with each.

    ``# nosec`` comments are ignored (generated code must not silence its own findings).
    Code that does not parse is a failure (reason ``invalid_input``), never "no findings".
    bandit runs in-process (pinned: bandit==1.9.4, checked by a golden-findings test against
    the bandit CLI); ``B101`` (``assert`` used) is skipped by default.

    Parameters
    ----------
    objective
        Name of the objective scored (default ``"security"``).
    name
        Scorer name (default: the objective).
    scale
        Penalty scale of the formula.
    skip
        bandit test ids not to run.
    max_bytes
        Largest code accepted.
    """

    SEVERITY_WEIGHTS: Mapping[str, float] = {
        "UNDEFINED": 1.0,
        "LOW": 1.0,
        "MEDIUM": 2.0,
        "HIGH": 4.0,
    }
    CONFIDENCE_WEIGHTS: Mapping[str, float] = {
        "UNDEFINED": 0.5,
        "LOW": 0.5,
        "MEDIUM": 0.75,
        "HIGH": 1.0,
    }

    def __init__(
        self,
        *,
        objective: str = "security",
        name: str | None = None,
        scale: float = 4.0,
        skip: tuple[str, ...] | list[str] = ("B101",),
        max_bytes: int = MAX_CODE_BYTES,
    ) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.objectives: tuple[str, ...] = (objective,)
        self.name: str = name or objective
        self.scale = float(scale)
        self.skip = frozenset(skip)
        self.max_bytes = max_bytes

    def findings(self, code: str) -> tuple[Finding, ...]:
        """bandit's findings on ``code``, ``# nosec`` ignored, sorted by line.

        Raises
        ------
        ScorerError
            Reason ``"invalid_input"`` when the code does not parse; ``"unavailable"`` when
            bandit is not installed.
        """
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise syntax_error(self.name, exc) from None
        except (ValueError, RecursionError, MemoryError):
            raise ScorerError(self.name, "invalid_input", "code cannot be parsed") from None
        with _bandit_lock:
            modules = _load_bandit()
            _MUTE.local.active = True
            try:
                manager = modules["manager"].BanditManager(
                    modules["config"].BanditConfig(),
                    "file",
                    ignore_nosec=True,
                    quiet=True,
                    profile={"include": set(), "exclude": set(self.skip)},
                )
                fname = "candidate.py"
                files = [fname]
                manager.files_list = list(files)
                manager._parse_file(fname, io.BytesIO(code.encode("utf-8")), files)
                skipped = list(manager.skipped)
                issues = list(manager.get_issue_list())
            finally:
                _MUTE.local.active = False
        if skipped:
            raise ScorerError(
                self.name, "invalid_input", f"bandit could not scan the code ({skipped[0][1]})"
            )
        found = [
            Finding(
                test_id=str(issue.test_id),
                test_name=str(issue.test),
                severity=str(issue.severity).upper(),  # type: ignore[arg-type]
                confidence=str(issue.confidence).upper(),  # type: ignore[arg-type]
                line=int(issue.lineno),
            )
            for issue in issues
        ]
        return tuple(sorted(found, key=lambda f: (f.line, f.test_id)))

    def penalty(self, findings: tuple[Finding, ...]) -> float:
        """``P = Σ w_sev · w_conf`` over the findings."""
        return math.fsum(
            self.SEVERITY_WEIGHTS.get(f.severity, 1.0)
            * self.CONFIDENCE_WEIGHTS.get(f.confidence, 0.5)
            for f in findings
        )

    def score_code(self, code: str) -> float:
        """The security score of ``code`` (see the class docstring)."""
        if not code.strip():
            raise ScorerError(self.name, "invalid_input", "the response contains no code")
        return math.exp(-self.penalty(self.findings(code)) / self.scale)

    def score(self, response: object, context: Mapping[str, Any]) -> dict[str, float]:
        """Score the response's code; a HumanEval completion is scored with its prompt."""
        code = code_from_response(response, max_bytes=self.max_bytes, scorer=self.name)
        if code.strip():
            task = task_from_context(context, None)
            if task is not None and task.prompt:
                try:
                    ast.parse(code)
                except SyntaxError:
                    # A HumanEval completion (a bare body) parses with its prompt; if not,
                    # the syntax error is reported below on the response's own code.
                    with contextlib.suppress(SyntaxError):
                        code = assemble_program(code, task)
        return {self.objectives[0]: self.score_code(code)}
