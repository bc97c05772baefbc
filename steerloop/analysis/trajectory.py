"""The JSONL trajectory format: one line per loop step, written live or by the simulator.

Format (version 1)
------------------
A UTF-8 text file, one JSON object per line (`JSON Lines <https://jsonlines.org>`_). Blank
lines are ignored. The **first** non-blank line is the header::

    {"format": "steerloop.trajectories", "version": 1,
     "objectives": ["security", "efficiency", "functionality"], "dt": 1.0, "meta": {}}

``objectives`` fixes the vector order; ``dt`` is the time Δt between consecutive steps
(default 1); ``meta`` is free-form (who wrote the file, the policy, the seed…). Every other
line is one step of one session::

    {"session": "user-42", "step": 0, "strategy": "feature_focused",
     "scores": {"security": 0.41, "efficiency": null, "functionality": 0.62},
     "severity": null}

* ``session`` (string): the loop's id. Sessions may interleave in any order.
* ``step`` (integer ≥ 0): the step index within the session (0 = first response). Each
  (session, step) appears at most once; steps need not be contiguous (a gap breaks the
  chain of transitions).
* ``strategy`` (string): the strategy whose prompt **produced this response**; the
  transition from step t to step t + 1 is attributed to the strategy of step t + 1, as the
  online controller does.
* ``scores`` (object): raw scores in [0, 1] keyed by objective name. ``null`` or an absent key
  is a missing score; a name not in the header is an error.
* ``severity`` (number in [0, 1] or ``null``, optional): the loop's severity when it was
  measured by a dedicated scorer; when absent, analysis uses s = 1 − min_i score_i.

Any other key on a line is an error (typos should not pass silently). Readers report the line
number of the first bad line (:class:`steerloop.errors.TrajectoryFormatError`).

Writing
-------
:func:`write_jsonl` writes a header and records; :class:`TrajectoryRecorder` appends steps as
they happen (``recorder.record(...)``) and is also a controller listener
(``controller.add_listener(recorder)``). The simulator writes the same format
(:meth:`TrajectoryArrays.records`).

Examples
--------
>>> import io
>>> buffer = io.StringIO()
>>> header = TrajectoryHeader(objectives=["a", "b"])
>>> rec = TrajectoryRecord(session="s", step=0, strategy="x", scores={"a": 0.5, "b": None})
>>> write_jsonl(buffer, header, [rec])
1
>>> log = read_jsonl(io.StringIO(buffer.getvalue()))
>>> log.header.objectives, log.records[0].scores
(['a', 'b'], {'a': 0.5, 'b': None})
"""

from __future__ import annotations

import io
import json
import math
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from steerloop.errors import TrajectoryFormatError as _FormatError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TrajectoryArrays",
    "TrajectoryHeader",
    "TrajectoryLog",
    "TrajectoryRecord",
    "TrajectoryRecorder",
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
]

FORMAT_NAME = "steerloop.trajectories"
FORMAT_VERSION = 1

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Source = str | Path | IO[str]


def _moved(name: str, module: str) -> Any:
    """Resolve names that moved away from ``module`` (with a DeprecationWarning).

    ``TrajectoryFormatError`` lives in :mod:`steerloop.errors` since 0.2; importing it from
    :mod:`steerloop.analysis` or this module still works and warns.
    """
    if name == "TrajectoryFormatError":
        warnings.warn(
            f"importing TrajectoryFormatError from {module} is deprecated; "
            "import it from steerloop.errors",
            DeprecationWarning,
            stacklevel=3,
        )
        return _FormatError
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name: str) -> Any:
    return _moved(name, __name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrajectoryHeader(_Model):
    """First line of a trajectory file."""

    format: Literal["steerloop.trajectories"] = "steerloop.trajectories"
    version: Literal[1] = 1
    objectives: list[str] = Field(min_length=1)
    dt: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("objectives")
    @classmethod
    def _unique(cls, objectives: list[str]) -> list[str]:
        if len(set(objectives)) != len(objectives):
            raise ValueError(f"objective names must be unique, got {objectives}")
        return objectives


class TrajectoryRecord(_Model):
    """One step of one session (see the module docstring for the meaning of each field)."""

    session: str = Field(min_length=1)
    step: int = Field(ge=0)
    strategy: str = Field(min_length=1)
    scores: dict[str, float | None]
    severity: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)

    @field_validator("scores")
    @classmethod
    def _in_range(cls, scores: dict[str, float | None]) -> dict[str, float | None]:
        for name, value in scores.items():
            if value is not None and not (0.0 <= value <= 1.0):
                raise ValueError(
                    f"score {name!r} = {value} is outside [0, 1] (write null for a missing score)"
                )
        return scores


class TrajectoryLog(_Model):
    """A whole trajectory file in memory: the header and its records in file order."""

    header: TrajectoryHeader
    records: list[TrajectoryRecord]


def _source_name(source: Source) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return str(getattr(source, "name", "<stream>"))


def _first_error(error: ValidationError) -> str:
    item = error.errors()[0]
    loc = ".".join(str(part) for part in item["loc"])
    return f"{loc}: {item['msg']}" if loc else str(item["msg"])


def _iter_lines(handle: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield number, line


def _parse_header(name: str, number: int, line: str) -> TrajectoryHeader:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise _FormatError(name, number, f"not valid JSON ({error.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise _FormatError(
            name,
            number,
            f'the first line must be the header {{"format": "{FORMAT_NAME}", "version": 1, '
            '"objectives": [...]}',
        )
    try:
        return TrajectoryHeader.model_validate(data)
    except ValidationError as error:
        raise _FormatError(name, number, f"bad header: {_first_error(error)}") from None


def _parse_record(
    name: str, number: int, line: str, objectives: frozenset[str]
) -> TrajectoryRecord:
    try:
        record = TrajectoryRecord.model_validate_json(line)
    except ValidationError as error:
        if error.errors()[0]["type"] == "json_invalid":
            raise _FormatError(name, number, "not valid JSON") from None
        raise _FormatError(name, number, _first_error(error)) from None
    unknown = [key for key in record.scores if key not in objectives]
    if unknown:
        raise _FormatError(
            name,
            number,
            f"scores has unknown objective(s) {unknown}; the header declares {sorted(objectives)}",
        )
    return record


def iter_jsonl(source: Source) -> Iterator[TrajectoryHeader | TrajectoryRecord]:
    """Stream a trajectory file: yields the header first, then each record.

    Parameters
    ----------
    source : str, Path or text stream
        File to read (opened and closed here) or an open text stream (left open).

    Raises
    ------
    steerloop.errors.TrajectoryFormatError
        On the first malformed line, with its line number; on an empty file.
    """
    name = _source_name(source)
    if isinstance(source, str | Path):
        try:
            handle: IO[str] = open(source, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as error:
            raise _FormatError(name, None, f"cannot open: {error.strerror}") from None
        owned = True
    else:
        handle, owned = source, False
    try:
        lines = _iter_lines(handle)
        first = next(lines, None)
        if first is None:
            raise _FormatError(name, None, "empty file: expected a header line")
        header = _parse_header(name, *first)
        yield header
        objectives = frozenset(header.objectives)
        try:
            for number, line in lines:
                yield _parse_record(name, number, line, objectives)
        except UnicodeDecodeError as error:
            raise _FormatError(name, None, f"not UTF-8 text ({error.reason})") from None
    finally:
        if owned:
            handle.close()


def read_jsonl(source: Source) -> TrajectoryLog:
    """Read a whole trajectory file (see :func:`iter_jsonl` for streaming)."""
    items = iter_jsonl(source)
    header = next(items)
    assert isinstance(header, TrajectoryHeader)
    records = [item for item in items if isinstance(item, TrajectoryRecord)]
    return TrajectoryLog(header=header, records=records)


def _record_dict(
    session: str,
    step: int,
    strategy: str,
    scores: Mapping[str, float | None],
    severity: float | None,
) -> dict[str, Any]:
    clean: dict[str, float | None] = {}
    for key, value in scores.items():
        clean[key] = None if value is None or not math.isfinite(value) else float(value)
    line: dict[str, Any] = {"session": session, "step": step, "strategy": strategy, "scores": clean}
    if severity is not None and math.isfinite(severity):
        line["severity"] = float(severity)
    return line


def write_jsonl(
    target: Source,
    header: TrajectoryHeader,
    records: Iterable[TrajectoryRecord],
) -> int:
    """Write ``header`` and ``records`` as JSON Lines; returns the number of records.

    ``target`` is a path (created or truncated) or an open text stream (left open).
    """
    if isinstance(target, str | Path):
        with open(target, "w", encoding="utf-8") as handle:
            return write_jsonl(handle, header, records)
    target.write(header.model_dump_json() + "\n")
    count = 0
    for record in records:
        target.write(record.model_dump_json(exclude_none=False) + "\n")
        count += 1
    return count


class TrajectoryRecorder:
    """Append steps to a trajectory file as they happen (opt-in, thread-safe).

    Use it directly (``recorder.record(session_id, step, strategy, scores)``) or as a
    controller listener: ``controller.add_listener(recorder)`` records every decision (the
    step is ``decision.step − 1``, the strategy ``decision.previous_strategy`` — the one that
    produced the scored response — the scores the ``score.<name>`` diagnostics and the
    severity ``severity.value`` when the policy reads severity from a scorer).

    Parameters
    ----------
    target : str, Path or text stream
        A path is opened for writing (truncated) and closed by :meth:`close`; a stream is
        written to and left open.
    objectives : sequence of str
        Objective names (header).
    dt : float
        Δt between steps (header).
    meta : mapping, optional
        Free-form header metadata.
    record_severity : bool
        Whether the listener writes ``severity.value`` (default: no — analysis then recomputes
        1 − min score from the raw scores).

    Examples
    --------
    >>> import io
    >>> stream = io.StringIO()
    >>> with TrajectoryRecorder(stream, ["a"]) as recorder:
    ...     recorder.record("s1", 0, "x", {"a": 0.25})
    >>> stream.getvalue().splitlines()[1]
    '{"session": "s1", "step": 0, "strategy": "x", "scores": {"a": 0.25}}'
    """

    def __init__(
        self,
        target: Source,
        objectives: Sequence[str],
        *,
        dt: float = 1.0,
        meta: Mapping[str, Any] | None = None,
        record_severity: bool = False,
    ) -> None:
        self._header = TrajectoryHeader(objectives=list(objectives), dt=dt, meta=dict(meta or {}))
        self._objectives = tuple(objectives)
        self._lock = threading.Lock()
        self._record_severity = record_severity
        if isinstance(target, str | Path):
            self._handle: IO[str] = open(target, "w", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._handle, self._owned = target, False
        self._closed = False
        self._count = 0
        self._handle.write(self._header.model_dump_json() + "\n")

    @property
    def header(self) -> TrajectoryHeader:
        """The header written on the first line."""
        return self._header

    @property
    def count(self) -> int:
        """Records written so far."""
        return self._count

    def record(
        self,
        session_id: str,
        step: int,
        strategy: str,
        scores: Mapping[str, float | None],
        severity: float | None = None,
    ) -> None:
        """Append one step. Non-finite scores are written as ``null`` (missing)."""
        unknown = [key for key in scores if key not in self._objectives]
        if unknown:
            raise ValueError(
                f"unknown objective(s) {unknown}; recorder objectives: {self._objectives}"
            )
        line = json.dumps(_record_dict(session_id, step, strategy, scores, severity))
        with self._lock:
            if self._closed:
                raise ValueError("the recorder is closed")
            self._handle.write(line + "\n")
            self._count += 1

    def __call__(self, session: Any, decision: Any) -> None:
        """Controller listener: record ``decision`` of ``session`` (see the class docstring)."""
        diagnostics: Mapping[str, Any] = decision.diagnostics
        scores: dict[str, float | None] = {}
        for name in self._objectives:
            value = diagnostics.get(f"score.{name}")
            scores[name] = float(value) if isinstance(value, int | float) else None
        severity = None
        if self._record_severity:
            value = diagnostics.get("severity.value")
            severity = float(value) if isinstance(value, int | float) else None
        self.record(
            str(session.id), int(decision.step) - 1, decision.previous_strategy, scores, severity
        )

    def flush(self) -> None:
        """Flush the underlying stream."""
        with self._lock:
            self._handle.flush()

    def close(self) -> None:
        """Flush, and close the file if the recorder opened it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._handle.flush()
            if self._owned:
                self._handle.close()

    def __enter__(self) -> TrajectoryRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TrajectoryArrays:
    """Columnar trajectories: what the analysis works on (one row per step).

    Attributes
    ----------
    objectives : tuple of str
        Column order of ``scores``.
    session_names, strategy_names : tuple of str
        Names indexed by ``session`` and ``strategy``.
    session, step, strategy : int arrays, shape (n,)
    scores : float array, shape (n, d)
        NaN marks a missing score.
    severity : float array, shape (n,)
        NaN where the record carries no severity.
    dt : float
        Δt between steps.
    """

    objectives: tuple[str, ...]
    session_names: tuple[str, ...]
    strategy_names: tuple[str, ...]
    session: IntArray
    step: IntArray
    strategy: IntArray
    scores: FloatArray
    severity: FloatArray
    dt: float = 1.0

    def __post_init__(self) -> None:
        n = self.session.shape[0]
        for name in ("step", "strategy", "severity"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},)")
        if self.scores.shape != (n, len(self.objectives)):
            raise ValueError(f"scores must have shape ({n}, {len(self.objectives)})")

    def __len__(self) -> int:
        return int(self.session.shape[0])

    @classmethod
    def from_records(
        cls,
        records: Iterable[TrajectoryRecord],
        objectives: Sequence[str],
        *,
        dt: float = 1.0,
    ) -> TrajectoryArrays:
        """Columns from records (scores of objectives not listed are ignored)."""
        sessions: dict[str, int] = {}
        strategies: dict[str, int] = {}
        session_col: list[int] = []
        step_col: list[int] = []
        strategy_col: list[int] = []
        score_rows: list[list[float]] = []
        severity_col: list[float] = []
        nan = math.nan
        for record in records:
            session_col.append(sessions.setdefault(record.session, len(sessions)))
            strategy_col.append(strategies.setdefault(record.strategy, len(strategies)))
            step_col.append(record.step)
            scores = record.scores
            score_rows.append(
                [nan if (v := scores.get(name)) is None else v for name in objectives]
            )
            severity_col.append(nan if record.severity is None else record.severity)
        d = len(objectives)
        return cls(
            objectives=tuple(objectives),
            session_names=tuple(sessions),
            strategy_names=tuple(strategies),
            session=np.asarray(session_col, dtype=np.intp),
            step=np.asarray(step_col, dtype=np.intp),
            strategy=np.asarray(strategy_col, dtype=np.intp),
            scores=np.asarray(score_rows, dtype=np.float64).reshape(len(score_rows), d),
            severity=np.asarray(severity_col, dtype=np.float64),
            dt=dt,
        )

    @classmethod
    def from_log(cls, log: TrajectoryLog) -> TrajectoryArrays:
        """Columns from a :class:`TrajectoryLog` (objectives and Δt from its header)."""
        return cls.from_records(log.records, log.header.objectives, dt=log.header.dt)

    def header(self, meta: Mapping[str, Any] | None = None) -> TrajectoryHeader:
        """A header for these trajectories."""
        return TrajectoryHeader(objectives=list(self.objectives), dt=self.dt, meta=dict(meta or {}))

    def records(self) -> Iterator[TrajectoryRecord]:
        """Rows as records (NaN scores become ``None``)."""
        for row in range(len(self)):
            scores = {
                name: None if math.isnan(v) else float(v)
                for name, v in zip(self.objectives, self.scores[row].tolist(), strict=True)
            }
            severity = float(self.severity[row])
            yield TrajectoryRecord(
                session=self.session_names[int(self.session[row])],
                step=int(self.step[row]),
                strategy=self.strategy_names[int(self.strategy[row])],
                scores=scores,
                severity=None if math.isnan(severity) else severity,
            )

    def write_jsonl(self, target: Source, *, meta: Mapping[str, Any] | None = None) -> int:
        """Write as a trajectory file (fast path, no per-row validation); returns rows."""
        if isinstance(target, str | Path):
            with open(target, "w", encoding="utf-8") as handle:
                return self.write_jsonl(handle, meta=meta)
        out: IO[str] = target
        out.write(self.header(meta).model_dump_json() + "\n")
        buffer = io.StringIO()
        scores = self.scores.tolist()
        severity = self.severity.tolist()
        sessions, strategies = self.session_names, self.strategy_names
        for row in range(len(self)):
            line = _record_dict(
                sessions[int(self.session[row])],
                int(self.step[row]),
                strategies[int(self.strategy[row])],
                dict(zip(self.objectives, scores[row], strict=True)),
                severity[row],
            )
            buffer.write(json.dumps(line))
            buffer.write("\n")
            if buffer.tell() > 1 << 20:
                out.write(buffer.getvalue())
                buffer = io.StringIO()
        out.write(buffer.getvalue())
        return len(self)
