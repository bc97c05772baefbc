"""JudgeScorer with langchain-core fake chat models."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel

from steerloop.errors import ScorerError
from steerloop.scoring import CompositeScorer
from steerloop.scoring.judge import JudgeScorer

OBJECTIVES = ["security", "efficiency"]
SECRET = "RESPONSE_TEXT_NOT_FOR_LOGS"


def verdict(**scores: float) -> str:
    return json.dumps({k: {"score": v, "justification": f"{k} ok"} for k, v in scores.items()})


def judge(*replies: str, retries: int = 1) -> JudgeScorer:
    return JudgeScorer(FakeListChatModel(responses=list(replies)), OBJECTIVES, retries=retries)


def test_json_reply_is_parsed() -> None:
    scorer = judge(verdict(security=0.8, efficiency=0.4))
    assert scorer.score("code", {}) == {"security": 0.8, "efficiency": 0.4}


def test_fenced_json_with_prose_is_parsed_and_justifications_kept() -> None:
    reply = "Sure! Here is my verdict:\n```json\n" + verdict(security=1, efficiency=0.5) + "\n```"
    assessment = judge(reply).assess("code")
    assert assessment.scores == {"security": 1.0, "efficiency": 0.5}
    assert assessment.justifications["security"] == "security ok"
    assert assessment.attempts == 1


def test_content_blocks_reply_is_parsed() -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [AIMessage(content=[{"type": "text", "text": verdict(security=0.3, efficiency=0.2)}])]
        )
    )
    assert JudgeScorer(model, OBJECTIVES).score("x", {}) == {"security": 0.3, "efficiency": 0.2}


def test_malformed_output_is_retried_once() -> None:
    scorer = judge("I think it is fine.", verdict(security=0.6, efficiency=0.7))
    assessment = scorer.assess("code")
    assert assessment.scores == {"security": 0.6, "efficiency": 0.7}
    assert assessment.attempts == 2


@pytest.mark.parametrize(
    "bad",
    [
        "no json here",
        verdict(security=7, efficiency=0.5),  # out of range (a 0-10 scale)
        json.dumps({"security": "high", "efficiency": 0.5}),
        json.dumps({"unrelated": {"score": 0.5}}),
        "[1, 2, 3]",
    ],
)
def test_malformed_twice_is_missing_and_counted(bad: str) -> None:
    scorer = judge(bad, bad)
    with pytest.raises(ScorerError) as info:
        scorer.score("code", {})
    assert info.value.reason == "malformed"
    composite = CompositeScorer([judge(bad, bad)], objectives=OBJECTIVES)
    result = composite.score(SECRET)
    assert result.scores == {}
    assert [(f.reason, f.objectives) for f in result.failures] == [
        ("malformed", ("security", "efficiency"))
    ]
    assert composite.failure_counts[("judge", "malformed")] == 1
    assert SECRET not in result.failures[0].message


def test_no_retry_when_retries_is_zero() -> None:
    with pytest.raises(ScorerError):
        judge("garbage", verdict(security=1, efficiency=1), retries=0).score("x", {})


def test_partial_verdict_returns_what_was_scored() -> None:
    composite = CompositeScorer([judge(verdict(security=0.9))], objectives=OBJECTIVES)
    result = composite.score("code")
    assert result.scores == {"security": 0.9}
    assert [(f.reason, f.objectives) for f in result.failures] == [("missing", ("efficiency",))]


class StructuredFake(FakeListChatModel):
    """A fake model that supports with_structured_output (returns the pydantic object)."""

    structured_calls: int = 0

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        def parse(messages: Any) -> Any:
            self.structured_calls += 1
            reply = self.invoke(messages)
            try:
                return schema.model_validate_json(reply.content)
            except ValueError as exc:
                raise OutputParserException(str(exc)) from exc

        return RunnableLambda(parse)


def test_structured_output_path_is_used_when_supported() -> None:
    model = StructuredFake(responses=["oops", verdict(security=0.2, efficiency=0.9)])
    scorer = JudgeScorer(model, OBJECTIVES)
    assessment = scorer.assess("code")
    assert assessment.scores == {"security": 0.2, "efficiency": 0.9}
    assert assessment.attempts == 2
    assert model.structured_calls == 2
    assert issubclass(scorer.schema, BaseModel)
    schema = scorer.schema.model_json_schema()
    assert set(schema["properties"]) == set(OBJECTIVES)


async def test_async_path_through_the_composite() -> None:
    scorer = judge("garbage", verdict(security=0.1, efficiency=0.2))
    composite = CompositeScorer([scorer], objectives=OBJECTIVES)
    result = await composite.ascore("code")
    assert result.scores == {"security": 0.1, "efficiency": 0.2}
    model = StructuredFake(responses=[verdict(security=0.5, efficiency=0.5)])
    assert await JudgeScorer(model, OBJECTIVES).ascore("code", {}) == {
        "security": 0.5,
        "efficiency": 0.5,
    }


def test_prompt_contains_rubric_objectives_and_wrapped_response() -> None:
    scorer = JudgeScorer(
        FakeListChatModel(responses=["{}"]),
        OBJECTIVES,
        rubric={"security": "no injection", "efficiency": "no wasted work"},
        max_chars=20,
    )
    system, human = scorer.messages("x" * 100, {"prompt": "write a parser"})
    assert "no injection" in system.content and '"efficiency"' in system.content
    assert "<response>" in human.content and "[... truncated ...]" in human.content
    assert "write a parser" in human.content


def test_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="steerloop"):
        CompositeScorer([judge("bad", "bad")], objectives=OBJECTIVES).score(SECRET)
        judge(verdict(security=1, efficiency=1)).score(SECRET, {})
    assert not [r for r in caplog.records if r.name.startswith("steerloop")]
    assert SECRET not in caplog.text


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        JudgeScorer(FakeListChatModel(responses=["{}"]), [])
    with pytest.raises(ValueError):
        JudgeScorer(FakeListChatModel(responses=["{}"]), ["a"], retries=-1)
