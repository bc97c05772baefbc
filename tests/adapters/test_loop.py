"""The plain-loop adapter: the steer decorator and the steered_steps iterator."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from adapter_fakes import BALANCED, SECURE, score_text
from structlog.testing import capture_logs

from steerloop import Controller
from steerloop.adapters.loop import SteeredLoop, steer, steered_steps
from steerloop.policies.schema import Policy
from steerloop.scoring.base import CallableScorer

BALANCED_TEXT = BALANCED.format(objectives="security, functionality")
SAFE = {"security": 0.9, "functionality": 0.9}


class GenerationError(RuntimeError):
    pass


# -- steer -------------------------------------------------------------------------------


def test_steer_injects_the_prompt_and_switches(controller: Controller) -> None:
    prompts: list[str] = []

    @steer(controller, session_id="s", scorer=score_text)
    def generate(prompt: str, task: str, *, suffix: str = "") -> str:
        prompts.append(prompt)
        return f"UNSAFE code for {task}{suffix}"

    assert generate("a parser", suffix="!") == "UNSAFE code for a parser!"
    generate("a parser")
    generate("a parser")
    assert prompts == [BALANCED_TEXT, BALANCED_TEXT, SECURE]
    assert generate.last_decision is not None and generate.last_decision.strategy == "secure"
    assert generate.session.step == 3 and generate.faults == 0
    assert generate.__name__ == "generate" and generate.controller is controller


async def test_steer_async(controller: Controller) -> None:
    prompts: list[str] = []

    async def ascore(response: str) -> dict[str, float]:
        return score_text(response)

    @steer(controller, session_id="s", scorer=ascore)
    async def generate(prompt: str, task: str) -> str:
        prompts.append(prompt)
        await asyncio.sleep(0)
        return f"UNSAFE {task}"

    for _ in range(3):
        assert await generate("x") == "UNSAFE x"
    assert prompts == [BALANCED_TEXT, BALANCED_TEXT, SECURE]


def test_session_id_from_arguments_isolates_sessions(controller: Controller) -> None:
    prompts: dict[str, list[str]] = {"alice": [], "bob": []}

    @steer(controller, session_id=lambda user, **_: user, scorer=score_text)
    def generate(prompt: str, user: str) -> str:
        prompts[user].append(prompt)
        return "UNSAFE" if user == "alice" else "safe"

    for _ in range(3):
        generate("alice")
        generate("bob")
    assert prompts["alice"] == [BALANCED_TEXT, BALANCED_TEXT, SECURE]
    assert prompts["bob"] == [BALANCED_TEXT] * 3
    with pytest.raises(TypeError, match="computed per call"):
        _ = generate.session


def test_controller_scorers_get_the_context(policy: Policy) -> None:
    contexts: list[Mapping[str, Any]] = []

    def score(response: str, context: Mapping[str, Any]) -> dict[str, float]:
        contexts.append(dict(context))
        return SAFE

    controller = Controller(
        policy, scorers=[CallableScorer(score, ["security", "functionality"], name="ctx")]
    )

    @steer(controller, session_id="s", context=lambda task: {"tests": [task]})
    def generate(prompt: str, task: str) -> str:
        return task

    generate("t1")
    assert contexts == [{"tests": ["t1"]}]
    assert controller.session("s").step == 1


def test_faults_fail_open_and_function_errors_pass_through(controller: Controller) -> None:
    def broken(response: str) -> dict[str, float]:
        raise ValueError(response)

    @steer(controller, session_id="s", scorer=broken)
    def generate(prompt: str, fail: bool = False) -> str:
        if fail:
            raise GenerationError("model down")
        return "SECRET-TEXT"

    with capture_logs() as logs:
        assert generate() == "SECRET-TEXT"
    assert generate.faults == 1 and generate.last_decision is None
    assert [log["stage"] for log in logs if log["event"] == "steerloop.adapter_fault"] == ["score"]
    assert "SECRET" not in repr(logs)
    with pytest.raises(GenerationError):
        generate(fail=True)
    assert generate.faults == 1 and controller.session("s").step == 0


def test_strict_reraises(controller: Controller) -> None:
    def broken(response: str) -> dict[str, float]:
        raise ValueError("bad")

    generate = steer(controller, session_id="s", scorer=broken, strict=True)(lambda prompt: "x")
    with pytest.raises(ValueError, match="bad"):
        generate()


def test_sync_score_returning_awaitable_is_a_fault(controller: Controller) -> None:
    async def ascore(response: str) -> dict[str, float]:
        return SAFE

    generate = steer(controller, session_id="s", scorer=ascore)(lambda prompt: "x")
    assert generate() == "x"
    assert generate.faults == 1


def test_steer_needs_a_way_to_score(policy: Policy) -> None:
    with pytest.raises(ValueError, match="no scorers"):
        steer(Controller(policy), session_id="s")(lambda prompt: "x")


# -- steered_steps -----------------------------------------------------------------------


def test_steps_stop_when_the_target_is_met(controller: Controller) -> None:
    session = controller.session("refine")
    loop = steered_steps(session, max_steps=10, target=0.75, metric="score")
    qualities = []
    for step in loop:
        quality = 0.5 + 0.1 * step.index
        qualities.append(quality)
        decision = step.update({"security": quality, "functionality": quality})
        assert decision is step.decision is not None
    assert loop.stop_reason == "target_met" and loop.steps == 4
    assert loop.last_decision is not None and loop.last_decision.step == 4


def test_steps_stop_at_max_steps_and_prompts_follow_the_strategy(
    controller: Controller,
) -> None:
    with steered_steps(controller.session("s"), max_steps=3, scorer=score_text) as loop:
        prompts = []
        for step in loop:
            prompts.append(step.prompt)
            step.observe("UNSAFE")
    assert loop.stop_reason == "max_steps"
    assert prompts == [BALANCED_TEXT, BALANCED_TEXT, SECURE]


def test_steps_target_on_filtered_objectives_and_until(controller: Controller) -> None:
    loop = steered_steps(controller.session("a"), max_steps=50, target={"security": 0.85})
    for step in loop:
        step.update(SAFE)
    assert loop.stop_reason == "target_met" and loop.steps < 50
    until = steered_steps(
        controller.session("b"), max_steps=50, until=lambda decision: decision.step >= 3
    )
    for step in until:
        step.update(SAFE)
    assert until.stop_reason == "until" and until.steps == 3


def test_leaving_early_is_recorded_as_stopped(controller: Controller) -> None:
    loop = steered_steps(controller.session("s"), max_steps=5)
    for step in loop:
        step.update(SAFE)
        break
    assert loop.stop_reason == "stopped" and loop.steps == 1
    with (
        pytest.raises(GenerationError),
        steered_steps(controller.session("t"), max_steps=5) as other,
    ):
        for _step in other:
            raise GenerationError("model down")
    assert other.stop_reason == "stopped"
    with pytest.raises(RuntimeError, match="runs once"):
        next(iter(loop))


async def test_steps_async(controller: Controller) -> None:
    async def ascore(response: str) -> dict[str, float]:
        return score_text(response)

    loop = steered_steps(controller.session("s"), max_steps=4, scorer=ascore)
    async with loop:
        prompts = []
        async for step in loop:
            prompts.append(step.prompt)
            await step.aobserve("UNSAFE")
    assert loop.stop_reason == "max_steps"
    assert prompts == [BALANCED_TEXT, BALANCED_TEXT, SECURE, SECURE]
    other = steered_steps(controller.session("t"), max_steps=9, target=0.5, metric="score")
    async for step in other:
        await step.aupdate(SAFE)
    assert other.stop_reason == "target_met" and other.steps == 1


def test_step_misuse_is_reported(controller: Controller) -> None:
    loop = steered_steps(controller.session("s"), max_steps=2)
    step = next(iter(loop))
    with pytest.raises(ValueError, match="no scorer"):
        step.observe("x")
    step.update(SAFE)
    with pytest.raises(RuntimeError, match="already observed"):
        step.update(SAFE)
    with pytest.raises(ValueError, match="unknown objective"):
        steered_steps(controller.session("s"), max_steps=2, target={"speed": 0.5})
    with pytest.raises(ValueError, match="max_steps"):
        steered_steps(controller.session("s"), max_steps=0)
    assert isinstance(loop, SteeredLoop) and "SteeredLoop" in repr(loop)


def test_step_faults_fail_open(controller: Controller) -> None:
    def broken(response: str) -> dict[str, float]:
        raise ValueError("bad")

    loop = steered_steps(controller.session("s"), max_steps=2, scorer=broken)
    for step in loop:
        assert step.observe("x") is None
    assert loop.faults == 2 and loop.stop_reason == "max_steps"


def test_controller_fault_decisions_and_prompt_faults_are_counted(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steerloop.controller.session import Session
    from steerloop.errors import NumericalError

    session = controller.session("s")

    def broken_step(*args: Any) -> Any:
        raise NumericalError("drift", "ill-conditioned")

    monkeypatch.setattr(session._core, "step", broken_step)
    prompts: list[str] = []
    generate = steer(controller, session_id="s", scorer=lambda r: SAFE)(
        lambda prompt: prompts.append(prompt) or "x"
    )
    with capture_logs() as logs:
        generate()
    assert generate.last_decision is not None and generate.last_decision.error is not None
    faults = [entry for entry in logs if entry["event"] == "steerloop.adapter_fault"]
    assert generate.faults == 1 and faults[0]["stage"] == "controller"

    def no_prompt(self: Session) -> str:
        raise RuntimeError("policy sync failed")

    monkeypatch.setattr(Session, "prompt", property(no_prompt))
    generate()
    assert prompts == [BALANCED_TEXT, ""] and generate.faults == 3
