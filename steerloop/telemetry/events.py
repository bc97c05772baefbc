"""Structured log events of steered loops (structlog), with stable names and fields.

:class:`SteerloopEvents` listens to a :class:`~steerloop.controller.session.Controller`
and logs through ``structlog.get_logger("steerloop")`` (or a logger you pass). The library
never calls :func:`structlog.configure`: the application decides where events go and how
they are rendered (the ``steerloop`` CLI configures it for itself).

Events
------
Every event's name and fields are part of the API (:data:`EVENT_FIELDS`); fields are always
present (``None`` when unknown).

``steerloop.strategy.switch`` (info)
    session_id, step, from_strategy, to_strategy, rule, reason, mode, focus, objectives
    (filtered value per objective), severity, severity_phase, drift_rate, drift_regime,
    drift_r2, interference_min.
``steerloop.severity.alarm`` (warning; once per excursion of a session)
    session_id, step, strategy, trigger (``"threshold"``, ``"supercritical"`` or
    ``"both"``), severity, threshold, severity_phase, severity_margin, first_passage.
``steerloop.regime.change`` (info; between estimated regimes, ``unknown`` is skipped)
    session_id, step, strategy, from_regime, to_regime, drift_rate, drift_max_real, drift_r2.
``steerloop.scorer.error`` (warning)
    session_id, step, scorer, reason, count.
``steerloop.rule.error`` (error)
    session_id, step, strategy, count, total.
``steerloop.policy.reload`` (info)
    policy, previous_policy, objectives, strategies, rules, sessions.
``steerloop.policy.alert`` (info/warning/critical, the alert's severity)
    session_id, step, rule, severity, message, reason.
``steerloop.controller.fault`` (error; the controller failed open and held the strategy)
    session_id, step, strategy, error_type.
``steerloop.telemetry.error`` (error; logged once per telemetry object)
    layer, where, error_type, errors.

Text
----
Prompts, responses, scorer messages, exception messages and score contexts are never
logged: the events carry names, numbers and the policy's own texts (rule reasons, alert
messages). ``include_text=True`` adds :data:`TEXT_FIELDS` (the next prompt on a switch, the
exception message of a fault). Responses never reach the telemetry layer at all.

Examples
--------
>>> from structlog.testing import capture_logs
>>> from steerloop import Controller
>>> controller = Controller(preset="paper")
>>> events = SteerloopEvents()
>>> events.bind(controller)
>>> with capture_logs() as logs:
...     controller.reload_policy(controller.policy)
>>> logs[0]["event"], logs[0]["policy"], logs[0]["sessions"]
('steerloop.policy.reload', 'paper', 0)
>>> events.unbind(controller)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from steerloop.telemetry._tracking import FailureDelta, SessionTable, finite

if TYPE_CHECKING:
    from steerloop.controller.session import Controller, Decision, Session
    from steerloop.policies.schema import Policy

__all__ = [
    "CONTROLLER_FAULT",
    "EVENT_FIELDS",
    "LOGGER_NAME",
    "POLICY_ALERT",
    "POLICY_RELOAD",
    "REGIME_CHANGE",
    "RULE_ERROR",
    "SCORER_ERROR",
    "SEVERITY_ALARM",
    "STRATEGY_SWITCH",
    "TELEMETRY_ERROR",
    "TEXT_FIELDS",
    "SteerloopEvents",
    "get_logger",
    "log_telemetry_error",
]

#: Name passed to :func:`structlog.get_logger`.
LOGGER_NAME = "steerloop"

STRATEGY_SWITCH = "steerloop.strategy.switch"
SEVERITY_ALARM = "steerloop.severity.alarm"
REGIME_CHANGE = "steerloop.regime.change"
SCORER_ERROR = "steerloop.scorer.error"
RULE_ERROR = "steerloop.rule.error"
POLICY_RELOAD = "steerloop.policy.reload"
POLICY_ALERT = "steerloop.policy.alert"
CONTROLLER_FAULT = "steerloop.controller.fault"
TELEMETRY_ERROR = "steerloop.telemetry.error"

#: The fields of every event (besides structlog's ``event``), always present.
EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    STRATEGY_SWITCH: (
        "session_id",
        "step",
        "from_strategy",
        "to_strategy",
        "rule",
        "reason",
        "mode",
        "focus",
        "objectives",
        "severity",
        "severity_phase",
        "drift_rate",
        "drift_regime",
        "drift_r2",
        "interference_min",
    ),
    SEVERITY_ALARM: (
        "session_id",
        "step",
        "strategy",
        "trigger",
        "severity",
        "threshold",
        "severity_phase",
        "severity_margin",
        "first_passage",
    ),
    REGIME_CHANGE: (
        "session_id",
        "step",
        "strategy",
        "from_regime",
        "to_regime",
        "drift_rate",
        "drift_max_real",
        "drift_r2",
    ),
    SCORER_ERROR: ("session_id", "step", "scorer", "reason", "count"),
    RULE_ERROR: ("session_id", "step", "strategy", "count", "total"),
    POLICY_RELOAD: ("policy", "previous_policy", "objectives", "strategies", "rules", "sessions"),
    POLICY_ALERT: ("session_id", "step", "rule", "severity", "message", "reason"),
    CONTROLLER_FAULT: ("session_id", "step", "strategy", "error_type"),
    TELEMETRY_ERROR: ("layer", "where", "error_type", "errors"),
}

#: Extra fields added only with ``include_text=True`` (they may quote user content).
TEXT_FIELDS: Mapping[str, tuple[str, ...]] = {
    STRATEGY_SWITCH: ("prompt",),
    CONTROLLER_FAULT: ("error",),
    TELEMETRY_ERROR: ("error",),
}

_ALERT_LEVELS = {"info": "info", "warning": "warning", "critical": "critical"}
_KNOWN_REGIMES = frozenset({"exponential", "oscillatory", "boundary-seeking", "unstable"})
_PRUNE_EVERY = 256


def get_logger() -> Any:
    """``structlog.get_logger("steerloop")`` (a lazy proxy: it follows later configuration)."""
    return structlog.get_logger(LOGGER_NAME)


def log_telemetry_error(
    where: str,
    error: BaseException,
    *,
    errors: int,
    layer: str,
    logger: Any = None,
    include_text: bool = False,
) -> None:
    """Log ``steerloop.telemetry.error`` (never raises)."""
    fields: dict[str, Any] = {
        "layer": layer,
        "where": where,
        "error_type": type(error).__name__,
        "errors": errors,
    }
    if include_text:
        fields["error"] = str(error)
    with contextlib.suppress(Exception):  # logging must not break the loop either
        (logger if logger is not None else get_logger()).error(TELEMETRY_ERROR, **fields)


def _number(diagnostics: Mapping[str, object], key: str) -> float | None:
    return finite(diagnostics.get(key))


def _text(diagnostics: Mapping[str, object], key: str) -> str | None:
    value = diagnostics.get(key)
    return value if isinstance(value, str) else None


class _EventBinding:
    """The link between one :class:`SteerloopEvents` and one controller."""

    def __init__(self, owner: SteerloopEvents, controller: Controller) -> None:
        self.owner = owner
        self.controller = controller
        self.lock = threading.Lock()
        self.table = SessionTable()
        self.failures = FailureDelta(controller.scorer)
        self.steps = 0
        for session in controller:
            decision = session.last_decision
            if decision is not None:
                record, first = self.table.get(session.id)
                record.error_deltas(decision, first)
                regime = _text(decision.diagnostics, "drift.regime")
                if regime in _KNOWN_REGIMES:
                    record.known_regime = regime
                record.alarm = self._alarm(decision) is not None

    def _alarm(self, decision: Decision) -> str | None:
        diagnostics = decision.diagnostics
        severity = _number(diagnostics, "severity.value")
        over = severity is not None and severity >= self.controller.policy.severity.threshold
        supercritical = diagnostics.get("severity.phase") == "supercritical"
        if over and supercritical:
            return "both"
        if over:
            return "threshold"
        return "supercritical" if supercritical else None

    def on_reload(self, old: Policy, new: Policy) -> None:
        try:
            self.owner._emit(
                "info",
                POLICY_RELOAD,
                policy=new.name,
                previous_policy=old.name,
                objectives=list(new.objectives),
                strategies=sorted(new.strategies),
                rules=[rule.name for rule in new.rules],
                sessions=len(self.controller),
            )
        except Exception as error:
            self.owner._failed("reload", error)

    def on_decision(self, session: Session, decision: Decision) -> None:
        try:
            self._record(session, decision)
        except Exception as error:
            self.owner._failed("step", error)

    def _record(self, session: Session, decision: Decision) -> None:
        owner = self.owner
        sid = session.id
        diagnostics = decision.diagnostics
        pending: list[tuple[str, str, dict[str, Any]]] = []
        with self.lock:
            record, first = self.table.get(sid)
            scorer_errors, rule_errors = record.error_deltas(decision, first)
            failures = self.failures.take(self.controller.scorer) if scorer_errors else None
            if decision.error is None:
                regime = _text(diagnostics, "drift.regime")
                if regime in _KNOWN_REGIMES and regime != record.known_regime:
                    pending.append(
                        (
                            "info",
                            REGIME_CHANGE,
                            {
                                "strategy": decision.previous_strategy,
                                "from_regime": record.known_regime,
                                "to_regime": regime,
                                "drift_rate": _number(diagnostics, "drift.rate"),
                                "drift_max_real": _number(diagnostics, "drift.max_real"),
                                "drift_r2": _number(diagnostics, "drift.r2"),
                            },
                        )
                    )
                    record.known_regime = regime
                trigger = self._alarm(decision)
                if trigger is not None and not record.alarm:
                    pending.append(
                        (
                            "warning",
                            SEVERITY_ALARM,
                            {
                                "strategy": decision.previous_strategy,
                                "trigger": trigger,
                                "severity": _number(diagnostics, "severity.value"),
                                "threshold": self.controller.policy.severity.threshold,
                                "severity_phase": _text(diagnostics, "severity.phase"),
                                "severity_margin": _number(diagnostics, "severity.margin"),
                                "first_passage": _number(diagnostics, "severity.first_passage"),
                            },
                        )
                    )
                record.alarm = trigger is not None
            self.steps += 1
            if self.steps % _PRUNE_EVERY == 0:
                self.table.prune(self.controller)

        if decision.changed:
            objectives = {
                name: _number(diagnostics, f"objective.{name}")
                for name in self.controller.policy.objectives
            }
            fields: dict[str, Any] = {
                "from_strategy": decision.previous_strategy,
                "to_strategy": decision.strategy,
                "rule": decision.rule,
                "reason": decision.reason,
                "mode": decision.mode,
                "focus": decision.focus,
                "objectives": objectives,
                "severity": _number(diagnostics, "severity.value"),
                "severity_phase": _text(diagnostics, "severity.phase"),
                "drift_rate": _number(diagnostics, "drift.rate"),
                "drift_regime": _text(diagnostics, "drift.regime"),
                "drift_r2": _number(diagnostics, "drift.r2"),
                "interference_min": _number(diagnostics, "interference.min"),
            }
            if owner.include_text:
                fields["prompt"] = decision.prompt
            pending.insert(0, ("info", STRATEGY_SWITCH, fields))
        for alert in decision.alerts:
            pending.append(
                (
                    _ALERT_LEVELS.get(alert.severity, "warning"),
                    POLICY_ALERT,
                    {
                        "rule": alert.rule,
                        "severity": alert.severity,
                        "message": alert.message,
                        "reason": alert.reason,
                    },
                )
            )
        if failures:
            for (scorer, reason), count in sorted(failures.items()):
                pending.append(
                    ("warning", SCORER_ERROR, {"scorer": scorer, "reason": reason, "count": count})
                )
        elif scorer_errors:
            pending.append(
                (
                    "warning",
                    SCORER_ERROR,
                    {"scorer": "external", "reason": "reported", "count": scorer_errors},
                )
            )
        if rule_errors:
            pending.append(
                (
                    "error",
                    RULE_ERROR,
                    {
                        "strategy": decision.previous_strategy,
                        "count": rule_errors,
                        "total": record.rule_errors,
                    },
                )
            )
        if decision.error is not None:
            fault: dict[str, Any] = {
                "strategy": decision.strategy,
                "error_type": decision.error.split(":", 1)[0],
            }
            if owner.include_text:
                fault["error"] = decision.error
            pending.append(("error", CONTROLLER_FAULT, fault))
        for level, event, payload in pending:
            owner._emit(level, event, session_id=sid, step=decision.step, **payload)


class SteerloopEvents:
    """Log decision events of one or more controllers through structlog.

    Parameters
    ----------
    logger : Any
        A structlog logger (anything with ``info``/``warning``/``error``/``critical``
        methods taking an event name and keyword fields). Default: :func:`get_logger`.
    include_text : bool
        Also log :data:`TEXT_FIELDS` (prompts, exception messages). Off by default: only
        turn it on where logs may hold user content.

    Notes
    -----
    Fails open like the metrics: an exception while building or logging an event is
    swallowed, counted in :attr:`errors` and the first one logged as
    ``steerloop.telemetry.error``.

    Examples
    --------
    >>> from structlog.testing import capture_logs
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> SteerloopEvents().bind(controller)
    >>> session = controller.session("demo")
    >>> with capture_logs() as logs:
    ...     for _ in range(12):  # security collapsing: severity passes its threshold
    ...         _ = session.update({"security": 0.05, "efficiency": 0.9, "functionality": 0.9})
    >>> [entry["event"] for entry in logs][:2]
    ['steerloop.severity.alarm', 'steerloop.strategy.switch']
    >>> logs[1]["to_strategy"], "prompt" in logs[1]
    ('security_focused', False)
    """

    def __init__(self, logger: Any = None, *, include_text: bool = False) -> None:
        self._logger = logger if logger is not None else get_logger()
        self.include_text = include_text
        self._lock = threading.Lock()
        self._bindings: dict[int, _EventBinding] = {}
        self._errors = 0
        self._logged = False

    @property
    def errors(self) -> int:
        """Failures while building or logging events (each was swallowed)."""
        return self._errors

    def bind(self, controller: Controller) -> None:
        """Log events of ``controller`` (step listener and reload listener).

        Binding the same controller twice raises ``ValueError``.
        """
        with self._lock:
            if id(controller) in self._bindings:
                raise ValueError("this controller is already bound to these events")
            binding = _EventBinding(self, controller)
            self._bindings[id(controller)] = binding
        controller.add_reload_listener(binding.on_reload)
        controller.add_listener(binding.on_decision)

    def unbind(self, controller: Controller) -> None:
        """Stop logging events of ``controller`` (``KeyError`` when it is not bound)."""
        with self._lock:
            binding = self._bindings.pop(id(controller))
        controller.remove_listener(binding.on_decision)
        controller.remove_reload_listener(binding.on_reload)

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        try:
            getattr(self._logger, level)(event, **fields)
        except Exception as error:
            self._failed("log", error)

    def _failed(self, where: str, error: BaseException) -> None:
        with self._lock:
            self._errors += 1
            first = not self._logged
            self._logged = True
        if first:
            log_telemetry_error(
                where,
                error,
                errors=self._errors,
                layer="events",
                logger=self._logger,
                include_text=self.include_text,
            )
