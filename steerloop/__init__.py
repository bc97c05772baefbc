"""steerloop: steer iterative LLM loops by their measured dynamics.

Wrap a refine loop, an agent or a LangChain Runnable; on every response steerloop scores the
objectives, filters them (Kalman), learns each strategy's drift (RLS), watches eigenvalues,
interference and a severity process, and switches the strategy prompt by a YAML policy.

>>> from steerloop import Controller
>>> controller = Controller(preset="paper")
>>> controller.session("demo").prompt.startswith("You are")
True
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from steerloop.controller import Controller, Decision, FleetPool, Session, SessionState
    from steerloop.policies.loader import load_policy, load_preset
    from steerloop.policies.schema import Policy

    __version__: str

# The controller, numpy and pydantic load on first use of a name below (PEP 562), so that
# `import steerloop` and `steerloop --help` stay cheap.
_LAZY = {
    "Controller": "steerloop.controller",
    "Decision": "steerloop.controller",
    "FleetPool": "steerloop.controller",
    "Session": "steerloop.controller",
    "SessionState": "steerloop.controller",
    "load_policy": "steerloop.policies.loader",
    "load_preset": "steerloop.policies.loader",
    "Policy": "steerloop.policies.schema",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("steerloop")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name == "__version__":
        value = _version()
    else:
        raise AttributeError(f"module 'steerloop' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
