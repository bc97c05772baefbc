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
        ├── StoreConflictError     a compare-and-set kept losing to other writers (expected,
        │                          actual, attempts): nothing was written
        ├── SessionVanishedError   the stored value this worker's copy descends from is gone
        │                          (deleted, expired, lost by the server) or was rolled back
        │                          (held, found): nothing was written
        └── StoreUnavailableError  the server refused, failed or did not answer in time
            └── StoreInDoubtError  a write was sent and its reply was lost: it may or may not
                                   have been applied (idempotency_key: retry with it)

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
    "SessionVanishedError",
    "ShapeError",
    "SnapshotVersionError",
    "SteerloopError",
    "StoreConflictError",
    "StoreError",
    "StoreInDoubtError",
    "StoreUnavailableError",
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


class StoreConflictError(StoreError):
    """A compare-and-set found another version than expected; nothing was written.

    :func:`steerloop.stores.sync.read_modify_write` retries conflicts ``store.retries``
    times and then raises this with ``attempts`` > 1: the update was **not** applied; retry
    it or lower the contention on the key. ``expected`` and ``actual`` are the tokens
    (:class:`steerloop.stores.Token`, or ``None`` for "absent") compared last.
    """

    def __init__(
        self, store: str, key: str, expected: object, actual: object, attempts: int = 1
    ) -> None:
        self.expected = expected
        self.actual = actual
        self.attempts = attempts
        if attempts > 1:
            reason = (
                f"conflict: {attempts} attempts each found the value changed by another "
                "worker before the write; the update was NOT applied. Retry it, route a "
                "key's calls to one worker, or raise the store's retries="
            )
        else:
            reason = f"conflict: expected {expected}, found {actual}; nothing written"
        super().__init__(store, key, reason)


class SessionVanishedError(StoreError):
    """The stored value this worker's copy descends from is gone; nothing was written.

    ``held`` is the token (generation and version) of the last stored value this worker's
    copy matched; ``found`` is what the store holds now (``None``: nothing). Either the key
    was deleted, expired (TTL), or the server lost it (a restart without persistence): then
    ``found`` is ``None`` or a token of another generation (another worker created the key
    anew). Or the server went *back* within the generation (``found.version <
    held.version``: a fail-over to a replica that had not received the latest writes).
    The worker's copy is reset to what the store holds (a fresh value when nothing) so the
    next call continues from the store; the update that raised was not applied.
    """

    def __init__(self, store: str, key: str, held: object, found: object) -> None:
        self.held = held
        self.found = found
        if found is None:
            what = "is gone (deleted, expired, or lost by a server restart)"
        elif getattr(found, "generation", None) != getattr(held, "generation", None):
            what = f"was replaced by a new value created elsewhere ({found})"
        else:
            what = f"went back to {found} (a fail-over lost the latest writes)"
        super().__init__(
            store,
            key,
            f"vanished: the stored value this worker held ({held}) {what}; the update was "
            "NOT applied and this worker's copy now follows the store (a fresh value when "
            "it holds none). Restore from your own snapshot if the data matters",
        )


class StoreUnavailableError(StoreError):
    """The store's server refused the connection, failed, or did not answer in time."""


class StoreInDoubtError(StoreUnavailableError):
    """A write was sent but its reply was lost: it may or may not have been applied.

    It was applied entirely or not at all, never partly. When the update was given an
    ``idempotency_key``, call it again with the same key: if the first write landed, its
    stored result is returned and nothing is applied twice. (Updates without a key use an
    automatic one inside the library's own retries only; ``idempotency_key`` is then
    ``None``.)
    """

    def __init__(self, store: str, key: str, reason: str, idempotency_key: str | None) -> None:
        self.idempotency_key = idempotency_key
        if idempotency_key is not None:
            hint = f" Retry with idempotency_key={idempotency_key!r} to apply it exactly once."
        else:
            hint = " Give updates an idempotency_key= to retry such an update exactly once."
        super().__init__(store, key, reason + hint)
        self.reason = reason
