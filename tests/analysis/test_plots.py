"""Tests of steerloop.analysis.plots and .timeline (PNG files; the error without matplotlib)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from steerloop.analysis import TrajectoryHeader, TrajectoryRecord, fit_trajectories, write_jsonl
from steerloop.analysis.plots import PLOT_FILES, require_matplotlib, write_plots
from steerloop.analysis.timeline import (
    SessionTimeline,
    read_timelines,
    strategy_colours,
    write_timelines,
)
from steerloop.simulate import PAPER_STRATEGIES, paper_environment, rollout_arrays

PNG = b"\x89PNG\r\n\x1a\n"


def test_write_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = rollout_arrays(
        paper_environment(), PAPER_STRATEGIES, sessions=10, steps=20, rng=np.random.default_rng(0)
    )
    report = fit_trajectories(data)
    paths = write_plots(report, data, tmp_path / "out", reference_rates={"feature_focused": 1.29})
    assert [p.name for p in paths] == list(PLOT_FILES)
    for path in paths:
        assert path.read_bytes()[:8] == PNG


def test_write_plots_on_a_tiny_run(tmp_path: Path) -> None:
    """Strategies without a fit get placeholders; nothing fails on a handful of records."""
    pytest.importorskip("matplotlib")
    data = rollout_arrays(
        paper_environment(), ["feature_focused"], sessions=1, steps=4, rng=np.random.default_rng(0)
    )
    report = fit_trajectories(data)
    assert report.strategies["feature_focused"].rate is None
    paths = write_plots(report, data, tmp_path)
    assert all(p.read_bytes()[:8] == PNG for p in paths)


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"steerloop\[plot\]"):
        require_matplotlib()


def steered_records() -> list[TrajectoryRecord]:
    plan = [  # (strategy, rule, switched) of steps 0..5
        ("a", None, False),
        ("a", "r1", True),
        ("b", "r1", False),
        ("b", "r2", True),
        ("a", None, False),
        ("a", None, False),
    ]
    return [
        TrajectoryRecord(
            session="s1",
            step=t,
            strategy=strategy,
            scores={"x": 0.1 * t, "y": None if t == 2 else 0.5},
            filtered={"x": 0.1 * t + 0.01, "y": 0.5},
            rule=rule,
            switched=switched,
        )
        for t, (strategy, rule, switched) in enumerate(plan)
    ]


def test_session_timeline_from_records() -> None:
    others = [TrajectoryRecord(session="s2", step=0, strategy="c", scores={"x": 0.3})]
    records = steered_records()
    timeline = SessionTimeline.from_records("s1", [*others, *reversed(records)], ["x", "y"])
    assert timeline.steps.tolist() == list(range(6))
    assert timeline.segments() == [(0, 1, "a"), (2, 3, "b"), (4, 5, "a")]
    assert timeline.switches() == [(1, "r1"), (3, "r2")]
    assert timeline.has_filtered and np.isnan(timeline.scores[2, 1])
    with pytest.raises(ValueError, match="no records for session 'nobody'"):
        SessionTimeline.from_records("nobody", records, ["x", "y"])
    static = SessionTimeline.from_records("s2", others, ["x", "y"])
    assert not static.has_filtered and static.switches() == []
    assert list(strategy_colours([timeline, static])) == ["a", "b", "c"]


def test_read_and_write_timelines(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    stream = io.StringIO()
    extra = TrajectoryRecord(session="s2", step=0, strategy="c", scores={"x": 0.3, "y": 0.2})
    write_jsonl(stream, TrajectoryHeader(objectives=["x", "y"]), [*steered_records(), extra])
    seen: list[int] = []
    timelines = read_timelines(io.StringIO(stream.getvalue()), ["s2", "s1"], progress=seen.append)
    assert [t.session for t in timelines] == ["s2", "s1"] and seen[-1] == len(stream.getvalue())
    path = write_timelines(timelines, tmp_path / "t.png", titles=["static", "steered"])
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match=r"\['gone'\] not in the file; it has 2 session"):
        read_timelines(io.StringIO(stream.getvalue()), ["gone"])
    with pytest.raises(ValueError, match="no timelines"):
        write_timelines([], tmp_path / "none.png")
