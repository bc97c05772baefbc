"""One step's orchestration: Controller, Session, Decision, diagnostics, snapshots, pools.

The pure math lives in :mod:`steerloop.estimators`; this package runs it for a session
(validate → filter → learn → plan → decide) and keeps sessions, their snapshots and the
fleet pools.
"""

from steerloop.controller.controller import Controller
from steerloop.controller.decision import Decision
from steerloop.controller.pools import FleetPool
from steerloop.controller.session import Session
from steerloop.controller.state import SessionState

__all__ = ["Controller", "Decision", "FleetPool", "Session", "SessionState"]
