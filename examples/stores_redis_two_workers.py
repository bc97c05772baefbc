"""Two worker processes take turns serving one steered session through Redis.

Each worker has its own :class:`~steerloop.Controller` backed by the same
:class:`~steerloop.stores.RedisStore`, as two web workers behind a load balancer would. They
alternate on one session: worker 0 serves the odd steps, worker 1 the even ones. The "LLM"
is the paper's simulated environment (``steerloop.simulate.paper_environment``); its hidden
state travels through Redis too, like a conversation history would.

At the end the same run is replayed in this process with a plain controller (no store), and
every decision (strategy, rule, reason, prompt, diagnostics) and the final session state must
be identical: the state store changes where the session lives, not what it decides. The fleet
pool lives in the store too; the workers sync it on every update (``fleet.sync_every: 1``,
see :func:`policy`) so that their pool equals the single process's at every step (the default
syncs every 10 updates, which is cheaper and decides from a pool up to 10 updates old).

Run (a Redis server must be reachable)::

    python examples/stores_redis_two_workers.py redis://127.0.0.1:6379/0
    STEERLOOP_REDIS_URL=redis://127.0.0.1:6379/0 python examples/stores_redis_two_workers.py

Keys live under a fresh namespace ``steerloop-example-<random>`` and are deleted at the end.
Every wait derives from ``--timeout`` (default 60 s; the socket timeouts of the example's own
Redis clients are set above it, never left at redis-py's 5 s default).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import redis

from steerloop import Controller, Decision, Policy, SessionState, load_preset
from steerloop.simulate import paper_environment
from steerloop.stores import RedisStore, codec

SESSION = "user-42"
SEED = 7
OBJECTIVES = ("security", "efficiency", "functionality")
DEFAULT_TIMEOUT = 60.0  # seconds a worker waits for its turn before giving up


def summary(decision: Decision) -> dict[str, Any]:
    """What must match between the two-worker run and the single-process run."""
    return {
        "step": decision.step,
        "strategy": decision.strategy,
        "changed": decision.changed,
        "rule": decision.rule,
        "reason": decision.reason,
        "mode": decision.mode,
        "focus": decision.focus,
        "prompt": decision.prompt,
        "diagnostics": dict(decision.diagnostics.items()),
    }


def respond(
    env_state: list[float], step: int, controller_step: Callable[[dict[str, float]], Decision]
) -> tuple[Decision, list[float]]:
    """One iteration: the environment answers, the controller decides, the environment moves.

    ``controller_step(scores)`` is ``session.update``; the random draws depend only on the
    step number, so any process computes the same response for the same step.
    """
    env = paper_environment()
    rng = np.random.default_rng([SEED, step])
    x = np.asarray(env_state, dtype=np.float64)[None, :]
    scores = env.observe(x, rng)[0]
    decision: Decision = controller_step(dict(zip(OBJECTIVES, scores.tolist(), strict=True)))
    x_next = env.step(x, decision.strategy, rng)[0]
    return decision, x_next.tolist()


def client_for(url: str, timeout: float) -> redis.Redis:
    """A client whose socket timeout outlasts a ``timeout``-second BLPOP."""
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout + 10)


def policy() -> Policy:
    """The ``paper`` preset, its fleet pool synced with the store on every update."""
    paper = load_preset("paper")
    return paper.model_copy(update={"fleet": paper.fleet.model_copy(update={"sync_every": 1})})


def worker(index: int, url: str, namespace: str, steps: int, timeout: float) -> None:
    """Serve the steps ``index + 1, index + 3, ...`` when it is this worker's turn."""
    client = client_for(url, timeout)
    store = RedisStore(url, namespace=namespace, timeout=timeout / 4)
    controller = Controller(policy(), store=store)
    for step in range(index, steps, 2):
        if client.blpop([f"{namespace}:turn:{index}"], timeout=timeout) is None:
            raise SystemExit(f"worker {index}: no turn within {timeout:g} s")
        session = controller.session(SESSION)  # brought up to date from Redis
        env_state = json.loads(client.get(f"{namespace}:env") or "null")
        decision, env_next = respond(env_state, step, session.update)
        client.set(f"{namespace}:env", json.dumps(env_next))
        client.rpush(f"{namespace}:decisions", json.dumps({"worker": index, **summary(decision)}))
        client.rpush(f"{namespace}:turn:{1 - index}", 1)  # hand over


def single_process(initial: list[float], steps: int) -> tuple[list[dict[str, Any]], str]:
    """The reference run: one process, no store."""
    session = Controller(policy()).session(SESSION)
    env_state, decisions = initial, []
    for step in range(steps):
        decision, env_state = respond(env_state, step, session.update)
        decisions.append(summary(decision))
    return decisions, session.snapshot().model_dump_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "url",
        nargs="?",
        default=os.environ.get("STEERLOOP_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis URL (default: $STEERLOOP_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds a worker waits (60)"
    )
    args = parser.parse_args(argv)
    namespace = f"steerloop-example-{uuid.uuid4().hex[:8]}"
    client = client_for(args.url, args.timeout)
    try:
        client.ping()
    except redis.RedisError as error:
        print(f"cannot reach Redis at {args.url}: {error}", file=sys.stderr)
        return 2

    initial = paper_environment().reset(1, np.random.default_rng(SEED))[0].tolist()
    client.set(f"{namespace}:env", json.dumps(initial))
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=worker, args=(i, args.url, namespace, args.steps, args.timeout))
        for i in (0, 1)
    ]
    try:
        for process in workers:
            process.start()
        client.rpush(f"{namespace}:turn:0", 1)  # worker 0 starts
        for process in workers:
            process.join(timeout=args.timeout * 2)
        if any(process.exitcode != 0 for process in workers):
            print("a worker failed", file=sys.stderr)
            return 1
        shared = [json.loads(item) for item in client.lrange(f"{namespace}:decisions", 0, -1)]
        final = RedisStore(args.url, namespace=namespace, timeout=args.timeout / 4).read(SESSION)
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        if keys:
            client.delete(*keys)

    reference, reference_state = single_process(initial, args.steps)
    served_by = [item.pop("worker") for item in shared]
    # JSON turns None/float keys the same way on both sides: compare through JSON
    same = json.loads(json.dumps(reference)) == shared
    final_state = (
        None
        if final.value is None
        else SessionState.model_validate(codec.decode(final.value)).model_dump_json()
    )
    same_state = final_state == reference_state
    for item, who in zip(shared, served_by, strict=True):
        if item["changed"] or item["step"] == 1:
            print(
                f"step {item['step']:3d}  worker {who}  -> {item['strategy']:<20} "
                f"rule={item['rule']}  mode={item['mode']}"
            )
    version = final.token.version if final.token else None
    print(f"{len(shared)} steps served alternately by workers {sorted(set(served_by))}")
    print(f"store version {version}; decisions identical to one process: {same}; ", end="")
    print(f"final state identical: {same_state}")
    return 0 if same and same_state else 1


if __name__ == "__main__":
    sys.exit(main())
