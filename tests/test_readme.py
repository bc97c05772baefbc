"""Every Python snippet of README.md runs as written (issue 20: a newcomer succeeds first try).

Each block runs in a fresh interpreter, in an empty directory, offline. What a block needs
beyond itself — stand-ins for the reader's own model or scorer, an extra, a port, a
redis-server — is declared in an HTML comment above it (``tests/readme_snippets.py``
describes the convention; ``tests/readme_fakes.py`` holds the stand-ins).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from contextlib import ExitStack
from pathlib import Path

import pytest
from readme_snippets import Snippet, parse_snippets, replace_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TESTS = Path(__file__).resolve().parent
#: One generous setting for everything a snippet may wait on (a loaded 2-core CI machine).
TIMEOUT = 180.0
SNIPPETS = parse_snippets(README.read_text(), README)

RUNNER = """\
import sys
sys.path.insert(0, {tests!r})
from readme_fakes import provide
namespace = {{"__name__": "__main__"}}
namespace.update(provide({given!r}))
code = compile("\\n" * {offset} + {code!r}, {readme!r}, "exec")
exec(code, namespace)
"""


def extra_distributions(extra: str) -> list[str]:
    """The distributions an extra of pyproject.toml installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    if extra not in extras:
        raise AssertionError(f"README names an unknown extra {extra!r}; known: {sorted(extras)}")
    names = [re.match(r"[A-Za-z0-9_.-]+", spec) for spec in extras[extra]]
    return [match.group(0) for match in names if match and match.group(0) != "steerloop"]


def require_extras(snippet: Snippet) -> None:
    for extra in snippet.extras:
        for distribution in extra_distributions(extra):
            try:
                importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                pytest.fail(
                    f"README.md:{snippet.line} needs the {extra!r} extra ({distribution} is "
                    f"missing): pip install -e '.[{extra}]'"
                )


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(stack: ExitStack, workdir: Path) -> int:
    """A redis-server on a free loopback port, stopped when ``stack`` closes (tests/stores')."""
    sys.path.insert(0, str(TESTS / "stores"))
    try:
        from store_helpers import RedisServer, require_redis_server
    finally:
        sys.path.remove(str(TESTS / "stores"))
    server = RedisServer(require_redis_server(), workdir)
    stack.callback(server.stop)
    return server.port


def offline_env() -> dict[str, str]:
    secrets = ("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "ANTHROPIC_")
    return {key: value for key, value in os.environ.items() if not key.startswith(secrets)}


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda snippet: snippet.id)
def test_readme_snippet_runs_as_written(snippet: Snippet, tmp_path: Path) -> None:
    require_extras(snippet)
    with ExitStack() as stack:
        code = snippet.code
        for port in snippet.free_ports:
            code = replace_port(code, port, free_port())
        for port in snippet.redis_ports:
            redis_dir = tmp_path / f"redis-{port}"
            redis_dir.mkdir()
            code = replace_port(code, port, start_redis(stack, redis_dir))
        script = tmp_path / "snippet.py"
        script.write_text(
            RUNNER.format(
                tests=str(TESTS),
                given=list(snippet.given),
                offset=snippet.line - 1,
                code=code,
                readme=str(README),
            )
        )
        work = tmp_path / "work"
        work.mkdir()
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=offline_env(),
            check=False,
        )
    assert result.returncode == 0, (
        f"README.md line {snippet.line} ({snippet.heading}) failed:\n{result.stderr[-3000:]}"
    )


def test_the_sections_newcomers_copy_from_have_runnable_snippets() -> None:
    headings = {snippet.heading for snippet in SNIPPETS}
    assert {"Quickstart", "Adapters", "Telemetry"} <= headings
    fences = re.findall(r"^\s*```(?:python|py|python3)\s*$", README.read_text(), re.MULTILINE)
    assert len(fences) == len(SNIPPETS)  # no Python block escapes the test


def test_the_adapters_snippet_uses_the_one_argument_name() -> None:
    (adapters,) = [snippet for snippet in SNIPPETS if snippet.heading == "Adapters"]
    assert adapters.code.count("scorer=") == 3
    assert "score=" not in adapters.code.replace("scorer=", "")


# -- the convention itself ---------------------------------------------------------------------

SAMPLE = """\
# Title

<!-- readme-test: given=my_llm; free-port=9464 -->
```python
serve(9464)
```

```sh
# not a heading: shell blocks are skipped whole
```

## Second

```py
    print("indented block, dedented")
```
"""


def test_blocks_directives_headings_and_lines_are_parsed() -> None:
    first, second = parse_snippets(SAMPLE, Path("SAMPLE.md"))
    assert (first.heading, first.line, first.given, first.free_ports) == (
        "Title",
        5,
        ("my_llm",),
        (9464,),
    )
    assert first.code == "serve(9464)\n"
    assert (second.heading, second.line, second.code) == (
        "Second",
        15,
        'print("indented block, dedented")\n',
    )
    assert second.given == second.extras == second.free_ports == second.redis_ports == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- readme-test: gven=x -->\n```python\nx\n```\n", "unknown readme-test directive"),
        ("<!-- readme-test: given= -->\n```python\nx\n```\n", "has no value"),
        ("<!-- readme-test: given=x -->\ntext\n```python\nx\n```\n", "without a block"),
        ("<!-- readme-test: given=x -->\n```sh\nx\n```\n", "before a sh block"),
        ("<!-- readme-test: given=x -->\n", "without a block"),
        ("<!-- readme-test: free-port=80 -->\n```python\nx\n```\n", "port 80"),
        ("<!-- readme-test: free-port=http -->\n```python\nx\n```\n", "must be numbers"),
        ("```python\nx\n", "never closed"),
    ],
)
def test_a_broken_convention_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_snippets(text, Path("SAMPLE.md"))


def test_an_unknown_stand_in_or_extra_fails_with_what_is_known() -> None:
    from readme_fakes import provide

    with pytest.raises(KeyError, match=r"known: .*my_llm"):
        provide(["my_lm"])
    with pytest.raises(AssertionError, match="unknown extra 'agent'"):
        extra_distributions("agent")
    assert "langgraph" in extra_distributions("agents")
