"""Compile policy conditions into fast evaluators, with human-readable explanations.

A :class:`~steerloop.policies.schema.Condition` is data: a comparison
``{metric, above|below|equals|between}`` or one combinator ``all``/``any``/``not``.
:func:`compile_condition` turns it once into plain closures, so evaluating a rule after every
update is a handful of dictionary lookups and float comparisons (no dispatch on strings, no
``eval``).

Semantics
---------
* ``above`` is strictly greater, ``below`` strictly less, ``between: [low, high]`` is
  inclusive at both ends; ``equals`` is exact (string equality for categories such as
  ``drift.regime``, numeric equality for numbers).
* **Missing values.** A metric that is absent, ``None`` or NaN (not estimated yet, or
  undefined) makes its comparison *unknown*, not false. Conditions use three-valued
  (Kleene) logic: ``not unknown`` is unknown, ``all`` is false if any child is false,
  ``any`` is true if any child is true, and otherwise unknown propagates. A rule fires only
  when its condition is definitely **true**. So a rule never fires *because* a value is
  missing: ``not: {metric: drift.rate, above: 1.5}`` does not hold before the drift rate
  exists (with two-valued logic it would, and "rate is not above 1.5" would be claimed about
  a rate nobody has measured). Write the missing case explicitly when you want it, e.g.
  ``{metric: drift.regime, equals: unknown}``.

Examples
--------
>>> from steerloop.policies.schema import Condition
>>> rule = compile_condition(Condition(metric="interference.min", below=-0.15))
>>> rule.evaluate({"interference.min": -0.21})
True
>>> rule.explain({"interference.min": -0.21})
'interference.min = -0.21 < -0.15'
>>> rule.evaluate({"interference.min": None})
False
>>> negated = compile_condition(Condition.model_validate({"not": {"metric": "drift.rate",
...                                                               "above": 1.5}}))
>>> negated.evaluate({"drift.rate": 0.8}), negated.evaluate({"drift.rate": None})
(True, False)
>>> negated.explain({"drift.rate": 0.8})
'drift.rate = 0.8, not > 1.5'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from steerloop.policies.metrics import Diagnostics
from steerloop.policies.schema import Condition

__all__ = ["CompiledCondition", "compile_condition", "format_value"]

_Test = Callable[[Diagnostics], bool]
_Explain = Callable[[Diagnostics], str]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One node: "definitely true", "definitely false" and "why" closures."""

    is_true: _Test
    is_false: _Test
    explain: _Explain


class CompiledCondition:
    """A condition compiled into closures.

    Attributes
    ----------
    condition : Condition
        The source condition.
    metrics : frozenset of str
        The diagnostics names the condition reads.
    evaluate : callable
        ``evaluate(diagnostics) -> bool``: whether the condition definitely holds (unknown
        counts as not holding, see the module docstring). Bound once, so hot loops may keep
        a reference to it.
    """

    __slots__ = ("_node", "condition", "evaluate", "metrics")

    def __init__(self, condition: Condition, node: _Compiled, metrics: frozenset[str]) -> None:
        self.condition = condition
        self.metrics = metrics
        self.evaluate: _Test = node.is_true
        self._node = node

    def __call__(self, diagnostics: Diagnostics) -> bool:
        """Same as :attr:`evaluate`."""
        return self._node.is_true(diagnostics)

    def truth(self, diagnostics: Diagnostics) -> bool | None:
        """Three-valued result: ``True``, ``False`` or ``None`` when missing data decides."""
        if self._node.is_true(diagnostics):
            return True
        if self._node.is_false(diagnostics):
            return False
        return None

    def explain(self, diagnostics: Diagnostics) -> str:
        """A one-line reason for the condition's value, with the numbers that decided it.

        Each comparison is stated as the fact observed (``drift.rate = 1.72 > 1.5``, or
        ``drift.rate = 0.8, not > 1.5`` when it fails, or ``drift.rate is missing``).
        ``all`` joins the deciding children with ``and``, ``any`` with ``or``; ``not`` is
        explained by its child's facts (which are what make the negation hold).
        """
        return self._node.explain(diagnostics)

    def __repr__(self) -> str:
        return f"CompiledCondition({self.condition!r})"


def compile_condition(condition: Condition) -> CompiledCondition:
    """Compile ``condition`` into a :class:`CompiledCondition`.

    The condition should be validated (it is, inside a loaded policy); names of unknown
    metrics simply read as missing.
    """
    metrics: set[str] = set()
    node = _compile(condition, metrics)
    return CompiledCondition(condition, node, frozenset(metrics))


def format_value(value: object) -> str:
    """Format a diagnostic value or threshold for explanations (4 significant digits).

    Examples
    --------
    >>> format_value(-0.2134), format_value(3.0), format_value("oscillatory"), format_value(None)
    ('-0.2134', '3', 'oscillatory', 'missing')
    """
    if type(value) is float:  # the common case, decided as the general branch below does
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        number = float(value)
        if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.4g}"
    return str(value)


# ----------------------------------------------------------------------------- compilation


def _compile(condition: Condition, metrics: set[str]) -> _Compiled:
    if condition.metric is not None:
        metrics.add(condition.metric)
        return _comparison(condition, condition.metric)
    if condition.all is not None:
        return _all([_compile(child, metrics) for child in condition.all])
    if condition.any is not None:
        return _any([_compile(child, metrics) for child in condition.any])
    if condition.not_ is not None:
        return _not(_compile(condition.not_, metrics))
    raise ValueError("a condition needs a metric comparison or one of all/any/not")


def _comparison(condition: Condition, metric: str) -> _Compiled:
    if condition.above is not None:
        return _above(metric, condition.above)
    if condition.below is not None:
        return _below(metric, condition.below)
    if condition.between is not None:
        return _between(metric, condition.between[0], condition.between[1])
    if condition.equals is not None:
        if isinstance(condition.equals, str):
            return _equals_text(metric, condition.equals)
        return _equals_number(metric, float(condition.equals))
    raise ValueError(f"metric {metric!r} needs one of above/below/equals/between")


def _fact(metric: str, value: object, relation: str, holds: bool) -> str:
    if value is None:
        return f"{metric} is missing"
    if isinstance(value, float) and math.isnan(value):
        return f"{metric} is NaN"
    if holds:
        return f"{metric} = {format_value(value)} {relation}"
    return f"{metric} = {format_value(value)}, not {relation}"


def _numeric(
    metric: str,
    relation: str,
    holds: Callable[[float], bool],
    fails: Callable[[float], bool],
    explain: Callable[[Diagnostics, bool], str] | None = None,
) -> _Compiled:
    """A comparison of a numeric metric: ``holds(value)`` / ``fails(value)`` on a number.

    A missing or text value is neither true nor false (unknown); so is NaN, as long as both
    predicates compare false on it (plain comparisons do).
    """

    def is_true(diagnostics: Diagnostics) -> bool:
        value = diagnostics.get(metric)
        if value is None or isinstance(value, str):
            return False
        return holds(value)

    def is_false(diagnostics: Diagnostics) -> bool:
        value = diagnostics.get(metric)
        if value is None or isinstance(value, str):
            return False
        return fails(value)

    def fact(diagnostics: Diagnostics) -> str:
        if explain is not None:
            return explain(diagnostics, is_true(diagnostics))
        return _fact(metric, diagnostics.get(metric), relation, is_true(diagnostics))

    return _Compiled(is_true, is_false, fact)


def _above(metric: str, threshold: float) -> _Compiled:
    return _numeric(
        metric,
        f"> {format_value(threshold)}",
        lambda value: bool(value > threshold),  # NaN compares false
        lambda value: bool(value <= threshold),
    )


def _below(metric: str, threshold: float) -> _Compiled:
    return _numeric(
        metric,
        f"< {format_value(threshold)}",
        lambda value: bool(value < threshold),
        lambda value: bool(value >= threshold),
    )


def _between(metric: str, low: float, high: float) -> _Compiled:
    return _numeric(
        metric,
        f"in [{format_value(low)}, {format_value(high)}]",
        lambda value: bool(low <= value <= high),
        lambda value: bool(value < low or value > high),
    )


def _equals_number(metric: str, target: float) -> _Compiled:
    relation = f"= {format_value(target)}"

    def explain(diagnostics: Diagnostics, holds: bool) -> str:
        value = diagnostics.get(metric)
        if holds:
            return f"{metric} = {format_value(value)}"
        return _fact(metric, value, relation, False)

    return _numeric(
        metric,
        relation,
        lambda value: bool(value == target),
        lambda value: bool(value != target and value == value),  # NaN: unknown
        explain,
    )


def _equals_text(metric: str, target: str) -> _Compiled:
    def is_true(diagnostics: Diagnostics) -> bool:
        return diagnostics.get(metric) == target

    def is_false(diagnostics: Diagnostics) -> bool:
        value = diagnostics.get(metric)
        return isinstance(value, str) and value != target

    def explain(diagnostics: Diagnostics) -> str:
        value = diagnostics.get(metric)
        if value == target:
            return f"{metric} = {target}"
        if isinstance(value, str):
            return f"{metric} = {value}, not {target}"
        return _fact(metric, value, f"= {target}", False)

    return _Compiled(is_true, is_false, explain)


def _join(parts: list[_Compiled], word: str, diagnostics: Diagnostics) -> str:
    texts = [part.explain(diagnostics) for part in parts]
    if len(texts) > 1:
        texts = [f"({text})" if " and " in text or " or " in text else text for text in texts]
    return f" {word} ".join(texts)


def _every(tests: tuple[_Test, ...]) -> _Test:
    """A test that holds when every one of ``tests`` holds (stops at the first that fails)."""

    def every(diagnostics: Diagnostics) -> bool:
        for test in tests:  # noqa: SIM110 - a loop beats all()/any() on a generator
            if not test(diagnostics):
                return False
        return True

    return every


def _some(tests: tuple[_Test, ...]) -> _Test:
    """A test that holds when one of ``tests`` holds (stops at the first that does)."""

    def some(diagnostics: Diagnostics) -> bool:
        for test in tests:  # noqa: SIM110 - a loop beats all()/any() on a generator
            if test(diagnostics):
                return True
        return False

    return some


def _all(children: list[_Compiled]) -> _Compiled:
    # Definitely true when every child is; definitely false when one child is.
    is_true = _every(tuple(child.is_true for child in children))
    is_false = _some(tuple(child.is_false for child in children))

    def explain(diagnostics: Diagnostics) -> str:
        if is_true(diagnostics):
            return _join(children, "and", diagnostics)
        failing = [child for child in children if child.is_false(diagnostics)]
        if not failing:  # unknown: name the children that are not known to hold
            failing = [child for child in children if not child.is_true(diagnostics)]
        return _join(failing, "and", diagnostics)

    return _Compiled(is_true, is_false, explain)


def _any(children: list[_Compiled]) -> _Compiled:
    # Definitely true when one child is; definitely false when every child is.
    is_true = _some(tuple(child.is_true for child in children))
    is_false = _every(tuple(child.is_false for child in children))

    def explain(diagnostics: Diagnostics) -> str:
        holding = [child for child in children if child.is_true(diagnostics)]
        if holding:
            return _join(holding, "or", diagnostics)
        return _join(children, "and", diagnostics)  # every child failed (or is unknown)

    return _Compiled(is_true, is_false, explain)


def _not(child: _Compiled) -> _Compiled:
    # The child's facts ("x = 0.8, not > 1.5") are what make the negation hold, so they
    # explain it as they are; "not" swaps definitely-true and definitely-false.
    return _Compiled(child.is_false, child.is_true, child.explain)
