"""Where each value of a policy was written: YAML nodes to plain data, with positions.

:class:`Builder` turns the node graph that :func:`~steerloop.policies.bounded_yaml.compose`
read into plain Python data (strings, numbers, booleans, lists, mappings) and remembers, for
every path into that data (``("rules", 0, "when")``), the node it came from. Any problem,
from the schema or from cross-references, is then reported at its line and column, with the
field path spelt as in the file. Only plain YAML types are built: any other tag
(``!!python/object``, ``!custom``) is a reported problem, never a constructed object.

Examples
--------
>>> from steerloop.policies.bounded_yaml import compose
>>> builder = Builder("policy.yaml")
>>> builder.build(compose("rules:\\n  - {name: a, when: {}}\\n", "policy.yaml"), ())
{'rules': [{'name': 'a', 'when': {}}]}
>>> print(builder.issue_at(("rules", 0, "when", "metric"), "needs a metric"))
policy.yaml:2:21: rules.0.when.metric: needs a metric
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import yaml
from yaml.error import MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies.bounded_yaml import MAX_INT_DIGITS, Position, yaml_message

__all__ = [
    "INVALID",
    "Builder",
    "Path",
    "Place",
    "issue",
    "node_kind",
    "sorted_error",
]

#: A path into the built data: mapping keys and list indices.
Path = tuple[Hashable, ...]
_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"
_SCALAR_TAGS = frozenset(_TAG + name for name in ("str", "int", "float", "bool", "null"))
_PLAIN_TYPES = "strings, numbers, booleans, lists and mappings"


class _Invalid:
    """Stands in for a value that could not be read (its problem is already reported)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


#: Stands in for a value that could not be read.
INVALID: Final = _Invalid()


def node_kind(node: Node) -> str:
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
class Place:
    node: Node
    key: Node | None
    name: Hashable


class Builder:
    """Turn the checked node graph into plain Python data, remembering where each value was.

    ``places`` maps a data path (``("rules", 0, "when")``) to the value node and, for mapping
    entries, the key node. Problems that do not stop the build (duplicate keys, forbidden
    tags, oversized integers) are collected in ``issues``; the values concerned become
    ``INVALID`` and their paths are listed in ``bad_paths``.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.places: dict[Path, Place] = {}
        self.issues: list[PolicyIssue] = []
        self.bad_paths: set[Path] = set()
        self._constructor = yaml.SafeLoader("")
        self._checked_mappings: set[int] = set()
        self._reported: set[tuple[int, str]] = set()

    def build(self, node: Node, path: Path, key: Node | None = None) -> Any:
        """The Python value of ``node`` (reached at ``path``), recording places and issues."""
        self.places[path] = Place(node, key, path[-1] if path else None)
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

    def _mapping(self, node: MappingNode, path: Path) -> dict[Hashable, Any]:
        if id(node) not in self._checked_mappings:
            # Check once per node: an alias reaches the same (already merged) node again.
            self._checked_mappings.add(id(node))
            self._check_duplicates(node, path)
            if any(key_node.tag == _MERGE_TAG for key_node, _ in node.value):
                try:
                    self._constructor.flatten_mapping(node)
                except MarkedYAMLError as error:
                    self._report(node, path, yaml_message(error, ""), mark=error.problem_mark)
                    self.bad_paths.add(path)
                    return {}
        result: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is not INVALID:
                result[key] = self.build(value_node, (*path, key), key_node)
        return result

    def _check_duplicates(self, node: MappingNode, path: Path) -> None:
        seen: dict[Hashable, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            if key is INVALID:
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

    def _key(self, node: Node, path: Path) -> Hashable:
        if not isinstance(node, ScalarNode):
            return self._bad(node, path, f"mapping keys must be plain names, not {node_kind(node)}")
        value = self._scalar(node, None)
        return value if isinstance(value, Hashable) else INVALID

    def _scalar(self, node: ScalarNode, path: Path | None) -> Any:
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

    def _forbidden_tag(self, node: Node, path: Path | None) -> _Invalid:
        return self._bad(
            node,
            path,
            f"tag {_short_tag(node.tag)} is not allowed; a policy holds only {_PLAIN_TYPES}",
        )

    def _bad(self, node: Node, path: Path | None, message: str) -> _Invalid:
        if path is not None:
            self.bad_paths.add(path)
        self._report(node, path, message)
        return INVALID

    def _report(
        self, node: Node, path: Path | None, message: str, *, mark: Position | None = None
    ) -> None:
        if (id(node), message) in self._reported:
            return  # the same node reached again through an alias
        self._reported.add((id(node), message))
        self.issues.append(
            issue(self.file, mark or node.start_mark, self.field(path or ()), message)
        )

    def issue_at(self, loc: Path, message: str) -> PolicyIssue:
        """An issue for a cross-reference problem at ``loc`` (a path into the policy).

        Points at the value, or at the key when the key is the unknown name (emphasis and
        weights mappings are keyed by objective).
        """
        path: Path = ()
        for segment in loc:
            if (*path, segment) not in self.places:
                break
            path = (*path, segment)
        place = self.places[path]
        at_key = len(path) >= 2 and path[-2] in ("emphasis", "weights") and place.key is not None
        node = place.key if at_key and place.key is not None else place.node
        return issue(self.file, node.start_mark, self.field(loc), message)

    def field(self, loc: Iterable[Hashable]) -> str:
        """``loc`` as a dotted field path, spelling mapping keys as written in the file."""
        parts: list[str] = []
        path: Path = ()
        for segment in loc:
            path = (*path, segment)
            place = self.places.get(path)
            key = place.key if place is not None else None
            parts.append(key.value if isinstance(key, ScalarNode) else str(segment))
        return ".".join(parts)

    def is_bad(self, path: Path) -> bool:
        """Whether ``path`` is at or under a value already reported as unreadable."""
        bad = self.bad_paths
        return bool(bad) and any(path[:length] in bad for length in range(len(path) + 1))


def issue(file: str, mark: Position | None, field: str, message: str) -> PolicyIssue:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return PolicyIssue(file=file, line=line, column=column, field=field, message=message)


def sorted_error(issues: list[PolicyIssue]) -> PolicyError:
    unique = list(dict.fromkeys(issues))
    unique.sort(key=lambda issue: (issue.line or 0, issue.column or 0))
    return PolicyError(unique)
