"""Shared glue of the adapters: scoring a response, failing open, counting faults, targets.

Every adapter funnels a response through :class:`Observer`, so the fault policy is the same
everywhere (docs/architecture.md "Conventions"): a scorer or controller error is caught, counted
on the adapter, logged as a ``steerloop.adapter_fault`` structlog event — with the adapter, stage,
session id and error type, never the prompt or response text — and the caller gets ``None``
instead of a :class:`~steerloop.controller.session.Decision`. ``strict=True`` re-raises.
"""

from __future__ import annotations

import difflib
import inspect
import math
import threading
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import structlog

if TYPE_CHECKING:
    from steerloop.controller import Decision, Session
    from steerloop.controller.session import SessionOwner
    from steerloop.scoring.base import CompositeScorer, Scorer

__all__ = [
    "Observer",
    "ScoreFn",
    "Scoring",
    "Target",
    "TargetMetric",
    "decision_payload",
    "renamed_scorer",
    "require_session_id",
    "resolve_target",
    "target_met",
]

#: A plain scoring function: ``fn(response) -> {objective: score}`` (sync or async).
ScoreFn: TypeAlias = Callable[[Any], "Mapping[str, object] | Awaitable[Mapping[str, object]]"]
#: What adapters accept as ``scorer``: a plain function or a steerloop ``Scorer``.
Scoring: TypeAlias = "ScoreFn | Scorer"
#: A target: one level for every objective, or a level per named objective.
Target: TypeAlias = "float | Mapping[str, float]"
#: Which diagnostics a target is compared with: filtered state or last raw scores.
TargetMetric: TypeAlias = Literal["objective", "score"]

_logger = structlog.get_logger("steerloop")


class Observer:
    """Scores a response and updates a session, failing open.

    Parameters
    ----------
    controller : Controller
        The controller whose sessions are updated.
    adapter : str
        Adapter name used in log events (``"loop"``, ``"runnable"``, ...).
    scorer : Scoring | None
        ``fn(response) -> {objective: score}``, or a steerloop ``Scorer`` (run through a
        fail-open ``CompositeScorer``); ``None`` scores with the controller's scorers
        (:meth:`Session.observe`).
    strict : bool | None
        Re-raise faults; ``None`` follows ``controller.strict``.
    require_scorer : bool
        Raise ``ValueError`` at construction when there is no way to score a response.
    """

    __slots__ = ("_adapter", "_composite", "_controller", "_faults", "_lock", "_score", "_strict")

    def __init__(
        self,
        controller: SessionOwner,
        adapter: str,
        *,
        scorer: Scoring | None = None,
        strict: bool | None = None,
        require_scorer: bool = True,
    ) -> None:
        if require_scorer and scorer is None and controller.scorer is None:
            raise ValueError(
                f"{adapter}: the controller has no scorers; pass scorer=fn(response) -> "
                "{objective: score} (or a steerloop Scorer), or build the controller with "
                "scorers=[...] or a policy that lists scorers"
            )
        if scorer is not None and not callable(scorer) and not hasattr(scorer, "score"):
            raise TypeError(
                f"{adapter}: scorer must be fn(response) -> {{objective: score}} or a Scorer, "
                f"got {type(scorer).__name__}"
            )
        self._controller = controller
        self._adapter = adapter
        self._strict = controller.strict if strict is None else strict
        self._composite: CompositeScorer | None = None
        if scorer is not None and hasattr(scorer, "objectives") and hasattr(scorer, "score"):
            from steerloop.scoring.base import CompositeScorer

            self._composite = CompositeScorer(
                [cast("Scorer", scorer)],
                objectives=controller.policy.objectives,
                strict=self._strict,
            )
            scorer = None
        self._score = scorer
        self._faults = 0
        self._lock = threading.Lock()

    @property
    def strict(self) -> bool:
        """Whether faults are re-raised."""
        return self._strict

    @property
    def can_score(self) -> bool:
        """Whether a response can be scored (a ``scorer`` or the controller's scorers)."""
        return (
            self._score is not None
            or self._composite is not None
            or self._controller.scorer is not None
        )

    @property
    def faults(self) -> int:
        """Faults caught so far (exceptions swallowed plus decisions that carry an error)."""
        return self._faults

    def fault(self, stage: str, error: BaseException | str, session_id: str | None) -> None:
        """Count and log one fault (the event never carries prompt or response text)."""
        with self._lock:
            self._faults += 1
            total = self._faults
        error_type = error if isinstance(error, str) else type(error).__name__
        _logger.warning(
            "steerloop.adapter_fault",
            adapter=self._adapter,
            stage=stage,
            session_id=session_id,
            error_type=error_type,
            faults=total,
        )

    def _fail_open(self, stage: str, error: Exception, session_id: str) -> None:
        """Re-raise ``error`` when strict, else count and log it as a fault."""
        if self._strict:
            raise error
        self.fault(stage, error, session_id)

    def _checked(self, decision: Decision, session_id: str) -> Decision:
        if decision.error is not None:
            # The controller held its strategy; the message is ours, but keep logs text-free.
            self.fault("controller", "controller_fault", session_id)
        return decision

    def observe(
        self, session: Session, response: object, context: Mapping[str, Any] | None = None
    ) -> Decision | None:
        """Score ``response`` and update ``session``; ``None`` on a (non-strict) fault."""
        stage = "score"
        try:
            if self._composite is not None:
                result = self._composite.score(response, context)
                stage = "update"
                decision = session.update(result.scores, scorer_errors=len(result.failures))
            elif self._score is None:
                decision = session.observe(response, context)
            else:
                scores = self._score(response)
                if inspect.isawaitable(scores):
                    _close(scores)
                    raise TypeError(
                        "scorer= returned an awaitable in a synchronous call; use the async "
                        "path (ainvoke/astream/await) or a synchronous scorer"
                    )
                stage = "update"
                decision = session.update(scores)
        except Exception as error:
            self._fail_open(stage, error, session.id)
            return None
        return self._checked(decision, session.id)

    async def aobserve(
        self, session: Session, response: object, context: Mapping[str, Any] | None = None
    ) -> Decision | None:
        """Async twin of :meth:`observe` (awaits an async ``scorer`` function)."""
        stage = "score"
        try:
            if self._composite is not None:
                result = await self._composite.ascore(response, context)
                stage = "update"
                decision = await session.aupdate(result.scores, scorer_errors=len(result.failures))
            elif self._score is None:
                decision = await session.aobserve(response, context)
            else:
                scores = self._score(response)
                if inspect.isawaitable(scores):
                    scores = await scores
                stage = "update"
                decision = await session.aupdate(scores)
        except Exception as error:
            self._fail_open(stage, error, session.id)
            return None
        return self._checked(decision, session.id)

    def update(self, session: Session, scores: Mapping[str, object]) -> Decision | None:
        """:meth:`Session.update` with the same fault handling as :meth:`observe`."""
        try:
            decision = session.update(scores)
        except Exception as error:
            self._fail_open("update", error, session.id)
            return None
        return self._checked(decision, session.id)

    async def aupdate(self, session: Session, scores: Mapping[str, object]) -> Decision | None:
        """Async twin of :meth:`update`."""
        try:
            decision = await session.aupdate(scores)
        except Exception as error:
            self._fail_open("update", error, session.id)
            return None
        return self._checked(decision, session.id)

    def prompt(self, session: Session) -> str:
        """The session's current strategy prompt; ``""`` on a (non-strict) fault."""
        try:
            return session.prompt
        except Exception as error:
            self._fail_open("prompt", error, session.id)
            return ""


def renamed_scorer(scorer: Scoring | None, score: Scoring | None, where: str) -> Scoring | None:
    """``scorer``, or the deprecated ``score=`` spelling of it (with a ``DeprecationWarning``).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed_scorer(None, len, "steer()") is len
    True
    >>> str(caught[0].message).split(";")[0]
    'steer(score=...) is deprecated'
    """
    if score is None:
        return scorer
    if scorer is not None:
        raise TypeError(f"{where}: pass scorer= only (score= is its deprecated old name)")
    warnings.warn(
        f"{where.removesuffix('()')}(score=...) is deprecated; use scorer=..., the name every "
        "steerloop adapter takes (score= stops working in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return score


def require_session_id(
    values: Mapping[str, Any] | None,
    key: str,
    default: str | None,
    *,
    adapter: str,
    where: str,
    example: str,
    opt_in: str = "default_session",
) -> str:
    """The session id under ``key`` in ``values``; ``default`` when absent, else an error.

    Calls of different users must never be merged into one session by accident, so a missing
    (or misspelled) key is a ``ValueError`` naming the key, what was found instead and how to
    pass it — unless the adapter was given a default (its ``opt_in`` argument) to opt in to
    sharing one session.

    Examples
    --------
    >>> require_session_id({"session_id": 42}, "session_id", None, adapter="A", where="w",
    ...                    example="e")
    '42'
    >>> require_session_id({}, "session_id", "shared", adapter="A", where="w", example="e")
    'shared'
    >>> try:
    ...     require_session_id({"sessionid": "dave"}, "session_id", None,
    ...                        adapter="Runnable", where="config", example="...")
    ... except ValueError as error:
    ...     print(str(error).split(". ")[0])
    Runnable: no 'session_id' in config (found 'sessionid': did you mean 'session_id'?)
    """
    value = None if values is None else values.get(key)
    if value is not None:
        return str(value)
    if default is not None:
        return default
    keys = [k for k in (values or {}) if isinstance(k, str)]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    found = f" (found {close[0]!r}: did you mean {key!r}?)" if close else ""
    raise ValueError(
        f"{adapter}: no {key!r} in {where}{found}. Each call needs its session id, e.g. "
        f"{example}; or opt in to one shared session with {opt_in}='...'"
    )


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def resolve_target(target: Target, objectives: list[str]) -> dict[str, float]:
    """Normalize a target to ``{objective: level}`` and validate it.

    Examples
    --------
    >>> resolve_target(0.8, ["security", "efficiency"])
    {'security': 0.8, 'efficiency': 0.8}
    >>> resolve_target({"security": 0.9}, ["security", "efficiency"])
    {'security': 0.9}
    """
    if isinstance(target, Mapping):
        levels = {str(name): float(level) for name, level in target.items()}
    else:
        levels = dict.fromkeys(objectives, float(target))
    if not levels:
        raise ValueError("target names no objective; give a level or {objective: level}")
    unknown = sorted(set(levels) - set(objectives))
    if unknown:
        raise ValueError(f"target names unknown objective(s) {unknown}; objectives: {objectives}")
    for name, level in levels.items():
        if not (math.isfinite(level) and 0.0 <= level <= 1.0):
            raise ValueError(f"target level of {name!r} must be in [0, 1], got {level}")
    return levels


def target_met(
    decision: Decision | None, target: Mapping[str, float], metric: TargetMetric = "objective"
) -> bool:
    """Whether every targeted objective reached its level in ``decision.diagnostics``.

    ``metric="objective"`` compares the Kalman-filtered state, ``"score"`` the raw scores
    of the last response. A missing value never meets a target.
    """
    if decision is None:
        return False
    diagnostics = decision.diagnostics
    for name, level in target.items():
        value = diagnostics.get(f"{metric}.{name}")
        if not isinstance(value, float) or not value >= level:
            return False
    return True


def decision_payload(decision: Decision | None) -> dict[str, Any]:
    """A small JSON-friendly summary of a decision (for traces and agent state).

    Examples
    --------
    >>> decision_payload(None)
    {'fault': True}
    """
    if decision is None:
        return {"fault": True}
    return {
        "strategy": decision.strategy,
        "previous_strategy": decision.previous_strategy,
        "changed": decision.changed,
        "rule": decision.rule,
        "reason": decision.reason,
        "mode": decision.mode,
        "focus": decision.focus,
        "step": decision.step,
        "missing": list(decision.missing),
        "alerts": [alert.rule for alert in decision.alerts],
        "error": decision.error,
    }
