"""Expose a registry over HTTP (loopback by default), and the multiprocess registry.

Public names are re-exported by :mod:`steerloop.telemetry.metrics`.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, NamedTuple, Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import start_http_server as _start_http_server

from steerloop.telemetry._catalog import MULTIPROC_ENV

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["MetricsServer", "multiprocess_registry", "serve_metrics"]


class HasRegistry(Protocol):
    """Anything holding a registry (e.g. :class:`~steerloop.telemetry.SteerloopMetrics`)."""

    @property
    def registry(self) -> CollectorRegistry: ...


class MetricsServer(NamedTuple):
    """The exporter started by :func:`serve_metrics`: ``(server, thread)`` plus helpers."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on (useful after ``serve_metrics(0)``)."""
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = str(self.server.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


def multiprocess_registry(path: str | None = None) -> CollectorRegistry:
    """A new registry that sums the metrics of all worker processes (multiprocess mode).

    ``path`` defaults to ``PROMETHEUS_MULTIPROC_DIR``. Do not create metrics on it.
    """
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | HasRegistry | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` over HTTP in a daemon thread (``prometheus_client`` exporter).

    Parameters
    ----------
    port : int
        TCP port; ``0`` picks a free one (read :attr:`MetricsServer.port`).
    addr : str
        Bind address; loopback only by default. ``"0.0.0.0"`` exposes it on every interface.
    registry : CollectorRegistry | SteerloopMetrics | None
        What to expose. ``None``: a :func:`multiprocess_registry` when
        ``PROMETHEUS_MULTIPROC_DIR`` is set, else the global ``prometheus_client.REGISTRY``.

    Returns
    -------
    MetricsServer
        ``(server, thread)``; call :meth:`MetricsServer.close` to stop it.

    Examples
    --------
    >>> from urllib.request import urlopen
    >>> from steerloop.telemetry.metrics import SteerloopMetrics
    >>> metrics = SteerloopMetrics()
    >>> exporter = serve_metrics(0, registry=metrics)
    >>> b"steerloop_sessions_active 0.0" in urlopen(exporter.url, timeout=5).read()
    True
    >>> exporter.close()
    """
    if registry is None:
        target = multiprocess_registry() if os.environ.get(MULTIPROC_ENV) else REGISTRY
    elif isinstance(registry, CollectorRegistry):
        target = registry
    else:
        target = registry.registry
    server, thread = _start_http_server(port, addr=addr, registry=target)
    return MetricsServer(server, thread)
