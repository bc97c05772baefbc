"""The JSONL trajectory format: one line per loop step, written live or by the simulator.

Format (version 2; version 1 files read unchanged)
---------------------------------------------------
A UTF-8 text file, one JSON object per line (`JSON Lines <https://jsonlines.org>`_). Blank
lines are ignored. The **first** non-blank line is the header::

    {"format": "steerloop.trajectories", "version": 2,
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

A steered loop also records what the controller made of the step (version 2; all optional,
absent for static runs and in version 1 files). They are what the per-session timeline
(``steerloop plot FILE --session ID``, :mod:`steerloop.analysis.timeline`) draws:

* ``filtered`` (object): the filtered objective state x̂_t after this step's update (the
  ``objective.<name>`` diagnostics), keyed by objective; ``null`` for a missing value.
* ``rule`` (string or ``null``): the rule that acted in the decision that followed this
  response (or matched while the minimum dwell held the strategy); ``null`` when none did.
* ``switched`` (boolean): whether that decision changed the strategy, i.e. step t + 1 runs a
  different strategy from step t.

Any other key on a line is an error (typos should not pass silently). Readers report the line
number of the first bad line (:class:`steerloop.errors.TrajectoryFormatError`).

Writing
-------
:func:`write_jsonl` writes a header and records;
:class:`~steerloop.analysis.recorder.TrajectoryRecorder` appends steps as they happen
(``recorder.record(...)``) and is also a controller listener
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
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
]

FORMAT_NAME = "steerloop.trajectories"
#: Version written; readers accept 1 and 2 (2 adds the optional ``filtered``, ``rule`` and
#: ``switched`` record fields).
FORMAT_VERSION = 2

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Source = str | Path | IO[str]


def _moved(name: str, module: str) -> Any:
    """Resolve names that moved away from ``module``.

    ``TrajectoryFormatError`` moved to :mod:`steerloop.errors`; importing it from
    :mod:`steerloop.analysis` or this module still works and warns. ``TrajectoryRecorder``
    lives in :mod:`steerloop.analysis.recorder` (exported by :mod:`steerloop.analysis`); it
    is not re-exported from here, since the recorder imports this module (an import cycle).
    """
    if name == "TrajectoryRecorder" and module == __name__:
        raise AttributeError(
            f"{module}.TrajectoryRecorder moved to steerloop.analysis.recorder: "
            "from steerloop.analysis import TrajectoryRecorder",
        )
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
    version: Literal[1, 2] = 2
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
    filtered: dict[str, float | None] | None = None
    rule: str | None = None
    switched: bool | None = None

    @field_validator("filtered")
    @classmethod
    def _finite(cls, filtered: dict[str, float | None] | None) -> dict[str, float | None] | None:
        for name, value in (filtered or {}).items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"filtered {name!r} = {value} is not finite (write null)")
        return filtered

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


#: Lines between two calls of a reader's ``progress`` callback.
PROGRESS_EVERY = 1000


def _iter_lines(
    handle: IO[str], progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, str]]:
    consumed = 0
    for number, line in enumerate(handle, start=1):
        if progress is not None:
            consumed += len(line)
            if number % PROGRESS_EVERY == 0:
                progress(consumed)
        if line.strip():
            yield number, line
    if progress is not None:
        progress(consumed)


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
    for field, values in (("scores", record.scores), ("filtered", record.filtered or {})):
        unknown = [key for key in values if key not in objectives]
        if unknown:
            raise _FormatError(
                name,
                number,
                f"{field} has unknown objective(s) {unknown}; the header declares "
                f"{sorted(objectives)}",
            )
    return record


def iter_jsonl(
    source: Source, *, progress: Callable[[int], None] | None = None
) -> Iterator[TrajectoryHeader | TrajectoryRecord]:
    """Stream a trajectory file: yields the header first, then each record.

    Parameters
    ----------
    source : str, Path or text stream
        File to read (opened and closed here) or an open text stream (left open).
    progress : callable, optional
        Called with the number of characters read so far every :data:`PROGRESS_EVERY` lines
        and once at the end (for a progress bar: about the bytes read for ASCII files).

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
        lines = _iter_lines(handle, progress)
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


def read_jsonl(source: Source, *, progress: Callable[[int], None] | None = None) -> TrajectoryLog:
    """Read a whole trajectory file (see :func:`iter_jsonl` for streaming and ``progress``)."""
    items = iter_jsonl(source, progress=progress)
    header = next(items)
    assert isinstance(header, TrajectoryHeader)
    records = [item for item in items if isinstance(item, TrajectoryRecord)]
    return TrajectoryLog(header=header, records=records)


def _clean(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {
        key: None if value is None or not math.isfinite(value) else float(value)
        for key, value in values.items()
    }


def _record_dict(
    session: str,
    step: int,
    strategy: str,
    scores: Mapping[str, float | None],
    severity: float | None,
    filtered: Mapping[str, float | None] | None = None,
    rule: str | None = None,
    switched: bool | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "session": session,
        "step": step,
        "strategy": strategy,
        "scores": _clean(scores),
    }
    if severity is not None and math.isfinite(severity):
        line["severity"] = float(severity)
    if filtered is not None:
        line["filtered"] = _clean(filtered)
    if rule is not None:
        line["rule"] = rule
    if switched is not None:
        line["switched"] = bool(switched)
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
    for r in records:
        line = _record_dict(
            r.session, r.step, r.strategy, r.scores, r.severity, r.filtered, r.rule, r.switched
        )
        target.write(json.dumps(line) + "\n")
        count += 1
    return count


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
