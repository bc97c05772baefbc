"""Record a running loop as a trajectory file (:mod:`steerloop.analysis.trajectory` format).

:class:`TrajectoryRecorder` appends one line per step as it happens, from your own loop
(``recorder.record(...)``) or as a controller listener (``controller.add_listener(recorder)``),
with what the per-session timeline needs: raw scores, strategy, filtered objectives, the rule
that acted and whether the strategy switched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from steerloop.analysis.trajectory import Source, TrajectoryHeader, _record_dict

__all__ = ["TrajectoryRecorder"]


class TrajectoryRecorder:
    """Append steps to a trajectory file as they happen (opt-in, thread-safe).

    Use it directly (``recorder.record(session_id, step, strategy, scores)``) or as a
    controller listener: ``controller.add_listener(recorder)`` records every decision (the
    step is ``decision.step − 1``, the strategy ``decision.previous_strategy`` — the one that
    produced the scored response — the scores the ``score.<name>`` diagnostics, ``filtered``
    the ``objective.<name>`` diagnostics, ``rule`` and ``switched`` the decision's ``rule``
    and ``changed``, and the severity ``severity.value`` when ``record_severity``).

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
        *,
        filtered: Mapping[str, float | None] | None = None,
        rule: str | None = None,
        switched: bool | None = None,
    ) -> None:
        """Append one step (the fields of :mod:`steerloop.analysis.trajectory`).

        Non-finite scores and filtered values are written as ``null`` (missing).
        """
        unknown = [key for key in (*scores, *(filtered or ())) if key not in self._objectives]
        if unknown:
            raise ValueError(
                f"unknown objective(s) {unknown}; recorder objectives: {self._objectives}"
            )
        line = json.dumps(
            _record_dict(
                session_id,
                step,
                strategy,
                scores,
                severity,
                filtered,
                rule,
                switched,
            )
        )
        with self._lock:
            if self._closed:
                raise ValueError("the recorder is closed")
            self._handle.write(line + "\n")
            self._count += 1

    def __call__(self, session: Any, decision: Any) -> None:
        """Controller listener: record ``decision`` of ``session`` (see the class docstring)."""
        diagnostics: Mapping[str, Any] = decision.diagnostics

        def number(name: str) -> float | None:
            value = diagnostics.get(name)
            return float(value) if isinstance(value, int | float) else None

        severity = number("severity.value") if self._record_severity else None
        self.record(
            str(session.id),
            int(decision.step) - 1,
            decision.previous_strategy,
            {name: number(f"score.{name}") for name in self._objectives},
            severity,
            filtered={name: number(f"objective.{name}") for name in self._objectives},
            rule=decision.rule,
            switched=bool(decision.changed),
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
