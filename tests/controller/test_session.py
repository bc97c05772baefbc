"""Session: the public step, argument checks before anything changes, scores, faults, reprs.

End-to-end properties run the shipped presets: on constant scores the ``paper`` preset never
acts and every diagnostic stays finite (issue "honest estimates"), the ``predictive`` preset
explores each strategy at most once and then stays.
"""

from __future__ import annotations

import asyncio
import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from controller_helpers import (
    A_TRUE,
    OBJECTIVES,
    X_STAR,
    comparable,
    constant,
    make_controller,
    make_policy,
)

from steerloop import Controller, Decision, ScorerError, ScoreWarning
from steerloop.errors import NumericalError
from steerloop.policies.metrics import CATEGORICAL_VALUES, metric_kinds
from steerloop.stores import MemoryStore

GOOD = {"security": 0.8, "efficiency": 0.6, "functionality": 0.7}


def excited_scores(seed: int, steps: int, noise: float = 0.01) -> list[dict[str, float]]:
    """x_{t+1} = x_t + A x_t + b + 0.05 ε from (0.3, 0.2, 0.4), observed with sd ``noise``."""
    rng = np.random.default_rng(seed)
    x = np.array([0.3, 0.2, 0.4])
    out = []
    b = -A_TRUE @ X_STAR
    for _ in range(steps):
        observed = np.clip(x + rng.normal(0.0, noise, 3), 0.0, 1.0)
        out.append(dict(zip(OBJECTIVES, observed.tolist(), strict=True)))
        x = np.clip(x + A_TRUE @ x + b + rng.normal(0.0, 0.05, 3), 0.0, 1.0)
    return out


# -- bad calls change nothing ------------------------------------------------------------

BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("scores None", (None,), {}, TypeError, "scores must be a mapping"),
    ("scores list", ([0.8, 0.6, 0.7],), {}, TypeError, "objective order is never guessed|mapping"),
    ("severity list", (GOOD,), {"severity": [1]}, TypeError, "severity must be"),
    ("severity 2.0", (GOOD,), {"severity": 2.0}, ValueError, "severity must be .*out_of_range"),
    ("severity NaN", (GOOD,), {"severity": math.nan}, ValueError, "non_finite"),
    ("scorer_errors str", (GOOD,), {"scorer_errors": "x"}, TypeError, "scorer_errors must be"),
    ("scorer_errors -5", (GOOD,), {"scorer_errors": -5}, ValueError, "scorer_errors must be >= 0"),
    ("scorer_errors bool", (GOOD,), {"scorer_errors": True}, TypeError, "scorer_errors must be"),
    ("steps_left -1", (GOOD,), {"steps_left": -1}, ValueError, "steps_left must be >= 0"),
    ("steps_left 2.5", (GOOD,), {"steps_left": 2.5}, TypeError, "steps_left must be"),
    ("idempotency_key 3", (GOOD,), {"idempotency_key": 3}, TypeError, "idempotency_key must be"),
]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
@pytest.mark.parametrize("with_store", [False, True], ids=["local", "store"])
def test_every_bad_call_leaves_the_session_untouched(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
    with_store: bool,
) -> None:
    store = MemoryStore() if with_store else None
    controller = Controller(make_policy(), events=False, store=store, history=5)
    session = controller.session("s")
    for _ in range(6):
        session.update(GOOD)
    before = session.snapshot().model_dump_json()
    stored = None if store is None else store.read("s").value
    heard: list[Decision] = []
    controller.add_listener(lambda _session, decision: heard.append(decision))
    last, history = session.last_decision, session.history
    with pytest.raises(error, match=message):
        session.update(*args, **kwargs)
    assert session.snapshot().model_dump_json() == before
    assert (session.last_decision, session.history, heard) == (last, history, [])
    if store is not None:
        assert store.read("s").value == stored
    assert session.update(GOOD).step == 7  # and the session carries on


def test_a_rejected_call_emits_no_score_warning() -> None:
    session = make_controller().session("s")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError):
            session.update({"securty": 0.5}, idempotency_key=3)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            session.update({"securty": 0.5}, steps_left=-1)
        assert caught == []
        session.update({"securty": 0.5})  # the first accepted call warns
    assert [str(w.message) for w in caught if w.category is ScoreWarning] == [
        "session 's': score 'securty': not an objective of the policy "
        "['security', 'efficiency', 'functionality']; it counts as missing "
        "(warned once per session and key)"
    ]


# -- scores: missing, invalid, unknown, strict -------------------------------------------


def test_unknown_keys_are_counted_and_warned_once_per_session_and_key() -> None:
    controller = make_controller()
    first, second = controller.session("a"), controller.session("b")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d1 = first.update({**GOOD, "securty": 0.5})
        d2 = first.update({**GOOD, "securty": 0.5, "speed": 0.2})
        d3 = first.update({**GOOD, "securty": 0.5, "speed": 0.2})
        e1 = second.update({**GOOD, "securty": 0.5})
    warned = [(str(w.message).split(":")[0], str(w.message)) for w in caught]
    assert all(w.category is ScoreWarning for w in caught)
    assert [who for who, _ in warned] == ["session 'a'", "session 'a'", "session 'b'"]
    assert ["'securty'" in text for _, text in warned] == [True, False, True]
    assert "'speed'" in warned[1][1]
    counts = [d.diagnostics["scores.unknown"] for d in (d1, d2, d3, e1)]
    assert counts == [1.0, 3.0, 5.0, 1.0]
    assert d3.missing == () and d3.error is None  # the known objectives were used


def test_invalid_values_are_missing_counted_in_missing_and_warned_once() -> None:
    session = make_controller().session("s")
    for _ in range(6):
        session.update(GOOD)
    bad_inputs: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"security": math.nan, "efficiency": 0.5, "functionality": 0.5}, ("security",)),
        ({"security": "high", "efficiency": math.inf, "functionality": None}, tuple(OBJECTIVES)),
        ({}, tuple(OBJECTIVES)),
        ({"security": 1.5, "efficiency": -0.2, "functionality": True}, tuple(OBJECTIVES)),
        ({"security": 70, "efficiency": np.float32(0.5), "functionality": 0.5}, ("security",)),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for scores, missing in bad_inputs:
            decision = session.update(scores)
            assert decision.missing == missing
            assert decision.error is None
            assert np.isfinite(session.filtered).all()
            assert all(decision.diagnostics[f"score.{name}"] is None for name in missing)
    # one warning per key: security (nan), efficiency (inf), functionality (bool)
    assert sorted(str(w.message).split("'")[3] for w in caught) == sorted(OBJECTIVES)
    assert session.update(GOOD).diagnostics["score.security"] == 0.8


@pytest.mark.parametrize(
    "scores",
    [
        {**GOOD, "securty": 0.5},
        {**GOOD, "security": "0.8"},
        {**GOOD, "security": 80},
        {**GOOD, "security": -0.01},
        {**GOOD, "security": math.nan},
        {**GOOD, "security": True},
    ],
    ids=["unknown key", "string", "0-100 scale", "negative", "NaN", "bool"],
)
def test_strict_raises_on_invalid_scores_before_anything_changes(scores: dict[str, Any]) -> None:
    session = Controller(make_policy(), strict=True, events=False).session("s")
    session.update(GOOD)
    before = session.snapshot().model_dump_json()
    with pytest.raises(ValueError, match=r"invalid scores \(strict mode\)"):
        session.update(scores)
    assert session.snapshot().model_dump_json() == before


def test_strict_accepts_missing_scores() -> None:
    session = Controller(make_policy(), strict=True, events=False).session("s")
    decision = session.update({"security": 0.5, "efficiency": None})
    assert decision.missing == ("efficiency", "functionality")


def test_scorer_errors_accumulate() -> None:
    session = make_controller().session("s")
    session.update(GOOD, scorer_errors=2)
    decision = session.update(GOOD, scorer_errors=3)
    assert decision.diagnostics["errors.scorer"] == 5.0


# -- the step ----------------------------------------------------------------------------


def test_decision_carries_exactly_the_diagnostics_namespace() -> None:
    session = make_controller().session("s")
    for scores in excited_scores(0, 12):
        decision = session.update(scores)
    kinds = metric_kinds(OBJECTIVES)
    assert set(decision.diagnostics) == set(kinds)
    for name, value in decision.diagnostics.items():
        if value is None:
            continue
        if kinds.get(name) == "number":
            assert isinstance(value, float) and math.isfinite(value), name
        elif name in CATEGORICAL_VALUES:
            assert value in CATEGORICAL_VALUES[name], name
    assert decision.diagnostics["step"] == 12.0
    assert decision.diagnostics["strategy"] == decision.previous_strategy


def test_the_drift_learnt_end_to_end_is_close_to_the_truth() -> None:
    """The session's raw-score regression recovers a known linear drift.

    Three seeds of 300 steps (forgetting 0.99: about 100 effective transitions). The reported
    rate must lie within 3 of its own standard errors of the true per-step rate 0.389, and the
    predicted equilibrium within 0.03 of the true one.
    """
    rate_true = -max(np.linalg.eigvals(A_TRUE).real)
    for seed in range(3):
        session = make_controller(rules=[]).session("s")
        for scores in excited_scores(seed, 300):
            decision = session.update(scores)
        diagnostics = decision.diagnostics
        rate, se = diagnostics["drift.rate"], diagnostics["drift.rate_se"]
        assert isinstance(rate, float) and isinstance(se, float)
        assert 0.0 < se < 0.2
        assert abs(rate - rate_true) <= 3 * se, (seed, rate, se)
        assert diagnostics["drift.regime"] == "exponential"
        equilibrium = [diagnostics[f"drift.equilibrium.{name}"] for name in OBJECTIVES]
        np.testing.assert_allclose(equilibrium, X_STAR, atol=0.03)


def test_switching_fires_and_changes_the_prompt() -> None:
    session = make_controller().session("low")
    low = {"security": 0.1, "efficiency": 0.8, "functionality": 0.8}
    decisions = [session.update(low) for _ in range(8)]
    switched = [d for d in decisions if d.changed]
    assert [d.step for d in switched] == [5]  # the warm-up ends at step 5
    assert (switched[0].strategy, switched[0].rule) == ("secure", "low-security")
    assert switched[0].reason.startswith("objective.security = 0.1")
    assert session.prompt == "Focus on security, efficiency, functionality."
    assert switched[0].prompt == session.prompt


def test_decisions_are_deterministic_for_a_stream() -> None:
    runs = []
    for _ in range(2):
        session = make_controller().session("x")
        runs.append([comparable(session.update(s)) for s in excited_scores(7, 60)])
    assert runs[0] == runs[1]


def test_restore_and_continue_is_bit_identical() -> None:
    """A promise to users: a snapshot restored in this process continues exactly."""
    scores = excited_scores(2, 80)
    uninterrupted = make_controller().session("a")
    reference = [comparable(uninterrupted.update(s)) for s in scores]
    first = make_controller().session("a")
    replay = [comparable(first.update(s)) for s in scores[:37]]
    text = first.snapshot().model_dump_json()
    restored = make_controller().restore(text)
    replay += [comparable(restored.update(s)) for s in scores[37:]]
    assert replay == reference
    assert restored.snapshot().model_dump_json() == uninterrupted.snapshot().model_dump_json()


def test_restore_and_continue_with_a_fleet_pool_carried_along() -> None:
    """With pooling on, the pool travels with the process: pass it to the new controller."""
    pooled = make_policy(fleet={"pool": True, "prior_weight": 10.0})
    scores = excited_scores(3, 60)
    uninterrupted = Controller(pooled, events=False).session("a")
    reference = [comparable(uninterrupted.update(s)) for s in scores]
    first_controller = Controller(pooled, events=False)
    first = first_controller.session("a")
    replay = [comparable(first.update(s)) for s in scores[:25]]
    restored = Controller(pooled, events=False, pool=first_controller.pool).restore(
        first.snapshot().model_dump_json()
    )
    replay += [comparable(restored.update(s)) for s in scores[25:]]
    assert replay == reference


# -- end-to-end properties of the presets -------------------------------------------------

#: Healthy constant levels: no objective at a rule's threshold (severity 1 - security < 0.7,
#: every level away from the boundary rules' 0.2), so no rule has a reason to act.
CONSTANT_VECTORS = [(0.8, 0.6, 0.7), (0.5, 0.5, 0.5), (0.35, 0.9, 0.25), (0.99, 0.99, 0.99)]


@pytest.mark.parametrize("vector", CONSTANT_VECTORS, ids=str)
def test_paper_preset_on_constant_scores_never_acts(vector: tuple[float, float, float]) -> None:
    session = Controller("paper", events=False).session("c")
    scores = constant(vector)
    for step in range(1, 1001):
        decision = session.update(scores)
        d = decision.diagnostics
        assert not decision.changed and decision.rule is None and not decision.alerts, step
        lowest = d["interference.min"]
        assert lowest is None or lowest >= -0.15, (step, lowest)
        assert d["drift.regime"] != "unstable", step
        if step % 100 == 0:  # every diagnostic, the lazy ones included, is finite
            for name, value in dict(d).items():
                assert not isinstance(value, float) or math.isfinite(value), (step, name, value)
    assert decision.strategy == "adaptive_integration" and decision.mode == "direct"
    np.testing.assert_allclose(
        [d[f"objective.{name}"] for name in OBJECTIVES], vector, rtol=0, atol=1e-9
    )
    assert d["errors.rule"] == 0.0


@pytest.mark.parametrize("vector", [(0.8, 0.6, 0.7), (0.5, 0.5, 0.5)], ids=str)
def test_predictive_preset_on_constant_scores_explores_each_strategy_once(
    vector: tuple[float, float, float],
) -> None:
    controller = Controller("predictive", events=False)
    session = controller.session("c")
    trail = [session.update(constant(vector)).strategy for _ in range(300)]
    switches = [i for i in range(1, len(trail)) if trail[i] != trail[i - 1]]
    assert len(switches) <= len(controller.policy.strategies) - 1
    # no thrash: no strategy is left and taken up again
    runs = [trail[0]] + [trail[i] for i in switches]
    assert len(runs) == len(set(runs))
    assert trail[-100:] == [trail[-1]] * 100


# -- faults ------------------------------------------------------------------------------


def test_a_controller_fault_fails_open_and_strict_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = make_controller()
    session = controller.session("f")
    session.update(GOOD)
    before = session.snapshot().model_dump_json()

    def explode(*args: Any, **kwargs: Any) -> None:
        raise NumericalError("filter", "synthetic")

    monkeypatch.setattr(session._core.models.kalman, "update", explode)
    decision = session.update(GOOD)
    assert decision.error is not None and "NumericalError" in decision.error
    assert "synthetic" in decision.error
    assert (decision.strategy, decision.changed, decision.step) == ("balanced", False, 1)
    assert decision.reason == "controller fault; holding the current strategy"
    assert session.snapshot().model_dump_json() == before  # the fault struck before any change
    json.dumps(decision.to_dict())

    strict = Controller(controller.policy, strict=True, events=False).session("f")
    monkeypatch.setattr(strict._core.models.kalman, "update", explode)
    with pytest.raises(NumericalError):
        strict.update(GOOD)


def test_listener_failures_are_counted_and_strict_reraises() -> None:
    controller = make_controller()
    seen: list[int] = []

    def broken(_session: Any, decision: Decision) -> None:
        seen.append(decision.step)
        raise RuntimeError("telemetry down")

    controller.add_listener(broken)
    controller.session("l").update(GOOD)
    assert seen == [1] and controller.listener_errors == 1
    strict = Controller(controller.policy, strict=True, events=False)
    strict.add_listener(broken)
    with pytest.raises(RuntimeError, match="telemetry down"):
        strict.session("l").update(GOOD)


# -- scorers, async, stores --------------------------------------------------------------


def test_observe_scores_with_the_controllers_scorers_and_counts_failures() -> None:
    from steerloop.scoring import CallableScorer

    def security(response: object) -> float:
        return 0.9 if "safe" in str(response) else 0.1

    def broken(response: object) -> float:
        raise RuntimeError("scorer down")

    controller = Controller(
        make_policy(),
        scorers=[
            CallableScorer(security, ["security"], name="sec"),
            CallableScorer(broken, ["efficiency"], name="eff"),
        ],
        events=False,
    )
    session = controller.session("o")
    decision = session.observe("a safe answer")
    assert decision.diagnostics["score.security"] == 0.9
    assert decision.missing == ("efficiency", "functionality")
    assert decision.diagnostics["errors.scorer"] == 1.0
    assert controller.scorer is not None
    assert controller.scorer.failure_counts[("eff", "raised")] == 1
    later = asyncio.run(session.aobserve("risky", steps_left=3))
    assert later.step == 2 and later.diagnostics["score.security"] == 0.1
    assert later.diagnostics["errors.scorer"] == 2.0


def test_observe_without_scorers_says_how_to_fix() -> None:
    with pytest.raises(ScorerError, match=r"session\.update"):
        make_controller().session("n").observe("text")


def test_aupdate_is_update_in_a_thread() -> None:
    session = make_controller().session("p")
    decision = asyncio.run(session.aupdate(GOOD, scorer_errors=1))
    assert (decision.step, decision.diagnostics["errors.scorer"]) == (1, 1.0)
    with pytest.raises(TypeError):
        asyncio.run(session.aupdate(None))  # type: ignore[arg-type]
    assert session.step == 1


def test_idempotency_key_applies_once_with_a_store_and_is_ignored_without() -> None:
    store = MemoryStore()
    session = Controller(make_policy(), store=store, events=False).session("s")
    first = session.update(GOOD, idempotency_key="req-1")
    state = session.snapshot().model_dump_json()
    again = session.update({"security": 0.1}, idempotency_key="req-1")
    assert again.to_dict(prompt=True) == first.to_dict(prompt=True)
    # Nothing was applied, locally either: the copy that stepped was reloaded.
    assert session.step == 1 and session.snapshot().model_dump_json() == state
    assert session.update(GOOD, idempotency_key="req-2").step == 2
    local = make_controller().session("s")
    local.update(GOOD, idempotency_key="req-1")
    assert local.update(GOOD, idempotency_key="req-1").step == 2


# -- what a user sees --------------------------------------------------------------------


def test_reprs_properties_and_prompt() -> None:
    controller = make_controller()
    session = controller.session("user-42")
    assert repr(session) == "Session(id='user-42', step=0, strategy='balanced', mode='direct')"
    assert session.id == "user-42" and session.controller is controller
    assert session.strategy == "balanced" and session.step == 0
    assert session.prompt == "Balance security, efficiency, functionality."
    assert session.last_decision is None and session.history == ()
    decision = session.update(GOOD)
    assert session.last_decision is decision
    assert repr(session) == "Session(id='user-42', step=1, strategy='balanced', mode='direct')"
    filtered = session.filtered
    filtered[0] = 99.0  # a copy
    assert session.filtered[0] != 99.0


def test_history_keeps_the_last_n_decisions() -> None:
    controller = Controller(make_policy(), history=3, events=False)
    session = controller.session("h")
    decisions = [session.update(GOOD) for _ in range(5)]
    assert session.history == tuple(decisions[-3:])
    assert [d.step for d in session.history] == [3, 4, 5]
    assert controller.history_size == 3
    assert make_controller().session("none").history == ()
