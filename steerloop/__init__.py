"""steerloop: steer iterative LLM loops by their measured dynamics.

Wrap a refine loop, an agent or a LangChain Runnable; on every response steerloop scores the
objectives, filters them (Kalman), learns each strategy's drift (RLS), watches eigenvalues,
interference and a severity process, and switches the strategy prompt by a YAML policy.

>>> from steerloop import Controller
>>> controller = Controller(preset="paper")
>>> controller.session("demo").prompt.startswith("You are")
True
"""

from importlib.metadata import PackageNotFoundError, version

from steerloop.controller import Controller, Decision, FleetPool, Session, SessionState
from steerloop.errors import (
    NotReadyError,
    NumericalError,
    PolicyError,
    ScorerError,
    ScoreWarning,
    ShapeError,
    SnapshotVersionError,
    SteerloopError,
    StoreError,
)
from steerloop.policies.loader import load_policy, load_preset
from steerloop.policies.schema import Policy

try:
    __version__ = version("steerloop")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "Controller",
    "Decision",
    "FleetPool",
    "NotReadyError",
    "NumericalError",
    "Policy",
    "PolicyError",
    "ScoreWarning",
    "ScorerError",
    "Session",
    "SessionState",
    "ShapeError",
    "SnapshotVersionError",
    "SteerloopError",
    "StoreError",
    "__version__",
    "load_policy",
    "load_preset",
]
