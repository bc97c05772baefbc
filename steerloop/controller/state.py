"""Serializable snapshots of controller state (pydantic, JSON, exact round trip).

Each online estimator owns runtime numpy arrays and converts them to and from one of the
models below with ``to_state()`` / ``from_state(state, ...)``. Configuration (forgetting
factors, warm-up counts, dimensions) is *not* part of a state: it comes from the policy when
the estimator is rebuilt. A snapshot restored and continued gives bit-identical results.

In Python the models hold plain lists of floats (vectors ``list[float]``, matrices
``list[list[float]]``). Their JSON is compact and exact (schema version 2):

* **vector** — one string, the standard base64 (RFC 4648, with padding) of the values as
  little-endian IEEE 754 float64 bytes (8 bytes a value, every bit kept: NaN, ±inf and −0.0
  included; about 11 characters a value instead of up to 24 in decimal);
* **symmetric matrix** (covariances, scatter matrices) — one such string holding the upper
  triangle row by row, diagonal included (d(d+1)/2 values). The estimators keep these
  matrices exactly (bitwise) symmetric; one that is not is written as a list of row strings
  instead, so nothing is ever lost;
* **general matrix** (RLS parameters Θ) — a list of row strings;
* **EW moments** (:class:`EWMomentsState`) — ``{"count": n, "data": s}`` with ``s`` the
  vector ``[W, m, upper(S)]``;
* **drift model** (:class:`DriftState`) — ``{"count": n, "data": s}`` with ``s`` the vector
  ``[W, Θ row by row ((d+1)·d), upper(P), m_e, upper(S_e), m_z, upper(S_z), MSE]``. The
  residual and target moments of a drift model are updated together, so they share W and
  n with the RLS fit and the model; those copies are written once. A state whose parts
  disagree (only possible when built by hand) is written in the verbose nested form.

Reading accepts both the compact and the verbose forms (a vector may also be a JSON list of
numbers, including the constants ``NaN``/``Infinity``), so snapshots of schema version 1 —
the same fields written as decimal lists — are migrated on load: they validate into the same
values and are written back as version 2. :func:`encode_floats` and :func:`decode_floats`
are the vector codec, for tools that read snapshots without steerloop's models.

``SessionState.schema_version`` is bumped whenever a field changes meaning or encoding;
loading a version that can be neither read nor migrated raises
:class:`~steerloop.errors.SnapshotVersionError`.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from steerloop.errors import SnapshotVersionError

__all__ = [
    "READABLE_SCHEMA_VERSIONS",
    "SNAPSHOT_SCHEMA_VERSION",
    "DriftState",
    "EWMomentsState",
    "EngineState",
    "InterferenceState",
    "KalmanState",
    "RLSState",
    "SessionState",
    "SeverityState",
    "decode_floats",
    "encode_floats",
]

SNAPSHOT_SCHEMA_VERSION = 2
#: Versions :class:`SessionState` reads (older ones are migrated on load).
READABLE_SCHEMA_VERSIONS = (1, 2)

_FLOAT64_LE = np.dtype("<f8")


# ----------------------------------------------------------------------------- codec


def encode_floats(values: Iterable[float]) -> str:
    """Base64 of ``values`` as little-endian float64 bytes (exact; see the module docstring).

    Examples
    --------
    >>> encode_floats([1.0, -0.0])
    'AAAAAAAA8D8AAAAAAAAAgA=='
    >>> decode_floats(encode_floats([0.1, float("inf")]))
    [0.1, inf]
    """
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    return base64.b64encode(array.astype(_FLOAT64_LE, copy=False).tobytes()).decode("ascii")


def decode_floats(text: str) -> list[float]:
    """Inverse of :func:`encode_floats`.

    Raises
    ------
    ValueError
        If ``text`` is not base64 of a whole number of 8-byte values.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError(f"not a base64 float64 vector: {error}") from None
    if len(raw) % 8:
        raise ValueError(f"not a base64 float64 vector: {len(raw)} bytes is not a multiple of 8")
    values: list[float] = np.frombuffer(raw, dtype=_FLOAT64_LE).tolist()
    return values


def _triangular_side(count: int) -> int:
    """d with d(d+1)/2 == count; ValueError if there is none."""
    side = (math.isqrt(8 * count + 1) - 1) // 2
    if side * (side + 1) // 2 != count:
        raise ValueError(f"{count} values are not the upper triangle of a square matrix")
    return side


def _upper(matrix: Sequence[Sequence[float]]) -> list[float] | None:
    """Upper triangle (row by row) of a bitwise-symmetric square matrix, else ``None``."""
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        return None
    bits = array.view(np.uint64)
    if not np.array_equal(bits, bits.T):
        return None
    upper: list[float] = array[np.triu_indices(array.shape[0])].tolist()
    return upper


def _from_upper(values: Sequence[float]) -> list[list[float]]:
    side = _triangular_side(len(values))
    full = np.empty((side, side))
    rows, cols = np.triu_indices(side)
    full[rows, cols] = values
    full[cols, rows] = values
    matrix: list[list[float]] = full.tolist()
    return matrix


def _vector_in(value: object) -> object:
    return decode_floats(value) if isinstance(value, str) else value


def _matrix_in(value: object) -> object:
    if isinstance(value, str):  # packed upper triangle of a symmetric matrix
        return _from_upper(decode_floats(value))
    if isinstance(value, list):
        return [decode_floats(row) if isinstance(row, str) else row for row in value]
    return value


def _rows_out(matrix: list[list[float]]) -> list[str]:
    return [encode_floats(row) for row in matrix]


def _symmetric_out(matrix: list[list[float]]) -> str | list[str]:
    upper = _upper(matrix)
    return _rows_out(matrix) if upper is None else encode_floats(upper)


#: A float vector; JSON: one base64 string.
Vector = Annotated[
    list[float],
    BeforeValidator(_vector_in),
    PlainSerializer(encode_floats, return_type=str, when_used="json"),
]
#: A general matrix; JSON: a list of base64 row strings.
Matrix = Annotated[
    list[list[float]],
    BeforeValidator(_matrix_in),
    PlainSerializer(_rows_out, return_type=list[str], when_used="json"),
]
#: A symmetric matrix; JSON: the base64 string of its upper triangle.
SymmetricMatrix = Annotated[
    list[list[float]],
    BeforeValidator(_matrix_in),
    PlainSerializer(_symmetric_out, return_type=str | list[str], when_used="json"),
]


def _bits(value: float) -> bytes:
    return np.float64(value).tobytes()


def _unpack(data: object, sizes: Sequence[int], what: str) -> list[list[float]]:
    """Split a packed vector (string) into consecutive parts of the given sizes."""
    if not isinstance(data, str):
        raise ValueError(f"{what}: 'data' must be a base64 float64 string")
    values = decode_floats(data)
    if len(values) != sum(sizes):
        raise ValueError(f"{what}: 'data' holds {len(values)} values, expected {sum(sizes)}")
    parts, start = [], 0
    for size in sizes:
        parts.append(values[start : start + size])
        start += size
    return parts


# ----------------------------------------------------------------------------- models


class _StateModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        ser_json_inf_nan="constants",
    )


class RLSState(_StateModel):
    """Recursive least squares: parameters Θ (n_features × n_outputs), covariance P, count."""

    theta: Matrix
    covariance: SymmetricMatrix
    count: int = Field(ge=0)


class KalmanState(_StateModel):
    """Objective-state filter: mean x̂ (d,), covariance P (d × d), update count."""

    mean: Vector
    covariance: SymmetricMatrix
    count: int = Field(ge=0)


class EWMomentsState(_StateModel):
    """Exponentially weighted first and second central moments of a vector stream.

    ``weight`` is Σ λ^{t-k}, ``mean`` the weighted mean, ``scatter`` the unnormalized weighted
    scatter matrix Σ w_k (v_k − m)(v_k − m)ᵀ. JSON: ``{"count": n, "data": [W, m, upper(S)]}``
    (module docstring).
    """

    weight: float
    mean: Vector
    scatter: SymmetricMatrix
    count: int = Field(ge=0)

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        upper = _upper(self.scatter) if info.mode_is_json() else None
        if upper is None or len(upper) != len(self.mean) * (len(self.mean) + 1) // 2:
            return handler(self)
        return {"count": self.count, "data": encode_floats([self.weight, *self.mean, *upper])}

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not (isinstance(data, dict) and "data" in data):
            return data
        extra = set(data) - {"count", "data"}
        if extra:
            raise ValueError(f"packed EW moments take only 'count' and 'data', got {sorted(extra)}")
        total = len(decode_floats(data["data"])) if isinstance(data["data"], str) else -1
        dim = _moments_dim(total - 1)
        weight, mean, upper = _unpack(data["data"], (1, dim, dim * (dim + 1) // 2), "EW moments")
        return {
            "weight": weight[0],
            "mean": mean,
            "scatter": _from_upper(upper),
            "count": data.get("count"),
        }


def _moments_dim(count: int) -> int:
    """d with d + d(d+1)/2 == count (mean and upper scatter), or 0 when there is none."""
    dim = 1
    while dim + dim * (dim + 1) // 2 < count:
        dim += 1
    return dim if dim + dim * (dim + 1) // 2 == count else 0


def _drift_sizes(dim: int) -> tuple[int, ...]:
    """Part sizes of a packed drift model of dimension d (see :class:`DriftState`)."""
    tri = dim * (dim + 1) // 2
    return (1, (dim + 1) * dim, (dim + 1) * (dim + 2) // 2, dim, tri, dim, tri, dim)


class DriftState(_StateModel):
    """Per-strategy drift model: RLS on [x; 1] -> Δx/Δt plus residual and target moments.

    JSON: ``{"count": n, "data": [W, Θ, upper(P), m_e, upper(S_e), m_z, upper(S_z), MSE]}``
    when the parts share n and W (always, for states written by
    :meth:`~steerloop.controller.drift.DriftModel.to_state`), else the nested fields.
    """

    rls: RLSState
    residuals: EWMomentsState
    targets: EWMomentsState
    squared_error: Vector
    count: int = Field(ge=0)

    def _packed(self) -> list[float] | None:
        """The compact data vector, or ``None`` when the parts do not allow it."""
        dim = len(self.squared_error)
        res, tgt, rls = self.residuals, self.targets, self.rls
        if not (
            dim >= 1
            and rls.count == res.count == tgt.count == self.count
            and _bits(res.weight) == _bits(tgt.weight)
            and len(rls.theta) == dim + 1
            and all(len(row) == dim for row in rls.theta)
            and len(res.mean) == dim
            and len(tgt.mean) == dim
        ):
            return None
        uppers = [_upper(rls.covariance), _upper(res.scatter), _upper(tgt.scatter)]
        if any(u is None for u in uppers):
            return None
        p_upper, res_upper, tgt_upper = (u or [] for u in uppers)
        if (len(p_upper), len(res_upper), len(tgt_upper)) != _drift_sizes(dim)[2:7:2]:
            return None
        theta = [value for row in rls.theta for value in row]
        return [
            res.weight,
            *theta,
            *p_upper,
            *res.mean,
            *res_upper,
            *tgt.mean,
            *tgt_upper,
            *self.squared_error,
        ]

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        packed = self._packed() if info.mode_is_json() else None
        if packed is None:
            return handler(self)
        return {"count": self.count, "data": encode_floats(packed)}

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not (isinstance(data, dict) and "data" in data):
            return data
        extra = set(data) - {"count", "data"}
        if extra:
            raise ValueError(
                f"packed drift state takes only 'count' and 'data', got {sorted(extra)}"
            )
        total = len(decode_floats(data["data"])) if isinstance(data["data"], str) else -1
        dim = 1
        while sum(_drift_sizes(dim)) < total:
            dim += 1
        weight, theta, p_upper, m_e, s_e, m_z, s_z, mse = _unpack(
            data["data"], _drift_sizes(dim), "drift state"
        )
        count = data.get("count")
        w = weight[0]
        return {
            "rls": {
                "theta": [theta[i * dim : (i + 1) * dim] for i in range(dim + 1)],
                "covariance": _from_upper(p_upper),
                "count": count,
            },
            "residuals": {"weight": w, "mean": m_e, "scatter": _from_upper(s_e), "count": count},
            "targets": {"weight": w, "mean": m_z, "scatter": _from_upper(s_z), "count": count},
            "squared_error": mse,
            "count": count,
        }


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
    """Everything a session needs to continue exactly where it stopped.

    Loading a snapshot of schema version 1 migrates it (same fields, decimal lists); a
    version this release does not know raises :class:`~steerloop.errors.SnapshotVersionError`.
    """

    schema_version: Literal[2] = 2
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

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Check the schema version; migrate version 1 (its fields validate unchanged)."""
        if not isinstance(data, dict) or "schema_version" not in data:
            return data
        version = data["schema_version"]
        if type(version) is not int or version not in READABLE_SCHEMA_VERSIONS:
            raise SnapshotVersionError(version, READABLE_SCHEMA_VERSIONS)
        if version == 1:
            data = {**data, "schema_version": SNAPSHOT_SCHEMA_VERSION}
        return data
