"""Thin glue between steerloop sessions and the loops people run.

* :mod:`steerloop.adapters.loop` — plain Python: :func:`~steerloop.adapters.loop.steer`
  (decorator) and :func:`~steerloop.adapters.loop.steered_steps` (run until a target);
* :mod:`steerloop.adapters.langchain` — langchain-core:
  :class:`~steerloop.adapters.langchain.SteeredRunnable` and the observe-only
  :class:`~steerloop.adapters.callbacks.SteeringCallbackHandler` (also importable from
  :mod:`steerloop.adapters.langchain`);
* :mod:`steerloop.adapters.agents` — LangChain v1 agents (extra ``agents``):
  :class:`~steerloop.adapters.agents.SteeringMiddleware`.

Names are imported lazily, so ``import steerloop.adapters`` pulls in neither LangChain nor
LangGraph.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from steerloop.adapters.agents import SteeringMiddleware
    from steerloop.adapters.callbacks import SteeringCallbackHandler
    from steerloop.adapters.langchain import SteeredRunnable
    from steerloop.adapters.loop import SteeredLoop, Step, steer, steered_steps

__all__ = [
    "SteeredLoop",
    "SteeredRunnable",
    "SteeringCallbackHandler",
    "SteeringMiddleware",
    "Step",
    "steer",
    "steered_steps",
]

_HOMES = {
    "SteeredLoop": "loop",
    "Step": "loop",
    "steer": "loop",
    "steered_steps": "loop",
    "SteeredRunnable": "langchain",
    "SteeringCallbackHandler": "callbacks",
    "SteeringMiddleware": "agents",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'steerloop.adapters' has no attribute {name!r}")
    value = getattr(import_module(f"steerloop.adapters.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
