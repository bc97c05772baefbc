"""Shared helpers of the store tests: a real redis-server, a small policy, TCP fault servers.

Every wait for *progress* in these tests (a server starting, a worker process finishing, a
store command on a busy machine) derives from one generous setting, :data:`PATIENCE`, so a
slow, loaded 2-core CI machine never trips a library default by accident. Short timeouts
that *are* the fault under test (a store timeout shorter than a 3 s pause) are named as such
where they are used.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steerloop import Controller, Policy
from steerloop.policies.references import validate_policy
from steerloop.stores.sync import StoredCopy, read_modify_write, sync

#: Seconds: the one generous setting every wait for progress derives from
#: (``STEERLOOP_TEST_PATIENCE`` overrides it on a machine slower still).
PATIENCE = float(os.environ.get("STEERLOOP_TEST_PATIENCE", "60"))
#: Socket timeout of a store used for progress only (not a fault under test).
STORE_TIMEOUT = PATIENCE / 4
#: Longest run of one worker process.
PROCESS_TIMEOUT = PATIENCE * 5

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "redis_worker.py"

# A cheap policy for the concurrency runs: d = 2, one strategy, no rules. No fleet pool: a
# pool lives in its controller's process (it is not kept in the store yet), so workers with
# pools would learn from different pooled data than one process does.
SMALL_POLICY: dict[str, Any] = {
    "objectives": ["quality", "speed"],
    "strategies": {"steady": {"prompt": "Improve {objectives}.", "emphasis": {"quality": 1.0}}},
    "initial": "steady",
    "estimation": {"forgetting": 0.98, "warmup": 5},
    "fleet": {"pool": False},
}


def small_controller(**kwargs: Any) -> Controller:
    return Controller(validate_policy(Policy.model_validate(SMALL_POLICY)), **kwargs)


def small_scores(step: int) -> dict[str, float]:
    """Deterministic scores for step ``step`` (no randomness needed)."""
    return {"quality": 0.5 + 0.3 * ((step * 7919) % 100) / 100.0, "speed": 0.4 + 0.001 * step}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_redis_server() -> str:
    """Path of ``redis-server``; fails in CI (``CI=true``) when missing, skips elsewhere."""
    path = shutil.which("redis-server")
    if path is None:
        message = (
            "`redis-server` is not on PATH; install the Debian package `redis-server` "
            "(scripts/install-system-deps.sh does it; `make test` runs it in CI)"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (no persistence), stopped by :meth:`stop`.

    :meth:`pause`/:meth:`resume` (SIGSTOP/SIGCONT) and :meth:`restart` (SIGKILL, then a new
    server on the same port, empty) inject server faults.
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        last_error = ""
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = free_port()
            if self._start():
                return
            last_error = self._log()
            self.stop()
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def _start(self) -> bool:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / f"redis-{self.port}.log"),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self._wait_ready(PATIENCE / 3)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill the server (no persistence: its data is lost) and start it on the same port."""
        self.process.kill()
        self.process.wait(timeout=PATIENCE)
        deadline = time.monotonic() + PATIENCE
        while not self._start():  # the port may linger for a moment
            self.stop()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not restart: {self._log()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _log(self) -> str:
        path = self.workdir / f"redis-{self.port}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot terminate
            self.process.terminate()
            try:
                self.process.wait(timeout=PATIENCE / 6)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=PATIENCE / 6)


class SilentServer:
    """Accepts TCP connections and reads from them, but never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                continue
            self._connections.append(connection)  # keep it open, never reply

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PATIENCE)
        for connection in self._connections:
            connection.close()
        self._listener.close()


class FaultProxy:
    """TCP proxy to a real server whose traffic can be cut in either direction.

    ``mode``: ``"pass"`` forwards both ways; ``"drop_requests"`` swallows client bytes (the
    server never sees the command); ``"drop_replies"`` forwards commands but swallows the
    server's replies (the command runs, the client never hears back); ``"refuse"`` closes
    new and existing connections.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "pass"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def set_mode(self, mode: str) -> None:
        assert mode in ("pass", "drop_requests", "drop_replies", "refuse")
        with self._lock:
            self.mode = mode
            if mode == "refuse":
                for client, server in self._pairs:
                    client.close()
                    server.close()
                self._pairs.clear()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    if self.mode == "refuse":
                        client.close()
                        continue
                    server = socket.create_connection(("127.0.0.1", self.target_port))
                    with self._lock:
                        self._pairs.append((client, server))
                    selector.register(client, selectors.EVENT_READ, (server, "request"))
                    selector.register(server, selectors.EVENT_READ, (client, "reply"))
                    continue
                peer, direction = key.data
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    with contextlib.suppress(Exception):
                        selector.unregister(sock)
                    with contextlib.suppress(Exception):
                        selector.unregister(peer)
                    sock.close()
                    peer.close()
                    continue
                mode = self.mode
                if (mode == "drop_requests" and direction == "request") or (
                    mode == "drop_replies" and direction == "reply"
                ):
                    continue
                with contextlib.suppress(OSError):
                    peer.sendall(data)
            # drop sockets closed by set_mode("refuse")
            for key in list(selector.get_map().values()):
                sock = key.fileobj
                if isinstance(sock, socket.socket) and sock.fileno() == -1:
                    selector.unregister(sock)
        selector.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PATIENCE)
        with self._lock:
            for client, server in self._pairs:
                client.close()
                server.close()
        self._listener.close()


def run_worker(*args: str, timeout: float = PROCESS_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


@contextlib.contextmanager
def elapsed() -> Iterator[list[float]]:
    """``with elapsed() as t: ...`` then ``t[0]`` is the wall time in seconds."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


# -- a toy local object for the generic read-modify-write -----------------------------------


class Ledger:
    """A worker's copy of a toy shared value: the ids of the updates applied, in order.

    Through :func:`steerloop.stores.sync.read_modify_write` it shows exactly which updates
    a store holds, so an update applied twice or a "failed" update that landed is visible.
    """

    def __init__(self, store: Any, key: str = "ledger", initial: list[str] | None = None) -> None:
        self.store = store
        self.key = key
        self.applied: list[str] = list(initial or [])
        self.copy = StoredCopy()
        self.steps = 0  # step() calls, wasted ones included
        self.fail_next_step: BaseException | None = None  # raised by the next step, mid-way

    def load(self, value: bytes) -> None:
        applied = json.loads(value)
        if not isinstance(applied, list):
            raise ValueError("not a ledger")
        self.applied = applied

    def fresh(self) -> None:
        self.applied = []

    def dump(self) -> bytes:
        return json.dumps(self.applied).encode()

    def update(self, update_id: str, idempotency_key: str | None = None) -> int:
        """Append ``update_id``; returns the ledger's length after it."""

        def step() -> int:
            self.steps += 1
            self.applied.append(update_id)
            if self.fail_next_step is not None:
                error, self.fail_next_step = self.fail_next_step, None
                raise error
            return len(self.applied)

        return read_modify_write(
            self.store,
            self.key,
            self.copy,
            load=self.load,
            fresh=self.fresh,
            step=step,
            dump=self.dump,
            dump_result=lambda n: str(n).encode(),
            load_result=lambda data: int(data),
            idempotency_key=idempotency_key,
        )

    def sync(self) -> None:
        sync(self.store, self.key, self.copy, load=self.load, fresh=self.fresh)


def stored_ledger(store: Any, key: str = "ledger") -> list[str] | None:
    value = store.read(key).value
    return None if value is None else list(json.loads(value))
