"""Controller: how a policy is given, the sessions it holds, reload, pools, listeners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from controller_helpers import OBJECTIVES, make_controller, make_policy, policy_dict
from structlog.testing import capture_logs

from steerloop import Controller, FleetPool, Policy, PolicyError, Session, load_preset
from steerloop.controller.events import SteerloopEvents
from steerloop.controller.planning import StepPlanning
from steerloop.policies.loader import available_presets

GOOD = {"security": 0.8, "efficiency": 0.6, "functionality": 0.7}
PRESET_DIR = Path(__file__).parents[2] / "steerloop" / "policies" / "presets"


# -- giving the policy -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["paper", "predictive"])
def test_a_preset_by_name_positionally_or_by_keyword(name: str) -> None:
    for controller in (Controller(name, events=False), Controller(preset=name, events=False)):
        assert controller.policy == load_preset(name)
        assert controller.session("s").update(GOOD).strategy == "adaptive_integration"


def test_a_policy_file_by_str_or_path_and_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text((PRESET_DIR / "paper.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    expected = load_preset("paper")
    assert Controller(str(path), events=False).policy == expected
    assert Controller(path, events=False).policy == expected
    assert Controller.from_yaml(path, events=False).policy == expected


def test_an_invalid_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("objectives: [a]\nstrategies: {}\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        Controller(path)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "give exactly one of a policy"),
        (("paper",), {"preset": "paper"}, "give exactly one of a policy"),
        ((42,), {}, "policy must be a Policy, a preset name or a path, got int"),
        ((["paper"],), {}, "got list"),
        (("papper",), {}, r"'papper' is neither a preset \(paper, predictive\) nor an existing"),
        ((Path("no/such.yaml"),), {}, "nor an existing policy file"),
    ],
)
def test_anything_else_is_a_type_error_saying_what_to_pass(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Controller(*args, **kwargs)


def test_an_unknown_preset_keyword_names_the_presets() -> None:
    with pytest.raises(PolicyError, match="paper"):
        Controller(preset="papper")
    assert available_presets() == ["paper", "predictive"]


@pytest.mark.parametrize("history", [-1, True, 2.0, "3", None])
def test_history_must_be_a_non_negative_int(history: Any) -> None:
    with pytest.raises(TypeError, match="history must be an int >= 0"):
        Controller("paper", history=history)


# -- sessions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session_id", "error"),
    [(None, TypeError), (42, TypeError), (("a",), TypeError), (b"a", TypeError), ("", ValueError)],
)
def test_session_ids_must_be_non_empty_strings(session_id: Any, error: type[Exception]) -> None:
    controller = make_controller()
    with pytest.raises(error, match="session_id must be a non-empty str"):
        controller.session(session_id)
    assert controller.sessions() == [] and len(controller) == 0


def test_an_overlong_session_id_is_rejected() -> None:
    controller = make_controller()
    controller.session("x" * 1024)
    with pytest.raises(ValueError, match="at most 1024 characters"):
        controller.session("x" * 1025)


def test_sessions_get_or_create_list_and_drop() -> None:
    controller = make_controller()
    a, b = controller.session("a"), controller.session("b")
    assert controller.session("a") is a
    a.update({"security": 0.1, "efficiency": 0.5, "functionality": 0.5})
    assert b.step == 0
    assert controller.sessions() == ["a", "b"] and len(controller) == 2
    assert "a" in controller and "c" not in controller and 42 not in controller
    assert list(controller) == [a, b] and all(isinstance(s, Session) for s in controller)
    controller.drop("a")
    controller.drop("never")
    assert controller.sessions() == ["b"] and "a" not in controller
    assert controller.session("a") is not a and controller.session("a").step == 0


def test_repr_says_policy_sessions_and_store() -> None:
    from steerloop.stores import MemoryStore

    controller = Controller("paper", events=False)
    assert repr(controller) == "Controller(policy='paper', sessions=0, store=None)"
    controller.session("a")
    controller.session("b")
    assert repr(controller) == "Controller(policy='paper', sessions=2, store=None)"
    document = policy_dict()
    del document["name"]
    unnamed = Controller(Policy.model_validate(document), events=False)
    assert repr(unnamed) == "Controller(policy='<unnamed>', sessions=0, store=None)"
    stored = Controller("paper", store=MemoryStore(), events=False)
    assert repr(stored) == "Controller(policy='paper', sessions=0, store='memory')"


# -- reload ------------------------------------------------------------------------------


def test_reload_by_name_path_or_policy_keeps_estimates(tmp_path: Path) -> None:
    controller = Controller("paper", events=False)
    session = controller.session("r")
    for _ in range(6):
        session.update(GOOD)
    before = session.snapshot()
    controller.reload_policy("predictive")
    assert controller.policy.name == "predictive" and controller.engine.uses_models
    path = tmp_path / "back.yaml"
    path.write_text((PRESET_DIR / "paper.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    controller.reload_policy(str(path))
    assert controller.policy == load_preset("paper")
    controller.reload_policy(load_preset("predictive"))
    after = session.snapshot()
    assert (after.models, after.step, after.strategy) == (before.models, 6, before.strategy)
    with pytest.raises(TypeError, match="neither a preset"):
        controller.reload_policy("x.yaml")
    with pytest.raises(TypeError, match="give exactly one of a policy"):
        controller.reload_policy(None)  # type: ignore[arg-type]
    assert controller.policy.name == "predictive"  # a failed reload changes nothing


def test_reload_falls_back_when_the_strategy_disappears() -> None:
    controller = make_controller(switching={"min_dwell": 0})
    session = controller.session("r")
    for _ in range(8):
        session.update({"security": 0.1, "efficiency": 0.8, "functionality": 0.8})
    assert session.strategy == "secure"
    before = session.snapshot()
    reduced = policy_dict(rules=[])
    del reduced["strategies"]["secure"]
    controller.reload_policy(make_policy(rules=[], strategies=reduced["strategies"]))
    assert session.strategy == "balanced"
    after = session.snapshot()
    assert after.models == before.models and after.step == before.step
    decision = session.update({"security": 0.1, "efficiency": 0.8, "functionality": 0.8})
    assert (decision.rule, decision.step, decision.previous_strategy) == (None, 9, "balanced")


def test_reload_rejects_other_objectives() -> None:
    controller = make_controller()
    other = make_policy(
        objectives=["security", "efficiency"],
        strategies={"only": {"prompt": "x"}},
        initial="only",
        rules=[],
    )
    with pytest.raises(PolicyError, match="keep the objectives"):
        controller.reload_policy(other)
    assert controller.policy.objectives == OBJECTIVES


# -- fleet pools -------------------------------------------------------------------------


def explore_everything(session: Session, steps: int = 120) -> None:
    """A long loop (told), so the exploration budget covers every strategy."""
    for step in range(steps):
        security = 0.7 if step % 3 == 0 else 0.5
        scores = {"security": security, "efficiency": 0.6, "functionality": 0.7}
        session.update(scores, steps_left=steps - step - 1)


def blind_exploration(reasons: list[str]) -> int:
    """Steps spent exploring an unknown strategy (not Thompson draws among known ones)."""
    return sum("; explore " in r or "; exploring " in r for r in reasons)


def _without_pool(name: str) -> Any:
    policy = load_preset(name)
    return policy.model_copy(update={"fleet": policy.fleet.model_copy(update={"pool": False})})


def test_a_second_session_knows_what_the_first_learnt() -> None:
    controller = Controller("predictive", events=False)
    pool = controller.pool
    assert isinstance(pool, FleetPool)
    first = controller.session("first")
    explore_everything(first)
    strategies = list(controller.policy.strategies)
    assert set(first.snapshot().models["drift"]) == set(strategies)  # it ran every strategy
    assert pool.sessions == 1
    second = controller.session("second")
    decision = second.update(GOOD)
    assert decision.diagnostics["pool.sessions"] == 1.0
    assert decision.diagnostics["pool.transitions"] == pool.transitions("adaptive_integration")
    # What the planner of the new session knows: nothing of its own, the pool's lent
    # weight in whole transitions (5 discounted transitions weigh 4.995).
    planning = StepPlanning(
        second._core.models, pool.prior, strategies, step=1, steps_left=None, seed=0
    )
    prior_weight = controller.policy.fleet.prior_weight
    for name, known in planning.knowledge().items():
        lent = min(prior_weight, pool.transitions(name))
        assert known == round(lent) and known > 4.0, name  # whole transitions
    pooled = blind_exploration([second.update(GOOD).reason for _ in range(40)])
    assert pool.sessions == 2
    # Without a pool, a second session explores every strategy blind again.
    solo = Controller(_without_pool("predictive"), events=False)
    explore_everything(solo.session("first"))
    alone = solo.session("second")
    assert solo.pool is None
    unpooled = blind_exploration([alone.update(GOOD).reason for _ in range(40)])
    # Alone, the budget (a quarter of the default 31-step horizon) is spent on the unknown.
    assert unpooled >= 7
    assert pooled <= len(strategies) - 1 < unpooled


def test_a_fleet_explores_once() -> None:
    # The pool's discounted weight (5 transitions weigh 4.995) is counted in whole transitions.
    controller = Controller("predictive", events=False)
    explore_everything(controller.session("first"))
    second = controller.session("second")
    assert blind_exploration([second.update(GOOD).reason for _ in range(40)]) == 0


def test_a_pool_passed_to_two_controllers_is_shared() -> None:
    pool = FleetPool(3, memory=500.0, prior_weight=10.0)
    one = Controller("predictive", pool=pool, events=False)
    two = Controller("predictive", pool=pool, events=False)
    explore_everything(one.session("a"), 20)
    assert two.pool is pool and pool.sessions == 1
    assert two.session("b").update(GOOD).diagnostics["pool.sessions"] == 1.0


def test_no_pool_means_none_diagnostics() -> None:
    decision = make_controller().session("s").update(GOOD)
    assert decision.diagnostics["pool.sessions"] is None
    assert decision.diagnostics["pool.transitions"] is None


# -- listeners and events ----------------------------------------------------------------


def test_listeners_hooks_and_reload_listeners_run_in_order() -> None:
    controller = make_controller()
    calls: list[str] = []

    def listener(session: Session, decision: Any) -> None:
        calls.append(f"listener {session.id} {decision.step}")

    def hook(session: Session) -> Any:
        calls.append(f"before {session.step}")
        return lambda: calls.append(f"after {session.step}")

    def on_reload(old: Any, new: Any) -> None:
        calls.append(f"reload {old.name}->{new.name}")

    controller.add_listener(listener)
    controller.add_step_hook(hook)
    controller.add_reload_listener(on_reload)
    controller.session("s").update(GOOD)
    controller.reload_policy(make_policy(name="v2"))
    assert calls == ["before 0", "after 1", "listener s 1", "reload small->v2"]
    controller.remove_listener(listener)
    controller.remove_step_hook(hook)
    controller.remove_reload_listener(on_reload)
    controller.session("s").update(GOOD)
    controller.reload_policy(make_policy(name="v3"))
    assert len(calls) == 4


def test_events_are_on_by_default_and_can_be_turned_off() -> None:
    assert isinstance(Controller("paper").events, SteerloopEvents)
    quiet = Controller("paper", events=False)
    assert quiet.events is None
    with capture_logs() as logs:
        quiet.reload_policy("paper")
    assert logs == []
    loud = Controller("paper")
    with capture_logs() as logs:
        loud.reload_policy("paper")
    assert [entry["event"] for entry in logs] == ["steerloop.policy.reload"]


def test_read_only_views() -> None:
    controller = Controller(make_policy(), strict=True, history=4, events=False)
    assert controller.strict and controller.history_size == 4
    assert controller.store is None and controller.scorer is None and controller.pool is None
    assert controller.listener_errors == 0
    assert controller.engine.policy is controller.policy
