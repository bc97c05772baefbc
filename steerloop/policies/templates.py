"""Strategy prompt templates: the only substitution steerloop performs on policy text.

A template is text with two placeholders, ``{objectives}`` (the objective names joined by
``", "``) and ``{focus}`` (the objective in focus in sequential mode, else the same as
``{objectives}``); ``{{`` and ``}}`` are literal braces. Nothing else is accepted: no format
spec (``{objectives:>200000000}`` would turn a short template into a gigabyte), no
conversion (``{focus!r}``), no attribute or index access, no positional fields. Rendering is
plain concatenation of the parsed pieces, never ``str.format``.

Limits: a template holds at most :data:`MAX_TEMPLATE_CHARS` characters and renders to at
most :data:`MAX_PROMPT_CHARS`. A loaded policy has been checked to stay within the second
limit for its objectives, whatever the focus; :meth:`Template.render` checks it again
before building the text.

Examples
--------
>>> template = parse_template("Improve {focus}; keep {objectives} in mind. Use {{braces}}.")
>>> template.render(["security", "efficiency"], "security")
'Improve security; keep security, efficiency in mind. Use {braces}.'
>>> template.max_length(["security", "efficiency"])  # with focus=None
78
>>> try:
...     parse_template("{objectives:>200000000}")
... except ValueError as error:
...     print(str(error).split(";")[0])
placeholder {objectives:>200000000} has a format spec ':>200000000'
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "MAX_PROMPT_CHARS",
    "MAX_TEMPLATE_CHARS",
    "PLACEHOLDERS",
    "TEMPLATE_PATTERN",
    "Template",
    "parse_template",
]

#: The placeholders a template may use.
PLACEHOLDERS: Final = ("objectives", "focus")
#: Longest accepted template, in characters.
MAX_TEMPLATE_CHARS: Final = 20_000
#: Longest rendered prompt, in characters (placeholders filled with every possible focus).
MAX_PROMPT_CHARS: Final = 50_000
#: The same rule as a regular expression (ECMA 262 and Python), for the JSON Schema.
TEMPLATE_PATTERN: Final = r"^(?:[^{}]|\{\{|\}\}|\{(?:" + "|".join(PLACEHOLDERS) + r")\})*$"


@dataclass(frozen=True)
class Template:
    """A parsed template: ``literals[0] fields[0] literals[1] ... fields[-1] literals[-1]``.

    Attributes
    ----------
    literals : tuple of str
        The text between placeholders, braces already unescaped (one more than ``fields``).
    fields : tuple of str
        The placeholder names, in order.
    """

    literals: tuple[str, ...]
    fields: tuple[str, ...]

    def max_length(self, objectives: Sequence[str]) -> int:
        """The longest rendering for these objectives (``focus=None`` fills in all of them)."""
        joined = len(", ".join(objectives))
        return sum(map(len, self.literals)) + len(self.fields) * joined

    def render(self, objectives: Sequence[str], focus: str | None) -> str:
        """The text with ``{objectives}`` and ``{focus}`` filled in.

        Raises
        ------
        ValueError
            The rendering would exceed :data:`MAX_PROMPT_CHARS` (checked before building it).
        """
        joined = ", ".join(objectives)
        values = {"objectives": joined, "focus": joined if focus is None else focus}
        length = sum(map(len, self.literals)) + sum(len(values[name]) for name in self.fields)
        if length > MAX_PROMPT_CHARS:
            raise ValueError(
                f"the prompt would render to {length} characters, more than {MAX_PROMPT_CHARS}; "
                "shorten the template or use fewer placeholders"
            )
        parts = [self.literals[0]]
        for name, literal in zip(self.fields, self.literals[1:], strict=True):
            parts.append(values[name])
            parts.append(literal)
        return "".join(parts)


@lru_cache(maxsize=256)
def parse_template(text: str) -> Template:
    """Parse ``text`` into a :class:`Template` (cached: templates are few and immutable).

    Raises
    ------
    ValueError
        The text is longer than :data:`MAX_TEMPLATE_CHARS`, has unbalanced braces, or uses
        anything but ``{objectives}`` and ``{focus}`` (the message says which and how to fix).
    """
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValueError(
            f"the template is too long ({len(text)} characters, at most {MAX_TEMPLATE_CHARS})"
        )
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise ValueError(
            f"prompt is not a valid template ({error}); write {{{{ for a literal {{"
        ) from None
    unknown = sorted({name for _, name, _, _ in parsed if name is not None} - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(
            f"prompt uses unknown placeholder(s) {unknown}; only {{objectives}} and {{focus}} "
            "are filled (write {{ and }} for literal braces)"
        )
    literals = [""]
    fields: list[str] = []
    for literal, name, spec, conversion in parsed:
        literals[-1] += literal
        if name is None:
            continue
        if conversion is not None or spec:
            written = "{" + name + (f"!{conversion}" if conversion else "")
            written += f":{spec}}}" if spec else "}"
            what = f"a format spec ':{spec}'" if spec else f"a conversion '!{conversion}'"
            raise ValueError(
                f"placeholder {written} has {what}; placeholders take no format spec or "
                f"conversion, write {{{name}}}"
            )
        fields.append(name)
        literals.append("")
    return Template(tuple(literals), tuple(fields))
