"""Schema problems as readable issues, and the parts of an invalid policy that are valid.

:func:`validation_issues` turns pydantic's errors into one
:class:`~steerloop.errors.PolicyIssue` each, at the YAML node concerned (the value, the key
itself for an unknown key, the enclosing mapping for a missing field), with a message that
says how to fix it: "expected a number, got the string 'low'" rather than pydantic's
wording, "did you mean 'prompt'?" for a misspelt field, one merged message for a value that
fits none of a union's members.

:func:`salvage` picks out of a policy that failed validation the parts that passed
(objectives, each strategy, each rule, ...), so cross-reference problems are reported in the
same pass as schema problems (:mod:`steerloop.policies.references`).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Union

from pydantic import BaseModel, ValidationError
from yaml.nodes import Node

from steerloop.errors import PolicyIssue
from steerloop.policies._positions import INVALID, Builder, Path, Place, issue
from steerloop.policies.references import PolicyParts
from steerloop.policies.schema import Policy, Rule, SeveritySource, Strategy

__all__ = ["salvage", "validation_issues"]

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
    path: Path
    place: Place
    union: Path | None
    deep: bool


def _locate_error(item: Any, builder: Builder) -> _Located:
    loc: tuple[Hashable, ...] = tuple(item["loc"])
    if item["type"] in ("missing", "extra_forbidden") or (loc and loc[-1] == "[key]"):
        loc = loc[:-1]
    path: Path = ()
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


def validation_issues(error: ValidationError, builder: Builder, file: str) -> list[PolicyIssue]:
    """One issue per pydantic error, positioned by ``builder`` (values it could not read and
    already reported are skipped)."""
    located = [
        _locate_error(item, builder)
        for item in error.errors(include_url=False)
        if item.get("input") is not INVALID
    ]
    located = [entry for entry in located if not builder.is_bad(entry.path)]
    # A missing field points at its mapping, often where an unknown (misspelt) key also
    # sits: list the unknown key first, it explains the missing one.
    located.sort(key=lambda entry: entry.error["type"] == "missing")
    issues: list[PolicyIssue] = []
    groups: dict[Path, list[_Located]] = {}
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
        issues.append(issue(file, first.place.node.start_mark, builder.field(first.path), message))
    return issues


def _expected_noun(error: Any) -> str:
    if error["type"] == "literal_error":
        return _literal(error.get("ctx") or {})
    return _MISMATCH_NOUNS.get(error["type"], str(error["msg"]))


def _literal(ctx: dict[str, Any]) -> str:
    """The allowed values of a literal, spelt as YAML spells booleans."""
    expected = str(ctx.get("expected", "one of the allowed values"))
    return {"True": "true", "False": "false"}.get(expected, expected)


def _or_join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _pydantic_issue(entry: _Located, builder: Builder, file: str) -> PolicyIssue:
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
    return issue(file, node.start_mark, field, message)


def _rewrite(error: Any) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    message: str = error["msg"]
    if kind in ("value_error", "assertion_error"):
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return f"expected {_literal(ctx)}, got {_describe(value)}"
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
    if value is INVALID:
        return "an unreadable value"
    return type(value).__name__


# ----------------------------------------------------------------------------- salvage


class _Breaks:
    """The paths at which validation failed, and questions about the paths around them.

    Both questions cost O(len(path)) whatever the number of failures (set lookups).
    """

    def __init__(self, paths: Iterable[tuple[Hashable, ...]]) -> None:
        self._paths = set(paths)
        self._prefixes = {path[:size] for path in self._paths for size in range(len(path) + 1)}

    def above(self, path: tuple[Hashable, ...]) -> bool:
        """Whether ``path`` or one of its ancestors failed."""
        return any(path[:size] in self._paths for size in range(len(path) + 1))

    def at_or_below(self, path: tuple[Hashable, ...]) -> bool:
        """Whether anything at, under or above ``path`` failed."""
        return path in self._prefixes or self.above(path)


def salvage(data: Any, error: ValidationError, bad_paths: Iterable[Path]) -> PolicyParts:
    """The parts of ``data`` (a policy that failed validation) that are valid on their own.

    ``error`` is the policy's validation error and ``bad_paths`` the values the builder
    could not read; a part is kept only when nothing at or under it failed.
    """
    breaks = _Breaks([*(tuple(item["loc"]) for item in error.errors()), *bad_paths])
    top: dict[Any, Any] = data if isinstance(data, dict) else {}
    objectives = top.get("objectives")
    strategies = top.get("strategies")
    initial = top.get("initial")
    severity = top.get("severity")
    source = severity.get("from") if isinstance(severity, dict) else None
    rules = top.get("rules")
    return PolicyParts(
        objectives=(
            tuple(objectives)
            if isinstance(objectives, list) and not breaks.at_or_below(("objectives",))
            else None
        ),
        strategies=(
            {
                name: _valid(Strategy, body, breaks, ("strategies", name))
                for name, body in strategies.items()
                if isinstance(name, str)
            }
            if isinstance(strategies, dict) and not breaks.above(("strategies",))
            else None
        ),
        initial=(
            initial if isinstance(initial, str) and not breaks.at_or_below(("initial",)) else None
        ),
        severity_source=_valid(SeveritySource, source, breaks, ("severity", "from")),
        rules=[
            (index, rule)
            for index, body in enumerate(rules if isinstance(rules, list) else [])
            if not breaks.above(("rules",))
            and (rule := _valid(Rule, body, breaks, ("rules", index))) is not None
        ],
    )


_M = typing.TypeVar("_M", bound=BaseModel)


def _valid(model: type[_M], value: Any, breaks: _Breaks, path: Path) -> _M | None:
    if value is None or breaks.at_or_below(path):
        return None
    try:
        return model.model_validate(value)
    except ValidationError:  # pragma: no cover - valid in the whole, valid on its own
        return None


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


def _allowed_fields(path: Path, name: Hashable) -> str:
    model = _model_at(path)
    if model is None:
        return ""
    allowed = _field_names(model)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} allowed: {', '.join(allowed)}" if hint else f"; allowed: {', '.join(allowed)}"


def _field_hint(path: Path, name: Hashable) -> str:
    model = _model_at(path)
    if model is None:
        return ""
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias) and info.description:
            return f" ({info.description})"
    return ""
