"""Session and Controller: the full step, snapshots, reload, fail-open behaviour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from steerloop import Controller, Decision, Policy, PolicyError, ScorerError, SessionState
from steerloop.policies.metrics import metric_kinds
from steerloop.policies.schema import validate_policy

OBJECTIVES = ["security", "efficiency", "functionality"]
A_TRUE = np.array([[-0.5, 0.05, 0.0], [0.0, -0.4, 0.1], [0.05, 0.0, -0.6]])
B_TRUE = -A_TRUE @ np.array([0.7, 0.6, 0.8])


def linear_sde_scores(seed: int, steps: int, noise: float = 0.02) -> Iterator[dict[str, float]]:
    """Scores from x_{t+1} = x_t + (A x_t + b) + σ ε, observed with small noise."""
    rng = np.random.default_rng(seed)
    x = np.array([0.3, 0.2, 0.4])
    for _ in range(steps):
        observed = np.clip(x + rng.normal(0.0, noise, 3), 0.0, 1.0)
        yield dict(zip(OBJECTIVES, observed.tolist(), strict=True))
        x = np.clip(x + A_TRUE @ x + B_TRUE + rng.normal(0.0, 0.05, 3), 0.0, 1.0)


def policy_dict(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "objectives": OBJECTIVES,
        "strategies": {
            "balanced": {
                "prompt": "Balance {objectives}.",
                "emphasis": dict.fromkeys(OBJECTIVES, 1.0),
            },
            "secure": {"prompt": "Focus on {focus}.", "emphasis": {"security": 1.0}},
            "fast": {"prompt": "Make it fast.", "emphasis": {"efficiency": 1.0}},
            "features": {"prompt": "Add features.", "emphasis": {"functionality": 1.0}},
        },
        "initial": "balanced",
        "estimation": {"forgetting": 0.99, "warmup": 5},
        "rules": [
            {
                "name": "low-security",
                "priority": 10,
                "when": {"metric": "objective.security", "below": 0.35},
                "then": {"switch_to": "secure"},
            },
            {
                "name": "interference",
                "when": {"metric": "interference.min", "below": -0.3},
                "then": {"sequential": {"order": "auto", "target": 0.75, "patience": 3}},
            },
        ],
    }
    base.update(extra)
    return base


def make_controller(**extra: Any) -> Controller:
    return Controller(validate_policy(Policy.model_validate(policy_dict(**extra))))


def comparable(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.strategy,
        decision.prompt,
        decision.changed,
        decision.rule,
        decision.reason,
        decision.mode,
        decision.focus,
        dict(decision.diagnostics),
        decision.step,
    )


def test_decision_carries_every_diagnostic_name() -> None:
    session = make_controller().session("s")
    decision = None
    for scores in linear_sde_scores(0, 12):
        decision = session.update(scores)
    assert decision is not None
    assert set(decision.diagnostics) >= set(metric_kinds(OBJECTIVES))
    assert decision.diagnostics["drift.rate"] is not None
    assert decision.diagnostics["severity.phase"] in ("subcritical", "supercritical")
    assert decision.diagnostics["step"] == 12.0


def test_drift_learned_end_to_end_is_close_to_truth() -> None:
    # The filter must be told the scores' real noise (std 0.01 -> variance 1e-4): with a much
    # larger R the filtered state follows the model's own prediction and the regression learns
    # too slow a drift (documented in README under "Choosing measurement_noise").
    controller = make_controller(
        rules=[], estimation={"forgetting": 0.99, "warmup": 5, "measurement_noise": 1e-4}
    )
    session = controller.session("s")
    for scores in linear_sde_scores(1, 400, noise=0.01):
        session.update(scores)
    drift = session._est.drift["balanced"]
    error = np.linalg.norm(drift.A - A_TRUE) / np.linalg.norm(A_TRUE)
    rate_true = -max(np.linalg.eigvals(A_TRUE).real)
    rate = -max(np.linalg.eigvals(drift.A).real)
    assert error < 0.25, f"relative Frobenius error of A through the Kalman filter = {error:.3f}"
    assert abs(rate - rate_true) / rate_true < 0.25, f"rate {rate:.3f} vs true {rate_true:.3f}"


def test_snapshot_restore_continues_bit_identically() -> None:
    scores = list(linear_sde_scores(2, 80))
    uninterrupted = make_controller().session("a")
    reference = [comparable(uninterrupted.update(s)) for s in scores]

    first = make_controller()
    session = first.session("a")
    replay = [comparable(session.update(s)) for s in scores[:37]]
    text = session.snapshot().model_dump_json()
    assert json.loads(text)["schema_version"] == 2
    restored = make_controller().restore(text)
    replay += [comparable(restored.update(s)) for s in scores[37:]]
    assert replay == reference
    assert restored.snapshot() == uninterrupted.snapshot()


def test_decisions_are_deterministic_for_a_seed() -> None:
    runs = []
    for _ in range(2):
        session = make_controller().session("x")
        runs.append([comparable(session.update(s)) for s in linear_sde_scores(7, 60)])
    assert runs[0] == runs[1]


def test_switching_fires_and_changes_the_prompt() -> None:
    session = make_controller().session("low")
    decisions = [
        session.update({"security": 0.1, "efficiency": 0.8, "functionality": 0.8}) for _ in range(8)
    ]
    switched = [d for d in decisions if d.changed]
    assert switched, "the low-security rule never fired"
    assert switched[0].strategy == "secure"
    assert switched[0].rule == "low-security"
    assert "objective.security = " in switched[0].reason
    assert session.prompt == "Focus on security, efficiency, functionality."


def test_bad_scores_are_missing_and_counted_never_poison() -> None:
    session = make_controller().session("bad")
    bad_inputs: list[dict[str, Any]] = [
        {"security": float("nan"), "efficiency": 0.5, "functionality": 0.5},
        {"security": "high", "efficiency": float("inf"), "functionality": None},
        {},
        {"security": 1.5, "efficiency": -0.2, "functionality": True},
        {"unknown": 0.3},
    ]
    for scores in linear_sde_scores(3, 10):
        session.update(scores)
    for bad in bad_inputs:
        decision = session.update(bad)
        assert decision.error is None
        assert np.all(np.isfinite(session.filtered))
    assert session.last_decision is not None
    assert session.last_decision.missing == tuple(OBJECTIVES)
    missing_counts = [len(session.update(bad).missing) for bad in bad_inputs]
    assert missing_counts == [1, 3, 3, 3, 3]
    decision = session.update(
        {"security": 0.5, "efficiency": 0.5, "functionality": 0.5}, scorer_errors=2
    )
    assert decision.diagnostics["errors.scorer"] == 2.0


def test_hot_reload_keeps_estimates_and_falls_back_when_strategy_disappears() -> None:
    controller = make_controller(switching={"min_dwell": 0})
    session = controller.session("r")
    for _ in range(8):
        session.update({"security": 0.1, "efficiency": 0.8, "functionality": 0.8})
    assert session.strategy == "secure"
    before = session.snapshot()
    reduced = policy_dict(rules=[])
    del reduced["strategies"]["secure"]
    controller.reload_policy(validate_policy(Policy.model_validate(reduced)))
    assert session.strategy == "balanced"
    after = session.snapshot()
    assert after.drift == before.drift
    assert after.kalman == before.kalman
    assert after.step == before.step
    decision = session.update({"security": 0.1, "efficiency": 0.8, "functionality": 0.8})
    assert decision.rule is None
    assert decision.step == before.step + 1


def test_reload_rejects_other_objectives() -> None:
    controller = make_controller()
    other = policy_dict(objectives=["security", "efficiency"])
    other["strategies"] = {"only": {"prompt": "x"}}
    other["initial"] = "only"
    other["rules"] = []
    with pytest.raises(PolicyError, match="keep the objectives"):
        controller.reload_policy(Policy.model_validate(other))


def test_listener_failure_is_counted_and_strict_reraises() -> None:
    controller = make_controller()
    seen: list[int] = []

    def broken(session: Any, decision: Decision) -> None:
        seen.append(decision.step)
        raise RuntimeError("telemetry down")

    controller.add_listener(broken)
    controller.session("l").update({"security": 0.5})
    assert seen == [1]
    assert controller.listener_errors == 1

    strict = Controller(controller.policy, strict=True)
    strict.add_listener(broken)
    with pytest.raises(RuntimeError, match="telemetry down"):
        strict.session("l").update({"security": 0.5})


def test_controller_fault_fails_open_and_strict_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = make_controller()
    session = controller.session("f")
    session.update({"security": 0.5, "efficiency": 0.5, "functionality": 0.5})

    def explode(*args: Any, **kwargs: Any) -> None:
        raise FloatingPointError("synthetic")

    monkeypatch.setattr(session._est.kalman, "update", explode)
    decision = session.update({"security": 0.5})
    assert decision.error is not None and "synthetic" in decision.error
    assert decision.strategy == "balanced"
    strict = Controller(controller.policy, strict=True)
    strict_session = strict.session("f")
    monkeypatch.setattr(strict_session._est.kalman, "update", explode)
    with pytest.raises(FloatingPointError):
        strict_session.update({"security": 0.5})


def test_sessions_are_isolated_and_get_or_create() -> None:
    controller = make_controller()
    a, b = controller.session("a"), controller.session("b")
    assert controller.session("a") is a
    a.update({"security": 0.1, "efficiency": 0.5, "functionality": 0.5})
    assert b.step == 0
    assert len(controller) == 2
    controller.drop("a")
    assert "a" not in controller


def test_snapshot_of_other_objectives_is_rejected() -> None:
    state = make_controller().session("z").snapshot()
    data = state.model_dump()
    data["policy_objectives"] = ["a", "b", "c"]
    with pytest.raises(PolicyError):
        make_controller().restore(SessionState.model_validate(data))


def test_preset_controller_and_async_update() -> None:
    import asyncio

    controller = Controller(preset="paper")
    session = controller.session("p")
    decision = asyncio.run(
        session.aupdate({"security": 0.6, "efficiency": 0.6, "functionality": 0.6})
    )
    assert decision.step == 1
    assert decision.strategy == controller.policy.initial


def test_observe_scores_with_the_controllers_scorers_and_counts_failures() -> None:
    from steerloop.scoring import CallableScorer

    def security(response: object) -> float:
        return 0.9 if "safe" in str(response) else 0.1

    def broken(response: object) -> float:
        raise RuntimeError("scorer down")

    controller = Controller(
        make_controller().policy,
        scorers=[
            CallableScorer(security, ["security"], name="sec"),
            CallableScorer(broken, ["efficiency"], name="eff"),
        ],
    )
    session = controller.session("o")
    decision = session.observe("a safe answer")
    assert decision.diagnostics["score.security"] == 0.9
    assert decision.missing == ("efficiency", "functionality")
    assert decision.diagnostics["errors.scorer"] == 1.0
    assert controller.scorer is not None
    assert controller.scorer.failure_counts[("eff", "raised")] == 1


def test_observe_without_scorers_says_how_to_fix() -> None:
    with pytest.raises(ScorerError, match=r"session\.update"):
        make_controller().session("n").observe("text")


def test_only_the_running_strategys_drift_model_is_unpacked() -> None:
    controller = make_controller(
        rules=[
            {
                "name": "rotate",
                "when": {"metric": "step", "above": 0},
                "then": {"switch_to": "secure"},
            }
        ],
        switching={"min_dwell": 1},
    )
    session = controller.session("p")
    seen_switch = False
    for scores in linear_sde_scores(3, 30):
        decision = session.update(scores)
        models = session._est.drift
        for name, model in models.items():
            assert model.parked == (name != session.strategy), (name, decision.strategy)
        for name, stream in session._est.interference._by_strategy.items():
            assert (not isinstance(stream, np.ndarray)) == (name == session.strategy), name
        seen_switch |= decision.changed
    assert seen_switch and set(session._est.drift) == {"balanced", "secure"}
    restored = make_controller().restore(session.snapshot().model_dump_json())
    assert {name: m.parked for name, m in restored._est.drift.items()} == {
        "balanced": True,
        "secure": False,
    }


def test_best_predicted_session_explores_every_strategy() -> None:
    """The session hands the drift models to the engine when a rule reads them."""
    controller = Controller(preset="predictive")
    assert controller.engine.reads_drift_models
    session = controller.session("explorer")
    rng = np.random.default_rng(0)
    reasons = []
    for _ in range(200):
        levels = np.clip(np.array([0.6, 0.5, 0.7]) + 0.05 * rng.standard_normal(3), 0.0, 1.0)
        scores = dict(zip(controller.policy.objectives, levels.tolist(), strict=True))
        decision = session.update(scores)
        reasons.append(decision.reason)
    assert set(session.snapshot().drift) == set(controller.policy.strategies)
    assert any("exploring" in reason for reason in reasons)
