"""Fixtures for the adapter tests."""

from __future__ import annotations

import pytest
from adapter_fakes import RecordingChatModel, make_policy

from steerloop import Controller
from steerloop.policies.schema import Policy


@pytest.fixture
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def controller(policy: Policy) -> Controller:
    return Controller(policy)


@pytest.fixture
def model() -> RecordingChatModel:
    return RecordingChatModel()
