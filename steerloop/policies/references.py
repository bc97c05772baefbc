"""Cross-reference checks: the rules of a policy that span more than one field.

The models in :mod:`steerloop.policies.schema` check each field on its own; this module checks
what refers to what: strategy names (``initial``, ``switch_to``, the ``strategy`` metric),
objective names (emphasis, severity source, sequential order, best-predicted weights),
metric names and their kinds (a category is compared with ``equals`` and one of its values,
a number with a number), unique rule names, that sequential mode can focus each objective,
and that every prompt renders within
:data:`~steerloop.policies.templates.MAX_PROMPT_CHARS` for the policy's objectives.

The checks run on :class:`PolicyParts`, the parts of a policy that validated, so a loader can
report cross-reference problems together with schema problems in one pass: a part that is
itself invalid is left out, and so is every check that needs it (no guesses, no noise).

Examples
--------
>>> from steerloop.policies import parse_policy
>>> policy = parse_policy("objectives: [a]\\nstrategies: {s: {prompt: p}}\\ninitial: s\\n")
>>> reference_problems(policy)
[]
>>> broken = policy.model_copy(update={"initial": "t"})
>>> reference_problems(broken)
[(('initial',), "unknown strategy 't'; defined: ['s']")]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies.metrics import (
    CATEGORICAL_VALUES,
    OBJECTIVE_METRICS,
    STRATEGY_METRICS,
    metric_kinds,
)
from steerloop.policies.templates import MAX_PROMPT_CHARS, parse_template

if TYPE_CHECKING:  # the models import this module; it needs their types only
    from steerloop.policies.schema import Action, Condition, Policy, Rule, SeveritySource, Strategy

__all__ = ["Loc", "PolicyParts", "parts_problems", "reference_problems", "validate_policy"]

#: A path into the policy document, e.g. ``("rules", 2, "when", "metric")``.
Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


@dataclass(frozen=True)
class PolicyParts:
    """The parts of a policy that validated (``None`` or absent: the part is invalid).

    Attributes
    ----------
    objectives : tuple of str or None
        The objective names, if they validated.
    strategies : mapping of str to Strategy or None
        Every strategy name, with its validated strategy or ``None`` when its body is invalid.
        ``None`` for the whole mapping when the ``strategies`` field itself is invalid.
    initial : str or None
        The initial strategy's name, if valid.
    severity_source : SeveritySource or None
        The severity source, if given and valid.
    rules : sequence of (int, Rule)
        The rules that validated, with their index in the file.
    """

    objectives: tuple[str, ...] | None
    strategies: Mapping[str, Strategy | None] | None
    initial: str | None
    severity_source: SeveritySource | None
    rules: Sequence[tuple[int, Rule]]

    @classmethod
    def of(cls, policy: Policy) -> PolicyParts:
        """All parts of a validated policy."""
        return cls(
            objectives=tuple(policy.objectives),
            strategies=policy.strategies,
            initial=policy.initial,
            severity_source=policy.severity.source,
            rules=list(enumerate(policy.rules)),
        )


def reference_problems(policy: Policy) -> list[Problem]:
    """Cross-reference problems of a validated policy.

    Returns
    -------
    list of (location, message)
        Locations are paths into the policy document (``("rules", 2, "when", "metric")``)
        so a loader can point at the line.
    """
    return parts_problems(PolicyParts.of(policy))


def parts_problems(parts: PolicyParts) -> list[Problem]:
    """Cross-reference problems among the valid ``parts`` of a policy (see the module doc)."""
    problems: list[Problem] = []
    strategies = parts.strategies
    if strategies is not None and parts.initial is not None:
        _need_strategy(parts.initial, set(strategies), ("initial",), problems)
    rule_names: set[str] = set()
    for index, rule in parts.rules:
        if rule.name in rule_names:
            problems.append((("rules", index, "name"), f"duplicate rule name {rule.name!r}"))
        rule_names.add(rule.name)
        if strategies is not None:
            _action_strategies(rule.then, ("rules", index, "then"), set(strategies), problems)
    if parts.objectives is None:
        return problems  # every other check needs the objective names
    objectives = list(parts.objectives)
    if strategies is not None:
        problems.extend(_strategy_problems(strategies, objectives))
    source = parts.severity_source
    if source is not None and source.objective is not None:
        _need_objective(source.objective, objectives, ("severity", "from", "objective"), problems)
    metrics = _Metrics(objectives, sorted(strategies) if strategies is not None else None)
    emphasised = _emphasised(strategies)
    for index, rule in parts.rules:
        base: Loc = ("rules", index)
        for condition, loc in _walk_conditions(rule.when, (*base, "when")):
            problems.extend(metrics.problems(condition, loc))
        problems.extend(_action_objectives(rule.then, (*base, "then"), objectives, emphasised))
    return problems


def validate_policy(policy: Policy, *, file: str = "<policy>") -> Policy:
    """Raise :class:`PolicyError` listing every cross-reference problem; return the policy.

    For policies built in Python (a loaded policy has been checked already).
    """
    problems = reference_problems(policy)
    if problems:
        raise PolicyError(
            [
                PolicyIssue(
                    file=file,
                    line=None,
                    column=None,
                    field=".".join(str(p) for p in loc),
                    message=msg,
                )
                for loc, msg in problems
            ]
        )
    return policy


# ----------------------------------------------------------------------------- checks


def _need_strategy(name: str, strategies: set[str], loc: Loc, problems: list[Problem]) -> None:
    if name not in strategies:
        problems.append((loc, f"unknown strategy {name!r}; defined: {sorted(strategies)}"))


def _need_objective(name: str, objectives: list[str], loc: Loc, problems: list[Problem]) -> None:
    if name not in objectives:
        problems.append((loc, f"unknown objective {name!r}; objectives: {objectives}"))


def _strategy_problems(
    strategies: Mapping[str, Strategy | None], objectives: list[str]
) -> list[Problem]:
    problems: list[Problem] = []
    for name, strategy in strategies.items():
        if strategy is None:
            continue
        for objective in strategy.emphasis:
            _need_objective(
                objective, objectives, ("strategies", name, "emphasis", objective), problems
            )
        length = parse_template(strategy.prompt).max_length(objectives)
        if length > MAX_PROMPT_CHARS:
            problems.append(
                (
                    ("strategies", name, "prompt"),
                    f"the prompt renders to up to {length} characters with these objectives, "
                    f"more than {MAX_PROMPT_CHARS}; shorten it or use fewer placeholders",
                )
            )
    return problems


def _walk_conditions(condition: Condition, loc: Loc) -> Iterator[tuple[Condition, Loc]]:
    yield condition, loc
    for name in ("all", "any"):
        children = getattr(condition, name)
        if children is not None:
            for index, child in enumerate(children):
                yield from _walk_conditions(child, (*loc, name, index))
    if condition.not_ is not None:
        yield from _walk_conditions(condition.not_, (*loc, "not"))


class _Metrics:
    """Checks metric names and comparisons against the namespace of one policy.

    Suggestions for unknown names compare against the metric *shapes* (the fixed names and
    one name per objective and prefix) and, for per-objective names, against the objective
    names, never against every pairwise name; only the first :data:`_MAX_HINTS` unknown
    names get suggestions, so a file of thousands of bad names stays fast to reject.
    """

    def __init__(self, objectives: list[str], strategies: list[str] | None) -> None:
        self.objectives = objectives
        self.strategies = strategies
        self.kinds = metric_kinds(objectives)
        fixed = metric_kinds([])
        self.shapes = [*fixed, *(f"{p}.{o}" for p in OBJECTIVE_METRICS for o in objectives)]
        self.hints_left = _MAX_HINTS

    def problems(self, condition: Condition, loc: Loc) -> list[Problem]:
        """The problems of one condition node (none for a combinator)."""
        metric = condition.metric
        if metric is None:
            return []
        kind = self.kinds.get(metric)
        if kind is None:
            return [((*loc, "metric"), f"unknown metric {metric!r}{self._hint(metric)}")]
        if kind == "number":
            if isinstance(condition.equals, (str, bool)):
                message = f"metric {metric!r} is a number; compare with a number"
                return [((*loc, "equals"), message)]
            return []
        if condition.equals is None:
            message = f"metric {metric!r} is a category; compare it with 'equals'"
            return [((*loc, "metric"), message)]
        allowed = (
            self.strategies if metric in STRATEGY_METRICS else list(CATEGORICAL_VALUES[metric])
        )
        if allowed is not None and condition.equals not in allowed:
            message = f"{metric} is never {condition.equals!r}; values: {allowed}"
            return [((*loc, "equals"), message)]
        return []

    def _hint(self, metric: str) -> str:
        if self.hints_left <= 0:
            return ""
        self.hints_left -= 1
        close = self._close(metric)
        return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""

    def _close(self, metric: str) -> list[str]:
        if metric.startswith("interference."):
            pair = metric.removeprefix("interference.").split(".")
            if len(pair) == 2:
                firsts = _close_names(pair[0], self.objectives)
                seconds = _close_names(pair[1], self.objectives)
                return [f"interference.{a}.{b}" for a in firsts for b in seconds if a != b][:3]
        close = difflib.get_close_matches(metric, self.shapes, n=3)
        if close:
            return close
        prefix = metric.split(".")[0]
        return sorted(name for name in self.shapes if name.split(".")[0] == prefix)[:8]


#: Unknown metric names that get a "did you mean" suggestion (per policy).
_MAX_HINTS = 5


def _close_names(name: str, names: list[str]) -> list[str]:
    return names if name in names else difflib.get_close_matches(name, names, n=2)


def _action_strategies(
    action: Action, loc: Loc, strategies: set[str], problems: list[Problem]
) -> None:
    if action.switch_to is not None:
        _need_strategy(action.switch_to, strategies, (*loc, "switch_to"), problems)


def _action_objectives(
    action: Action, loc: Loc, objectives: list[str], emphasised: set[str] | None
) -> list[Problem]:
    problems: list[Problem] = []
    if action.sequential is not None:
        order = action.sequential.order
        if order != "auto":
            for position, objective in enumerate(order):
                _need_objective(
                    objective, objectives, (*loc, "sequential", "order", position), problems
                )
        focused = objectives if order == "auto" else [o for o in order if o in objectives]
        missing = [o for o in focused if emphasised is not None and o not in emphasised]
        if missing:
            problems.append(
                (
                    (*loc, "sequential"),
                    f"no strategy emphasises {_names('objective', missing)}, "
                    f"so sequential mode cannot focus {'it' if len(missing) == 1 else 'them'}",
                )
            )
    for kind in ("best_predicted", "plan"):
        chosen = getattr(action, kind)
        if chosen is not None:
            for objective in chosen.weights:
                _need_objective(objective, objectives, (*loc, kind, "weights", objective), problems)
    return problems


def _emphasised(strategies: Mapping[str, Strategy | None] | None) -> set[str] | None:
    """Objectives some strategy emphasises (``None``: unknown, a strategy is invalid)."""
    if strategies is None or None in strategies.values():
        return None
    return {
        objective
        for strategy in strategies.values()
        if strategy is not None
        for objective, weight in strategy.emphasis.items()
        if weight > 0
    }


def _names(noun: str, names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:10])) + (
        f" and {len(names) - 10} more" if len(names) > 10 else ""
    )
    return f"{noun} {shown}" if len(names) == 1 else f"{noun}s {shown}"
