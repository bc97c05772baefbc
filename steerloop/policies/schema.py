"""The policy format: frozen pydantic models, the one authority on what a policy may say.

A policy names the objectives (their order is the vector order), the strategies (a prompt
and emphasis weights each), estimation settings, the severity source, switching limits,
optional scorers and the rules. Structural checks live on the models; cross-references
(strategy and metric names, comparator types, rendered prompt sizes) are checked by
:func:`~steerloop.policies.references.reference_problems`, which the loader maps back to file
positions and :func:`~steerloop.policies.references.validate_policy` raises for policies built
in Python (both import from :mod:`steerloop.policies`).

Conditions and actions are data. A condition is either a comparison
``{metric, above|below|equals|between}`` or one combinator ``all``/``any``/``not``; an
action is exactly one of the fields of :class:`Action`. Nothing here is ever evaluated as
code.

The JSON Schema generated from these models (``steerloop schema``) states every structural
rule JSON Schema can express, including "exactly one action" and "exactly one comparator"
(``json_schema_extra`` below; a key whose value is null counts as absent, as it does here).
It cannot express the cross-references, ``between`` order, unique rule names or the
rendered prompt size; ``steerloop validate`` checks those.

Adding a field: add it to its model with a ``Field(default, description=...)``; a new
action is one more optional field of :class:`Action` (its "exactly one" rule, in Python and
in the JSON Schema, is derived from the field list).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    field_validator,
    model_validator,
)

from steerloop.policies.templates import (
    MAX_TEMPLATE_CHARS,
    TEMPLATE_PATTERN,
    parse_template,
)

__all__ = [
    "Action",
    "AlertAction",
    "BestPredictedAction",
    "Condition",
    "Estimation",
    "Fleet",
    "PlanAction",
    "Policy",
    "Rule",
    "ScorerSpec",
    "SequentialAction",
    "SeverityConfig",
    "SeveritySource",
    "Strategy",
    "Switching",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
#: A name of an objective or rule: letters, digits, ``_`` and ``-``, at most 100 characters.
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


def _set(key: str) -> dict[str, Any]:
    """JSON Schema: ``key`` is present with a non-null value."""
    return {"required": [key], "properties": {key: {"not": {"type": "null"}}}}


def _exactly_one(keys: Iterable[str]) -> dict[str, Any]:
    return {"oneOf": [_set(key) for key in keys]}


def _none_of(keys: Iterable[str]) -> dict[str, Any]:
    return {"not": {"anyOf": [_set(key) for key in keys]}}


def _set_fields(model: BaseModel, names: Iterable[str]) -> list[str]:
    """The names among ``names`` whose value is not None."""
    return [name for name in names if getattr(model, name) is not None]


class Strategy(_Model):
    """A prompting strategy: the text injected as the steering prompt, and what it emphasises.

    ``prompt`` may contain ``{objectives}`` (comma-separated objective names) and ``{focus}``
    (the objective in focus in sequential mode, else all objectives); nothing else is
    substituted and ``{{``/``}}`` give literal braces.
    """

    prompt: str = Field(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="the steering prompt; {objectives} and {focus} are filled in",
        json_schema_extra={"pattern": TEMPLATE_PATTERN},
    )
    emphasis: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    description: str = Field("", max_length=2000)

    @field_validator("prompt")
    @classmethod
    def _only_known_placeholders(cls, prompt: str) -> str:
        parse_template(prompt)
        return prompt

    def render(self, objectives: list[str], focus: str | None) -> str:
        """The prompt with its placeholders filled (plain substitution, no code).

        Raises
        ------
        ValueError
            The result would be longer than
            :data:`~steerloop.policies.templates.MAX_PROMPT_CHARS` (a loaded policy never is).
        """
        return parse_template(self.prompt).render(objectives, focus)


class Estimation(_Model):
    """Settings of the online estimators (docs/architecture.md, "Math").

    ``measurement_noise`` is the scorers' noise **variance** R (not a standard deviation):
    ``"auto"`` (the default) estimates it online from the lag-one autocovariance of the
    drift residuals (:mod:`steerloop.estimators.noise`); a number fixes it for the filter.
    ``input`` is what the drift regression learns from: ``"raw"`` (default) scores with the
    errors-in-variables correction, or ``"filtered"`` states (biased: the filter's own
    prediction leaks into the fit; kept for comparison, README "Honest estimates").
    """

    forgetting: float = Field(0.98, gt=0.0, le=1.0, description="RLS/EW forgetting factor λ")
    warmup: int = Field(
        5, ge=2, le=100_000, description="updates before estimates and rules are used"
    )
    dt: float = Field(1.0, gt=0.0, le=1e6, description="time between iterations Δt")
    measurement_noise: Literal["auto"] | float = Field(
        "auto", description="score noise variance R, or 'auto' to estimate it online"
    )
    process_noise: float = Field(
        0.01, gt=0.0, le=1.0, description="process noise variance used before Q is estimated"
    )
    initial_covariance: float = Field(
        1e4, gt=0.0, le=1e8, description="ridge prior P₀ = p₀I of the drift fits"
    )
    min_effective_samples: float = Field(
        10.0,
        ge=2.0,
        le=1e6,
        description="effective sample size before rates, regimes and interference are reported",
    )
    input: Literal["filtered", "raw"] = Field(
        "raw", description="regress the drift on the raw scores (default) or the filtered state"
    )

    @field_validator("measurement_noise")
    @classmethod
    def _variance(cls, value: str | float) -> str | float:
        if isinstance(value, float | int) and not 0.0 < value <= 1.0:
            raise ValueError(
                f"measurement_noise is a variance in (0, 1] or 'auto', got {value}; "
                "a standard deviation s is given as its square s**2"
            )
        return value


class SeveritySource(_Model):
    """Where severity comes from: one objective (optionally inverted) or a scorer's key."""

    model_config = ConfigDict(json_schema_extra=_exactly_one(("objective", "score")))

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
    """Severity process (arXiv 2501.16783). Default source: 1 − min over filtered objectives."""

    source: SeveritySource | None = Field(None, alias="from")
    threshold: float = Field(0.7, gt=0.0, lt=1.0)
    phase_z: float = Field(
        0.25,
        ge=0.0,
        le=10.0,
        description="standard errors α − β must clear beyond phase_margin (README: ROC table)",
    )
    forgetting: float = Field(
        1.0, gt=0.0, le=1.0, description="forgetting of the severity fit (1: none)"
    )
    phase_transitions: int = Field(
        20, ge=2, le=100_000, description="transitions before the phase is called at all"
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

    COMPARATORS: ClassVar[tuple[str, ...]] = ("above", "below", "equals", "between")
    COMBINATORS: ClassVar[tuple[str, ...]] = ("all", "any", "not")  # as written ("not_" here)

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"allOf": [_set("metric"), _exactly_one(COMPARATORS), _none_of(COMBINATORS)]},
                {"allOf": [_none_of(["metric"]), _exactly_one(COMBINATORS), _none_of(COMPARATORS)]},
            ]
        }
    )

    metric: str | None = Field(None, max_length=200)
    above: float | None = None
    below: float | None = None
    equals: float | str | bool | None = None
    between: tuple[float, float] | None = None
    all: list[Condition] | None = Field(None, min_length=1)
    any: list[Condition] | None = Field(None, min_length=1)
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _well_formed(self) -> Condition:
        combinators = _set_fields(self, ("all", "any", "not_"))
        comparators = _set_fields(self, self.COMPARATORS)
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
    """Optimize one objective at a time (arXiv 2510.10739, appendix B.3)."""

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


class PlanAction(_Model):
    """Choose the schedule with the best expected utility at the horizon (planner).

    Every strategy held to the horizon, and two-phase schedules (A for k steps, then B), are
    propagated from the filtered state through the learnt drifts (mean and covariance,
    including the estimates' own uncertainty); the first step of the best schedule is taken
    and the plan is made again at every step. See :mod:`steerloop.estimators.planner`.
    """

    utility: Literal["min", "mean", "weighted"] = "min"
    weights: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    margin: float = Field(
        0.01, ge=0.0, le=1.0, description="a new plan must beat the current one by this"
    )
    schedules: Literal["auto", "hold", "two_phase"] = Field(
        "auto",
        description="'auto': two-phase schedules only when the horizon is told, else hold",
    )
    explore: float = Field(
        0.25, ge=0.0, le=1.0, description="largest share of a session's steps spent exploring"
    )
    posterior_sampling: bool = Field(
        True,
        description="within the exploration budget, also plan with a posterior draw (Thompson)",
    )


class Fleet(_Model):
    """Learning as a fleet: sessions of one kind of task share a pooled drift per strategy."""

    pool: bool = Field(True, description="share what sessions learn through a pool")
    key: str | None = Field(
        None, max_length=200, description="pool name (default: the policy's name)"
    )
    prior_weight: float = Field(
        100.0, ge=0.0, le=1e6, description="effective transitions the pool lends a session"
    )
    memory: float = Field(
        2000.0, ge=1.0, le=1e9, description="effective transitions a pool keeps per strategy"
    )
    sync_every: int = Field(
        10,
        ge=1,
        le=100_000,
        description="with a session store: updates between two syncs of the pool with the store",
    )


class AlertAction(_Model):
    """Emit an alert event without switching."""

    message: str = Field("", max_length=2000)
    severity: Literal["info", "warning", "critical"] = "warning"


def _one_action_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    schema.update(_exactly_one(info.alias or name for name, info in model.model_fields.items()))


class Action(_Model):
    """Exactly one action: every field is an action, and exactly one is set."""

    model_config = ConfigDict(json_schema_extra=_one_action_schema)

    switch_to: str | None = None
    sequential: SequentialAction | None = None
    best_predicted: BestPredictedAction | None = None
    plan: PlanAction | None = None
    hold: Literal[True] | None = None
    alert: AlertAction | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = _set_fields(self, type(self).model_fields)
        if len(chosen) != 1:
            raise ValueError(
                f"an action is exactly one of {', '.join(type(self).model_fields)}; "
                f"got {' and '.join(chosen) if chosen else 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        """The name of the action that is set."""
        return _set_fields(self, type(self).model_fields)[0]


class Rule(_Model):
    """When ``when`` holds (after warm-up, outside dwell and cooldown), do ``then``."""

    name: Name
    priority: int = Field(0, ge=-1_000_000_000, le=1_000_000_000)
    when: Condition
    then: Action
    cooldown: int | None = Field(None, ge=0)
    description: str = Field("", max_length=2000)


class Policy(_Model):
    """A complete switching policy."""

    version: Literal[1] = 1
    name: str = Field("", max_length=200)
    objectives: list[Name] = Field(
        min_length=1, max_length=64, json_schema_extra={"uniqueItems": True}
    )
    scorers: list[ScorerSpec] = Field(default_factory=list)
    strategies: dict[str, Strategy] = Field(min_length=1)
    initial: str
    estimation: Estimation = Field(default_factory=Estimation)
    severity: SeverityConfig = Field(default_factory=SeverityConfig)
    switching: Switching = Field(default_factory=Switching)
    horizon: int | None = Field(
        None, ge=1, le=1_000_000, description="iterations a loop runs (None: unknown)"
    )
    fleet: Fleet = Field(default_factory=Fleet)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("objectives")
    @classmethod
    def _unique_objectives(cls, objectives: list[str]) -> list[str]:
        if len(set(objectives)) != len(objectives):
            raise ValueError(f"objective names must be unique, got {objectives}")
        return objectives

    @property
    def rules_by_priority(self) -> list[Rule]:
        """Rules sorted by descending priority; ties keep file order."""
        return sorted(self.rules, key=lambda rule: -rule.priority)
