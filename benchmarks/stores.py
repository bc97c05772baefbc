"""Session store benchmarks against a real redis-server (``make bench`` runs them).

Usage::

    python -m benchmarks.stores [--check] [--quick] [--json] [--markdown PATH]

``--markdown PATH`` replaces the store section of PATH (``benchmarks/RESULTS.md``) between
its markers, leaving the rest of the file alone. The run starts its own ``redis-server`` on
127.0.0.1 with a free port and no persistence, and stops it; without ``redis-server`` on
PATH the Redis measurements are reported as not available.

Measurements (goals from issue 18):

* **One worker**: a store-backed ``Session.update`` against a local one (``paper`` preset,
  same process, same score stream), interleaved block by block in a balanced random order
  (:func:`benchmarks.run.interleave`); wall clock, since the store's cost is mostly waiting
  for Redis on loopback (the CPU-time ratio is reported beside it). Goal: ≤ 3×.
* **Round trips per update** counted by the store (``StoreStats.round_trips``): one worker,
  and two workers taking turns on one session. Goal: ≤ 2 in the common case.
* **Hot key**: 8 fresh processes (``python -m benchmarks.stores --hot-worker``) apply 100
  updates each to one session; updates/s over the run (from the start signal to the last
  report), the start-up time (spawn to all ready) and its share, and lost updates (800 −
  the stored version). Goal: ≥ 300 updates/s, 0 lost.
* **Wire codec**: encode/decode of the session's snapshot tree with the stores' codec
  (ormsgpack, raw float64 arrays), with msgpack when installed, and the snapshot's JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.run import Goal, interleave, machine_info, median, ratio_stats
from benchmarks.workloads import PAPER_OBJECTIVES, as_dicts, filter_logging, score_stream

__all__ = ["GOALS", "main", "run_all"]

START = "<!-- store-benchmark:start -->"
END = "<!-- store-benchmark:end -->"
HOT_PROCESSES = 8
HOT_UPDATES = 100
#: Every wait of the benchmark (server start, workers) is bounded by this many seconds.
PATIENCE = 120.0

GOALS: tuple[Goal, ...] = (
    Goal("store-backed update / local update, one worker", "one_worker.ratio", 3.0, "<="),
    Goal("round trips per update, one worker", "round_trips.one_worker", 2.0, "<="),
    Goal(
        "round trips per update, two workers taking turns, common case (median update)",
        "round_trips.turns_common",
        2.0,
        "<=",
    ),
    Goal("hot key: 8 processes x 100 updates, updates/s", "hot.updates_per_s", 300.0, ">="),
    Goal("hot key: updates lost", "hot.lost", 0.0, "<="),
)


# ----------------------------------------------------------------------------- redis-server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """``redis://`` URL of a private redis-server (``None`` without the binary)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="steerloop-bench-") as workdir:
        port = _free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(
            [binary, *args, "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            import redis

            client = redis.Redis(port=port, socket_timeout=PATIENCE)
            deadline = time.monotonic() + PATIENCE
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=PATIENCE)


# ----------------------------------------------------------------------------- one worker


def _wall_runner(update: Callable[[Any], Any], stream: Sequence[Any]) -> Callable[[int], float]:
    position = [0]

    def run(n: int) -> float:
        if position[0] + n > len(stream):
            position[0] = 0
        batch = stream[position[0] : position[0] + n]
        position[0] += n
        start = time.perf_counter()
        for scores in batch:
            update(scores)
        return time.perf_counter() - start

    return run


def measure_one_worker(url: str | None, reps: int, block: int) -> dict[str, Any]:
    """Store-backed (Redis, memory) against local updates, one worker, interleaved."""
    from steerloop import Controller
    from steerloop.stores import MemoryStore

    stream = as_dicts(PAPER_OBJECTIVES, score_stream(3, 300 + reps * block + 10, seed=3))
    warm, rest = stream[:300], stream[300:]
    sessions: dict[str, Any] = {
        "local": Controller(preset="paper").session("bench"),
        "memory": Controller(preset="paper", store=MemoryStore()).session("bench"),
    }
    store = None
    if url is not None:
        store = counting_store(url, f"bench-{uuid.uuid4().hex[:8]}")
        sessions["redis"] = Controller(preset="paper", store=store).session("bench")
    for session in sessions.values():
        for scores in warm:
            session.update(scores)
    runners = {name: _wall_runner(s.update, rest) for name, s in sessions.items()}
    if url is not None:
        runners["redis_free_dump"] = _free_dump_runner(url, warm, rest)
    cpu = {name: 0.0 for name in runners}

    def timed(name: str) -> Callable[[int], float]:
        def run(n: int) -> float:
            start = time.process_time()
            wall = runners[name](n)
            cpu[name] += time.process_time() - start
            return wall

        return run

    trips = store.stats().round_trips if store is not None else 0
    kinds = dict(store.by_kind) if store is not None else {}
    times = interleave({name: timed(name) for name in runners}, reps, block, seed=18)
    result: dict[str, Any] = {
        "local_us": median(times["local"]) * 1e6,
        "memory_us": median(times["memory"]) * 1e6,
        "memory_ratio": ratio_stats(times["memory"], times["local"])["ratio"],
    }
    if store is not None:
        result.update(
            redis_us=median(times["redis"]) * 1e6,
            **ratio_stats(times["redis"], times["local"]),
            free_dump_ratio=ratio_stats(times["redis_free_dump"], times["local"])["ratio"],
            cpu_ratio=cpu["redis"] / cpu["local"],
            round_trips=(store.stats().round_trips - trips) / (reps * block),
            round_trips_session=(store.by_kind["session"] - kinds["session"]) / (reps * block),
            round_trips_pool=(store.by_kind["pool"] - kinds["pool"]) / (reps * block),
        )
        store.close()
    else:
        result.update(
            ratio=None, ratio_p25=None, ratio_p75=None, cpu_ratio=None, free_dump_ratio=None
        )
    return result


def _free_dump_runner(url: str, warm: Sequence[Any], rest: Sequence[Any]) -> Any:
    """The store's own cost: a local session's update through ``read_modify_write`` on Redis
    with a value of the real size that costs nothing to produce (no snapshot, no codec)."""
    from steerloop import Controller
    from steerloop.stores import RedisStore, codec
    from steerloop.stores.sync import StoredCopy, read_modify_write

    session = Controller(preset="paper").session("bench")
    for scores in warm:
        session.update(scores)
    value = codec.encode(session.snapshot().model_dump())
    store = RedisStore(url, namespace=f"bench-{uuid.uuid4().hex[:8]}", timeout=PATIENCE)
    copy = StoredCopy()

    def update(scores: Any) -> Any:
        return read_modify_write(
            store,
            "bench",
            copy,
            load=lambda _value: None,
            fresh=lambda: None,
            step=lambda: session.update(scores),
            dump=lambda: value,
            dump_result=lambda _decision: b"",
            load_result=lambda _data: None,
        )

    return _wall_runner(update, rest)


def counting_store(url: str, namespace: str) -> Any:
    """A RedisStore that also splits its round trips by key: the session's or the fleet
    pool's (``pool:`` keys, synchronised every ``fleet.sync_every`` updates)."""
    from steerloop.stores import RedisStore
    from steerloop.stores.base import Turn

    class CountingStore(RedisStore):
        def __init__(self) -> None:
            super().__init__(url, namespace=namespace, timeout=PATIENCE)
            self.by_kind = {"session": 0, "pool": 0}

        def _count(self, key: str, call: Callable[[], Any]) -> Any:
            before = self.stats().round_trips
            try:
                return call()
            finally:
                kind = "pool" if key.startswith("pool:") else "session"
                self.by_kind[kind] += self.stats().round_trips - before

        def read(self, key: str, *args: Any, **kwargs: Any) -> Any:
            return self._count(key, lambda: super(CountingStore, self).read(key, *args, **kwargs))

        def begin(self, key: str, *args: Any, **kwargs: Any) -> Any:
            return self._count(key, lambda: super(CountingStore, self).begin(key, *args, **kwargs))

        def write(self, key: str, *args: Any, **kwargs: Any) -> Any:
            return self._count(key, lambda: super(CountingStore, self).write(key, *args, **kwargs))

        def release(self, turn: Turn) -> None:
            self._count(turn.key, lambda: super(CountingStore, self).release(turn))

    return CountingStore()


def measure_turns(url: str | None, updates: int) -> dict[str, float | None]:
    """Round trips per update when two workers take turns on one session: in all, and split
    into the session's own and the fleet pool's synchronisation (every ``sync_every``); the
    common case is the median update's count (the pool syncs on one update in ten)."""
    if url is None:
        return {"total": None, "session": None, "pool": None, "common": None, "most": None}
    from steerloop import Controller

    store = counting_store(url, f"bench-{uuid.uuid4().hex[:8]}")
    workers = [Controller(preset="paper", store=store) for _ in range(2)]
    stream = as_dicts(PAPER_OBJECTIVES, score_stream(3, updates + 20, seed=5))
    sessions = [w.session("turns") for w in workers]
    for i, scores in enumerate(stream[:20]):  # both learn that the session is shared
        sessions[i % 2].update(scores)
    before, kinds = store.stats().round_trips, dict(store.by_kind)
    each: list[int] = []
    for i, scores in enumerate(stream[20:]):
        trips = store.stats().round_trips
        sessions[i % 2].update(scores)
        each.append(store.stats().round_trips - trips)
    result = {
        "total": (store.stats().round_trips - before) / updates,
        "session": (store.by_kind["session"] - kinds["session"]) / updates,
        "pool": (store.by_kind["pool"] - kinds["pool"]) / updates,
        "common": float(median(each)),
        "most": float(max(each)),
    }
    store.close()
    return result


# ----------------------------------------------------------------------------- hot key


def hot_worker(url: str, namespace: str, index: int, updates: int) -> None:
    """One process of the hot-key run (``--hot-worker``): ready, wait, update, report."""
    import redis

    from steerloop import Controller

    filter_logging()
    store = counting_store(url, namespace)
    controller = Controller(preset="paper", store=store)
    stream = as_dicts(PAPER_OBJECTIVES, score_stream(3, updates, seed=100 + index))
    Controller(preset="paper").session("warm").update(stream[0])  # lazy imports first
    client = redis.Redis.from_url(url, socket_timeout=PATIENCE + 10)
    client.rpush(f"{namespace}:ready", index)
    if client.blpop([f"{namespace}:go"], timeout=PATIENCE) is None:
        raise SystemExit("no start signal")
    session = controller.session("hot")
    start = time.perf_counter()
    for scores in stream:
        session.update(scores, scorer_errors=1)
    stats = store.stats()
    report = {
        "elapsed_s": time.perf_counter() - start,
        "round_trips": stats.round_trips,
        "round_trips_session": store.by_kind["session"],
        "round_trips_pool": store.by_kind["pool"],
        "lease_waits": stats.lease_waits,
        "conflicts": stats.conflicts,
        "busy": stats.busy,
    }
    client.rpush(f"{namespace}:reports", json.dumps(report))


def measure_hot(url: str | None, runs: int) -> dict[str, Any]:
    """8 fresh processes x 100 updates to one session (median of ``runs``)."""
    if url is None:
        return {"updates_per_s": None, "lost": None, "runs": []}
    results = [_hot_run(url) for _ in range(runs)]
    best = sorted(results, key=lambda r: r["updates_per_s"])[len(results) // 2]
    return {**best, "runs": [round(r["updates_per_s"]) for r in results]}


def _hot_run(url: str) -> dict[str, Any]:
    import redis

    from steerloop import SessionState
    from steerloop.stores import RedisStore, codec

    namespace = f"bench-hot-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url, socket_timeout=PATIENCE + 10)
    command = [sys.executable, "-m", "benchmarks.stores", "--hot-worker", url, namespace]
    spawned = time.perf_counter()
    workers = [
        subprocess.Popen([*command, str(i), str(HOT_UPDATES)], cwd=Path(__file__).parents[1])
        for i in range(HOT_PROCESSES)
    ]
    try:
        while client.llen(f"{namespace}:ready") < HOT_PROCESSES:
            if time.perf_counter() - spawned > PATIENCE or any(w.poll() for w in workers):
                raise RuntimeError("hot-key workers did not start")
            time.sleep(0.01)
        ready = time.perf_counter()
        client.rpush(f"{namespace}:go", *range(HOT_PROCESSES))
        reports = []
        for _ in range(HOT_PROCESSES):
            item = client.blpop([f"{namespace}:reports"], timeout=PATIENCE)
            if item is None:
                raise RuntimeError("a hot-key worker did not finish")
            reports.append(json.loads(item[1]))
        done = time.perf_counter()
        for worker in workers:
            worker.wait(timeout=PATIENCE)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    store = RedisStore(url, namespace=namespace, timeout=PATIENCE)
    read = store.read("hot")
    total = HOT_PROCESSES * HOT_UPDATES
    version = read.token.version if read.token else 0
    state = SessionState.model_validate(codec.decode(read.value)) if read.value else None
    consistent = state is not None and state.step == version and state.scorer_errors == total
    run_s, startup_s = done - ready, ready - spawned
    return {
        "updates_per_s": total / run_s,
        "run_s": run_s,
        "startup_s": startup_s,
        "startup_share": startup_s / (startup_s + run_s),
        "lost": total - version,
        "consistent": consistent,
        "round_trips": sum(r["round_trips"] for r in reports) / total,
        "round_trips_session": sum(r["round_trips_session"] for r in reports) / total,
        "round_trips_pool": sum(r["round_trips_pool"] for r in reports) / total,
        "lease_waits": sum(r["lease_waits"] for r in reports),
        "conflicts": sum(r["conflicts"] for r in reports),
    }


# ----------------------------------------------------------------------------- codec


def measure_codec(reps: int) -> dict[str, Any]:
    """Microseconds to encode/decode a d = 3 session's snapshot (four strategies used)."""
    from steerloop import Controller, SessionState
    from steerloop.stores import codec

    session = Controller(preset="paper").session("codec")
    for scores in as_dicts(PAPER_OBJECTIVES, score_stream(3, 900, seed=7)):
        session.update(scores)
    state = session.snapshot()
    tree = state.model_dump()
    packed, text = codec.encode(tree), state.model_dump_json()

    def best(fn: Callable[[], object]) -> float:
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            for _ in range(20):
                fn()
            samples.append((time.perf_counter() - start) / 20)
        return min(samples) * 1e6

    result: dict[str, Any] = {
        "strategies": len(state.models["drift"]),
        "codec_bytes": len(packed),
        "codec_encode_us": best(lambda: codec.encode(state.model_dump())),
        "codec_decode_us": best(lambda: SessionState.model_validate(codec.decode(packed))),
        "json_bytes": len(text),
        "json_encode_us": best(state.model_dump_json),
        "json_decode_us": best(lambda: SessionState.model_validate_json(text)),
        "snapshot_us": best(session.snapshot),
    }
    try:
        import msgpack  # not a dependency: measured when installed
    except ImportError:
        result["msgpack_encode_us"] = result["msgpack_decode_us"] = None
    else:
        blob = msgpack.packb(tree)
        result["msgpack_encode_us"] = best(lambda: msgpack.packb(state.model_dump()))
        result["msgpack_decode_us"] = best(
            lambda: SessionState.model_validate(msgpack.unpackb(blob))
        )
    return result


# ----------------------------------------------------------------------------- driver


def lookup(results: Mapping[str, Any], key: str) -> Any:
    value: Any = results
    for part in key.split("."):
        value = value[part]
    return value


def run_all(quick: bool, progress: Callable[[str], None]) -> dict[str, Any]:
    filter_logging()
    reps, block = (7, 10) if quick else (61, 20)
    results: dict[str, Any] = {"machine": machine_info(), "mode": "quick" if quick else "full"}
    results["machine"]["hiredis"] = importlib.util.find_spec("hiredis") is not None
    started = time.perf_counter()
    with redis_server() as url:
        results["redis"] = url is not None
        progress("one worker: store-backed vs local update (interleaved)")
        results["one_worker"] = measure_one_worker(url, reps, block)
        progress("round trips when two workers take turns")
        turns = measure_turns(url, 40 if quick else 200)
        results["round_trips"] = {
            "one_worker": results["one_worker"].get("round_trips"),
            "one_worker_session": results["one_worker"].get("round_trips_session"),
            "one_worker_pool": results["one_worker"].get("round_trips_pool"),
            "turns": turns["total"],
            "turns_common": turns["common"],
            "turns_most": turns["most"],
            "turns_session": turns["session"],
            "turns_pool": turns["pool"],
        }
        progress(f"hot key: {HOT_PROCESSES} processes x {HOT_UPDATES} updates")
        results["hot"] = measure_hot(url, 1 if quick else 3)
    progress("wire codec")
    results["codec"] = measure_codec(5 if quick else 30)
    results["elapsed_s"] = time.perf_counter() - started
    results["goals"] = [
        {
            "name": goal.name,
            "key": goal.key,
            "value": lookup(results, goal.key),
            "goal": f"{goal.op} {goal.limit:g}",
            "met": goal.met(lookup(results, goal.key)),
        }
        for goal in GOALS
    ]
    return results


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_table(results: Mapping[str, Any]) -> str:
    status = {g["key"]: {True: "met", False: "**missed**", None: "n/a"}[g["met"]] for g in
              results["goals"]}  # fmt: skip
    one, hot, codec = results["one_worker"], results["hot"], results["codec"]
    trips = results["round_trips"]
    rows = [
        ("measurement", "result", "context", "goal"),
        (
            "one worker: Redis-backed `Session.update` / local `Session.update` (wall)",
            f"{_f(one.get('ratio'))}× (p25–p75 {_f(one.get('ratio_p25'))}–"
            f"{_f(one.get('ratio_p75'))})",
            f"{_f(one.get('redis_us'))} µs vs {_f(one['local_us'])} µs; CPU-time ratio "
            f"{_f(one.get('cpu_ratio'))}×; MemoryStore {_f(one['memory_ratio'])}×; "
            f"Redis with a value that costs nothing to produce "
            f"{_f(one.get('free_dump_ratio'))}×",
            f"≤ 3: {status['one_worker.ratio']}",
        ),
        (
            "round trips per update: one worker (mean) / two workers taking turns (median "
            "update; mean)",
            f"{_f(trips['one_worker'])} / {_f(trips.get('turns_common'))}; {_f(trips['turns'])}",
            "counted by the store (`StoreStats.round_trips`); means split by key: the "
            f"session's own {_f(trips.get('one_worker_session'))} / "
            f"{_f(trips.get('turns_session'))}, the fleet pool's sync (every "
            f"`fleet.sync_every` updates) {_f(trips.get('one_worker_pool'))} / "
            f"{_f(trips.get('turns_pool'))}; the most for one update (a pool sync) "
            f"{_f(trips.get('turns_most'))}",
            f"≤ 2 in the common case: {status['round_trips.one_worker']} / "
            f"{status['round_trips.turns_common']}",
        ),
        (
            f"hot key: {HOT_PROCESSES} processes × {HOT_UPDATES} updates to one session",
            f"{_f(hot.get('updates_per_s'))} updates/s",
            f"runs {hot.get('runs')}; start-up {_f(hot.get('startup_s'))} s "
            f"({_f(100 * hot['startup_share'] if hot.get('startup_share') else None)} % of "
            f"start-up + run); {_f(hot.get('round_trips'))} round trips/update "
            f"(session {_f(hot.get('round_trips_session'))}, fleet pool sync "
            f"{_f(hot.get('round_trips_pool'))}); "
            f"{_f(hot.get('lease_waits'))} waits for a turn, {_f(hot.get('conflicts'))} "
            "conflicts",
            f"≥ 300: {status['hot.updates_per_s']}",
        ),
        (
            "hot key: updates lost (800 − stored version)",
            _f(hot.get("lost")),
            f"stored step = version, scorer_errors = 800: {_f(hot.get('consistent'))}",
            f"0: {status['hot.lost']}",
        ),
        (
            f"wire: session snapshot tree, codec (ormsgpack) encode / decode, "
            f"{codec['strategies']} strategies",
            f"{_f(codec['codec_encode_us'])} / {_f(codec['codec_decode_us'])} µs",
            f"{codec['codec_bytes']:,} B; snapshot object {_f(codec['snapshot_us'])} µs",
            "info",
        ),
        (
            "  same, the snapshot's JSON (pydantic)",
            f"{_f(codec['json_encode_us'])} / {_f(codec['json_decode_us'])} µs",
            f"{codec['json_bytes']:,} B",
            "info",
        ),
        (
            "  same, msgpack (not a dependency; when installed)",
            f"{_f(codec['msgpack_encode_us'])} / {_f(codec['msgpack_decode_us'])} µs",
            "",
            "info",
        ),
    ]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|---|---|---|")
    return "\n".join(lines)


METHOD = """\
- **Server.** The run starts its own `redis-server` (127.0.0.1, free port, no persistence,
  the Debian package of the machine) and stops it; clients are redis-py, with its hiredis
  parser when installed (the `redis` extra installs it).
- **One worker.** Three sessions of `Controller(preset="paper")` in one process, one local,
  one on a `MemoryStore`, one on a `RedisStore`, each warmed with 300 updates of the same
  score stream as the step benchmark; then blocks of consecutive updates of each, in a
  balanced random order (`benchmarks.run.interleave`), timed on the **wall clock** (the
  store's cost is mostly waiting for Redis); the ratio is the median of the per-repetition
  ratios with its 25th–75th percentiles. One worker owns the session, so each update is
  one round trip: the compare-and-set write (the session's copy is current). The "value
  that costs nothing to produce" variant runs a local session's update through
  `read_modify_write` on Redis with precomputed bytes of the real size: the store's own
  cost, without the session's snapshot and codec.
- **Round trips** are counted by the store (`StoreStats.round_trips`: scripts and BLPOPs);
  "taking turns" is two controllers of one process alternating on one session after 20
  warm-up updates: each update then takes its turn (one script that also reads) and writes.
  The fleet pool syncs with the store on one update in ten (`fleet.sync_every`: a read and
  a compare-and-set write of the pooled statistics), so the mean is 0.2 above the common
  case; the goal (the issue's "≤ 2 in the common case") reads the median update.
- **Hot key.** 8 fresh interpreters (`python -m benchmarks.stores --hot-worker`), each with
  its own controller, store and connections, wait at a barrier in Redis; updates/s is 800
  over the time from the start signal to the last report; start-up is spawn to all ready
  (interpreter, imports, a warm-up update). Median of 3 runs. Lost = 800 − the stored
  version; the stored state's step and scorer-error count are checked against it.
- **Codec.** Best of 30 × 20 calls: `codec.encode(snapshot.model_dump())` /
  `SessionState.model_validate(codec.decode(...))` (what the session stores today) against
  `model_dump_json()` / `model_validate_json()` of the same snapshot."""


def render_markdown(results: Mapping[str, Any], command: str) -> str:
    m = results["machine"]
    return "\n".join(
        [
            START,
            "## Session store (`python -m benchmarks.stores`)",
            "",
            f"Produced by `{command}` ({results['mode']} run, {results['elapsed_s']:.0f} s) on "
            f"{m['cpu_model']}, {m['cpus']} cores, Python {m['python']}, hiredis "
            f"{'yes' if m.get('hiredis') else 'no'}; load average at start "
            f"{', '.join(f'{v:.2f}' for v in (m.get('load_average') or []))}.",
            "",
            render_table(results),
            "",
            "Method:",
            "",
            METHOD,
            END,
        ]
    )


def write_section(path: Path, section: str) -> None:
    """Replace the store section of ``path`` (or append it), keeping everything else."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stores", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke run)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--markdown", metavar="PATH", help="replace the store section of PATH")
    parser.add_argument("--hot-worker", nargs=4, metavar=("URL", "NS", "I", "N"))
    args = parser.parse_args(argv)
    if args.hot_worker:
        url, namespace, index, updates = args.hot_worker
        hot_worker(url, namespace, int(index), int(updates))
        return 0

    def progress(message: str) -> None:
        print(f"[bench:stores] {message} ...", file=sys.stderr, flush=True)

    results = run_all(args.quick, progress)
    print(json.dumps(results, indent=2) if args.json else render_table(results))
    if args.markdown:
        command = "python -m benchmarks.stores" + (" --quick" if args.quick else "")
        write_section(Path(args.markdown), render_markdown(results, command))
    missed = [g for g in results["goals"] if g["met"] is not True]
    if args.check and missed:
        for goal in missed:
            print(f"goal missed: {goal['name']}: {_f(goal['value'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
