"""The sandbox: a hostile corpus is contained and never passes; verdicts cannot be faked."""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from steerloop.errors import ScorerError
from steerloop.scoring.sandbox import (
    Sandbox,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    probe_isolation,
)
from steerloop.scoring.tasks import CodeTask, build_job

ANSWER = ("assert solve() == 42",)


def run(sandbox: Sandbox, code: str, tests: tuple[str, ...] = ANSWER) -> SandboxResult:
    return sandbox.run(build_job(code, CodeTask(tests=tests)))


def test_honest_code_passes_and_failures_count(sandbox: Sandbox) -> None:
    result = run(
        sandbox,
        "def solve():\n    return 42\n",
        ("assert solve() == 42", "assert solve() == 41", "assert solve() + 1 == 43"),
    )
    assert (result.status, result.passed, result.total) == ("ok", 2, 3)
    assert result.fraction == pytest.approx(2 / 3)


def test_isolation_here_is_namespaces_and_fresh_uid() -> None:
    """CI and this machine run as root with a working unshare: the strongest mode."""
    isolation = probe_isolation()
    if os.geteuid() != 0 or not isolation.namespaces:
        pytest.skip("needs root and a working `unshare` (documented fallback otherwise)")
    assert isolation.uid == "fresh"
    assert "namespaces" in isolation.describe()


def test_code_runs_as_fresh_uid_without_network_and_in_private_pid_namespace(
    sandbox: Sandbox,
) -> None:
    if not sandbox.isolation.namespaces or os.geteuid() != 0:
        pytest.skip("needs root and unshare")
    code = (
        "import os, socket\n"
        "def probe():\n"
        "    try:\n"
        "        socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
        "        net = True\n"
        "    except OSError:\n"
        "        net = False\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    return (os.getuid(), os.getpid(), net, len(pids) <= 3, os.getcwd(),\n"
        "            sorted(os.environ))\n"
    )
    tests = (
        "assert probe()[0] >= 1_000_000_000",
        "assert probe()[1] <= 3",  # a fresh PID namespace: supervisor 1, candidate 2
        "assert probe()[2] is False",
        "assert probe()[3]",
        "assert probe()[4] == '/tmp/work'",
        "assert probe()[5] == ['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']",
    )
    result = run(sandbox, code, tests)
    assert (result.status, result.passed) == ("ok", 6), result.output_tail


# ----------------------------------------------------------------------------- corpus

CANARY = "STEERLOOP_CANARY_SECRET"


def _corpus(tmp: Path, port: int, token: str) -> dict[str, str]:
    """Hostile snippets; each defines ``solve()`` that returns 42 only if the attack worked."""
    outside = tmp / "outside.txt"
    return {
        "fork_bomb": (
            "import os\n"
            "def solve():\n"
            "    while True:\n"
            "        try:\n"
            "            os.fork()\n"
            "        except OSError:\n"
            "            pass\n"
        ),
        "infinite_loop": "def solve():\n    while True:\n        pass\n",
        "sleep_forever": "import time\ndef solve():\n    time.sleep(10**6)\n    return 42\n",
        "memory_hog": (
            "def solve():\n"
            "    hog = []\n"
            "    while True:\n"
            "        hog.append(bytearray(50 * 2**20))\n"
        ),
        "output_flood": (
            "import sys\n"
            "def solve():\n"
            "    sys.stdout.write('x' * 100_000_000)\n"
            "    sys.stdout.flush()\n"
            "    return 42\n"
        ),
        "network_localhost": (
            "import socket\n"
            "def solve():\n"
            f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    s.sendall(b'exfiltrated')\n"
            "    return 42\n"
        ),
        "env_canary": (
            "import os\n"
            "def solve():\n"
            f"    if {CANARY!r} in os.environ:\n"
            "        return 42\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            "            with open(f'/proc/{pid}/environ', 'rb') as fh:\n"
            f"                if {CANARY.encode()!r} in fh.read():\n"
            "                    return 42\n"
            "        except OSError:\n"
            "            pass\n"
            "    return 0\n"
        ),
        "write_outside": (
            "import os\n"
            "def solve():\n"
            f"    for path in ({str(outside)!r}, '/etc/steerloop-{token}', "
            f"'/root/steerloop-{token}', '/work/steerloop-{token}'):\n"
            "        try:\n"
            "            with open(path, 'w') as fh:\n"
            "                fh.write('escaped')\n"
            "            return 42\n"
            "        except OSError:\n"
            "            pass\n"
            "    for path in ('/tmp', '/var/tmp', '/dev/shm'):\n"
            "        try:\n"
            f"            open(os.path.join(path, 'steerloop-{token}'), 'w').write('x')\n"
            "        except OSError:\n"
            "            pass\n"
            "    return 0\n"
        ),
        "exit_before_tests": "import os\nos._exit(0)\ndef solve():\n    return 42\n",
        "always_equal": (
            "class Anything:\n"
            "    def __eq__(self, other):\n"
            "        return True\n"
            "    def __ne__(self, other):\n"
            "        return False\n"
            "    __hash__ = object.__hash__\n"
            "def solve():\n"
            "    return Anything()\n"
        ),
        "detached_grandchild": (
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(300)\n"
            "    os._exit(0)\n"
            "def solve():\n"
            "    return 0\n"
        ),
        "ctypes_and_posix_system": (
            "import ctypes, os, posix\n"
            "def solve():\n"
            "    libc = ctypes.CDLL(None)\n"
            f"    libc.system(b'echo pwned > /etc/steerloop-{token}-c 2>/dev/null')\n"
            f"    posix.system('echo pwned > /root/steerloop-{token}-p 2>/dev/null; kill -9 -1')\n"
            f"    return 42 if os.path.exists('/etc/steerloop-{token}-c') else 0\n"
        ),
        "segfault": "import ctypes\ndef solve():\n    ctypes.string_at(0)\n    return 42\n",
        "fake_verdict": (
            "import os, sys\n"
            "fake = {'nonce': '0' * 32, 'status': 'ok', 'passed': 1, 'total': 1}\n"
            "record = repr(fake).replace(\"'\", '\"').encode() + b'\\n'\n"
            "sys.stdout.buffer.write(record)\n"
            "for fd in range(3, 64):\n"
            "    try:\n"
            "        os.write(fd, record)\n"
            "    except OSError:\n"
            "        pass\n"
            "os._exit(0)\n"
        ),
        "sys_exit_at_import": "import sys\nsys.exit(0)\ndef solve():\n    return 42\n",
        "shadow_builtins": (
            "import builtins\n"
            "builtins.abs = lambda x: 0\n"
            "builtins.len = lambda x: 42\n"
            "def solve():\n"
            "    return 0\n"
        ),
        "kill_parent": (
            "import os, signal\n"
            "def solve():\n"
            "    parent = os.getppid()\n"
            "    if parent <= 1:\n"
            "        return 0  # the parent is outside the PID namespace: invisible\n"
            "    try:\n"
            "        os.kill(parent, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        return 0\n"
            "    return 42\n"
        ),
        "read_root_secret": (
            "def solve():\n"
            "    for path in ('/etc/shadow', '/root/.bash_history', '/root/.ssh/id_rsa'):\n"
            "        try:\n"
            "            open(path).read()\n"
            "            return 42\n"
            "        except OSError:\n"
            "            pass\n"
            "    return 0\n"
        ),
    }


CORPUS_NAMES = sorted(_corpus(Path("/x"), 1, "t"))
# How some cases end: a timeout, a crash (no valid verdict) or a candidate error.
EXPECTED_STATUS: dict[str, tuple[str, str | None]] = {
    "sleep_forever": ("timeout", None),
    "infinite_loop": ("timeout", None),
    "fork_bomb": ("timeout", None),
    "exit_before_tests": ("crashed", None),  # exit status 0 is not a pass
    "fake_verdict": ("crashed", None),
    "segfault": ("crashed", None),
    "memory_hog": ("ok", None),  # MemoryError inside the test: a failed test, quickly
    "sys_exit_at_import": ("ok", "SystemExit"),
}
# Tests used for the snippets that need more than `solve() == 42` to fail convincingly.
CORPUS_TESTS: dict[str, tuple[str, ...]] = {
    "shadow_builtins": ("assert abs(solve() - 42) < 1e-9", "assert len([]) == 42"),
}


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_hostile_snippet_is_contained_and_never_passes(
    name: str,
    sandbox: Sandbox,
    tmp_path: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    live_processes: Callable[[int | None], list[int]],
) -> None:
    canary = secrets.token_hex(8)
    monkeypatch.setenv(CANARY, canary)
    token = secrets.token_hex(6)
    code = _corpus(tmp_path, listener.getsockname()[1], token)[name]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = run(sandbox, code, CORPUS_TESTS.get(name, ANSWER))
    elapsed = time.monotonic() - started

    # Never passes.
    assert result.passed == 0, (name, result)
    assert result.fraction == 0.0
    if name in EXPECTED_STATUS:
        status, error = EXPECTED_STATUS[name]
        assert result.status == status, (name, result.status, result.detail, elapsed)
        if error is not None:
            assert result.error == error
    if name == "exit_before_tests":
        assert result.returncode == 0
    if name == "fake_verdict":
        # The fake record went to the candidate's own descriptors; the verdict file is not
        # among them, and its process ended before answering: a crash, never a pass.
        assert "candidate process ended" in result.detail
    # Bounded time: the wall-clock timeout (2 s) plus teardown.
    assert elapsed < sandbox.limits.timeout + 3.0, (name, elapsed)
    # Bounded output: RLIMIT_FSIZE caps the output file.
    assert result.output_bytes <= sandbox.limits.output_bytes
    # Parent unaffected: alive (we are here), memory flat, nothing left running.
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss_after - rss_before < 50 * 1024, (
        f"parent peak RSS grew by {rss_after - rss_before} kB"
    )
    assert os.environ[CANARY] == canary
    deadline = time.monotonic() + 2.0
    while live_processes(result.uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes(result.uid) == [], f"{name}: processes left behind"
    # No network connection reached the host.
    with pytest.raises(BlockingIOError):
        listener.accept()
    # Nothing written outside the sandbox.
    assert not (tmp_path / "outside.txt").exists()
    for leftover in (
        f"/tmp/steerloop-{token}",
        f"/var/tmp/steerloop-{token}",
        f"/dev/shm/steerloop-{token}",
        f"/etc/steerloop-{token}",
        f"/etc/steerloop-{token}-c",
        f"/root/steerloop-{token}",
        f"/root/steerloop-{token}-p",
        f"/work/steerloop-{token}",
    ):
        assert not Path(leftover).exists(), leftover


def test_corpus_has_at_least_twelve_snippets() -> None:
    assert len(CORPUS_NAMES) >= 12


def test_verdict_with_wrong_counts_is_rejected(sandbox: Sandbox) -> None:
    # A job whose unit count differs from what the harness reports cannot validate: the
    # parent compares against the job it sent. Simulated by a candidate that appends a
    # correctly-shaped but foreign record to stdout (ignored: the verdict has its own fd).
    result = run(sandbox, 'print(\'{"status": "ok", "passed": 1, "total": 1}\')\n')
    assert result.status == "ok" and result.passed == 0


def test_timeout_override_and_limits_coercion() -> None:
    limits = SandboxLimits.coerce({"timeout": 1.5, "memory_bytes": 256 * 2**20})
    assert limits.timeout == 1.5 and limits.cpu == 3
    sandbox = Sandbox(limits)
    started = time.monotonic()
    result = sandbox.run(
        SandboxJob(candidate="import time\ntime.sleep(60)\n", units=(("pass", True),)),
        timeout=0.5,
    )
    assert result.status == "timeout"
    assert time.monotonic() - started < 3.0
    with pytest.raises(ValueError):
        SandboxLimits(timeout=0)


# ----------------------------------------------------------------------------- fallback

SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_usable() -> bool:
    return Path(SYSTEM_PYTHON).exists() and sys.platform.startswith("linux")


@pytest.mark.skipif(not _system_python_usable(), reason="needs /usr/bin/python3")
def test_fallback_without_namespaces_still_kills_leftovers_and_hides_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    live_processes: Callable[[int | None], list[int]],
) -> None:
    """namespaces=False: rlimits, fresh uid (as root) and the uid sweep still apply."""
    canary = secrets.token_hex(8)
    monkeypatch.setenv(CANARY, canary)
    sandbox = Sandbox(SandboxLimits(timeout=2.0), namespaces=False, python=SYSTEM_PYTHON)
    assert not sandbox.isolation.namespaces
    assert "NO network isolation" in sandbox.isolation.describe()
    corpus = _corpus(tmp_path, 9, secrets.token_hex(4))
    ok = run(sandbox, "def solve():\n    return 42\n")
    assert (ok.status, ok.passed) == ("ok", 1), ok.output_tail
    for name in ("detached_grandchild", "env_canary", "exit_before_tests", "fork_bomb"):
        started = time.monotonic()
        result = run(sandbox, corpus[name])
        assert result.passed == 0, name
        assert time.monotonic() - started < 5.0, name
        if os.geteuid() == 0:
            deadline = time.monotonic() + 2.0
            while live_processes(result.uid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert live_processes(result.uid) == [], name


@pytest.mark.skipif(os.geteuid() != 0, reason="the unreachable-interpreter check is for root")
def test_fallback_refuses_an_interpreter_the_sandbox_uid_cannot_read() -> None:
    base = os.path.realpath(sys.base_prefix)
    blocked = any(not os.stat(p).st_mode & 0o001 for p in Path(base).parents)
    if not blocked:
        pytest.skip("this interpreter is readable by other users")
    sandbox = Sandbox(namespaces=False)
    with pytest.raises(ScorerError) as info:
        sandbox.run(SandboxJob(candidate="", units=(("pass", True),)))
    assert info.value.reason == "unavailable"


def test_namespaces_required_but_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from steerloop.scoring import _isolation as module

    monkeypatch.setattr(module, "_probe", lambda user_namespace: None)
    with pytest.raises(ScorerError) as info:
        module.probe_isolation(True)
    assert info.value.reason == "unavailable"
    assert "unshare" in str(info.value)
    assert not module.probe_isolation(None).namespaces


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_mount_namespace_hides_the_host_tmp(sandbox: Sandbox, tmp_path: Path) -> None:
    if not sandbox.isolation.namespaces:
        pytest.skip("needs namespaces")
    marker = tmp_path / "visible-from-host.txt"
    marker.write_text("host")
    code = f"import os\ndef solve():\n    return 42 if os.path.exists({str(marker)!r}) else 0\n"
    assert run(sandbox, code).passed == 0


def test_site_packages_are_opt_in() -> None:
    code = "import numpy\ndef f():\n    return int(numpy.arange(4).sum())\n"
    task = CodeTask(tests=("assert f() == 6",))
    isolated = Sandbox(SandboxLimits(timeout=5.0)).run(build_job(code, task))
    assert (isolated.passed, isolated.error) == (0, "ModuleNotFoundError")
    with_site = Sandbox(SandboxLimits(timeout=5.0), site_packages=True).run(build_job(code, task))
    assert with_site.passed == 1


def test_a_virtual_environment_under_tmp_stays_importable_and_read_only() -> None:
    """A venv under /tmp (e.g. a CI clone there) is bound back, read-only, over the new /tmp."""
    sandbox_here = Sandbox(SandboxLimits(timeout=10.0))
    if not sandbox_here.isolation.namespaces:
        pytest.skip("needs mount namespaces (unshare)")
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:  # the case under test
        venv = Path(scratch) / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
        )
        os.chmod(scratch, 0o755)  # let the sandbox uid traverse it, as a clone under /tmp is
        python = venv / "bin" / "python"
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        marker = secrets.token_hex(8)
        Path(site, "steerloop_canary_module.py").write_text(f"MARKER = {marker!r}\n")
        code = (
            "import os, steerloop_canary_module\n"
            "def probe():\n"
            "    site = os.path.dirname(steerloop_canary_module.__file__)\n"
            "    with open('/proc/self/mountinfo') as handle:\n"
            "        mounts = [line.split() for line in handle]\n"
            "    options = [m[5] for m in mounts if site.startswith(m[4])]\n"
            "    return steerloop_canary_module.MARKER, options[-1].split(',')[0]\n"
        )
        tests = (f"assert probe() == ({marker!r}, 'ro')",)
        with_site = Sandbox(SandboxLimits(timeout=10.0), python=str(python), site_packages=True)
        result = with_site.run(build_job(code, CodeTask(tests=tests)))
        assert (result.status, result.passed, result.error) == ("ok", 1, None), result
        isolated = Sandbox(SandboxLimits(timeout=10.0), python=str(python)).run(
            build_job(code, CodeTask(tests=tests))
        )
        assert (isolated.passed, isolated.error) == (0, "ModuleNotFoundError")


NON_ROOT_SCRIPT = """
import os, time
from steerloop.scoring.sandbox import Sandbox, SandboxLimits
from steerloop.scoring.tasks import CodeTask, build_job
sandbox = Sandbox(SandboxLimits(timeout=2), python="/usr/bin/python3")
assert sandbox.isolation.user_namespace and sandbox.isolation.uid == "same"
probe = (
    "import os, socket\\n"
    "def probe():\\n"
    "    try:\\n"
    "        socket.create_connection(('127.0.0.1', 22), timeout=1)\\n"
    "        net = True\\n"
    "    except OSError:\\n"
    "        net = False\\n"
    "    return (os.getpid(), net, os.getcwd())\\n"
)
tests = ("assert probe()[0] <= 3", "assert probe()[1] is False", "assert probe()[2] == '/tmp/work'")
result = sandbox.run(build_job(probe, CodeTask(tests=tests)))
assert (result.status, result.passed) == ("ok", 3), result
started = time.monotonic()
grandchild = "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(100)\\n"
job = build_job(grandchild + "def f():\\n    return 1\\n", CodeTask(tests=("assert f() == 1",)))
result = sandbox.run(job)
assert result.passed == 1 and time.monotonic() - started < 2
print("non-root ok")
"""


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def _run_as_nobody(script: Path, root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOBODY, "/usr/bin/python3", str(script)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{root}:{site}", "HOME": str(script.parent)},
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not _system_python_usable(),
    reason="needs root (to become nobody), setpriv and /usr/bin/python3",
)
def test_non_root_caller_gets_user_namespaces() -> None:
    """Run the sandbox as an unprivileged caller (nobody): unshare --user --map-root-user."""
    root = Path(__file__).resolve().parents[2]
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = Path(sys.prefix) / "lib" / version / "site-packages"
    if not all(os.stat(p).st_mode & 0o005 == 0o005 for p in (root, site)):
        pytest.skip("the package and its dependencies must be readable by other users")
    with tempfile.TemporaryDirectory() as scratch:
        os.chmod(scratch, 0o755)  # nobody must read the script and may use it as cwd
        script = Path(scratch) / "non_root.py"
        script.write_text(NON_ROOT_SCRIPT)
        script.chmod(0o644)
        completed = _run_as_nobody(script, root, site)
    if "unshare" in completed.stderr and "failed" in completed.stderr:
        pytest.skip("user namespaces are not allowed for unprivileged users here")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "non-root ok" in completed.stdout
