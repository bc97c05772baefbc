"""Structured log events of steered loops (structlog): the public import path.

The events are emitted by :class:`~steerloop.controller.events.SteerloopEvents`, which lives
in the controller layer so that every :class:`~steerloop.controller.session.Controller` can
log its decisions by default without importing telemetry; this module re-exports it with the
event names and fields (see :mod:`steerloop.controller.events` for the list).

Examples
--------
>>> from structlog.testing import capture_logs
>>> from steerloop import Controller
>>> controller = Controller(preset="paper", events=False)
>>> events = SteerloopEvents(include_text=False)      # or your own logger=...
>>> events.bind(controller)
>>> controller.events is events
True
>>> with capture_logs() as logs:
...     controller.reload_policy(controller.policy)
>>> [entry["event"] for entry in logs]
['steerloop.policy.reload']
>>> events.unbind(controller)
"""

from __future__ import annotations

from steerloop.controller import events as _events
from steerloop.controller.events import *  # noqa: F403 - this module re-exports them all

__all__ = list(_events.__all__)
