"""Snapshot models: the compact exact JSON encoding, migration of version 1, version errors."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from steerloop import Controller, SessionState, SnapshotVersionError
from steerloop.estimators.drift import DriftModel
from steerloop.controller.state import (
    SNAPSHOT_SCHEMA_VERSION,
    DriftState,
    EWMomentsState,
    KalmanState,
    RLSState,
    decode_floats,
    encode_floats,
)

LEGACY = Path(__file__).parent / "data" / "session_v1.json"
OBJECTIVES = ["security", "efficiency", "functionality"]


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def paper_scores(seed: int, steps: int) -> Iterator[dict[str, float]]:
    """The stream that produced data/session_v1.json (101 steps, all four strategies)."""
    rng = np.random.default_rng(seed)
    x = np.array([0.5, 0.5, 0.5])
    targets = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.9], [0.5, 0.5, 0.2]])
    for t in range(steps):
        x = np.clip(x + 0.3 * (targets[(t // 40) % 3] - x) + 0.05 * rng.standard_normal(3), 0, 1)
        yield dict(zip(OBJECTIVES, x.tolist(), strict=True))


def test_codec_examples_run() -> None:
    import doctest

    import steerloop.controller.state as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=40))
def test_float_codec_keeps_every_bit(values: list[float]) -> None:
    text = encode_floats(values)
    assert bits(decode_floats(text)) == bits(values)
    assert len(text) == 4 * math.ceil(8 * len(values) / 3)


def test_float_codec_rejects_garbage() -> None:
    for text in ("not base64!", "AAAA", "AAAAAAAA8D8AAAAAAAAAgA"):  # bad chars, 3 bytes, no pad
        with pytest.raises(ValueError):
            decode_floats(text)


def test_symmetric_matrix_is_written_as_its_upper_triangle() -> None:
    cov = [[2.0, -0.0, math.nan], [-0.0, 1.5, 1e-300], [math.nan, 1e-300, math.inf]]
    state = KalmanState(mean=[0.1, 0.2, 0.3], covariance=cov, count=4)
    document = json.loads(state.model_dump_json())
    assert decode_floats(document["covariance"]) == pytest.approx(
        [2.0, -0.0, math.nan, 1.5, 1e-300, math.inf], nan_ok=True
    )
    back = KalmanState.model_validate_json(state.model_dump_json())
    assert [bits(row) for row in back.covariance] == [bits(row) for row in cov]


def test_asymmetric_matrix_falls_back_to_rows_exactly() -> None:
    cov = [[1.0, 0.1], [0.1000000000000001, 1.0]]  # not bitwise symmetric
    state = RLSState(theta=[[1.0], [2.0]], covariance=cov, count=1)
    document = json.loads(state.model_dump_json())
    assert isinstance(document["covariance"], list)
    assert RLSState.model_validate_json(state.model_dump_json()) == state


def _drift_state(steps: int = 30) -> DriftState:
    model = DriftModel(3, forgetting=0.95, warmup=2)
    rng = np.random.default_rng(3)
    x = rng.random(3)
    for _ in range(steps):
        nxt = np.clip(x + 0.2 * (0.6 - x) + 0.03 * rng.standard_normal(3), 0, 1)
        model.update(x, nxt)
        x = nxt
    return model.to_state()


def test_drift_state_is_one_packed_vector_and_round_trips() -> None:
    state = _drift_state()
    document = json.loads(state.model_dump_json())
    assert set(document) == {"count", "data"}
    assert len(decode_floats(document["data"])) == 1 + 12 + 10 + 3 + 6 + 3 + 6 + 3
    assert DriftState.model_validate_json(state.model_dump_json()) == state
    # The Python form stays the nested, readable one.
    assert set(state.model_dump()) == {"rls", "residuals", "targets", "squared_error", "count"}


def test_drift_state_with_disagreeing_parts_keeps_the_verbose_form() -> None:
    state = _drift_state()
    odd = state.model_copy(
        update={"targets": state.targets.model_copy(update={"weight": 1.0, "count": 2})}
    )
    document = json.loads(odd.model_dump_json())
    assert "rls" in document and "data" not in document
    assert DriftState.model_validate_json(odd.model_dump_json()) == odd


def test_packed_forms_reject_wrong_lengths_and_extra_keys() -> None:
    good = json.loads(_drift_state().model_dump_json())
    short = {"count": good["count"], "data": encode_floats(decode_floats(good["data"])[:-1])}
    for bad in (short, {**good, "weight": 1.0}, {"count": 1, "data": 5}):
        with pytest.raises(ValidationError):
            DriftState.model_validate(bad)
    with pytest.raises(ValidationError):
        EWMomentsState.model_validate({"count": 1, "data": encode_floats([1.0, 2.0, 3.0, 4.0])})


def test_version_1_snapshot_is_migrated_and_continues_bit_identically() -> None:
    legacy_text = LEGACY.read_text()
    legacy: dict[str, Any] = json.loads(legacy_text)
    assert legacy["schema_version"] == 1
    scores = list(paper_scores(11, 140))
    reference = Controller(preset="paper").session("legacy")
    for s in scores[: legacy["step"]]:
        reference.update(s)
    restored = Controller(preset="paper").restore(legacy_text)
    assert restored.snapshot() == reference.snapshot()
    for s in scores[legacy["step"] :]:
        a, b = reference.update(s), restored.update(s)
        assert (a.strategy, a.mode, a.focus, dict(a.diagnostics)) == (
            b.strategy,
            b.mode,
            b.focus,
            dict(b.diagnostics),
        )
    text = restored.snapshot().model_dump_json()
    assert json.loads(text)["schema_version"] == SNAPSHOT_SCHEMA_VERSION == 2
    assert text == reference.snapshot().model_dump_json()
    # Migration kept the values: the v1 decimal lists equal the decoded v2 fields.
    migrated = SessionState.model_validate_json(legacy_text)
    assert migrated.kalman.covariance == legacy["kalman"]["covariance"]
    assert (
        migrated.drift["feature_focused"].rls.theta
        == (legacy["drift"]["feature_focused"]["rls"]["theta"])
    )
    assert len(migrated.model_dump_json()) < len(legacy_text) / 2


@pytest.mark.parametrize("version", [0, 3, 99, "2", None])
def test_unknown_schema_version_raises_a_typed_error(version: object) -> None:
    document = json.loads(LEGACY.read_text())
    document["schema_version"] = version
    with pytest.raises(SnapshotVersionError) as caught:
        Controller(preset="paper").restore(json.dumps(document))
    assert caught.value.found == version
    assert caught.value.supported == (1, 2)
    assert "start the session afresh" in str(caught.value)
