"""Session state stores: share sessions between workers and keep them across restarts.

Pass a store to the controller; sessions then live in it::

    from steerloop import Controller
    from steerloop.stores import MemoryStore, RedisStore

    controller = Controller(preset="paper", store=RedisStore("redis://127.0.0.1:6379/0"))
    session = controller.session("user-42")      # get-or-create through the store
    decision = session.update({"security": 0.8})  # read–modify–write, compare-and-set

* :class:`MemoryStore` — thread-safe, in-process (several controllers of one process).
* :class:`RedisStore` — many processes and hosts (extra ``redis``:
  ``pip install 'steerloop[redis]'``; redis-py is imported only when a RedisStore is built).

Without a store (the default) nothing changes: each controller keeps its sessions in a dict.
The protocol, the update cycle and the failure behaviour are described in
:mod:`steerloop.stores.base` and :mod:`steerloop.stores.sync`. In short: ``update`` reloads the
session only when another worker wrote it, retries a version conflict ``store.retries``
times and then raises :class:`StoreConflictError`; a store failure raises
:class:`~steerloop.errors.StoreError` even in non-strict mode (a lost update is never silent)
unless ``RedisStore(fallback="memory")`` was chosen, which degrades to local memory and
counts it in :meth:`StateStore.stats`.

Notes
-----
* ``controller.session(id)`` reads the store (one round trip; the full state only when it
  changed), so ``session.prompt`` reflects other workers' updates; ``session.snapshot()``
  and the read-only properties show this process's copy as of its last access.
* ``controller.drop(id)`` forgets the local object only; ``store.delete(id)`` deletes the
  shared state.
* ``controller.restore(state)`` creates a local session from a snapshot; it is written to
  the store by its next update, unless the store already holds that id (the store wins).
"""

from typing import TYPE_CHECKING

from steerloop.stores.base import StateStore, StoreConflictError, StoreStats
from steerloop.stores.memory import MemoryStore
from steerloop.stores.redis_store import RedisStore

if TYPE_CHECKING:  # mypy checks that both stores satisfy the protocol

    def _conforms(memory: MemoryStore, redis: RedisStore) -> tuple[StateStore, StateStore]:
        return memory, redis


__all__ = ["MemoryStore", "RedisStore", "StateStore", "StoreConflictError", "StoreStats"]
