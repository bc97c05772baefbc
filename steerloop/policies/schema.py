"""The policy format: frozen pydantic models, the one authority on what a policy may say.

A policy names the objectives (their order is the vector order), the strategies (a prompt
and emphasis weights each), estimation settings, the severity source, switching limits,
optional scorers and the rules. Structural checks live on the models; cross-references
(strategy and metric names, comparator types) are checked by :func:`reference_problems`,
which the loader maps back to file positions and :func:`validate_policy` raises for
policies built in Python.

Conditions and actions are data. A condition is either a comparison
``{metric, above|below|equals|between}`` or one combinator ``all``/``any``/``not``; an
action is exactly one of ``switch_to``, ``sequential``, ``best_predicted``, ``hold``,
``alert``. Nothing here is ever evaluated as code.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    field_validator,
    model_validator,
)

from steerloop.errors import PolicyError, PolicyIssue
from steerloop.policies.metrics import CATEGORICAL_VALUES, metric_kinds

__all__ = [
    "Action",
    "AlertAction",
    "BestPredictedAction",
    "Condition",
    "Estimation",
    "Policy",
    "Rule",
    "ScorerSpec",
    "SequentialAction",
    "SeverityConfig",
    "SeveritySource",
    "Strategy",
    "Switching",
    "reference_problems",
    "validate_policy",
]

Loc = tuple[str | int, ...]
_PLACEHOLDERS = frozenset({"objectives", "focus"})
_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class Strategy(_Model):
    """A prompting strategy: the text injected as the steering prompt, and what it emphasises.

    ``prompt`` may contain ``{objectives}`` (comma-separated objective names) and ``{focus}``
    (the objective in focus in sequential mode, else all objectives); nothing else is
    substituted and ``{{``/``}}`` give literal braces.
    """

    prompt: str = Field(min_length=1, max_length=20_000)
    emphasis: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    description: str = ""

    @field_validator("prompt")
    @classmethod
    def _only_known_placeholders(cls, prompt: str) -> str:
        try:
            fields = [
                name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None
            ]
        except ValueError as error:
            raise ValueError(
                f"prompt is not a valid template ({error}); write {{{{ for a literal {{"
            ) from None
        unknown = sorted({name for name in fields if name not in _PLACEHOLDERS})
        if unknown:
            raise ValueError(
                f"prompt uses unknown placeholder(s) {unknown}; only {{objectives}} and {{focus}} "
                "are filled (write {{ and }} for literal braces)"
            )
        return prompt

    def render(self, objectives: list[str], focus: str | None) -> str:
        """The prompt with its placeholders filled (plain substitution, no code)."""
        return self.prompt.format(
            objectives=", ".join(objectives),
            focus=focus if focus is not None else ", ".join(objectives),
        )


class Estimation(_Model):
    """Settings of the online estimators (DESIGN.md "Math")."""

    forgetting: float = Field(0.98, gt=0.0, le=1.0, description="RLS/EW forgetting factor λ")
    warmup: int = Field(
        5, ge=2, le=100_000, description="updates before estimates and rules are used"
    )
    dt: float = Field(1.0, gt=0.0, le=1e6, description="time between iterations Δt")
    measurement_noise: float = Field(0.01, gt=0.0, le=1.0, description="score noise variance R")
    process_noise: float = Field(
        0.01, gt=0.0, le=1.0, description="process noise variance used before Σ is estimated"
    )
    initial_covariance: float = Field(100.0, gt=0.0, le=1e8, description="RLS prior P₀ = p₀I")
    max_covariance_trace: float = Field(1e6, gt=0.0, description="RLS windup guard on trace(P)")
    input: Literal["filtered", "raw"] = Field(
        "filtered", description="regress on the Kalman-filtered state or the raw scores"
    )


class SeveritySource(_Model):
    """Where severity comes from: one objective (optionally inverted) or a scorer's key."""

    objective: str | None = None
    invert: bool = False
    score: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SeveritySource:
        if (self.objective is None) == (self.score is None):
            raise ValueError(
                "give exactly one of 'objective' (a policy objective) or 'score' (a scorer key)"
            )
        return self


class SeverityConfig(_Model):
    """Severity process settings (paper 2). Default source: 1 − min over filtered objectives."""

    source: SeveritySource | None = Field(None, alias="from")
    threshold: float = Field(0.7, gt=0.0, lt=1.0)
    phase_z: float = Field(
        1.645,
        ge=0.0,
        le=10.0,
        description="standard errors α − β must clear beyond phase_margin (0: point estimate)",
    )
    phase_margin: float = Field(
        0.05,
        ge=0.0,
        description="α − β must exceed this (beyond its standard error) for 'supercritical'",
    )


class Switching(_Model):
    """Limits on how often the strategy may change."""

    min_dwell: int = Field(3, ge=0, description="steps after a switch before the next")
    cooldown: int = Field(0, ge=0, description="default steps a rule waits after it acted")


class ScorerSpec(_Model):
    """A scorer named by import path, with keyword arguments for its constructor."""

    use: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    options: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: float = Field(30.0, gt=0.0, le=3600.0)


class Condition(_Model):
    """A comparison on one metric, or one combinator over nested conditions."""

    metric: str | None = None
    above: float | None = None
    below: float | None = None
    equals: float | str | bool | None = None
    between: tuple[float, float] | None = None
    all: list[Condition] | None = Field(None, min_length=1)
    any: list[Condition] | None = Field(None, min_length=1)
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _well_formed(self) -> Condition:
        combinators = [name for name in ("all", "any", "not_") if getattr(self, name) is not None]
        comparators = [
            name
            for name in ("above", "below", "equals", "between")
            if getattr(self, name) is not None
        ]
        if self.metric is None:
            if len(combinators) != 1 or comparators:
                raise ValueError(
                    "a condition is either {metric, above|below|equals|between} "
                    "or exactly one of all/any/not"
                )
            return self
        if combinators:
            raise ValueError("a metric comparison cannot also hold all/any/not; nest them instead")
        if len(comparators) != 1:
            got = " and ".join(comparators) if comparators else "none"
            raise ValueError(
                f"metric {self.metric!r} needs exactly one of above/below/equals/between, got {got}"
            )
        if self.between is not None and not self.between[0] <= self.between[1]:
            raise ValueError(
                f"between needs [low, high] with low <= high, got {list(self.between)}"
            )
        return self


class SequentialAction(_Model):
    """Optimize one objective at a time (paper 1, appendix B.3)."""

    order: Literal["auto"] | list[str] = "auto"
    target: float = Field(0.8, gt=0.0, le=1.0)
    patience: int = Field(4, ge=1)
    exit_above: float = Field(
        -0.05, ge=-1.0, le=1.0, description="leave when interference.min recovers above this"
    )


class BestPredictedAction(_Model):
    """Pick the strategy whose predicted equilibrium scores best under a utility."""

    utility: Literal["min", "mean", "weighted"] = "min"
    weights: dict[str, NonNegativeFloat] = Field(default_factory=dict)


class AlertAction(_Model):
    """Emit an alert event without switching."""

    message: str = Field("", max_length=2000)
    severity: Literal["info", "warning", "critical"] = "warning"


class Action(_Model):
    """Exactly one action."""

    switch_to: str | None = None
    sequential: SequentialAction | None = None
    best_predicted: BestPredictedAction | None = None
    hold: Literal[True] | None = None
    alert: AlertAction | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "an action is exactly one of switch_to, sequential, best_predicted, hold, alert; "
                f"got {' and '.join(chosen) if chosen else 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        """The name of the action that is set."""
        for name in type(self).model_fields:
            if getattr(self, name) is not None:
                return name
        raise AssertionError("unreachable: validated to hold one action")


class Rule(_Model):
    """When ``when`` holds (after warm-up, outside dwell and cooldown), do ``then``."""

    name: str = Field(pattern=_NAME_PATTERN, max_length=100)
    priority: int = 0
    when: Condition
    then: Action
    cooldown: int | None = Field(None, ge=0)
    description: str = ""


class Policy(_Model):
    """A complete switching policy."""

    version: Literal[1] = 1
    name: str = ""
    objectives: list[str] = Field(min_length=1, max_length=64)
    scorers: list[ScorerSpec] = Field(default_factory=list)
    strategies: dict[str, Strategy] = Field(min_length=1)
    initial: str
    estimation: Estimation = Field(default_factory=Estimation)
    severity: SeverityConfig = Field(default_factory=SeverityConfig)
    switching: Switching = Field(default_factory=Switching)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("objectives")
    @classmethod
    def _objective_names(cls, objectives: list[str]) -> list[str]:
        import re

        for name in objectives:
            if not re.match(_NAME_PATTERN, name):
                raise ValueError(f"objective name {name!r} must match {_NAME_PATTERN}")
        if len(set(objectives)) != len(objectives):
            raise ValueError(f"objective names must be unique, got {objectives}")
        return objectives

    @property
    def rules_by_priority(self) -> list[Rule]:
        """Rules sorted by descending priority; ties keep file order."""
        return sorted(self.rules, key=lambda rule: -rule.priority)


def _walk_conditions(condition: Condition, loc: Loc) -> Iterator[tuple[Condition, Loc]]:
    yield condition, loc
    for name in ("all", "any"):
        children = getattr(condition, name)
        if children is not None:
            for index, child in enumerate(children):
                yield from _walk_conditions(child, (*loc, name, index))
    if condition.not_ is not None:
        yield from _walk_conditions(condition.not_, (*loc, "not"))


def reference_problems(policy: Policy) -> list[tuple[Loc, str]]:
    """Cross-reference problems: unknown strategies, objectives and metrics, bad comparators.

    Returns ``(location, message)`` pairs; locations are paths into the policy document
    (``("rules", 2, "when", "metric")``) so a loader can point at the line.
    """
    problems: list[tuple[Loc, str]] = []
    objectives = list(policy.objectives)
    known_objectives = set(objectives)
    strategies = set(policy.strategies)
    kinds = metric_kinds(objectives)

    def need_strategy(name: str, loc: Loc) -> None:
        if name not in strategies:
            problems.append((loc, f"unknown strategy {name!r}; defined: {sorted(strategies)}"))

    def need_objective(name: str, loc: Loc) -> None:
        if name not in known_objectives:
            problems.append((loc, f"unknown objective {name!r}; objectives: {objectives}"))

    need_strategy(policy.initial, ("initial",))
    for strategy_name, strategy in policy.strategies.items():
        for objective in strategy.emphasis:
            need_objective(objective, ("strategies", strategy_name, "emphasis", objective))
    source = policy.severity.source
    if source is not None and source.objective is not None:
        need_objective(source.objective, ("severity", "from", "objective"))

    seen_rules: set[str] = set()
    for index, rule in enumerate(policy.rules):
        base: Loc = ("rules", index)
        if rule.name in seen_rules:
            problems.append(((*base, "name"), f"duplicate rule name {rule.name!r}"))
        seen_rules.add(rule.name)
        for condition, loc in _walk_conditions(rule.when, (*base, "when")):
            if condition.metric is None:
                continue
            kind = kinds.get(condition.metric)
            if kind is None:
                close = difflib.get_close_matches(condition.metric, list(kinds), n=3)
                if not close:
                    prefix = condition.metric.split(".")[0]
                    close = sorted(name for name in kinds if name.split(".")[0] == prefix)[:8]
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                problems.append(((*loc, "metric"), f"unknown metric {condition.metric!r}{hint}"))
                continue
            if kind == "category":
                if condition.equals is None:
                    problems.append(
                        (
                            (*loc, "metric"),
                            f"metric {condition.metric!r} is a category; compare it with 'equals'",
                        )
                    )
                    continue
                allowed = (
                    tuple(sorted(strategies))
                    if condition.metric == "strategy"
                    else CATEGORICAL_VALUES[condition.metric]
                )
                if condition.equals not in allowed:
                    problems.append(
                        (
                            (*loc, "equals"),
                            f"{condition.metric} is never {condition.equals!r}; "
                            f"values: {list(allowed)}",
                        )
                    )
            elif isinstance(condition.equals, (str, bool)):
                problems.append(
                    (
                        (*loc, "equals"),
                        f"metric {condition.metric!r} is a number; compare with a number",
                    )
                )
        action = rule.then
        if action.switch_to is not None:
            need_strategy(action.switch_to, (*base, "then", "switch_to"))
        if action.sequential is not None:
            order = action.sequential.order
            if order != "auto":
                for position, objective in enumerate(order):
                    need_objective(objective, (*base, "then", "sequential", "order", position))
            for objective in (
                objectives if order == "auto" else [o for o in order if o in known_objectives]
            ):
                if not any(
                    strategy.emphasis.get(objective, 0.0) > 0
                    for strategy in policy.strategies.values()
                ):
                    problems.append(
                        (
                            (*base, "then", "sequential"),
                            f"no strategy emphasises objective {objective!r}, "
                            "so sequential mode cannot focus it",
                        )
                    )
        if action.best_predicted is not None:
            for objective in action.best_predicted.weights:
                need_objective(objective, (*base, "then", "best_predicted", "weights", objective))
    return problems


def validate_policy(policy: Policy, *, file: str = "<policy>") -> Policy:
    """Raise :class:`PolicyError` listing every cross-reference problem; return the policy."""
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
