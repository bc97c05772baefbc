"""Typed errors raised by steerloop.

Every error steerloop raises derives from :class:`SteerloopError` and carries the fields a
caller needs to react without parsing the message::

    SteerloopError
    ├── PolicyError      a policy file or object is invalid (file, line, column, field path)
    ├── ShapeError       an array has the wrong shape (expected, got)
    ├── NotReadyError    an estimate was read before its warm-up finished (needed, have)
    ├── NumericalError   a computation produced a non-finite or ill-conditioned result
    ├── ScorerError      a scorer could not be built, or failed in strict mode (scorer, reason)
    ├── SnapshotVersionError  a session snapshot has a schema version this release cannot
    │                    read (found, supported)
    ├── TrajectoryFormatError  a trajectory (JSONL) file is malformed (source, line, detail);
    │                    also a ValueError
    └── StoreError       a session state store failed (store, key, reason)
        └── StoreConflictError   a compare-and-set lost to another writer (expected, actual,
                                 attempts); defined in :mod:`steerloop.stores.base`

    ScoreWarning (UserWarning)   a score was invalid or its key named no objective; it counted
                                 as missing (one warning per session and key)

Messages say how to fix the problem, not only what went wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "NotReadyError",
    "NumericalError",
    "PolicyError",
    "PolicyIssue",
    "ScoreWarning",
    "ScorerError",
    "ShapeError",
    "SnapshotVersionError",
    "SteerloopError",
    "StoreError",
    "TrajectoryFormatError",
]


class SteerloopError(Exception):
    """Base class of every error steerloop raises."""


@dataclass(frozen=True)
class PolicyIssue:
    """One problem found in a policy: where it is and what is wrong.

    ``line`` and ``column`` are 1-based; they are ``None`` when the policy did not come from a
    file (a policy built in Python) or the position is unknown.
    """

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class PolicyError(SteerloopError, ValueError):
    """A policy is invalid.

    The first problem is exposed as ``file``, ``line``, ``column``, ``field`` and
    ``detail``; ``issues`` lists every problem found (a loader reports them all at once).
    ``str(error)`` is one ``file:line:col: field.path: message`` line per problem.
    """

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        if not issues:
            raise ValueError("PolicyError needs at least one PolicyIssue")
        self.issues: tuple[PolicyIssue, ...] = tuple(issues)
        first = self.issues[0]
        self.file = first.file
        self.line = first.line
        self.column = first.column
        self.field = first.field
        self.detail = first.message
        super().__init__("\n".join(str(issue) for issue in self.issues))

    @classmethod
    def single(
        cls,
        message: str,
        *,
        file: str = "<policy>",
        line: int | None = None,
        column: int | None = None,
        field: str = "",
    ) -> PolicyError:
        """Build an error with one issue."""
        return cls([PolicyIssue(file=file, line=line, column=column, field=field, message=message)])


class ShapeError(SteerloopError, ValueError):
    """An array does not have the shape the estimator was built for."""

    def __init__(self, name: str, expected: tuple[int, ...], got: tuple[int, ...]) -> None:
        self.name = name
        self.expected = expected
        self.got = got
        super().__init__(
            f"{name} must have shape {expected}, got {got}; pass arrays of the dimension the "
            "estimator was constructed with (steerloop never reshapes silently)"
        )


class NotReadyError(SteerloopError, RuntimeError):
    """An estimate was read before enough observations arrived."""

    def __init__(self, what: str, needed: int, have: int) -> None:
        self.what = what
        self.needed = needed
        self.have = have
        super().__init__(
            f"{what} is not ready: it needs {needed} observations and has {have}; "
            "check `.ready` before reading or lower the warm-up"
        )


class NumericalError(SteerloopError, ArithmeticError):
    """A computation produced a non-finite or ill-conditioned result."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class ScorerError(SteerloopError):
    """A scorer could not be built (reason ``import``/``config``/``unavailable``), or failed
    while the caller asked for ``strict=True`` (otherwise failures are counted as missing)."""

    def __init__(self, scorer: str, reason: str, message: str = "") -> None:
        self.scorer = scorer
        self.reason = reason
        text = f"scorer {scorer!r} failed ({reason})"
        if message:
            text += f": {message}"
        super().__init__(text)


class SnapshotVersionError(SteerloopError):
    """A session snapshot has a ``schema_version`` this release can neither read nor migrate.

    Older versions that can be migrated are migrated on load; this is raised for versions
    written by a newer steerloop (or not a version at all).
    """

    def __init__(self, found: object, supported: Sequence[int]) -> None:
        self.found = found
        self.supported = tuple(supported)
        super().__init__(
            f"session snapshot schema_version {found!r} is not supported by this steerloop "
            f"(it reads versions {', '.join(map(str, self.supported))}); restore it with the "
            "steerloop release that wrote it, or drop the snapshot and start the session afresh"
        )


class StoreError(SteerloopError):
    """A session state store failed."""

    def __init__(self, store: str, key: str, reason: str) -> None:
        self.store = store
        self.key = key
        self.reason = reason
        super().__init__(f"{store} store, key {key!r}: {reason}")


class TrajectoryFormatError(SteerloopError, ValueError):
    """A trajectory file (:mod:`steerloop.analysis.trajectory`) is malformed.

    Attributes
    ----------
    source : str
        File name (or ``"<stream>"``).
    line : int | None
        1-based line number of the offending line, if known.
    detail : str
        What is wrong and how to fix it.
    """

    def __init__(self, source: str, line: int | None, detail: str) -> None:
        self.source = source
        self.line = line
        self.detail = detail
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {detail}")


class ScoreWarning(UserWarning):
    """A score was invalid (NaN, a string, out of [0, 1] …) or its key named no objective.

    The value counted as missing (``errors``/``scores.unknown`` diagnostics); a session warns
    once per key. Pass ``strict=True`` to the controller to raise instead.
    """
