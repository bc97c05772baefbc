"""Session snapshots: a versioned pydantic model with an exact JSON round trip.

:class:`SessionState` holds what a session needs to continue exactly where it stopped: its
counters and strategy, and the estimator and engine snapshots as trees
(:mod:`steerloop.controller.tree`: float arrays as base64 float64, so every bit survives JSON).
Configuration (forgetting factors, warm-ups, the policy) is *not* part of it: a snapshot is
restored into a controller whose policy supplies the settings, and continuing it there gives
bit-identical results on the same machine.

``schema_version`` is 3. Versions 1 and 2 (steerloop 0.1) held covariance-form estimators
that this release no longer has; loading them raises
:class:`~steerloop.errors.SnapshotVersionError` (start such sessions afresh).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from steerloop.controller.tree import to_tree
from steerloop.errors import SnapshotVersionError

__all__ = ["READABLE_SCHEMA_VERSIONS", "SNAPSHOT_SCHEMA_VERSION", "SessionState"]

SNAPSHOT_SCHEMA_VERSION: Literal[3] = 3
#: Versions :class:`SessionState` reads.
READABLE_SCHEMA_VERSIONS = (3,)


class SessionState(BaseModel):
    """Everything a session needs to continue exactly where it stopped.

    Examples
    --------
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> session = controller.session("s")
    >>> _ = session.update({"security": 0.8, "efficiency": 0.6, "functionality": 0.7})
    >>> text = session.snapshot().model_dump_json()
    >>> restored = Controller(preset="paper").restore(text)
    >>> restored.snapshot().model_dump_json() == text
    True
    """

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    schema_version: Literal[3] = SNAPSHOT_SCHEMA_VERSION
    session_id: str = Field(min_length=1)
    objectives: list[str]
    step: int = Field(ge=0)
    strategy: str
    strategy_steps: int = Field(ge=0)
    last_scores: dict[str, float | None]
    best_worst: float | None = None
    stall: int = Field(0, ge=0)
    contributed: bool = False
    scorer_errors: int = Field(0, ge=0)
    rule_errors: int = Field(0, ge=0)
    unknown_scores: int = Field(0, ge=0)
    models: dict[str, Any]
    engine: dict[str, Any]

    @field_serializer("models", "engine", when_used="json")
    def _arrays_as_base64(self, tree: dict[str, Any]) -> Any:
        """Raw float arrays (a state read from a store's binary codec) are written as base64."""
        return to_tree(tree)

    @model_validator(mode="before")
    @classmethod
    def _version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" in data:
            version = data["schema_version"]
            if type(version) is not int or version not in READABLE_SCHEMA_VERSIONS:
                raise SnapshotVersionError(version, READABLE_SCHEMA_VERSIONS)
        return data
