"""Read–modify–write of a session against a :class:`~steerloop.stores.StateStore`.

With a store, :meth:`steerloop.Session.update` runs :func:`read_modify_write` under the
session's lock:

0. **exclude**: ``store.exclusive(id)`` — an advisory lock (a lease in Redis) so that
   workers contending for one session take turns instead of computing steps that the
   compare-and-set would throw away; correctness never depends on it;
1. **read**: ``load_if_changed(id, v)`` where ``v`` is the version this session object last
   saw; only when another worker wrote since is the state parsed and loaded (an absent key
   resets a session that had been stored to a fresh one: its key was deleted or expired);
2. **modify**: run the step on the up-to-date state;
3. **write**: ``save(id, snapshot_json, v)``, a compare-and-set on the version.

A conflict (another worker saved in between) reloads and recomputes the step, up to
``store.retries`` times with full-jitter exponential back-off (``store.backoff`` · 2^k,
capped at 64 · ``store.backoff``), then raises :class:`StoreConflictError`. Any failure marks
the session's copy as unverified, so the next call reloads it from the store.

A lost update is never silent: store failures raise :class:`~steerloop.errors.StoreError`
from ``update`` **whether or not the controller is strict** (fail-open covers scorers and the
estimators, whose faults degrade one decision; a store fault would fork the session between
workers). Users who prefer availability opt in with ``RedisStore(fallback="memory")``, which
is counted in :meth:`StateStore.stats`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError

from steerloop.controller.state import SessionState
from steerloop.errors import PolicyError, SnapshotVersionError, StoreError
from steerloop.stores.base import StateStore, StoreConflictError

if TYPE_CHECKING:
    from steerloop.controller.session import Decision, Session

__all__ = ["inject_before_save", "read_modify_write", "sync_session"]

#: Version meaning "this session's copy is not known to match any stored version".
UNVERIFIED = -1

_jitter = random.Random()  # noqa: S311 - back-off jitter, not cryptography
BeforeSave = Callable[[str, int], None]
_before_save: BeforeSave | None = None


def inject_before_save(hook: BeforeSave | None) -> BeforeSave | None:
    """Fault-injection point for tests: ``hook(session_id, expected_version)`` runs after the
    step and before the compare-and-set of every store-backed update. Returns the previous
    hook; pass ``None`` to remove it. Process-wide; not for production use."""
    global _before_save
    previous, _before_save = _before_save, hook
    return previous


def sync_session(session: Session, store: StateStore) -> None:
    """Bring ``session`` up to date with ``store`` (what :meth:`Controller.session` does)."""
    with session._lock:
        _refresh(session, store)


def read_modify_write(
    session: Session, store: StateStore, step: Callable[[], Decision]
) -> Decision:
    """Run ``step`` on the latest stored state of ``session`` and save it (see module doc).

    The caller holds ``session._lock``. Raises :class:`StoreConflictError` after
    ``store.retries`` conflicts and :class:`~steerloop.errors.StoreError` on a store failure;
    in both cases the update was not applied (or, for a timed-out save, may have been applied
    in full — the next call reloads).
    """
    key = session.id
    attempts = store.retries + 1
    expected = session._store_version
    for attempt in range(attempts):
        if attempt:
            cap = store.backoff * (1 << min(attempt - 1, 6))
            time.sleep(_jitter.uniform(0.0, cap))
        try:
            with store.exclusive(key):
                _refresh(session, store)
                decision = step()
                state_json = session._snapshot_unlocked().model_dump_json()
                expected = session._store_version
                if _before_save is not None:
                    _before_save(key, expected)
                session._store_version = store.save(key, state_json, expected)
            return decision
        except StoreConflictError:
            session._store_version = UNVERIFIED
        except BaseException:
            session._store_version = UNVERIFIED
            raise
    raise StoreConflictError(store.name, key, expected, None, attempts=attempts)


def _refresh(session: Session, store: StateStore) -> None:
    """Load the stored state into ``session`` if it changed (caller holds the lock)."""
    known = session._store_version
    state_json, version = store.load_if_changed(session.id, known)
    if state_json is not None:
        _load_json(session, store, state_json)
    elif version == 0 and known != 0:
        # Stored before (or unverified), absent now: deleted or expired -> start afresh.
        fresh = type(session)(session.controller, session.id)
        session._load(fresh._snapshot_unlocked())
    session._store_version = version


def _load_json(session: Session, store: StateStore, state_json: str) -> None:
    try:
        state = SessionState.model_validate_json(state_json)
    except SnapshotVersionError as error:
        raise StoreError(store.name, session.id, f"invalid_state: {error}") from error
    except ValidationError as error:
        raise StoreError(
            store.name,
            session.id,
            "invalid_state: the stored value is not a steerloop SessionState of schema "
            f"version {SessionState.model_fields['schema_version'].default} "
            f"({error.error_count()} validation errors, first: {error.errors()[0]['msg']}); "
            "delete the key or migrate it with the steerloop version that wrote it",
        ) from error
    if state.session_id != session.id:
        raise StoreError(
            store.name,
            session.id,
            f"invalid_state: the stored state belongs to session {state.session_id!r}; "
            "two ids map to one key or the key was written by another application",
        )
    try:
        session._load(state)
    except PolicyError as error:
        raise StoreError(
            store.name,
            session.id,
            f"incompatible_state: {error.detail}; workers sharing a store (and namespace) "
            "must run policies with the same objectives",
        ) from error
