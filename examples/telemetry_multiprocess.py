"""steerloop metrics under a pre-fork server (gunicorn): prometheus_client multiprocess mode.

Each worker process has its own controller and :class:`SteerloopMetrics`; their counters and
histograms are written to ``PROMETHEUS_MULTIPROC_DIR`` and summed by one ``/metrics``
endpoint. Fleet gauges (active sessions, sessions by regime/phase/mode) are ``livesum``
gauges in that mode: the sum over live workers.

1. ``export PROMETHEUS_MULTIPROC_DIR=$(mktemp -d)`` (empty, before the server starts; clear
   it on every deploy);
2. ``gunicorn -w 3 -c examples/telemetry_multiprocess.py examples.telemetry_multiprocess:app``
   (this file is both the gunicorn config — ``child_exit`` below — and the WSGI app);
3. ``curl -X POST -d '{"security": 0.3, "efficiency": 0.8, "functionality": 0.7}'
   localhost:8000/step/user-1`` and ``curl localhost:8000/metrics``.

Without gunicorn: ``PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) python
examples/telemetry_multiprocess.py`` serves the same app with wsgiref on port 8000.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import mark_process_dead

from steerloop import Controller
from steerloop.telemetry import SteerloopMetrics, multiprocess_registry

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    raise SystemExit("set PROMETHEUS_MULTIPROC_DIR to an empty directory first")

# Created in each worker at import (gunicorn without --preload imports the app per worker).
controller = Controller(preset="paper")
metrics = SteerloopMetrics(CollectorRegistry())  # multiprocess mode: PROMETHEUS_MULTIPROC_DIR
metrics.bind(controller)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: drop a dead worker's live gauges."""
    mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        exposition = generate_latest(multiprocess_registry())  # a fresh registry per scrape
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [exposition]
    if path.startswith("/step/") and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        scores = json.loads(environ["wsgi.input"].read(length) or b"{}")
        decision = controller.session(path.removeprefix("/step/")).update(scores)
        body = json.dumps({"strategy": decision.strategy, "changed": decision.changed})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body.encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    print("serving on http://127.0.0.1:8000 (/metrics, POST /step/<session>)")
    make_server("127.0.0.1", 8000, app).serve_forever()
