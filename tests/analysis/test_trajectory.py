"""Tests of the JSONL trajectory format: round trip, errors with line numbers, the recorder."""

from __future__ import annotations

import io
import itertools
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerloop.analysis import (
    TrajectoryArrays,
    TrajectoryHeader,
    TrajectoryRecord,
    TrajectoryRecorder,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)
from steerloop.errors import TrajectoryFormatError

OBJECTIVES = ["security", "efficiency", "functionality"]
HEADER = json.dumps({"format": "steerloop.trajectories", "version": 1, "objectives": ["a", "b"]})

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
score = st.one_of(st.none(), st.floats(0.0, 1.0, allow_nan=False))
records = st.lists(
    st.builds(
        TrajectoryRecord,
        session=names,
        step=st.integers(0, 10**6),
        strategy=names,
        scores=st.fixed_dictionaries({name: score for name in OBJECTIVES}),
        severity=score,
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(records=records, dt=st.floats(1e-3, 1e3), meta=st.dictionaries(names, st.integers()))
def test_round_trip(records: list[TrajectoryRecord], dt: float, meta: dict[str, int]) -> None:
    header = TrajectoryHeader(objectives=OBJECTIVES, dt=dt, meta=meta)
    buffer = io.StringIO()
    assert write_jsonl(buffer, header, records) == len(records)
    log = read_jsonl(io.StringIO(buffer.getvalue()))
    assert log.header == header
    assert log.records == records


@settings(max_examples=40, deadline=None)
@given(records=records)
def test_arrays_round_trip(records: list[TrajectoryRecord]) -> None:
    """Records → columns → records is exact (the simulator's fast writer agrees too)."""
    arrays = TrajectoryArrays.from_records(records, OBJECTIVES)
    assert list(arrays.records()) == records
    buffer = io.StringIO()
    arrays.write_jsonl(buffer)
    assert read_jsonl(io.StringIO(buffer.getvalue())).records == records


def test_file_paths(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    header = TrajectoryHeader(objectives=["a"])
    rec = TrajectoryRecord(session="s", step=3, strategy="x", scores={"a": 0.5})
    write_jsonl(path, header, [rec])
    items = list(iter_jsonl(path))
    assert items == [header, rec]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", None, "empty file"),
        ('{"session": "s"}\n', 1, "first line must be the header"),
        ("not json\n", 1, "not valid JSON"),
        (HEADER.replace('"version": 1', '"version": 3') + "\n", 1, "bad header"),
        (HEADER + "\n\n{oops\n", 3, "not valid JSON"),
        (HEADER + '\n{"session": "s", "step": -1, "strategy": "x", "scores": {}}\n', 2, "step"),
        (
            HEADER + '\n{"session": "s", "step": 0, "strategy": "x", "scores": {"a": 1.5}}\n',
            2,
            "outside",
        ),
        (
            HEADER + '\n{"session": "s", "step": 0, "strategy": "x", "scores": {"z": 0.5}}\n',
            2,
            "unknown objective",
        ),
        (
            HEADER + '\n{"session": "s", "step": 0, "strategy": "x", "scores": {}, "x": 1}\n',
            2,
            "Extra inputs",
        ),
        (
            HEADER + '\n{"session": "s", "step": 0, "strategy": "x", "scores": {"a": NaN}}\n',
            2,
            "scores",
        ),
    ],
)
def test_errors_report_line_numbers(text: str, line: int | None, message: str) -> None:
    with pytest.raises(TrajectoryFormatError, match=message) as info:
        read_jsonl(io.StringIO(text))
    assert info.value.line == line
    if line is not None:
        assert f"<stream>:{line}:" in str(info.value)


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryFormatError, match="cannot open"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_streaming_reads_lazily() -> None:
    text = HEADER + '\n{"session": "s", "step": 0, "strategy": "x", "scores": {}}\n{bad\n'
    items = iter_jsonl(io.StringIO(text))
    assert isinstance(next(items), TrajectoryHeader)
    assert isinstance(next(items), TrajectoryRecord)
    with pytest.raises(TrajectoryFormatError):
        next(items)


def test_recorder_writes_header_and_steps(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    with TrajectoryRecorder(path, OBJECTIVES, meta={"seed": 1}) as recorder:
        recorder.record("u1", 0, "adaptive_integration", {"security": 0.2, "efficiency": math.nan})
        recorder.record("u1", 1, "security_focused", {"security": 0.4}, severity=0.6)
        assert recorder.count == 2
    log = read_jsonl(path)
    assert log.header.meta == {"seed": 1}
    assert log.records[0].scores == {"security": 0.2, "efficiency": None}
    assert log.records[1].severity == 0.6
    with pytest.raises(ValueError, match="closed"):
        recorder.record("u1", 2, "x", {})
    recorder.close()  # idempotent


def test_recorder_rejects_unknown_objectives() -> None:
    recorder = TrajectoryRecorder(io.StringIO(), ["a"])
    with pytest.raises(ValueError, match="unknown objective"):
        recorder.record("s", 0, "x", {"b": 0.1})


def test_recorder_as_controller_listener() -> None:
    """Duck-typed listener: (session, decision) with the controller's Decision fields."""
    stream = io.StringIO()
    recorder = TrajectoryRecorder(stream, ["a", "b"], record_severity=True)
    session = SimpleNamespace(id="user-7")
    decision = SimpleNamespace(
        step=1,
        previous_strategy="x",
        rule="runaway",
        changed=True,
        diagnostics={
            "score.a": 0.25,
            "score.b": None,
            "objective.a": 0.3,
            "objective.b": 0.5,
            "severity.value": 0.75,
        },
    )
    recorder(session, decision)
    log = read_jsonl(io.StringIO(stream.getvalue()))
    assert log.header.version == 2
    assert log.records == [
        TrajectoryRecord(
            session="user-7",
            step=0,
            strategy="x",
            scores={"a": 0.25, "b": None},
            severity=0.75,
            filtered={"a": 0.3, "b": 0.5},
            rule="runaway",
            switched=True,
        )
    ]


def test_recorder_on_a_real_controller_writes_what_the_timeline_needs() -> None:
    from steerloop.controller import Controller

    controller = Controller(preset="paper")
    stream = io.StringIO()
    recorder = TrajectoryRecorder(stream, OBJECTIVES)
    controller.add_listener(recorder)
    session = controller.session("u")
    rng = np.random.default_rng(0)
    decisions = []
    for _ in range(12):
        # Security stays low (severity 1 - security > 0.7): after warm-up the runaway-severity
        # rule switches, then keeps matching on the strategy it chose (a rule, no switch).
        levels = [rng.uniform(0.05, 0.25), *rng.uniform(0.4, 0.9, 2).tolist()]
        scores = dict(zip(OBJECTIVES, levels, strict=True))
        decisions.append(session.update(scores))
    records = read_jsonl(io.StringIO(stream.getvalue())).records
    assert [r.step for r in records] == list(range(12))
    for record, decision in zip(records, decisions, strict=True):
        assert record.filtered == {o: decision.diagnostics[f"objective.{o}"] for o in OBJECTIVES}
        assert (record.rule, record.switched) == (decision.rule, decision.changed)
        assert record.strategy == decision.previous_strategy
    assert any(r.switched for r in records) and any(r.rule and not r.switched for r in records)
    for before, after in itertools.pairwise(records):
        assert before.switched == (before.strategy != after.strategy)


def test_version_1_files_still_read_and_new_fields_are_checked() -> None:
    v1 = HEADER + '\n{"session": "s", "step": 0, "strategy": "x", "scores": {"a": 0.5}}\n'
    log = read_jsonl(io.StringIO(v1))
    assert log.header.version == 1 and log.records[0].filtered is None
    bad = HEADER + (
        '\n{"session": "s", "step": 0, "strategy": "x", "scores": {}, "filtered": {"c": 0.5}}\n'
    )
    with pytest.raises(TrajectoryFormatError, match="filtered has unknown objective"):
        read_jsonl(io.StringIO(bad))


def test_arrays_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="scores"):
        TrajectoryArrays(
            objectives=("a",),
            session_names=("s",),
            strategy_names=("x",),
            session=np.zeros(2, dtype=np.intp),
            step=np.arange(2),
            strategy=np.zeros(2, dtype=np.intp),
            scores=np.zeros((2, 2)),
            severity=np.zeros(2),
        )


def test_trajectory_format_error_moved_to_errors_with_deprecated_old_paths() -> None:
    import steerloop.analysis
    import steerloop.analysis.trajectory

    for module in (steerloop.analysis, steerloop.analysis.trajectory):
        with pytest.warns(DeprecationWarning, match="import it from steerloop.errors"):
            old = module.TrajectoryFormatError  # type: ignore[attr-defined]
        assert old is TrajectoryFormatError
    assert issubclass(TrajectoryFormatError, ValueError)
    with pytest.raises(AttributeError):
        _ = steerloop.analysis.no_such_name  # type: ignore[attr-defined]


def test_the_recorder_is_not_re_exported_by_the_format_module_and_says_where_it_is() -> None:
    import steerloop.analysis
    import steerloop.analysis.trajectory

    with pytest.raises(AttributeError, match=r"moved to steerloop\.analysis\.recorder"):
        _ = steerloop.analysis.trajectory.TrajectoryRecorder  # type: ignore[attr-defined]
