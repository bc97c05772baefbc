"""The examples not covered by a subsystem's own tests run end to end and print what they say.

(adapter_*.py: tests/adapters/test_adapter_examples.py; scoring_code.py: tests/scoring;
stores_redis_two_workers.py: tests/stores/test_store_example.py.)
"""

from __future__ import annotations

import io
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(*argv: str, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_simulate_fake_llm_steers_a_fake_chat_model() -> None:
    out = run_example("simulate_fake_llm.py")
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) == 30
    assert all("true state" in line for line in steps)


def test_simulate_paper_answers_open_question_3() -> None:
    out = run_example("simulate_paper.py")
    rows = [line.split() for line in out.splitlines() if "sequential" in line or "simul" in line]
    policies = {(row[0], row[1]) for row in rows if len(row) >= 2}
    for kappa in ("0.00", "0.25", "0.45"):
        assert {(kappa, "sequential"), (kappa, "simultaneous")} <= policies


def test_telemetry_prometheus_counts_steps_on_a_free_port() -> None:
    out = run_example("telemetry_prometheus.py", "--steps", "60", "--port", "0")
    assert "metrics on http://127.0.0.1:" in out
    counted = [line for line in out.splitlines() if line.startswith("steps under")]
    assert len(counted) == 1 and int(counted[0].rsplit(" ", 1)[1]) > 0


def _wsgi(app: Any, method: str, path: str, body: bytes = b"") -> tuple[str, bytes]:
    status: list[str] = []

    def start_response(code: str, headers: list[tuple[str, str]]) -> None:
        status.append(code)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    chunks = b"".join(app(environ, start_response))
    return status[0], chunks


def test_telemetry_multiprocess_app_steps_and_exposes_summed_metrics(tmp_path: Path) -> None:
    script = tmp_path / "check.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_examples import check_multiprocess_app\n"
        "check_multiprocess_app()\n"
    )
    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "ok"


def check_multiprocess_app() -> None:
    """Run inside a process whose PROMETHEUS_MULTIPROC_DIR was set before any import."""
    app = runpy.run_path(str(EXAMPLES / "telemetry_multiprocess.py"))["app"]
    body = b'{"security": 0.3, "efficiency": 0.8, "functionality": 0.7}'
    for _ in range(3):
        status, reply = _wsgi(app, "POST", "/step/user-1", body)
        assert status == "200 OK" and b'"strategy"' in reply
    status, exposition = _wsgi(app, "GET", "/metrics")
    assert status == "200 OK"
    assert b'steerloop_controller_steps_total{strategy="adaptive_integration"} 3.0' in exposition
    assert _wsgi(app, "GET", "/nowhere")[0] == "404 Not Found"
    print("ok")
