"""Load policies from YAML: safe parsing, resource limits and errors that point at the line.

Three entry points return a validated :class:`~steerloop.policies.schema.Policy` (structure
and :func:`~steerloop.policies.schema.reference_problems`) or raise
:class:`~steerloop.errors.PolicyError` listing every problem found, one
``file:line:col: field.path: message`` line each:

* :func:`load_policy` reads a file,
* :func:`load_preset` reads a preset shipped in ``steerloop/policies/presets/``,
* :func:`parse_policy` parses text (or bytes) that is already in memory.

Parsing is built on PyYAML's ``SafeLoader`` (only plain YAML types; ``!!python/...`` tags are
rejected, nothing is ever evaluated) with hard limits, checked before any expansion happens:

* at most :data:`MAX_BYTES` (1 MiB) of input, checked on the raw bytes before parsing;
* at most :data:`MAX_DEPTH` nested mappings/lists, checked while composing (so deep input
  cannot exhaust the Python stack) and again through aliases;
* at most :data:`MAX_NODES` nodes once aliases are expanded, computed on the alias graph
  without expanding it, so a "billion laughs" file fails in microseconds; recursive aliases
  are rejected;
* duplicate mapping keys are errors (at the second occurrence), not "last one wins";
* integers of more than :data:`MAX_INT_DIGITS` digits are rejected before conversion.

Errors of the schema (pydantic) and of cross-references are mapped back to the YAML node they
concern: the value of a key, the key itself for an unknown key, the enclosing mapping for a
missing field. No YAML or pydantic exception escapes these functions.

Examples
--------
>>> policy = parse_policy('''
... objectives: [security, functionality]
... strategies:
...   careful: {prompt: "Fix every security issue first.", emphasis: {security: 1}}
... initial: careful
... ''')
>>> policy.initial
'careful'
>>> try:
...     parse_policy("objectives: [a]\\nstrategies: {s: {prompt: p}}\\ninitial: t\\n")
... except PolicyError as error:
...     print(error)
<string>:3:10: initial: unknown strategy 't'; defined: ['s']
"""

from __future__ import annotations

import codecs
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, NoReturn, Union

import yaml
from pydantic import BaseModel, ValidationError
from yaml.error import Mark, MarkedYAMLError, YAMLError
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies.schema import Policy, reference_problems

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "SCHEMA_ID",
    "available_presets",
    "load_policy",
    "load_preset",
    "parse_policy",
    "policy_json_schema",
]

#: Largest accepted policy, in bytes (UTF-8).
MAX_BYTES: Final = 1 << 20
#: Deepest accepted nesting of mappings and lists (the top-level mapping is level 1).
MAX_DEPTH: Final = 32
#: Most nodes a document may have once its aliases are expanded.
MAX_NODES: Final = 100_000
#: Longest accepted integer literal, in characters.
MAX_INT_DIGITS: Final = 100
#: ``$id`` of the JSON Schema returned by :func:`policy_json_schema`.
SCHEMA_ID: Final = "urn:steerloop:policy:1"

_Path = tuple[Hashable, ...]
_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"
_SCALAR_TAGS = frozenset(_TAG + name for name in ("str", "int", "float", "bool", "null"))
_PLAIN_TYPES = "strings, numbers, booleans, lists and mappings"
_PRESET_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_PRESET_DATA: dict[str, tuple[bytes, Any]] = {}
_DEPTH_MESSAGE = (
    f"nesting deeper than {MAX_DEPTH} levels of mappings/lists; "
    "a policy never needs this much (flatten the conditions)"
)


class _LimitError(Exception):
    """A fatal problem found while reading YAML, at a mark."""

    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Invalid:
    """Stands in for a value that could not be read (its problem is already reported)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Final = _Invalid()


class _PolicyLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses to compose collections nested deeper than ``MAX_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead through flow collections ('[' and '{') at a cost that grows
        # with their depth, so stop deep flow nesting here, before the composer sees it.
        if self.flow_level >= MAX_DEPTH:
            raise _LimitError(_DEPTH_MESSAGE, self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH and self.check_event(MappingStartEvent, SequenceStartEvent):
            raise _LimitError(_DEPTH_MESSAGE, self._next_mark())
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _next_mark(self) -> Mark | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Mark | None = getattr(event, "start_mark", None)
        return mark


# ----------------------------------------------------------------------------- entry points


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, parse and validate the policy file at ``path``.

    Parameters
    ----------
    path
        A YAML policy file (UTF-8, at most :data:`MAX_BYTES` bytes).

    Returns
    -------
    Policy
        The validated policy.

    Raises
    ------
    PolicyError
        The file cannot be read, is not safe well-formed YAML, or is not a valid policy.
        ``issues`` lists every problem with its line and column.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        raise PolicyError.single(f"cannot read the policy file: {reason}", file=file) from None
    return _parse_bytes(data, file)


def parse_policy(text: str | bytes, *, file: str = "<string>") -> Policy:
    """Parse and validate a policy held in memory.

    Parameters
    ----------
    text
        The YAML document; bytes must be UTF-8.
    file
        The name used in error messages.

    Returns
    -------
    Policy
        The validated policy.

    Raises
    ------
    PolicyError
        Listing every problem found, with line and column.
    """
    if isinstance(text, bytes):
        return _parse_bytes(text, file)
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        _too_large(file)
    return _parse_text(text, file)


def available_presets() -> list[str]:
    """Names of the presets shipped with steerloop (usable with :func:`load_preset`).

    Examples
    --------
    >>> "paper" in available_presets()
    True
    """
    folder = resources.files("steerloop.policies") / "presets"
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    )


def load_preset(name: str) -> Policy:
    """Load the preset policy ``name`` (``steerloop/policies/presets/<name>.yaml``).

    Parameters
    ----------
    name
        A preset name, e.g. ``"paper"`` or ``"predictive"`` (see :func:`available_presets`).

    Returns
    -------
    Policy
        The validated preset.

    Raises
    ------
    PolicyError
        No preset has that name.

    Examples
    --------
    >>> load_preset("paper").initial
    'adaptive_integration'
    """
    known = available_presets()
    if not isinstance(name, str) or not _PRESET_NAME.match(name) or name not in known:
        raise PolicyError.single(
            f"unknown preset {name!r}; available presets: {', '.join(known)}",
            file=f"preset:{name}",
        )
    resource = resources.files("steerloop.policies") / "presets" / f"{name}.yaml"
    raw = resource.read_bytes()
    cached = _PRESET_DATA.get(name)
    if cached is not None and cached[0] == raw:
        # Parsing YAML costs milliseconds; validating the cached data gives fresh objects.
        return Policy.model_validate(cached[1])
    file = f"steerloop/policies/presets/{name}.yaml"
    policy, data = _parse_document(_decode(raw, file), file)
    _PRESET_DATA[name] = (raw, data)
    return policy


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the policy format, for editors and other tools.

    Structure only: cross-references (strategy, objective and metric names) cannot be
    expressed in JSON Schema and are checked by the loader. Point an editor at it with a
    first line ``# yaml-language-server: $schema=policy.schema.json`` after
    ``steerloop schema --output policy.schema.json``.

    Returns
    -------
    dict
        The schema, with ``$schema``, ``$id`` and ``title`` set.
    """
    generated = Policy.model_json_schema(by_alias=True)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "steerloop policy",
    }
    schema.update({key: value for key, value in generated.items() if key != "title"})
    schema["description"] = (
        "A steerloop switching policy (version 1): objectives, strategy prompts, estimation "
        "settings and the rules that switch strategies. Names used in rules are checked by "
        "`steerloop validate`."
    )
    return schema


# ----------------------------------------------------------------------------- reading


def _too_large(file: str) -> NoReturn:
    raise PolicyError.single(
        f"policy is larger than {MAX_BYTES // 1024} KiB; a policy is configuration, keep it small",
        file=file,
        line=1,
        column=1,
    )


def _parse_bytes(data: bytes, file: str) -> Policy:
    return _parse_text(_decode(data, file), file)


def _decode(data: bytes, file: str) -> str:
    if len(data) > MAX_BYTES:
        _too_large(file)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise PolicyError.single(
            "the file is UTF-16; save the policy as UTF-8", file=file, line=1, column=1
        )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
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
    return text


def _parse_text(text: str, file: str) -> Policy:
    return _parse_document(text, file)[0]


def _parse_document(text: str, file: str) -> tuple[Policy, Any]:
    """The validated policy and the plain data it was validated from."""
    root = _compose(text, file)
    if root is None:
        raise PolicyError.single(
            "the policy is empty; it needs at least objectives, strategies and initial",
            file=file,
            line=1,
            column=1,
        )
    if not isinstance(root, MappingNode):
        raise _issue_error(
            file,
            root.start_mark,
            "",
            f"a policy is a mapping of 'key: value' lines at the top level, not {_node_kind(root)}",
        )
    try:
        _check_graph(root)
    except _LimitError as problem:
        raise _issue_error(file, problem.mark, "", problem.message) from None
    builder = _Builder(file)
    data = builder.build(root, ())
    issues = list(builder.issues)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        issues.extend(_validation_issues(error, builder, file))
        raise _sorted_error(issues) from None
    except Exception as error:  # a validator bug must still surface as a PolicyError
        raise PolicyError.single(
            f"could not validate the policy ({type(error).__name__}: {error}); "
            "this is a steerloop bug, please report it",
            file=file,
        ) from error
    if issues:
        raise _sorted_error(issues)
    problems = reference_problems(policy)
    if problems:
        raise _sorted_error([builder.issue_at(tuple(loc), message) for loc, message in problems])
    return policy, data


def _compose(text: str, file: str) -> Node | None:
    try:
        loader = _PolicyLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except _LimitError as problem:
        raise _issue_error(file, problem.mark, "", problem.message) from None
    except MarkedYAMLError as error:
        raise _issue_error(file, error.problem_mark, "", _yaml_message(error)) from None
    except ReaderError as error:
        position = min(max(error.position, 0), len(text))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else "?"
        raise PolicyError.single(
            f"character {character} is not allowed in YAML ({error.reason}); remove it",
            file=file,
            line=line,
            column=column,
        ) from None
    except YAMLError as error:  # pragma: no cover - every YAML error above carries a position
        raise PolicyError.single(f"invalid YAML: {error}", file=file) from None
    except RecursionError:  # pragma: no cover - the depth limit stops recursion first
        raise PolicyError.single("the document is nested too deeply", file=file) from None


def _yaml_message(error: MarkedYAMLError) -> str:
    problem = (error.problem or "invalid YAML").strip()
    if "expected a single document" in (error.context or ""):
        return (
            "a policy file holds one YAML document, found a second one "
            "(remove the '---' separator and merge or split the files)"
        )
    if "'\\t'" in problem:
        return f"{problem}; YAML does not allow tabs for indentation, use spaces"
    if problem.startswith("found undefined alias"):
        return f"{problem}; define the anchor (&name) before using the alias (*name)"
    context = (error.context or "").strip()
    if context and error.context_mark is not None:
        line = error.context_mark.line + 1
        column = error.context_mark.column + 1
        return f"{problem} ({context} at line {line}, column {column})"
    return f"{problem} ({context})" if context else problem


def _check_graph(root: Node) -> None:
    """Bound the expanded size and depth of the node graph and reject cyclic aliases.

    Aliases make the composed document a graph; sizes and heights are memoised per node, so
    the cost is linear in the *unexpanded* document whatever the aliases expand to.
    """
    memo: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    reused: set[int] = set()  # collections reached a second time (through an alias)

    def visit(node: Node, depth: int) -> tuple[int, int]:
        if isinstance(node, ScalarNode):
            return 1, 0
        key = id(node)
        if key in active:
            raise _LimitError(
                "recursive alias: this collection contains itself; aliases must not form a loop",
                node.start_mark,
            )
        cached = memo.get(key)
        if cached is not None:
            reused.add(key)
            if depth + cached[1] > MAX_DEPTH:
                raise _LimitError(
                    f"aliases nest this collection deeper than {MAX_DEPTH} levels",
                    node.start_mark,
                )
            return cached
        if depth >= MAX_DEPTH:
            raise _LimitError(
                f"aliases nest this collection deeper than {MAX_DEPTH} levels",
                node.start_mark,
            )
        active.add(key)
        size, height = 1, 1
        for child in _children(node):
            child_size, child_height = visit(child, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
            if size > MAX_NODES:
                if reused:
                    message = (
                        f"this collection expands to more than {MAX_NODES} values through "
                        "aliases ('*name' repeats what its anchor holds, so nested aliases "
                        "multiply, as in a 'billion laughs' document); repeat less"
                    )
                else:
                    message = (
                        f"this collection holds more than {MAX_NODES} values; "
                        "a policy is configuration, keep it small"
                    )
                raise _LimitError(message, node.start_mark)
        active.discard(key)
        memo[key] = (size, height)
        return size, height

    visit(root, 0)


def _children(node: Node) -> Iterable[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return ()


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _TAG + "null":
        return "an empty value (null)"
    return f"a single value ({node.value!r})"


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


@dataclass(frozen=True)
class _Place:
    node: Node
    key: Node | None
    name: Hashable


class _Builder:
    """Turn the checked node graph into plain Python data, remembering where each value was.

    ``places`` maps a data path (``("rules", 0, "when")``) to the value node and, for mapping
    entries, the key node. Problems that do not stop the build (duplicate keys, forbidden
    tags, oversized integers) are collected in ``issues``; the values concerned become
    ``_INVALID`` and their paths are listed in ``bad_paths``.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.places: dict[_Path, _Place] = {}
        self.issues: list[PolicyIssue] = []
        self.bad_paths: set[_Path] = set()
        self._constructor = yaml.SafeLoader("")
        self._checked_mappings: set[int] = set()
        self._reported: set[tuple[int, str]] = set()

    def build(self, node: Node, path: _Path, key: Node | None = None) -> Any:
        """The Python value of ``node`` (reached at ``path``), recording places and issues."""
        self.places[path] = _Place(node, key, path[-1] if path else None)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                return self._forbidden_tag(node, path)
            return [self.build(child, (*path, index)) for index, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != _TAG + "map":
                return self._forbidden_tag(node, path)
            return self._mapping(node, path)
        return self._bad(node, path, "unsupported YAML node")  # pragma: no cover

    def _mapping(self, node: MappingNode, path: _Path) -> dict[Hashable, Any]:
        if id(node) not in self._checked_mappings:
            # Check once per node: an alias reaches the same (already merged) node again.
            self._checked_mappings.add(id(node))
            self._check_duplicates(node, path)
            if any(key_node.tag == _MERGE_TAG for key_node, _ in node.value):
                try:
                    self._constructor.flatten_mapping(node)
                except MarkedYAMLError as error:
                    self._report(node, path, _yaml_message(error), mark=error.problem_mark)
                    self.bad_paths.add(path)
                    return {}
        result: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is not _INVALID:
                result[key] = self.build(value_node, (*path, key), key_node)
        return result

    def _check_duplicates(self, node: MappingNode, path: _Path) -> None:
        seen: dict[Hashable, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            if key is _INVALID:
                continue
            if key in seen:
                earlier = seen[key].start_mark
                where = f" (first at line {earlier.line + 1})" if earlier is not None else ""
                self._report(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r}{where}; each key may appear only once in a mapping",
                )
            else:
                seen[key] = key_node

    def _key(self, node: Node, path: _Path) -> Hashable:
        if not isinstance(node, ScalarNode):
            return self._bad(
                node, path, f"mapping keys must be plain names, not {_node_kind(node)}"
            )
        value = self._scalar(node, None)
        return value if isinstance(value, Hashable) else _INVALID

    def _scalar(self, node: ScalarNode, path: _Path | None) -> Any:
        if node.tag not in _SCALAR_TAGS and node.tag != _TAG + "timestamp":
            return self._forbidden_tag(node, path)
        if node.tag == _TAG + "int" and len(node.value) > MAX_INT_DIGITS:
            return self._bad(
                node,
                path,
                f"integer literal of {len(node.value)} characters is too large "
                f"(at most {MAX_INT_DIGITS})",
            )
        constructor = self._constructor.yaml_constructors[node.tag]
        try:
            return constructor(self._constructor, node)
        except (ValueError, OverflowError, YAMLError):
            return self._bad(node, path, f"cannot read {node.value!r} as {_short_tag(node.tag)}")

    def _forbidden_tag(self, node: Node, path: _Path | None) -> _Invalid:
        return self._bad(
            node,
            path,
            f"tag {_short_tag(node.tag)} is not allowed; a policy holds only {_PLAIN_TYPES}",
        )

    def _bad(self, node: Node, path: _Path | None, message: str) -> _Invalid:
        if path is not None:
            self.bad_paths.add(path)
        self._report(node, path, message)
        return _INVALID

    def _report(
        self, node: Node, path: _Path | None, message: str, *, mark: Mark | None = None
    ) -> None:
        if (id(node), message) in self._reported:
            return  # the same node reached again through an alias
        self._reported.add((id(node), message))
        self.issues.append(
            _issue(self.file, mark or node.start_mark, self.field(path or ()), message)
        )

    def issue_at(self, loc: _Path, message: str) -> PolicyIssue:
        """An issue for a cross-reference problem at ``loc`` (a path into the policy).

        Points at the value, or at the key when the key is the unknown name (emphasis and
        weights mappings are keyed by objective).
        """
        path: _Path = ()
        for segment in loc:
            if (*path, segment) not in self.places:
                break
            path = (*path, segment)
        place = self.places[path]
        at_key = len(path) >= 2 and path[-2] in ("emphasis", "weights") and place.key is not None
        node = place.key if at_key and place.key is not None else place.node
        return _issue(self.file, node.start_mark, self.field(loc), message)

    def field(self, loc: Iterable[Hashable]) -> str:
        """``loc`` as a dotted field path, spelling mapping keys as written in the file."""
        parts: list[str] = []
        path: _Path = ()
        for segment in loc:
            path = (*path, segment)
            place = self.places.get(path)
            key = place.key if place is not None else None
            parts.append(key.value if isinstance(key, ScalarNode) else str(segment))
        return ".".join(parts)

    def is_bad(self, path: _Path) -> bool:
        """Whether ``path`` is at or under a value already reported as unreadable."""
        bad = self.bad_paths
        return bool(bad) and any(path[:length] in bad for length in range(len(path) + 1))


def _issue(file: str, mark: Mark | None, field: str, message: str) -> PolicyIssue:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return PolicyIssue(file=file, line=line, column=column, field=field, message=message)


def _issue_error(file: str, mark: Mark | None, field: str, message: str) -> PolicyError:
    return PolicyError([_issue(file, mark, field, message)])


def _sorted_error(issues: list[PolicyIssue]) -> PolicyError:
    unique = list(dict.fromkeys(issues))
    unique.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
    return PolicyError(unique)


# ----------------------------------------------------------------------------- pydantic errors

_MISMATCH_NOUNS: Final[dict[str, str]] = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "string_type": "a string",
    "bool_type": "a boolean (true/false)",
    "bool_parsing": "a boolean (true/false)",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "nothing (null)",
}


_MISMATCH_KINDS: Final = frozenset({*_MISMATCH_NOUNS, "literal_error"})


@dataclass(frozen=True)
class _Located:
    """A pydantic error with the value it concerns.

    ``union`` is the path of the union whose member tag (``'float'``, ``'list[str]'``) appears
    in the error location, if any; ``deep`` says the member matched the value's shape and
    failed further down.
    """

    error: Any
    path: _Path
    place: _Place
    union: _Path | None
    deep: bool


def _locate_error(item: Any, builder: _Builder) -> _Located:
    loc: tuple[Hashable, ...] = tuple(item["loc"])
    if item["type"] in ("missing", "extra_forbidden") or (loc and loc[-1] == "[key]"):
        loc = loc[:-1]
    path: _Path = ()
    matched: list[bool] = []
    for segment in loc:
        candidate = (*path, segment)
        found = candidate in builder.places
        if found:
            path = candidate
        matched.append(found)
    place = builder.places[path]
    if all(matched):
        return _Located(item, path, place, None, False)
    first_tag = matched.index(False)
    return _Located(item, path, place, tuple(loc[:first_tag]), any(matched[first_tag + 1 :]))


def _validation_issues(error: ValidationError, builder: _Builder, file: str) -> list[PolicyIssue]:
    located = [
        _locate_error(item, builder)
        for item in error.errors(include_url=False)
        if item.get("input") is not _INVALID
    ]
    located = [entry for entry in located if not builder.is_bad(entry.path)]
    # A missing field points at its mapping, often where an unknown (misspelt) key also
    # sits: list the unknown key first, it explains the missing one.
    located.sort(key=lambda entry: entry.error["type"] == "missing")
    issues: list[PolicyIssue] = []
    groups: dict[_Path, list[_Located]] = {}
    for entry in located:
        if entry.union is None:
            issues.append(_pydantic_issue(entry, builder, file))
        else:
            groups.setdefault(entry.union, []).append(entry)
    # Inside one union, report the members that got furthest; merge plain type mismatches.
    for members in groups.values():
        informative = [m for m in members if m.deep or m.error["type"] not in _MISMATCH_KINDS]
        if informative:
            issues.extend(_pydantic_issue(m, builder, file) for m in informative)
            continue
        first = members[0]
        expected = list(dict.fromkeys(_expected_noun(m.error) for m in members))
        message = f"expected {_or_join(expected)}, got {_describe(first.error.get('input'))}"
        issues.append(_issue(file, first.place.node.start_mark, builder.field(first.path), message))
    return issues


def _expected_noun(error: Any) -> str:
    if error["type"] == "literal_error":
        return str(error.get("ctx", {}).get("expected", "one of the allowed values"))
    return _MISMATCH_NOUNS.get(error["type"], str(error["msg"]))


def _or_join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _pydantic_issue(entry: _Located, builder: _Builder, file: str) -> PolicyIssue:
    error = entry.error
    loc: tuple[Hashable, ...] = tuple(error["loc"])
    kind: str = error["type"]
    place = entry.place
    field = builder.field(entry.path)
    node: Node = place.node
    if kind == "missing" and isinstance(loc[-1], int):  # a fixed-length list is too short
        if entry.path and entry.path[-1] == "between":
            message = "between needs two numbers [low, high]"
        else:
            message = f"too few values: value {loc[-1] + 1} is missing"
    elif kind == "missing":
        name = loc[-1]
        field = builder.field((*entry.path, name))
        message = f"missing required field {name!r}{_field_hint(entry.path, name)}"
    elif kind == "extra_forbidden":
        name = loc[-1]
        field = builder.field((*entry.path, name))
        key_place = builder.places.get((*entry.path, name))
        if key_place is not None:
            node = key_place.key or key_place.node
        message = f"unknown field {name!r}{_allowed_fields(entry.path, name)}"
    elif loc and loc[-1] == "[key]":
        node = place.key or place.node
        message = f"keys here must be names (strings), got {_describe(error.get('input'))}"
    elif kind == "invalid_key":
        node = place.key or place.node
        message = f"keys here must be names (strings), got {_describe(place.name)}"
    else:
        message = _rewrite(error)
    return _issue(file, node.start_mark, field, message)


def _rewrite(error: Any) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    message: str = error["msg"]
    if kind in ("value_error", "assertion_error"):
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'an allowed value')}, got {_describe(value)}"
    if kind in _MISMATCH_NOUNS:
        return f"expected {_MISMATCH_NOUNS[kind]}, got {_describe(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {_describe(value)}"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {bounds[kind]} {limit}, got {_describe(value)}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length', 0)}"
    if kind == "too_long":
        if ctx.get("field_type") == "Tuple":
            return f"takes exactly {ctx.get('max_length')} values, got {_describe(value)}"
        return f"takes at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long ({len(str(value))} characters, at most {ctx.get('max_length')})"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if "\\." in pattern:
            return f"{value!r} is not a dotted import path like 'package.module.ClassName'"
        return (
            f"{value!r} is not a valid name: use letters, digits, '_' and '-', "
            "starting with a letter or '_'"
        )
    return message


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value (null)"
    if isinstance(value, bool):
        word = "true" if value else "false"
        return (
            f"the boolean {word} (YAML reads yes/no/on/off/true/false as booleans; "
            "quote it to get a string)"
        )
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return f"{value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return "a mapping"
    if value is _INVALID:
        return "an unreadable value"
    return type(value).__name__


# ----------------------------------------------------------------------------- model lookup


def _model_at(path: Sequence[Hashable]) -> type[BaseModel] | None:
    """The pydantic model that validates the value at ``path`` of a policy, if any."""
    annotation: Any = Policy
    for segment in path:
        annotation = _unwrap(annotation, segment)
        if annotation is None:
            return None
    annotation = _unwrap(annotation, None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any, segment: Hashable | None) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        models = [arg for arg in members if _is_model(arg) or typing.get_origin(arg)]
        annotation = models[0] if len(models) == 1 else (members[0] if members else None)
        origin = typing.get_origin(annotation)
    if segment is None:
        return annotation
    if _is_model(annotation):
        for name, info in annotation.model_fields.items():
            if segment in (name, info.alias):
                return info.annotation
        return None
    if origin in (list, tuple) and isinstance(segment, int):
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _allowed_fields(path: _Path, name: Hashable) -> str:
    model = _model_at(path)
    if model is None:
        return ""
    allowed = _field_names(model)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} allowed: {', '.join(allowed)}" if hint else f"; allowed: {', '.join(allowed)}"


def _field_hint(path: _Path, name: Hashable) -> str:
    model = _model_at(path)
    if model is None:
        return ""
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias) and info.description:
            return f" ({info.description})"
    return ""
