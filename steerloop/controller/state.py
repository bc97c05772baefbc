"""Serializable snapshots of controller state (pydantic, JSON, exact round trip).

Each online estimator owns runtime numpy arrays and converts them to and from one of the
models below with ``to_state()`` / ``from_state(state, ...)``. Configuration (forgetting
factors, warm-up counts, dimensions) is *not* part of a state: it comes from the policy when
the estimator is rebuilt. Floats are written with the shortest representation that parses
back to the same double, so a snapshot restored and continued gives bit-identical results;
non-finite values are written as the JSON constants ``NaN``/``Infinity``.

``SessionState.schema_version`` is bumped whenever a field changes meaning; loading a
snapshot of another version raises a validation error instead of guessing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SNAPSHOT_SCHEMA_VERSION",
    "DriftState",
    "EWMomentsState",
    "EngineState",
    "InterferenceState",
    "KalmanState",
    "RLSState",
    "SessionState",
    "SeverityState",
]

SNAPSHOT_SCHEMA_VERSION = 1

Vector = list[float]
Matrix = list[list[float]]


class _StateModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        ser_json_inf_nan="constants",
    )


class RLSState(_StateModel):
    """Recursive least squares: parameters Θ (n_features × n_outputs), covariance P, count."""

    theta: Matrix
    covariance: Matrix
    count: int = Field(ge=0)


class KalmanState(_StateModel):
    """Objective-state filter: mean x̂ (d,), covariance P (d × d), update count."""

    mean: Vector
    covariance: Matrix
    count: int = Field(ge=0)


class EWMomentsState(_StateModel):
    """Exponentially weighted first and second central moments of a vector stream.

    ``weight`` is Σ λ^{t-k}, ``mean`` the weighted mean, ``scatter`` the unnormalized weighted
    scatter matrix Σ w_k (v_k − m)(v_k − m)ᵀ.
    """

    weight: float
    mean: Vector
    scatter: Matrix
    count: int = Field(ge=0)


class DriftState(_StateModel):
    """Per-strategy drift model: RLS on [x; 1] -> Δx/Δt plus residual and target moments."""

    rls: RLSState
    residuals: EWMomentsState
    targets: EWMomentsState
    squared_error: Vector
    count: int = Field(ge=0)


class InterferenceState(_StateModel):
    """EW moments of increments Δx̂, pooled and per strategy."""

    pooled: EWMomentsState
    by_strategy: dict[str, EWMomentsState]


class SeverityState(_StateModel):
    """Severity SDE estimator: RLS on [s(1−s), −s², 1] and the residual-scale fit."""

    drift: RLSState
    diffusion: RLSState
    last_value: float | None
    count: int = Field(ge=0)


class EngineState(_StateModel):
    """Policy engine bookkeeping: dwell, cooldowns and the sequential schedule."""

    last_switch_step: int | None = None
    rule_last_fired: dict[str, int] = Field(default_factory=dict)
    sequential_active: bool = False
    sequential_rule: str | None = None
    sequential_order: list[str] = Field(default_factory=list)
    sequential_index: int = 0
    sequential_best: float | None = None
    sequential_stall: int = 0


class SessionState(_StateModel):
    """Everything a session needs to continue exactly where it stopped."""

    schema_version: Literal[1] = 1
    session_id: str
    policy_objectives: list[str]
    step: int = Field(ge=0)
    strategy: str
    strategy_steps: int = Field(ge=0)
    kalman: KalmanState
    previous_state: Vector | None
    last_scores: dict[str, float | None]
    drift: dict[str, DriftState]
    interference: InterferenceState
    severity: SeverityState
    engine: EngineState
    scorer_errors: int = Field(ge=0)
    rule_errors: int = Field(ge=0)
