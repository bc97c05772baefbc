"""Session snapshots: schema version 3, an exact JSON round trip, typed errors for the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from controller_helpers import OBJECTIVES, make_controller, make_policy
from pydantic import ValidationError

from steerloop import Controller, PolicyError, SessionState, SnapshotVersionError
from steerloop.controller.state import READABLE_SCHEMA_VERSIONS, SNAPSHOT_SCHEMA_VERSION
from steerloop.controller.tree import TreeError
from steerloop.stores import codec

LEGACY = Path(__file__).parent / "data" / "session_v1.json"
GOOD = {"security": 0.8, "efficiency": 0.6, "functionality": 0.7}


def busy_session(steps: int = 30) -> Any:
    """A session that switched, has missing scores and unknown keys, and a severity source."""
    session = make_controller(switching={"min_dwell": 0}).session("busy")
    for step in range(steps):
        level = 0.1 if step % 10 < 5 else 0.6
        scores: dict[str, Any] = {"security": level, "efficiency": 0.5 + 0.01 * step}
        if step % 7:
            scores["functionality"] = 0.4 + 0.005 * step
        session.update(scores, scorer_errors=step % 2)
    return session


def test_the_json_round_trip_is_exact() -> None:
    session = busy_session()
    state = session.snapshot()
    text = state.model_dump_json()
    document = json.loads(text)
    assert document["schema_version"] == SNAPSHOT_SCHEMA_VERSION == 3
    assert document["objectives"] == OBJECTIVES and document["step"] == 30
    again = SessionState.model_validate_json(text)
    assert again == state
    assert again.model_dump_json() == text
    restored = make_controller().restore(text)
    assert restored.snapshot().model_dump_json() == text
    assert restored.snapshot() == state


def test_restore_accepts_the_model_its_json_and_bytes() -> None:
    state = busy_session().snapshot()
    text = state.model_dump_json()
    for form in (state, text, text.encode()):
        controller = make_controller()
        restored = controller.restore(form)
        assert restored.snapshot().model_dump_json() == text
        assert controller.sessions() == ["busy"] and controller.session("busy") is restored


def test_a_state_read_from_a_store_dumps_the_same_json() -> None:
    """The wire form keeps raw float arrays (binary codec); its JSON is the snapshot's."""
    session = busy_session()
    wire = SessionState.model_validate(codec.decode(session._dump_wire()))
    assert wire.model_dump_json() == session.snapshot().model_dump_json()


def test_the_version_1_fixture_raises_a_clear_version_error() -> None:
    text = LEGACY.read_text(encoding="utf-8")
    assert json.loads(text)["schema_version"] == 1
    with pytest.raises(SnapshotVersionError) as caught:
        Controller("paper", events=False).restore(text)
    error = caught.value
    assert (error.found, error.supported) == (1, READABLE_SCHEMA_VERSIONS) == (1, (3,))
    message = str(error)
    assert "schema_version 1 is not supported" in message
    assert "reads versions 3" in message and "start the session afresh" in message


@pytest.mark.parametrize("version", [0, 1, 2, 4, 99, "3", 3.0, True, None])
def test_every_other_schema_version_raises_a_typed_error(version: object) -> None:
    document = json.loads(busy_session(8).snapshot().model_dump_json())
    document["schema_version"] = version
    with pytest.raises(SnapshotVersionError) as caught:
        make_controller().restore(json.dumps(document))
    assert caught.value.found == version
    with pytest.raises(SnapshotVersionError):
        SessionState.model_validate(document)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"scorer_errors": -5}, "scorer_errors"),
        ({"step": -1}, "step"),
        ({"session_id": ""}, "session_id"),
        ({"colour": "blue"}, "colour"),
        ({"models": None}, "models"),
    ],
)
def test_invalid_fields_are_rejected(change: dict[str, Any], where: str) -> None:
    document = json.loads(busy_session(8).snapshot().model_dump_json())
    document.update(change)
    with pytest.raises(ValidationError, match=where):
        SessionState.model_validate(document)


def test_snapshots_are_frozen() -> None:
    state = busy_session(3).snapshot()
    with pytest.raises(ValidationError):
        state.step = 9  # type: ignore[misc]


def test_a_damaged_estimator_tree_names_the_place() -> None:
    document = json.loads(busy_session(8).snapshot().model_dump_json())
    document["models"]["kalman"]["mean"]["f8"] = "not base64!"
    with pytest.raises(TreeError, match=r"ModelsState\.kalman\.mean\.f8: not base64"):
        make_controller().restore(json.dumps(document))
    document = json.loads(busy_session(8).snapshot().model_dump_json())
    del document["engine"]["plan_first"]
    with pytest.raises(TreeError, match=r"EngineState: missing field\(s\) \['plan_first'\]"):
        make_controller().restore(json.dumps(document))


def test_a_snapshot_of_other_objectives_is_rejected() -> None:
    state = busy_session(8).snapshot()
    two = make_policy(
        objectives=["security", "efficiency"],
        strategies={"only": {"prompt": "x"}},
        initial="only",
        rules=[],
    )
    with pytest.raises(PolicyError, match="restore it into a controller with the same objectives"):
        Controller(two, events=False).restore(state)
    document = state.model_dump()
    document["objectives"] = ["a", "b", "c"]
    with pytest.raises(PolicyError, match="differ from the policy"):
        make_controller().restore(SessionState.model_validate(document))


def test_a_strategy_missing_from_the_policy_falls_back_to_initial() -> None:
    session = busy_session(8)
    assert session.strategy == "secure"
    reduced = make_policy(rules=[], strategies={"balanced": {"prompt": "b"}})
    restored = Controller(reduced, events=False).restore(session.snapshot())
    assert restored.strategy == "balanced"
    assert restored.step == 8
    assert restored.update(GOOD).step == 9
