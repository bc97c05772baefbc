"""The controller hooks telemetry relies on: step hooks (timing from outside) and reload
listeners. They live in steerloop/controller/session.py and cost nothing when unused."""

from __future__ import annotations

from typing import Any

import pytest
from telemetry_helpers import small_policy

from steerloop import Controller, Decision, Policy, Session

SCORES = {"security": 0.5, "efficiency": 0.6, "functionality": 0.7}


def test_step_hooks_wrap_the_step_and_run_before_listeners() -> None:
    controller = Controller(small_policy())
    calls: list[tuple[str, Any]] = []

    def hook(session: Session) -> Any:
        calls.append(("before", session.step))
        return lambda: calls.append(("after", session.step))

    controller.add_step_hook(hook)
    controller.add_step_hook(lambda session: None)  # a hook may need no "after"
    controller.add_listener(lambda session, decision: calls.append(("listener", decision.step)))
    session = controller.session("s")
    session.update(SCORES)
    session.update(SCORES)
    assert calls == [
        ("before", 0),
        ("after", 1),
        ("listener", 1),
        ("before", 1),
        ("after", 2),
        ("listener", 2),
    ]
    controller.remove_step_hook(hook)
    session.update(SCORES)
    assert len(calls) == 7


def test_failing_hooks_are_counted_and_swallowed_unless_strict() -> None:
    def bad_before(session: Session) -> Any:
        raise RuntimeError("before")

    def bad_after(session: Session) -> Any:
        def done() -> None:
            raise RuntimeError("after")

        return done

    def bad_reload(old: Policy, new: Policy) -> None:
        raise RuntimeError("reload")

    controller = Controller(small_policy())
    controller.add_step_hook(bad_before)
    controller.add_step_hook(bad_after)
    controller.add_reload_listener(bad_reload)
    decision = controller.session("s").update(SCORES)
    assert decision.step == 1 and decision.error is None
    controller.reload_policy(small_policy())
    assert controller.listener_errors == 3

    strict = Controller(small_policy(), strict=True)
    strict.add_step_hook(bad_before)
    with pytest.raises(RuntimeError, match="before"):
        strict.session("s").update(SCORES)


def test_reload_listeners_see_the_old_and_the_new_policy() -> None:
    controller = Controller(small_policy())
    seen: list[tuple[str, str]] = []
    listener = lambda old, new: seen.append((old.name, new.name))  # noqa: E731
    controller.add_reload_listener(listener)
    controller.reload_policy(small_policy(name="v2"))
    controller.remove_reload_listener(listener)
    controller.reload_policy(small_policy(name="v3"))
    assert seen == [("small", "v2")]


def test_no_hook_machinery_runs_when_no_hook_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller = Controller(small_policy())

    def forbidden(*args: Any) -> Any:
        raise AssertionError("hook machinery ran without hooks")

    monkeypatch.setattr(controller, "_start_step", forbidden)
    decision: Decision = controller.session("s").update(SCORES)
    assert decision.step == 1
