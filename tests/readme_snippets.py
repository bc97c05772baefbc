"""Extract README's Python code blocks and what each needs to run as written.

The convention (README.md is read by people, so it stays small and invisible when rendered):
a Python block runs as written, in a fresh interpreter, with nothing defined beforehand. A
block that needs more says so in an HTML comment on the last non-blank line before its fence::

    <!-- readme-test: given=my_llm,my_scorer; extra=agents; free-port=9464 -->

Directives, separated by ``;``, each ``key=value[,value...]``:

``given=NAME,...``
    Names defined before the block runs: stand-ins for what the reader brings (their model
    call, their scorer, a chat model, a variable from an earlier snippet). They come from
    ``tests/readme_fakes.py``; add a stand-in there to use a new name.
``extra=EXTRA,...``
    The steerloop extras the block imports (``agents``, ``redis``, ...); the test fails with
    the ``pip install`` line when one is missing.
``free-port=PORT``
    The block binds ``PORT``; the test replaces that literal number with a free port.
``redis-server=PORT``
    The block talks to a redis-server on ``PORT``; the test starts one on a free port and
    replaces that literal number with it.

A directive comment that is not followed by a Python block, an unknown key, or a port that
does not occur in its block is an error, so the convention cannot silently rot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DIRECTIVE", "Snippet", "parse_snippets", "replace_port"]

#: The marker of a directive comment.
DIRECTIVE = "readme-test:"
_COMMENT = re.compile(r"^\s*<!--\s*readme-test:(?P<body>.*?)-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
_PYTHON = {"python", "py", "python3"}
_KEYS = {"given", "extra", "free-port", "redis-server"}


@dataclass(frozen=True)
class Snippet:
    """One Python block of a Markdown file and what it needs."""

    path: Path
    line: int  # 1-based line of the block's first code line
    heading: str
    code: str
    given: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    free_ports: tuple[int, ...] = ()
    redis_ports: tuple[int, ...] = ()
    directives: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug or 'top'}-line{self.line}"


def _directives(body: str, where: str) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (piece.strip() for piece in body.split(";"))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS:
            raise ValueError(f"{where}: unknown readme-test directive {part!r}; use {_KEYS}")
        values = tuple(v.strip() for v in value.split(",") if v.strip())
        if not values:
            raise ValueError(f"{where}: readme-test directive {key!r} has no value")
        found[key] = found.get(key, ()) + values
    return found


def _ports(values: tuple[str, ...], where: str) -> tuple[int, ...]:
    if not all(value.isdigit() for value in values):
        raise ValueError(f"{where}: ports must be numbers, got {values}")
    return tuple(int(value) for value in values)


def parse_snippets(text: str, path: Path) -> list[Snippet]:
    """Every Python block of ``text`` (a Markdown file at ``path``), in order."""
    lines = text.splitlines()
    snippets: list[Snippet] = []
    heading = ""
    pending: tuple[int, dict[str, tuple[str, ...]]] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        where = f"{path.name}:{index + 1}"
        comment = _COMMENT.match(line)
        fence = _FENCE.match(line)
        if line.startswith("#") and not fence:
            heading = line.lstrip("#").strip()
        if comment:
            if pending is not None:
                raise ValueError(f"{path.name}:{pending[0]}: readme-test comment without a block")
            pending = (index + 1, _directives(comment["body"], where))
        elif fence:  # an opening fence (blocks are skipped whole, so never a closing one)
            end = index + 1
            while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
                end += 1
            if end == len(lines):
                raise ValueError(f"{where}: code block is never closed")
            if fence["lang"] in _PYTHON:
                directives = pending[1] if pending is not None else {}
                snippets.append(
                    _snippet(path, index + 2, heading, lines[index + 1 : end], directives)
                )
            elif pending is not None:
                kind = fence["lang"] or "plain"
                raise ValueError(f"{where}: readme-test comment before a {kind} block")
            pending = None
            index = end
        elif line.strip() and pending is not None:
            raise ValueError(f"{path.name}:{pending[0]}: readme-test comment without a block")
        index += 1
    if pending is not None:
        raise ValueError(f"{path.name}:{pending[0]}: readme-test comment without a block")
    return snippets


def _snippet(
    path: Path, line: int, heading: str, body: list[str], directives: dict[str, tuple[str, ...]]
) -> Snippet:
    where = f"{path.name}:{line - 1}"
    indent = min((len(x) - len(x.lstrip()) for x in body if x.strip()), default=0)
    code = "\n".join(x[indent:] for x in body) + "\n"
    snippet = Snippet(
        path=path,
        line=line,
        heading=heading,
        code=code,
        given=directives.get("given", ()),
        extras=directives.get("extra", ()),
        free_ports=_ports(directives.get("free-port", ()), where),
        redis_ports=_ports(directives.get("redis-server", ()), where),
        directives=directives,
    )
    for port in (*snippet.free_ports, *snippet.redis_ports):
        if not _port_pattern(port).search(code):
            raise ValueError(f"{where}: port {port} of the readme-test comment is not in the block")
    return snippet


def _port_pattern(port: int) -> re.Pattern[str]:
    return re.compile(rf"(?<![\d.]){port}(?!\d)")


def replace_port(code: str, port: int, new: int) -> str:
    """``code`` with the literal ``port`` (as a whole number) replaced by ``new``.

    >>> replace_port("serve(9464); x = 194640; url = 'h:9464/m'", 9464, 5000)
    "serve(5000); x = 194640; url = 'h:5000/m'"
    """
    return _port_pattern(port).sub(str(new), code)
