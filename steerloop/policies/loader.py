"""Load policies from YAML: bounded safe parsing, and every problem at its line.

Three entry points return a validated :class:`~steerloop.policies.schema.Policy` or raise
:class:`~steerloop.errors.PolicyError` listing every problem found, one
``file:line:col: field.path: message`` line each:

* :func:`load_policy` reads a file,
* :func:`load_preset` reads a preset shipped in ``steerloop/policies/presets/``,
* :func:`parse_policy` parses text (or bytes) that is already in memory.

A policy goes through three stages:

1. **reading** (:mod:`steerloop.policies.bounded_yaml`): PyYAML safe parsing under hard
   limits checked while reading (:data:`MAX_BYTES`, :data:`MAX_NODES`, :data:`MAX_ALIASES`,
   :data:`MAX_DEPTH`, :data:`MAX_SCALAR_CHARS`). A syntax error or a broken limit stops here,
   with one issue;
2. **building** plain data from the nodes, remembering each value's position; duplicate keys,
   tags other than plain YAML types and oversized integers are reported;
3. **validating** against the schema (pydantic) and the cross-references
   (:mod:`steerloop.policies.references`) in one pass: all problems of stages 2 and 3 are
   reported together, sorted by position. Cross-references are checked on the parts that
   passed the schema, so one broken rule does not hide an unknown strategy elsewhere.

No YAML or pydantic exception escapes these functions.

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
>>> try:  # a schema problem and a cross-reference problem, reported together
...     parse_policy("objectives: [a]\\nstrategies: {s: {prompt: p}}\\ninitial: t\\nname: [x]\\n")
... except PolicyError as error:
...     print(error)
<string>:3:10: initial: unknown strategy 't'; defined: ['s']
<string>:4:7: name: expected a string, got a list of 1 item(s)
"""

from __future__ import annotations

import os
import re
from importlib import resources
from typing import Any, Final

from pydantic import ValidationError
from yaml.nodes import MappingNode

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies._positions import Builder, node_kind, sorted_error
from steerloop.policies._reporting import salvage, validation_issues
from steerloop.policies.bounded_yaml import (
    MAX_ALIASES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_NODES,
    MAX_SCALAR_CHARS,
    check_text,
    compose,
    decode,
    position_error,
)
from steerloop.policies.references import PolicyParts, parts_problems
from steerloop.policies.schema import Policy

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "MAX_SCALAR_CHARS",
    "SCHEMA_ID",
    "available_presets",
    "load_policy",
    "load_preset",
    "parse_policy",
    "policy_json_schema",
]

#: ``$id`` of the JSON Schema returned by :func:`policy_json_schema`.
SCHEMA_ID: Final = "urn:steerloop:policy:1"

_PRESET_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_PRESET_DATA: dict[str, tuple[bytes, Any]] = {}


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
    return _parse_text(decode(data, file), file)


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
        return _parse_text(decode(text, file), file)
    check_text(text, file)
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
    policy, data = _parse_document(decode(raw, file), file)
    _PRESET_DATA[name] = (raw, data)
    return policy


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the policy format, for editors and other tools.

    It rejects every policy that breaks a structural rule JSON Schema can express (types,
    ranges, unknown fields, exactly one action, exactly one comparator, prompt
    placeholders, unique objective names). Cross-references (strategy, objective and metric
    names), ``between`` order, unique rule names and rendered prompt sizes cannot be
    expressed and are checked by the loader (``steerloop validate``). Point an editor at it with a
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


# ----------------------------------------------------------------------------- stages


def _parse_text(text: str, file: str) -> Policy:
    return _parse_document(text, file)[0]


def _parse_document(text: str, file: str) -> tuple[Policy, Any]:
    """The validated policy and the plain data it was validated from."""
    root = compose(text, file)
    if root is None:
        raise PolicyError.single(
            "the policy is empty; it needs at least objectives, strategies and initial",
            file=file,
            line=1,
            column=1,
        )
    if not isinstance(root, MappingNode):
        raise position_error(
            file,
            root.start_mark,
            f"a policy is a mapping of 'key: value' lines at the top level, not {node_kind(root)}",
        )
    builder = Builder(file)
    data = builder.build(root, ())
    issues = list(builder.issues)
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        issues.extend(validation_issues(error, builder, file))
        parts = salvage(data, error, builder.bad_paths)
    except Exception as error:  # a validator bug must still surface as a PolicyError
        raise PolicyError.single(
            f"could not validate the policy ({type(error).__name__}: {error}); "
            "this is a steerloop bug, please report it",
            file=file,
        ) from error
    else:
        parts = PolicyParts.of(policy)
    issues.extend(_reference_issues(parts, builder))
    if issues:
        raise sorted_error(issues)
    if policy is None:  # pragma: no cover - a failed validation always leaves an issue
        raise PolicyError.single("the policy is invalid", file=file)
    return policy, data


def _reference_issues(parts: PolicyParts, builder: Builder) -> list[PolicyIssue]:
    return [builder.issue_at(tuple(loc), message) for loc, message in parts_problems(parts)]
