"""Tests of steerloop.simulate.fake: the environment behind a fake LLM and its scorer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steerloop.policies.schema import Policy, Strategy
from steerloop.simulate import FakeScoredModel, SimulatedScoresScorer, paper_environment

OBJECTIVES = ["security", "efficiency", "functionality"]


def policy() -> Policy:
    return Policy(
        objectives=OBJECTIVES,
        strategies={
            "feature_focused": Strategy(prompt="Add features.", emphasis={"functionality": 1.0}),
            "security_focused": Strategy(
                prompt="Harden: focus on {focus}.", emphasis={"security": 1.0}
            ),
            "adaptive_integration": Strategy(prompt="Balance {objectives}."),
        },
        initial="adaptive_integration",
    )


def test_recognises_strategies_from_policy_renderings() -> None:
    model = FakeScoredModel(paper_environment(), policy(), rng=np.random.default_rng(0))
    assert model.strategy_for("sys: Add features.\nuser: go") == "feature_focused"
    assert model.strategy_for("Harden: focus on efficiency.") == "security_focused"
    assert (
        model.strategy_for("Harden: focus on security, efficiency, functionality.")
        == "security_focused"
    )
    assert (
        model.strategy_for("Balance security, efficiency, functionality. Code:")
        == "adaptive_integration"
    )
    with pytest.raises(ValueError, match="none of the strategy prompts"):
        model.strategy_for("no steering here")


def test_fallback_strategy() -> None:
    model = FakeScoredModel(
        paper_environment(), policy(), rng=np.random.default_rng(0), fallback="adaptive_integration"
    )
    assert model.strategy_for("plain prompt") == "adaptive_integration"


def test_unknown_strategy_in_prompts_is_rejected() -> None:
    with pytest.raises(KeyError, match="unknown strategy"):
        FakeScoredModel(paper_environment(), {"mystery": "x"}, rng=np.random.default_rng(0))


def test_calls_step_the_hidden_state_and_scores_round_trip() -> None:
    env = paper_environment()
    model = FakeScoredModel(env, {"feature_focused": "FF!"}, rng=np.random.default_rng(4))
    scorer = SimulatedScoresScorer(OBJECTIVES)
    assert scorer.name == "simulated" and scorer.objectives == tuple(OBJECTIVES)
    replies = [model("please FF!") for _ in range(30)]
    assert model.steps == 30 and model.last_strategy == "feature_focused"
    payload = json.loads(replies[-1])
    assert payload["strategy"] == "feature_focused" and payload["step"] == 30
    scores = scorer.score(replies[-1], {})
    assert set(scores) == set(OBJECTIVES)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # feature-focused drives security to ~0 (arXiv 2510.10739)
    assert model.state[0] < 0.15


def test_same_seed_same_replies() -> None:
    def run(seed: int) -> list[str]:
        model = FakeScoredModel(paper_environment(), policy(), rng=np.random.default_rng(seed))
        return [model("Add features.") for _ in range(5)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_scorer_reads_message_objects_and_reports_missing() -> None:
    class Message:
        content = '{"scores": {"security": 0.5, "efficiency": null}}'

    scorer = SimulatedScoresScorer(OBJECTIVES)
    assert scorer.score(Message(), {}) == {"security": 0.5}
    with pytest.raises(ValueError, match="not the simulator's JSON"):
        scorer.score("free text", {})
    with pytest.raises(ValueError, match='no "scores"'):
        scorer.score("[1, 2]", {})
