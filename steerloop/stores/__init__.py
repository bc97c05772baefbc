"""State stores: share sessions between workers and keep them across restarts.

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

Stores move versioned bytes and know nothing of sessions:

* :mod:`steerloop.stores.base` — the :class:`StateStore` protocol: per key one value with a
  :class:`Token` (a generation that is new whenever the key is created, and a version),
  compare-and-set writes, turns (leases) for contending workers, idempotency results;
* :mod:`steerloop.stores.sync` — the generic read–modify–write of a worker's local copy
  (one round trip when the copy is current, two under contention; exactly-once with
  idempotency keys; a vanished value is reported, never silently restarted);
* :mod:`steerloop.stores.codec` — a compact exact binary codec for the stored values;
* :mod:`steerloop.stores.fallback` — ``RedisStore(fallback="memory")``;
* :mod:`steerloop.testing` — stores that fail on demand, for your tests.

Failures raise :class:`~steerloop.errors.StoreError` even in non-strict mode (a lost update
is never silent): :class:`StoreConflictError` (conflicts outlasted the retries),
:class:`~steerloop.errors.SessionVanishedError`,
:class:`~steerloop.errors.StoreUnavailableError` and
:class:`~steerloop.errors.StoreInDoubtError` (retry with its ``idempotency_key``).
"""

from typing import TYPE_CHECKING

from steerloop.errors import StoreConflictError
from steerloop.stores.base import Read, StateStore, StoreStats, Token, Turn, Written
from steerloop.stores.memory import MemoryStore
from steerloop.stores.redis_store import RedisStore

if TYPE_CHECKING:  # mypy checks that both stores satisfy the protocol

    def _conforms(memory: MemoryStore, redis: RedisStore) -> tuple[StateStore, StateStore]:
        return memory, redis


__all__ = [
    "MemoryStore",
    "Read",
    "RedisStore",
    "StateStore",
    "StoreConflictError",
    "StoreStats",
    "Token",
    "Turn",
    "Written",
]
