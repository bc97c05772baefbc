"""Read–modify–write of one worker's local copy against a :class:`StateStore`.

Generic: the caller owns a local object (a session) and hands over callbacks; this module
never looks inside the object or its bytes. What one worker knows about the stored value
its copy corresponds to lives in a :class:`StoredCopy` (one per key per worker).

One :func:`read_modify_write`:

1. **Optimistic, one round trip** (the common case: one worker per key, or workers taking
   turns slowly): the copy is current as far as this worker knows, so ``step()`` runs on it
   at once, ``dump()`` encodes it, and ``store.write(..., expected=copy.token)`` writes it
   if nobody wrote since.
2. **Turn first, two round trips** — when the last call on this key saw another writer
   (contention), or the copy must be reloaded: ``store.begin`` waits for this worker's turn
   and reads in one round trip (with a Redis store, a waiter is handed the turn *and the
   current value* by the previous holder's write, so it needs no read of its own); then
   ``step``, ``dump`` and ``write``, which ends the turn.
3. A refused write (another worker wrote, or holds the turn) comes back with what the store
   holds; the copy is reloaded (``load(bytes)``) and the step recomputed, up to
   ``store.retries`` times, then :class:`~steerloop.errors.StoreConflictError`.

Never silently wrong:

* **Generations.** A token is (generation, version); a key created anew gets a new
  generation. When the store no longer holds the generation the copy descends from (the key
  was deleted, expired, or the server lost it), or holds an older version of it (a
  fail-over lost writes), :class:`~steerloop.errors.SessionVanishedError` is raised: the
  update is not applied, and the copy is reset to what the store holds (``fresh()`` when it
  holds nothing), so the next call continues from the store. A copy never silently
  restarts, and a stale copy is never written over a newer value.
* **Exactly once.** Every call writes under an idempotency key (the caller's, or an
  automatic one per call) stored atomically with the value. If a write's reply is lost
  (timeout, dropped connection), the call asks the store once more in the same call: a
  landed write returns its result, one that did not land is retried. If the store cannot
  say, :class:`~steerloop.errors.StoreInDoubtError` is raised; with a caller's key it
  carries it (``error.idempotency_key``), and calling again with it applies the update
  exactly once. With a caller's key, ``dump_result(result)`` is stored with the value and
  ``load_result(bytes)`` rebuilds it for a call that finds its key applied (an earlier call,
  maybe in another process); an automatic key stores an empty result (it is never reused
  by another call), so an update without a key costs no ``dump_result``.
* Any other failure raises :class:`~steerloop.errors.StoreError` — whether or not the
  caller is "strict": a lost update is never silent. The copy is then marked for reload.

Callbacks (the caller holds its own lock around the call): ``load(value)`` replaces the
local object's state by a stored value; ``fresh()`` resets it to a new, never-stored state;
``step()`` applies the update to the local object and returns its result; ``dump()``
encodes the local object's state. ``load`` may raise ``ValueError`` or a
:class:`~steerloop.errors.SteerloopError` for a value it cannot read: it becomes a
``StoreError`` whose reason starts with ``invalid_state``.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from steerloop.errors import (
    SessionVanishedError,
    SteerloopError,
    StoreConflictError,
    StoreError,
    StoreInDoubtError,
)
from steerloop.stores.base import (
    APPLIED,
    BUSY,
    CONFLICT,
    WRITTEN,
    Read,
    StateStore,
    Token,
    Turn,
)

__all__ = ["StoredCopy", "read_modify_write", "sync"]

R = TypeVar("R")

_jitter = random.Random()  # noqa: S311 - back-off jitter, not cryptography


class StoredCopy:
    """What one worker knows about the stored value its local copy corresponds to.

    Attributes
    ----------
    token : Token | None
        The stored value the local copy equals; ``None`` when no stored value is known to
        match it (a new copy, or one that must be reloaded).
    generation : str | None
        Generation the copy descends from (to detect a vanished key); ``None`` for a copy
        that never matched a stored value.
    dirty : bool
        The local copy matches nothing stored (a step whose write did not land, a step that
        raised): it is reloaded before it is used again.
    contended : bool
        The last call saw another writer: the next one takes its turn before stepping.
    initial : bytes | None
        A never-stored copy's state before its first step (restored if that write fails).

    Examples
    --------
    >>> copy = StoredCopy()
    >>> copy.token is None and copy.generation is None and not copy.dirty
    True
    """

    __slots__ = ("contended", "dirty", "generation", "initial", "token")

    def __init__(self) -> None:
        self.token: Token | None = None
        self.generation: str | None = None
        self.dirty = False
        self.contended = False
        self.initial: bytes | None = None

    @property
    def known(self) -> Token | None:
        """The token to send with a read: the store skips the value when it is this one.

        A copy that must be reloaded sends its generation with version 0 (which no stored
        value has), so the value is always sent and a store can still tell the copy's
        lineage (the memory fallback needs it); a never-stored copy sends ``None``.
        """
        if not self.dirty:
            return self.token
        return None if self.generation is None else Token(self.generation, 0)

    def matched(self, token: Token) -> None:
        """The local copy now equals the stored value ``token``."""
        self.token = token
        self.generation = token.generation
        self.dirty = False
        self.initial = None

    def __repr__(self) -> str:
        return (
            f"StoredCopy(token={self.token}, generation={self.generation!r}, "
            f"dirty={self.dirty}, contended={self.contended})"
        )


@dataclass(frozen=True)
class _Callbacks(Generic[R]):
    load: Callable[[bytes], None]
    fresh: Callable[[], None]
    step: Callable[[], R]
    dump: Callable[[], bytes]
    dump_result: Callable[[R], bytes]
    load_result: Callable[[bytes], R]


def sync(
    store: StateStore,
    key: str,
    copy: StoredCopy,
    *,
    load: Callable[[bytes], None],
    fresh: Callable[[], None],
) -> None:
    """Bring the local copy up to date with ``store`` (one round trip; no turn).

    Raises :class:`~steerloop.errors.SessionVanishedError` when the stored value the copy
    descends from is gone (the copy then follows the store).
    """
    _apply(store, key, copy, store.read(key, copy.known), load, fresh)


def read_modify_write(
    store: StateStore,
    key: str,
    copy: StoredCopy,
    *,
    load: Callable[[bytes], None],
    fresh: Callable[[], None],
    step: Callable[[], R],
    dump: Callable[[], bytes],
    dump_result: Callable[[R], bytes],
    load_result: Callable[[bytes], R],
    idempotency_key: str | None = None,
) -> R:
    """Apply ``step`` to the latest stored state of ``key`` and store it (module doc).

    Returns ``step()``'s result; when ``idempotency_key`` had been applied already (by an
    earlier call), ``load_result`` of the result stored with it, and the update is not
    applied again.

    Raises
    ------
    StoreConflictError
        More than ``store.retries`` conflicts; not applied.
    SessionVanishedError
        The stored value the copy descends from is gone; not applied.
    StoreInDoubtError
        A write's reply was lost and the store could not be asked again: call again with
        ``idempotency_key=error.idempotency_key``.
    StoreError
        Any other store failure; not applied.
    """
    callbacks = _Callbacks(load, fresh, step, dump, dump_result, load_result)
    return _Call(store, key, copy, callbacks, idempotency_key).run()


class _Call(Generic[R]):
    """One read–modify–write: its state between attempts."""

    def __init__(
        self,
        store: StateStore,
        key: str,
        copy: StoredCopy,
        callbacks: _Callbacks[R],
        idempotency_key: str | None,
    ) -> None:
        self.store = store
        self.key = key
        self.copy = copy
        self.cb = callbacks
        self.keep_result = idempotency_key is not None
        self.idempotency_key = idempotency_key or os.urandom(12).hex()  # automatic: per call
        self.turn: Turn | None = None
        self.pending: Read | None = None  # what the store holds, to apply before stepping
        self.doubt: StoreInDoubtError | None = None  # a write of this call whose reply was lost
        self.doubt_turn: Turn | None = None  # the turn that write ran in (taken again)
        self.result: R | None = None  # the step result of the doubtful write
        self.stepped = False
        self.other_writer = False  # someone else wrote or held the turn during this call
        self.conflicts = 0

    def run(self) -> R:
        try:
            while True:
                if self.pending is not None:
                    read, self.pending = self.pending, None
                    if read.result is not None:
                        return self._replayed(read)
                    if read.value is not None and not self.copy.dirty:
                        self.other_writer = True
                    _apply(self.store, self.key, self.copy, read, self.cb.load, self.cb.fresh)
                elif self.turn is None and self._needs_turn():
                    self.turn = self._begin()
                    self.pending = self.turn.read
                elif self._attempt():
                    self.copy.contended = self.other_writer
                    return cast(R, self.result)
        finally:
            if self.turn is not None and self.turn.holder is not None:
                turn, self.turn = self.turn, None
                with contextlib.suppress(StoreError):  # else its lease lapses on its own
                    self.store.release(turn)

    def _needs_turn(self) -> bool:
        return self.copy.contended or self.copy.dirty or self.doubt is not None

    def _begin(self) -> Turn:
        """Wait for the turn and read; after a lost reply, that read tells if it landed."""
        try:
            return self.store.begin(
                self.key,
                self.copy.known,
                idempotency_key=self.idempotency_key,
                resume=self.doubt_turn,
            )
        except StoreError:
            if self.doubt is not None:
                raise self.doubt from None  # still unknown: the caller retries with its key
            raise

    def _attempt(self) -> bool:
        """Step and write: True when done (``self.result`` holds the result)."""
        copy = self.copy
        if copy.token is None and copy.generation is None and copy.initial is None:
            copy.initial = self.cb.dump()  # to undo the step if this first write fails
        copy.dirty = True
        self.stepped = True
        result = self.cb.step()
        value = self.cb.dump()
        stored = self.cb.dump_result(result) if self.keep_result else b""
        try:
            written = self.store.write(
                self.key,
                value,
                copy.token,
                turn=self.turn,
                idempotency_key=self.idempotency_key,
                result=stored,
            )
        except StoreInDoubtError as error:
            if not self.keep_result:  # the automatic key is this call's own: not the caller's
                error = StoreInDoubtError(error.store, error.key, error.reason, None)
            if self.doubt is not None:  # asked once already and the answer was lost again
                raise error from None
            self.doubt, self.doubt_turn, self.result = error, self.turn, result
            self.turn = None
            return False
        self.result = result
        return self._after_write(written.outcome, written.read)

    def _after_write(self, outcome: str, read: Read) -> bool:
        if outcome == WRITTEN:
            assert read.token is not None
            self.copy.matched(read.token)
            self.turn = None  # the write ended it
            return True
        if outcome == APPLIED:
            self.turn = None
            self.result = self._replayed(read)
            return True
        self.other_writer = True
        self.copy.contended = True
        if outcome == BUSY:
            self.turn = None  # another worker holds the turn: queue for it
            return False
        assert outcome == CONFLICT
        self.conflicts += 1
        if self.conflicts > self.store.retries:
            raise StoreConflictError(
                self.store.name, self.key, self.copy.token, read.token, attempts=self.conflicts
            )
        self.pending = read  # the stored value: reload it (it came with the refusal)
        if self.conflicts > 1:
            time.sleep(_jitter.uniform(0.0, self.store.backoff * (1 << min(self.conflicts, 6))))
        return False

    def _replayed(self, read: Read) -> R:
        """The idempotency key had been applied: its result, not a second application."""
        if self.stepped:
            self.copy.dirty = True  # the local copy holds a step that was not written
        if self.keep_result:
            assert read.result is not None
            return self.cb.load_result(read.result)
        assert self.doubt is not None and self.result is not None  # only this call's write
        return self.result


def _apply(
    store: StateStore,
    key: str,
    copy: StoredCopy,
    read: Read,
    load: Callable[[bytes], None],
    fresh: Callable[[], None],
) -> None:
    """Make the local copy follow ``read`` (raises SessionVanishedError, see module doc)."""
    token = read.token
    held = copy.token if copy.token is not None else copy.generation
    vanished = copy.generation is not None and (
        token is None
        or token.generation != copy.generation
        or (copy.token is not None and token.version < copy.token.version)
    )
    if token is None:
        if vanished or (copy.dirty and copy.initial is None):
            _reset(copy, fresh)
        elif copy.dirty:  # a never-stored copy whose first write did not land
            _load(store, key, copy.initial, load)  # type: ignore[arg-type]
            copy.dirty = False
    elif read.value is not None:
        _load(store, key, read.value, load)
        copy.matched(token)
    elif token != copy.token or copy.dirty:
        raise StoreError(
            store.name, key, f"protocol: no value was sent for {token}, which is not this copy's"
        )
    if vanished:
        copy.contended = False
        raise SessionVanishedError(store.name, key, held, token)


def _reset(copy: StoredCopy, fresh: Callable[[], None]) -> None:
    fresh()
    copy.token = copy.generation = copy.initial = None
    copy.dirty = False


def _load(store: StateStore, key: str, value: bytes, load: Callable[[bytes], None]) -> None:
    try:
        load(value)
    except StoreError:
        raise
    except (ValueError, SteerloopError) as error:
        raise StoreError(store.name, key, f"invalid_state: {error}") from error
