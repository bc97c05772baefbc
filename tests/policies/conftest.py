"""Shared fixtures of the policies tests."""

from __future__ import annotations

import pytest

from steerloop.policies import bounded_yaml


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser (when PyYAML has it) and with the pure-Python one."""
    if request.param == "libyaml" and not bounded_yaml.HAVE_LIBYAML:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(bounded_yaml, "LIBYAML", request.param == "libyaml")
    return str(request.param)
