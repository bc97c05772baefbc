"""Smoke test of benchmarks/stores.py: a quick run completes and reports every goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import PROCESS_TIMEOUT, ROOT, require_redis_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_quick_run_reports_every_goal() -> None:
    require_redis_server()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stores", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    assert document["redis"] is True and document["mode"] == "quick"
    assert {g["key"] for g in document["goals"]} == {
        "one_worker.ratio",
        "round_trips.one_worker",
        "round_trips.turns_common",
        "hot.updates_per_s",
        "hot.lost",
    }
    assert all(isinstance(g["value"], int | float) for g in document["goals"])
    assert document["hot"]["lost"] == 0 and document["hot"]["consistent"] is True
    # One round trip per update, plus two for the fleet pool every fleet.sync_every (10).
    assert document["round_trips"]["one_worker"] <= 1.2 + 1e-9
    # Workers taking turns: two in the common update, a pool sync adds two on one in ten.
    assert document["round_trips"]["turns_common"] == 2
    assert document["round_trips"]["turns"] <= 2.2 + 1e-9


def test_the_markdown_section_replaces_only_itself(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.stores import END, START, write_section
    finally:
        sys.path.remove(str(ROOT))
    path = tmp_path / "RESULTS.md"
    path.write_text("# results\n\nkeep me\n", encoding="utf-8")
    write_section(path, f"{START}\nfirst\n{END}")
    write_section(path, f"{START}\nsecond\n{END}")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# results\n\nkeep me\n") and "second" in text
    assert "first" not in text and text.count(START) == 1
