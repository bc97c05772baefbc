"""Shared helpers of the store tests: a real redis-server, a small policy, TCP fault servers."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
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
from steerloop.policies.schema import validate_policy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "redis_worker.py"

# A cheap policy for the concurrency runs: d = 2, one strategy, no rules.
SMALL_POLICY: dict[str, Any] = {
    "objectives": ["quality", "speed"],
    "strategies": {"steady": {"prompt": "Improve {objectives}.", "emphasis": {"quality": 1.0}}},
    "initial": "steady",
    "estimation": {"forgetting": 0.98, "warmup": 5},
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
    """A throwaway redis-server on 127.0.0.1 (no persistence), stopped by :meth:`stop`."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.workdir = workdir
        last_error = ""
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = free_port()
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(workdir),
                    "--logfile",
                    str(workdir / f"redis-{self.port}.log"),
                    "--protected-mode",
                    "yes",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready(20.0):
                return
            last_error = self._log()
            self.stop()
        raise RuntimeError(f"redis-server did not start: {last_error}")

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
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


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
        self._thread.join(timeout=5)
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
        self._thread.join(timeout=5)
        with self._lock:
            for client, server in self._pairs:
                client.close()
                server.close()
        self._listener.close()


def run_worker(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
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
