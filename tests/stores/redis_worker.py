"""A worker process of the Redis store tests (run as a script, not collected by pytest).

redis_worker.py hammer URL NAMESPACE SESSION UPDATES WORKER
    wait at a start barrier, then apply UPDATES updates to SESSION; print JSON stats.
redis_worker.py kill-before-save URL NAMESPACE SESSION UPDATES
    apply UPDATES updates, then SIGKILL itself between the read and the write of the next.
redis_worker.py kill-after-save URL NAMESPACE SESSION UPDATES
    apply UPDATES updates, then SIGKILL itself right after the next one is saved.
redis_worker.py kill-in-turn URL NAMESPACE SESSION UPDATES
    apply UPDATES updates, let another controller write once (so the next update takes its
    turn first), then SIGKILL itself holding the turn, between the read and the write.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from store_helpers import PATIENCE, STORE_TIMEOUT, small_controller, small_scores

from steerloop.stores import RedisStore
from steerloop.testing import FaultyStore


def hammer(url: str, namespace: str, session_id: str, count: int, worker: int) -> dict[str, float]:
    """Wait at the start barrier, then apply ``count`` updates; returns timing and counts."""
    started = time.perf_counter()
    store = RedisStore(url, namespace=namespace, timeout=STORE_TIMEOUT)
    controller = small_controller(store=store)
    small_controller().session("warm-up").update(small_scores(0))  # lazy imports first
    barrier = store.client
    barrier.rpush(f"{namespace}:ready", worker)
    while barrier.blpop([f"{namespace}:go"], timeout=STORE_TIMEOUT / 2) is None:
        if time.perf_counter() - started > PATIENCE * 2:
            raise RuntimeError("no start signal")
    session = controller.session(session_id)
    start = time.perf_counter()
    cpu = time.process_time()
    for i in range(count):
        session.update(small_scores(worker * count + i), scorer_errors=1)
    stats = store.stats()
    return {
        "worker": worker,
        "elapsed": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "conflicts": stats.conflicts,
        "lease_waits": stats.lease_waits,
    }


def main(argv: list[str]) -> int:
    mode, url, namespace, session_id, updates = argv[:5]
    count = int(updates)
    if mode == "hammer":
        print(json.dumps(hammer(url, namespace, session_id, count, int(argv[5]))))
        return 0
    store = FaultyStore(RedisStore(url, namespace=namespace, timeout=STORE_TIMEOUT))
    controller = small_controller(store=store)
    session = controller.session(session_id)
    for i in range(count):
        session.update(small_scores(i))

    def die(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "kill-in-turn":
        small_controller(store=store).session(session_id).update(small_scores(count))
        count += 1
        store.before("write", lambda _key: die(), after=1)  # the conflict, then the turn's
    elif mode == "kill-before-save":
        store.before("write", lambda _key: die())
    elif mode == "kill-after-save":
        controller.add_listener(die)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    session.update(small_scores(count))
    print("still alive", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
