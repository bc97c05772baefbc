"""Bounded YAML reading: PyYAML safe parsing that stops a hostile document early.

:func:`compose` turns policy text into a PyYAML node graph, or raises
:class:`~steerloop.errors.PolicyError` at the first position where the text is not safe,
well-formed YAML or breaks a limit. Every limit is checked *while* the document is read, so
no work or memory is spent on the part of a file beyond the point where it fails:

* :data:`MAX_BYTES` (1 MiB) of UTF-8, checked on the raw bytes before parsing;
* :data:`MAX_NODES` values (scalars, lists and mappings), counted as each node is composed,
  an alias counting as the whole value it repeats, so a "billion laughs" document fails at
  the alias that crosses the budget, before anything is expanded;
* :data:`MAX_ALIASES` aliases (``*name``), and no alias may refer to a collection that
  contains it (a recursive alias);
* :data:`MAX_DEPTH` nested mappings/lists, counted while composing and through aliases (and,
  with the pure-Python parser, already in the scanner, whose look-ahead grows with the
  nesting of ``[``/``{``);
* :data:`MAX_SCALAR_CHARS` characters per single value (and :data:`MAX_INT_DIGITS` digits
  per integer, checked when values are built).

Parsing uses PyYAML's event parser only (libyaml's through ``yaml.cyaml.CParser`` when
PyYAML was built with it, as its wheels are, else PyYAML's pure-Python parser) under a
composer that counts; turning nodes into Python values is left to the caller, which accepts
plain YAML types only (see :mod:`steerloop.policies.positions`). Nothing is ever constructed
from a tag, let alone evaluated.

Measured cost of rejecting each file of the hostile corpus (``tests/policies/hostile.py``) is
recorded in ``CHANGELOG.md`` with machine and method.

Examples
--------
>>> node = compose("objectives: [security]\\n", "policy.yaml")
>>> node.value[0][0].value, len(node.value[0][1].value)
('objectives', 1)
>>> try:
...     compose("a: &x [1, *x]\\n", "policy.yaml")
... except PolicyError as error:
...     print(error)
policy.yaml:1:11: recursive alias: this collection contains itself; aliases must not form a loop
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, Any, Final, Protocol

import yaml
from yaml.composer import Composer
from yaml.error import MarkedYAMLError, YAMLError
from yaml.events import AliasEvent, Event, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import Node
from yaml.reader import ReaderError

from steerloop.errors import PolicyError

__all__ = [
    "HAVE_LIBYAML",
    "LIBYAML",
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "MAX_SCALAR_CHARS",
    "Position",
    "check_text",
    "compose",
    "decode",
    "position_error",
    "too_large",
    "yaml_message",
]

#: Largest accepted policy, in bytes (UTF-8).
MAX_BYTES: Final = 1 << 20
#: Deepest accepted nesting of mappings and lists (the top-level mapping is level 1).
MAX_DEPTH: Final = 32
#: Most values (scalars, lists, mappings) a document may hold, aliases counted expanded.
MAX_NODES: Final = 10_000
#: Most aliases (``*name``) a document may use.
MAX_ALIASES: Final = 100
#: Longest accepted single value, in characters.
MAX_SCALAR_CHARS: Final = 1 << 16
#: Longest accepted integer literal, in characters (checked before conversion).
MAX_INT_DIGITS: Final = 100

#: Whether PyYAML has its libyaml binding (``yaml.CSafeLoader``; PyYAML's wheels do).
HAVE_LIBYAML: Final[bool] = bool(getattr(yaml, "__with_libyaml__", False))
#: Whether to use libyaml's parser when PyYAML has it (:data:`HAVE_LIBYAML`), else PyYAML's
#: pure-Python parser. Both enforce the same limits and report the same positions; libyaml
#: scans a large file 20-100x faster.
LIBYAML: bool = HAVE_LIBYAML

_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_DEPTH_MESSAGE = (
    f"nesting deeper than {MAX_DEPTH} levels of mappings/lists; "
    "a policy never needs this much (flatten the conditions)"
)


class Position(Protocol):
    """A place in the text: 0-based ``line`` and ``column`` (a PyYAML or libyaml mark)."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


class _LimitError(Exception):
    """A limit broken while reading, at a position."""

    def __init__(self, message: str, mark: Position | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def position_error(file: str, mark: Position | None, message: str, field: str = "") -> PolicyError:
    """A :class:`PolicyError` with one issue at ``mark`` (converted to 1-based line:column)."""
    if mark is None:
        return PolicyError.single(message, file=file, field=field)
    return PolicyError.single(
        message, file=file, line=mark.line + 1, column=mark.column + 1, field=field
    )


# ----------------------------------------------------------------------------- bytes


def decode(data: bytes, file: str) -> str:
    """The text of a policy file: UTF-8 (an initial BOM is dropped), at most :data:`MAX_BYTES`.

    Raises
    ------
    PolicyError
        The data is too large, UTF-16, or not valid UTF-8 (pointing at the first bad byte).
    """
    if len(data) > MAX_BYTES:
        raise too_large(file)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise PolicyError.single(
            "the file is UTF-16; save the policy as UTF-8", file=file, line=1, column=1
        )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        column = len(data[line_start : error.start].decode("utf-8", "replace")) + 1
        raise PolicyError.single(
            f"the file is not valid UTF-8 (byte 0x{data[error.start]:02x} here); "
            "save the policy as UTF-8",
            file=file,
            line=data.count(b"\n", 0, error.start) + 1,
            column=column,
        ) from None


def check_text(text: str, file: str) -> None:
    """Check that ``text`` encodes to UTF-8 within :data:`MAX_BYTES` (no lone surrogates)."""
    if len(text) > MAX_BYTES:
        raise too_large(file)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        message = f"character U+{code:04X} (a lone surrogate) cannot be encoded; remove it"
        raise _character_error(text, error.start, message, file) from None
    if size > MAX_BYTES:
        raise too_large(file)


def too_large(file: str) -> PolicyError:
    """The error for a policy over :data:`MAX_BYTES`."""
    return PolicyError.single(
        f"policy is larger than {MAX_BYTES // 1024} KiB; a policy is configuration, keep it small",
        file=file,
        line=1,
        column=1,
    )


# ----------------------------------------------------------------------------- composing


class _BoundedComposer(Composer):
    """PyYAML's composer, counting nodes, aliases and depth as it goes (see the module doc).

    ``_done`` maps each anchor whose node is complete to that node's expanded size and the
    height of its nested collections, so an alias is charged what it repeats in O(1).
    """

    if TYPE_CHECKING:

        def peek_event(self) -> Event: ...

    def _start_counting(self) -> None:
        self._nodes = 0
        self._aliases = 0
        self._depth = 0  # nodes enclosing the one being composed
        self._deepest = 0  # deepest collection level reached (the top-level mapping is 1)
        self._done: dict[Any, tuple[int, int]] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: Event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._alias(event)
            return super().compose_node(parent, index)
        collection = isinstance(event, (MappingStartEvent, SequenceStartEvent))
        if collection and self._depth >= MAX_DEPTH:
            raise _LimitError(_DEPTH_MESSAGE, event.start_mark)
        if isinstance(event, ScalarEvent) and len(event.value) > MAX_SCALAR_CHARS:
            raise _LimitError(
                f"a single value of {len(event.value)} characters; at most {MAX_SCALAR_CHARS} "
                "are accepted",
                event.start_mark,
            )
        before, outer_deepest = self._nodes, self._deepest
        self._charge(1, event.start_mark, alias=False)
        self._deepest = self._depth + 1 if collection else self._depth
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        height = self._deepest - self._depth
        self._deepest = max(outer_deepest, self._deepest)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._done[anchor] = (self._nodes - before, height)
        return node

    def _alias(self, event: AliasEvent) -> None:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise _LimitError(
                f"more than {MAX_ALIASES} aliases ('*name'); a policy needs only a few",
                event.start_mark,
            )
        if event.anchor not in self.anchors:
            return  # PyYAML reports the undefined alias
        done = self._done.get(event.anchor)
        if done is None:
            raise _LimitError(
                "recursive alias: this collection contains itself; aliases must not form a loop",
                event.start_mark,
            )
        size, height = done
        if self._depth + height > MAX_DEPTH:
            raise _LimitError(
                f"aliases nest this collection deeper than {MAX_DEPTH} levels", event.start_mark
            )
        self._deepest = max(self._deepest, self._depth + height)
        self._charge(size, event.start_mark, alias=True)

    def _charge(self, size: int, mark: Position | None, *, alias: bool) -> None:
        self._nodes += size
        if self._nodes <= MAX_NODES:
            return
        if alias:
            raise _LimitError(
                f"the document expands to more than {MAX_NODES} values through aliases "
                "('*name' repeats what its anchor holds, so nested aliases multiply, as in a "
                "'billion laughs' document); repeat less",
                mark,
            )
        raise _LimitError(
            f"the document holds more than {MAX_NODES} values; "
            "a policy is configuration, keep it small",
            mark,
        )


class _PythonLoader(_BoundedComposer, yaml.SafeLoader):
    """PyYAML's pure-Python parser under the bounded composer."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._start_counting()

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead through flow collections ('[' and '{') at a cost that grows
        # with their depth, so stop deep flow nesting here, before the composer sees it. The
        # count assumes one enclosing block mapping (the policy's top level), where the
        # composer would stop at the same bracket; deeper in block collections this stops a
        # few brackets later than the composer (and libyaml) would.
        if self.flow_level + 1 >= MAX_DEPTH:
            raise _LimitError(_DEPTH_MESSAGE, self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


if HAVE_LIBYAML:

    class _LibyamlLoader(_BoundedComposer, yaml.CSafeLoader):
        """libyaml's parser (its events only: the composer comes first) under the bounded one."""

        def __init__(self, text: str) -> None:
            yaml.CSafeLoader.__init__(self, text)
            Composer.__init__(self)
            self._start_counting()


def compose(text: str, file: str) -> Node | None:
    """The node graph of the single YAML document in ``text`` (``None`` for no document).

    Parameters
    ----------
    text
        The policy text (already checked against :data:`MAX_BYTES`).
    file
        The name used in error messages.

    Raises
    ------
    PolicyError
        One issue, at the first problem: a YAML syntax error, a character YAML forbids, a
        second document, or a broken limit.
    """
    fast = LIBYAML and HAVE_LIBYAML
    loader: _PythonLoader | _LibyamlLoader | None = None
    try:
        # PyYAML's reader checks the characters on construction, so construct inside the try.
        loader = _LibyamlLoader(text) if fast else _PythonLoader(text)
        return loader.get_single_node()
    except _LimitError as problem:
        raise position_error(file, problem.mark, problem.message) from None
    except MarkedYAMLError as error:
        raise position_error(file, error.problem_mark, yaml_message(error, text)) from None
    except ReaderError as error:
        raise _reader_error(error, text, file, byte_offset=fast) from None
    except YAMLError as error:  # pragma: no cover - every YAML error above carries a position
        raise PolicyError.single(f"invalid YAML: {error}", file=file) from None
    except RecursionError:  # pragma: no cover - the depth limit stops recursion first
        raise PolicyError.single("the document is nested too deeply", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()


def yaml_message(error: MarkedYAMLError, text: str) -> str:
    """A PyYAML or libyaml error message, reworded where a hint helps."""
    problem = (error.problem or "invalid YAML").strip()
    context = (error.context or "").strip()
    if "expected a single document" in context:
        return (
            "a policy file holds one YAML document, found a second one "
            "(remove the '---' separator and merge or split the files)"
        )
    if "maximum nesting depth" in problem:  # libyaml's own nesting limit
        return _DEPTH_MESSAGE
    if _char_at(text, error.problem_mark) == "\t":
        problem = problem.replace("found character that", "found character '\\t' that")
        return f"{problem}; YAML does not allow tabs for indentation, use spaces"
    if problem.startswith("found undefined alias"):
        return f"{problem}; define the anchor (&name) before using the alias (*name)"
    if context and error.context_mark is not None:
        line = error.context_mark.line + 1
        column = error.context_mark.column + 1
        return f"{problem} ({context} at line {line}, column {column})"
    return f"{problem} ({context})" if context else problem


def _char_at(text: str, mark: Position | None) -> str:
    if mark is None:
        return ""
    start = 0
    for _ in range(mark.line):
        found = _LINE_BREAK.search(text, start)
        if found is None:
            return ""
        start = found.end()
    index = start + mark.column
    return text[index] if index < len(text) else ""


def _reader_error(error: ReaderError, text: str, file: str, *, byte_offset: bool) -> PolicyError:
    position = error.position
    if byte_offset:  # libyaml reports a byte offset into the UTF-8 text
        position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
    character = f"U+{error.character:04X}" if isinstance(error.character, int) else "?"
    reason = str(error.reason).replace("control characters", "special characters")
    message = f"character {character} is not allowed in YAML ({reason}); remove it"
    return _character_error(text, position, message, file)


def _character_error(text: str, position: int, message: str, file: str) -> PolicyError:
    position = min(max(position, 0), len(text))
    line = 1
    line_start = 0
    for found in _LINE_BREAK.finditer(text, 0, position):
        line += 1
        line_start = found.end()
    return PolicyError.single(
        message,
        file=file,
        line=line,
        column=position - line_start + 1,
    )
