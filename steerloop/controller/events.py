"""Structured log events of steered loops (structlog), with stable names and fields.

Every :class:`~steerloop.controller.session.Controller` logs its decisions by default
(``Controller(..., events=False)`` turns that off) through a :class:`SteerloopEvents`
bound to it, which logs through ``structlog.get_logger("steerloop")`` (or a logger you
pass). The library never calls :func:`structlog.configure`: the application decides where
events go, at which level, and how they are rendered. The public import path is
:mod:`steerloop.telemetry.events`; this module sits in the controller layer so that the
controller can emit without importing telemetry.

Events
------
Every event's name and fields are part of the API (:data:`EVENT_FIELDS`); fields are always
present (``None`` when unknown).

Until the application configures structlog (``structlog.is_configured()``) or passes its own
logger, only events of level warning and worse are logged, as with the standard library's
``logging``: structlog's unconfigured default prints every level to standard output, which
would put a line per switch (or per step) into any script.

``steerloop.decision`` (debug; every step)
    session_id, step, from_strategy, to_strategy, changed, rule, reason, mode, focus,
    missing, objectives, severity.
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
messages). ``include_text=True`` adds :data:`TEXT_FIELDS` (the next prompt on a switch or
decision, the exception message of a fault). Responses never reach the listeners at all.

Examples
--------
>>> from structlog.testing import capture_logs
>>> from steerloop import Controller
>>> controller = Controller(preset="paper")          # events are on by default
>>> isinstance(controller.events, SteerloopEvents)
True
>>> with capture_logs() as logs:
...     controller.reload_policy(controller.policy)
>>> logs[0]["event"], logs[0]["policy"], logs[0]["sessions"]
('steerloop.policy.reload', 'paper', 0)
>>> quiet = Controller(preset="paper", events=False)
>>> with capture_logs() as logs:
...     quiet.reload_policy(quiet.policy)
>>> logs, quiet.events
([], None)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steerloop.controller.listeners import (
    LOGGER_NAME,
    TELEMETRY_ERROR,
    Binding,
    ListenerGroup,
    ObservedController,
    SessionRecord,
    finite,
    get_logger,
    log_telemetry_error,
)

if TYPE_CHECKING:
    from steerloop.controller.decision import Decision
    from steerloop.controller.session import Session
    from steerloop.policies.schema import Policy

__all__ = [
    "CONTROLLER_FAULT",
    "DECISION",
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

DECISION = "steerloop.decision"
STRATEGY_SWITCH = "steerloop.strategy.switch"
SEVERITY_ALARM = "steerloop.severity.alarm"
REGIME_CHANGE = "steerloop.regime.change"
SCORER_ERROR = "steerloop.scorer.error"
RULE_ERROR = "steerloop.rule.error"
POLICY_RELOAD = "steerloop.policy.reload"
POLICY_ALERT = "steerloop.policy.alert"
CONTROLLER_FAULT = "steerloop.controller.fault"

#: The fields of every event (besides structlog's ``event``), always present.
EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    DECISION: (
        "session_id",
        "step",
        "from_strategy",
        "to_strategy",
        "changed",
        "rule",
        "reason",
        "mode",
        "focus",
        "missing",
        "objectives",
        "severity",
    ),
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
    DECISION: ("prompt",),
    STRATEGY_SWITCH: ("prompt",),
    CONTROLLER_FAULT: ("error",),
    TELEMETRY_ERROR: ("error",),
}

_ALERT_LEVELS = {"info": "info", "warning": "warning", "critical": "critical"}
_KNOWN_REGIMES = frozenset({"exponential", "oscillatory", "boundary-seeking", "unstable"})
_PRUNE_EVERY = 256

#: One pending event: (level, name, fields without session_id and step).
_Event = tuple[str, str, dict[str, Any]]


def _number(diagnostics: Mapping[str, object], key: str) -> float | None:
    return finite(diagnostics.get(key))


def _text(diagnostics: Mapping[str, object], key: str) -> str | None:
    value = diagnostics.get(key)
    return value if isinstance(value, str) else None


class _EventBinding(Binding["SteerloopEvents"]):
    """The link between one :class:`SteerloopEvents` and one controller."""

    def __init__(self, owner: SteerloopEvents, controller: ObservedController) -> None:
        super().__init__(owner, controller)
        self.steps = 0
        self.seed_sessions()

    def seed(self, record: SessionRecord, decision: Decision) -> None:
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

    def reload(self, old: Policy, new: Policy) -> None:
        self.owner.emit(
            "info",
            POLICY_RELOAD,
            policy=new.name,
            previous_policy=old.name,
            objectives=list(new.objectives),
            strategies=sorted(new.strategies),
            rules=[rule.name for rule in new.rules],
            sessions=len(self.controller),
        )

    def record(self, session: Session, decision: Decision) -> None:
        owner = self.owner
        pending: list[_Event] = []
        with self.lock:
            record, first = self.table.get(session.id)
            scorer_errors, rule_errors = record.error_deltas(decision, first)
            failures = self.failures.take(self.controller.scorer) if scorer_errors else None
            if decision.error is None:
                self._transitions(record, decision, pending)
            self.steps += 1
            if self.steps % _PRUNE_EVERY == 0:
                self.table.prune(self.controller)
        if decision.changed:
            pending.insert(0, ("info", STRATEGY_SWITCH, self._switch(decision)))
        pending.extend(_alerts(decision))
        if failures:
            for (scorer, reason), count in sorted(failures.items()):
                fields = {"scorer": scorer, "reason": reason, "count": count}
                pending.append(("warning", SCORER_ERROR, fields))
        elif scorer_errors:
            fields = {"scorer": "external", "reason": "reported", "count": scorer_errors}
            pending.append(("warning", SCORER_ERROR, fields))
        if rule_errors:
            fields = {
                "strategy": decision.previous_strategy,
                "count": rule_errors,
                "total": record.rule_errors,
            }
            pending.append(("error", RULE_ERROR, fields))
        if decision.error is not None:
            pending.append(("error", CONTROLLER_FAULT, self._fault(decision)))
        if owner.step_events and owner.debug_wanted():
            pending.insert(0, ("debug", DECISION, self._decision(decision)))
        for level, event, payload in pending:
            owner.emit(level, event, session_id=session.id, step=decision.step, **payload)

    def _transitions(self, record: SessionRecord, decision: Decision, out: list[_Event]) -> None:
        """Regime changes and the start of a severity excursion (caller holds the lock)."""
        diagnostics = decision.diagnostics
        regime = _text(diagnostics, "drift.regime")
        if regime in _KNOWN_REGIMES and regime != record.known_regime:
            fields = {
                "strategy": decision.previous_strategy,
                "from_regime": record.known_regime,
                "to_regime": regime,
                "drift_rate": _number(diagnostics, "drift.rate"),
                "drift_max_real": _number(diagnostics, "drift.max_real"),
                "drift_r2": _number(diagnostics, "drift.r2"),
            }
            out.append(("info", REGIME_CHANGE, fields))
            record.known_regime = regime
        trigger = self._alarm(decision)
        if trigger is not None and not record.alarm:
            fields = {
                "strategy": decision.previous_strategy,
                "trigger": trigger,
                "severity": _number(diagnostics, "severity.value"),
                "threshold": self.controller.policy.severity.threshold,
                "severity_phase": _text(diagnostics, "severity.phase"),
                "severity_margin": _number(diagnostics, "severity.margin"),
                "first_passage": _number(diagnostics, "severity.first_passage"),
            }
            out.append(("warning", SEVERITY_ALARM, fields))
        record.alarm = trigger is not None

    def _objectives(self, decision: Decision) -> dict[str, float | None]:
        diagnostics = decision.diagnostics
        return {
            name: _number(diagnostics, f"objective.{name}")
            for name in self.controller.policy.objectives
        }

    def _switch(self, decision: Decision) -> dict[str, Any]:
        diagnostics = decision.diagnostics
        fields: dict[str, Any] = {
            "from_strategy": decision.previous_strategy,
            "to_strategy": decision.strategy,
            "rule": decision.rule,
            "reason": decision.reason,
            "mode": decision.mode,
            "focus": decision.focus,
            "objectives": self._objectives(decision),
            "severity": _number(diagnostics, "severity.value"),
            "severity_phase": _text(diagnostics, "severity.phase"),
            "drift_rate": _number(diagnostics, "drift.rate"),
            "drift_regime": _text(diagnostics, "drift.regime"),
            "drift_r2": _number(diagnostics, "drift.r2"),
            "interference_min": _number(diagnostics, "interference.min"),
        }
        if self.owner.include_text:
            fields["prompt"] = decision.prompt
        return fields

    def _decision(self, decision: Decision) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "from_strategy": decision.previous_strategy,
            "to_strategy": decision.strategy,
            "changed": decision.changed,
            "rule": decision.rule,
            "reason": decision.reason,
            "mode": decision.mode,
            "focus": decision.focus,
            "missing": list(decision.missing),
            "objectives": None if decision.error is not None else self._objectives(decision),
            "severity": _number(decision.diagnostics, "severity.value"),
        }
        if self.owner.include_text:
            fields["prompt"] = decision.prompt
        return fields

    def _fault(self, decision: Decision) -> dict[str, Any]:
        error = decision.error or ""
        fields: dict[str, Any] = {
            "strategy": decision.strategy,
            "error_type": error.split(":", 1)[0],
        }
        if self.owner.include_text:
            fields["error"] = error
        return fields


def _alerts(decision: Decision) -> list[_Event]:
    return [
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
        for alert in decision.alerts
    ]


class SteerloopEvents(ListenerGroup[_EventBinding]):
    """Log decision events of one or more controllers through structlog.

    Every controller gets one by default (``controller.events``); make your own to log
    through another logger or with text. Binding it to a controller replaces the emitter
    that controller had (``controller.events`` becomes this object), so events are never
    logged twice; ``unbind`` leaves the controller without events.

    Parameters
    ----------
    logger : Any
        A structlog logger (anything with ``debug``/``info``/``warning``/``error``/
        ``critical`` methods taking an event name and keyword fields). Default:
        :func:`get_logger`, resolved on first use (``import steerloop`` does not import
        structlog).
    include_text : bool
        Also log :data:`TEXT_FIELDS` (prompts, exception messages). Off by default: only
        turn it on where logs may hold user content.
    step_events : bool
        Log ``steerloop.decision`` (debug) on every step. With the default logger they are
        logged only once structlog is configured (module docstring).

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
    >>> session = controller.session("demo")
    >>> with capture_logs() as logs:
    ...     for _ in range(12):  # security collapsing: severity passes its threshold
    ...         _ = session.update({"security": 0.05, "efficiency": 0.9, "functionality": 0.9})
    >>> [entry["event"] for entry in logs if entry["log_level"] != "debug"][:2]
    ['steerloop.severity.alarm', 'steerloop.strategy.switch']
    >>> switch = next(e for e in logs if e["event"] == "steerloop.strategy.switch")
    >>> switch["to_strategy"], "prompt" in switch
    ('security_focused', False)
    """

    layer = "events"

    def __init__(
        self, logger: Any = None, *, include_text: bool = False, step_events: bool = True
    ) -> None:
        super().__init__()
        self._logger = logger
        self._explicit = logger is not None
        self.include_text = include_text
        self.step_events = step_events
        # The structlog wrapper class last seen, and whether it lets debug events through.
        self._wrapper: object = None
        self._debug = True

    @property
    def logger(self) -> Any:
        """The logger events go to."""
        if self._logger is None:
            self._logger = get_logger()
        return self._logger

    @property
    def error_logger(self) -> Any:
        return self.logger

    def new_binding(self, controller: ObservedController) -> _EventBinding:
        return _EventBinding(self, controller)

    def bind(self, controller: ObservedController) -> None:
        """Log events of ``controller`` instead of the emitter it had.

        Binding the same controller twice raises ``ValueError``.
        """
        current = getattr(controller, "events", None)
        if isinstance(current, SteerloopEvents) and current is not self:
            with contextlib.suppress(KeyError):
                current.unbind(controller)
        super().bind(controller)
        with contextlib.suppress(AttributeError):
            controller.events = self

    def unbind(self, controller: ObservedController) -> None:
        """Stop logging events of ``controller`` (``KeyError`` when it is not bound)."""
        super().unbind(controller)
        if getattr(controller, "events", None) is self:
            controller.events = None

    def debug_wanted(self) -> bool:
        """Whether per-step debug events are worth building (see the module docstring).

        With the default logger: not while structlog is unconfigured, and not when the
        configured wrapper class filters debug out (``make_filtering_bound_logger``; asked
        once per wrapper class through its public ``is_enabled_for``). Other wrappers (e.g.
        structlog's stdlib ``BoundLogger``) decide per call.
        """
        if self._explicit:
            return True
        import structlog

        if not structlog.is_configured():
            return False
        wrapper = structlog.get_config()["wrapper_class"]
        if wrapper is not self._wrapper:
            self._wrapper = wrapper
            enabled = getattr(self.logger.bind(), "is_enabled_for", None)
            self._debug = True if enabled is None else bool(enabled(logging.DEBUG))
        return self._debug

    def emit(self, level: str, event: str, **fields: Any) -> None:
        """Log one event at ``level``; a failure is counted, never raised.

        With the default logger and structlog unconfigured, only warnings and worse are
        logged (as the standard library's ``logging`` does before it is configured):
        structlog's unconfigured default prints every level to standard output.
        """
        if level in ("debug", "info") and not self._explicit:
            import structlog

            if not structlog.is_configured():
                return
        try:
            getattr(self.logger, level)(event, **fields)
        except Exception as error:
            self.failed("log", error)
