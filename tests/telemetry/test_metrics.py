"""SteerloopMetrics: names, registries, per-step counts against ground truth, fleet gauges,
label hygiene, fail-open behaviour."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from telemetry_helpers import (
    OBJECTIVES,
    FleetController,
    Recorder,
    exposition,
    samples,
    simulate,
    small_policy,
    steered_run,
    steerloop_series,
    total,
)

from steerloop import Controller, Decision
from steerloop.controller import listeners
from steerloop.policies.metrics import CATEGORICAL_VALUES
from steerloop.scoring.base import CallableScorer
from steerloop.stores import MemoryStore
from steerloop.telemetry.events import TELEMETRY_ERROR
from steerloop.telemetry.metrics import METRICS, SteerloopMetrics

NAME = re.compile(r"^steerloop_[a-z]+(_[a-z0-9]+)+$")
SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total")


def base_name(sample_name: str) -> str:
    """Map an exposition sample name back to its METRICS name."""
    names = {spec.name for spec in METRICS}
    if sample_name in names:
        return sample_name
    for suffix in SUFFIXES:
        stem = sample_name.removesuffix(suffix)
        if stem != sample_name:
            for candidate in (stem, stem + "_total"):
                if candidate in names:
                    return candidate
    raise AssertionError(f"{sample_name} is not a metric of steerloop.telemetry.metrics")


@pytest.fixture(scope="module")
def paper_run() -> tuple[Controller, SteerloopMetrics, Recorder]:
    controller = Controller(preset="paper")
    recorder = Recorder()
    controller.add_listener(recorder)
    metrics = SteerloopMetrics(CollectorRegistry())
    metrics.bind(controller)
    steered_run(controller, sessions=4, steps=60, seed=3)
    return controller, metrics, recorder


# -- registries and names -------------------------------------------------------------------


def test_importing_creates_no_metric() -> None:
    code = (
        "from prometheus_client import REGISTRY\n"
        "import steerloop.telemetry, steerloop.telemetry.metrics, steerloop.telemetry.events\n"
        "names = [n for n in REGISTRY._names_to_collectors if n.startswith('steerloop')]\n"
        "print(len(names))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "0"


def test_two_controllers_on_two_registries_never_clash() -> None:
    first, second = Controller(preset="paper"), Controller(preset="paper")
    metrics_a, metrics_b = SteerloopMetrics(), SteerloopMetrics()
    assert metrics_a.registry is not metrics_b.registry
    metrics_a.bind(first)
    metrics_b.bind(second)
    rng = np.random.default_rng(0)
    simulate(first.session("a"), 7, rng)
    simulate(second.session("b"), 3, rng)
    assert total(metrics_a.registry, "steerloop_controller_steps_total") == 7
    assert total(metrics_b.registry, "steerloop_controller_steps_total") == 3
    # One SteerloopMetrics per registry: a second one on the same registry is refused.
    with pytest.raises(ValueError, match="Duplicated"):
        SteerloopMetrics(metrics_a.registry)


def test_names_types_and_units_follow_the_conventions(
    paper_run: tuple[Controller, SteerloopMetrics, Recorder],
) -> None:
    for spec in METRICS:
        assert NAME.match(spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        if spec.kind == "histogram":
            assert spec.name.endswith(("_seconds", "_ratio", "_per_step")), spec.name
        assert "session" not in " ".join(spec.labels)
        assert "le" not in spec.labels
    _, metrics, _ = paper_run
    text = exposition(metrics.registry)
    families = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^# TYPE (steerloop_\S+) (\S+)$", text, re.MULTILINE)
    }
    for spec in METRICS:
        assert families.get(spec.name) == spec.kind, spec.name
    for name, _, _ in steerloop_series(metrics.registry):
        base_name(name)


# -- per-step metrics against ground truth ---------------------------------------------------


def test_step_counters_and_histograms_match_the_decisions(
    paper_run: tuple[Controller, SteerloopMetrics, Recorder],
) -> None:
    _, metrics, recorder = paper_run
    registry = metrics.registry
    decisions = [d for _, d in recorder.decisions]
    assert len(decisions) == 240
    by_strategy = Counter(d.previous_strategy for d in decisions)
    for strategy, count in by_strategy.items():
        assert total(registry, "steerloop_controller_steps_total", strategy=strategy) == count
    switches = Counter(
        (d.previous_strategy, d.strategy, d.rule or "none") for d in decisions if d.changed
    )
    assert switches, "the demo run should switch strategies"
    for (old, new, rule), count in switches.items():
        assert (
            total(
                registry,
                "steerloop_policy_switches_total",
                from_strategy=old,
                to_strategy=new,
                rule=rule,
            )
            == count
        )
    assert total(registry, "steerloop_policy_switches_total") == sum(switches.values())
    assert total(registry, "steerloop_controller_step_duration_seconds_count") == 240
    assert 0 < total(registry, "steerloop_controller_step_duration_seconds_sum") < 240
    for objective in OBJECTIVES:
        assert (
            total(registry, "steerloop_objective_filtered_ratio_count", objective=objective) == 240
        )
        values = [d.diagnostics[f"objective.{objective}"] for d in decisions]
        assert total(
            registry, "steerloop_objective_filtered_ratio_sum", objective=objective
        ) == pytest.approx(sum(values))  # type: ignore[arg-type]
    severities = [d.diagnostics["severity.value"] for d in decisions]
    assert total(registry, "steerloop_severity_value_ratio_count") == sum(
        v is not None for v in severities
    )
    rates = Counter(d.previous_strategy for d in decisions if d.diagnostics["drift.rate"])
    for strategy, count in rates.items():
        assert (
            total(registry, "steerloop_drift_convergence_rate_per_step_count", strategy=strategy)
            == count
        )
    assert total(registry, "steerloop_controller_faults_total") == 0
    assert total(registry, "steerloop_telemetry_errors_total") == 0
    assert metrics.errors == 0


def test_missing_scores_alerts_and_faults_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = small_policy()
    rules = [r.model_dump(by_alias=True) for r in policy.rules]
    rules[2]["priority"] = 50
    rules[2]["when"] = {"metric": "objective.efficiency", "below": 0.9}
    controller = Controller(small_policy(rules=rules))
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    recorder = Recorder()
    controller.add_listener(recorder)
    session = controller.session("s")
    for step in range(12):
        scores: dict[str, object] = {"security": 0.8, "efficiency": 0.5, "functionality": 0.7}
        if step % 3 == 0:
            scores["functionality"] = float("nan")
        session.update(scores)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("numerical trouble")

    monkeypatch.setattr(session._core.models.kalman, "update", boom)
    faulty = session.update({"security": 0.8})
    assert faulty.error is not None
    registry = metrics.registry
    assert total(registry, "steerloop_controller_faults_total") == 1
    assert (
        total(registry, "steerloop_controller_missing_scores_total", objective="functionality") == 4
    )
    assert total(registry, "steerloop_controller_missing_scores_total", objective="security") == 0
    alerts = sum(len(d.alerts) for _, d in recorder.decisions)
    assert alerts > 0
    assert (
        total(
            registry,
            "steerloop_policy_alerts_total",
            rule="watch-efficiency",
            severity="warning",
        )
        == alerts
    )
    # The fault observed no estimates: histograms count only the 12 healthy steps.
    assert total(registry, "steerloop_severity_value_ratio_count") == 12
    assert total(registry, "steerloop_controller_steps_total") == 13


def test_scorer_errors_by_scorer_and_reason() -> None:
    def crash(response: object) -> float:
        raise RuntimeError("boom")

    scorers = [
        CallableScorer(crash, "security", name="crashy"),
        CallableScorer(lambda r: {"efficiency": float("nan")}, "efficiency", name="nanny"),
        CallableScorer(lambda r: {"functionality": 0.7}, "functionality", name="fine"),
    ]
    controller = Controller(small_policy(), scorers=scorers)  # type: ignore[arg-type]
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    session = controller.session("s")
    for _ in range(5):
        session.observe("response")
    registry = metrics.registry
    assert total(registry, "steerloop_scorer_errors_total", scorer="crashy", reason="raised") == 5
    assert (
        total(registry, "steerloop_scorer_errors_total", scorer="nanny", reason="non_finite") == 5
    )
    assert total(registry, "steerloop_scorer_errors_total") == 10
    # Errors reported by the caller beside the composite's are "external".
    session.update({"security": 0.5}, scorer_errors=2)
    assert (
        total(registry, "steerloop_scorer_errors_total", scorer="external", reason="reported") == 2
    )


def test_scorer_errors_reported_without_a_composite_are_external() -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    session = controller.session("s")
    session.update({"security": 0.5}, scorer_errors=3)
    session.update({"security": 0.5})
    session.update({"security": 0.5}, scorer_errors=1)
    assert total(metrics.registry, "steerloop_scorer_errors_total") == 4
    assert (
        total(
            metrics.registry, "steerloop_scorer_errors_total", scorer="external", reason="reported"
        )
        == 4
    )


def test_rule_errors_are_counted_from_the_cumulative_diagnostic() -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    session = controller.session("s")
    decision = session.update({"security": 0.5})
    for step, cumulative in enumerate([0.0, 2.0, 2.0, 5.0], start=2):
        fake = dataclasses.replace(
            decision,
            step=step,
            diagnostics={**decision.diagnostics, "errors.rule": cumulative},
        )
        controller._notify(session, fake)
    assert total(metrics.registry, "steerloop_policy_rule_errors_total") == 5


def test_policy_reload_is_counted_and_refreshes_label_sets() -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    session = controller.session("s")
    decision = session.update({"security": 0.5})
    turbo = dataclasses.replace(decision, previous_strategy="turbo", strategy="turbo")
    controller._notify(session, turbo)
    assert total(metrics.registry, "steerloop_controller_steps_total", strategy="other") == 1
    strategies = small_policy().model_dump(by_alias=True)["strategies"]
    strategies["turbo"] = {"prompt": "Go.", "emphasis": {"efficiency": 1.0}}
    controller.reload_policy(small_policy(strategies=strategies))
    controller._notify(session, turbo)
    assert total(metrics.registry, "steerloop_policy_reloads_total") == 1
    assert total(metrics.registry, "steerloop_controller_steps_total", strategy="turbo") == 1


# -- fleet gauges --------------------------------------------------------------------------


def fleet(registry: CollectorRegistry, name: str, label: str) -> dict[str, float]:
    return {labels[label]: value for sample, labels, value in samples(registry) if sample == name}


def test_fleet_gauges_match_a_brute_force_count() -> None:
    controller = Controller(small_policy())
    recorder = Recorder()
    controller.add_listener(recorder)
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    steered_run(controller, sessions=6, steps=30, seed=5)
    for index in range(3):  # sessions that have not stepped yet
        controller.session(f"idle-{index}")
    registry = metrics.registry
    last = recorder.last_by_session()
    assert total(registry, "steerloop_sessions_active") == 9
    regimes = Counter(str(d.diagnostics["drift.regime"]) for d in last.values())
    regimes["unknown"] += 3
    phases = Counter(str(d.diagnostics["severity.phase"]) for d in last.values())
    phases["unknown"] += 3
    modes = Counter(d.mode for d in last.values())
    modes["direct"] += 3
    assert modes["sequential"] > 0
    for name, label, expected, fixed in (
        ("steerloop_sessions_in_regime", "regime", regimes, CATEGORICAL_VALUES["drift.regime"]),
        ("steerloop_sessions_in_phase", "phase", phases, CATEGORICAL_VALUES["severity.phase"]),
        ("steerloop_sessions_in_mode", "mode", modes, CATEGORICAL_VALUES["mode"]),
    ):
        exposed = fleet(registry, name, label)
        assert set(exposed) == set(fixed)
        assert exposed == {value: float(expected.get(value, 0)) for value in fixed}
        assert sum(exposed.values()) == 9

    # Dropped sessions leave the gauges; sessions created before bind are counted.
    for session_id in list(last)[:4]:
        controller.drop(session_id)
    assert total(registry, "steerloop_sessions_active") == 5
    assert sum(fleet(registry, "steerloop_sessions_in_regime", "regime").values()) == 5
    late = SteerloopMetrics()
    late.bind(controller)
    assert fleet(late.registry, "steerloop_sessions_in_mode", "mode") == fleet(
        registry, "steerloop_sessions_in_mode", "mode"
    )
    metrics.unbind(controller)
    assert total(registry, "steerloop_sessions_active") == 0


def test_listener_errors_are_reported_at_scrape_time() -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)

    def broken(session: object, decision: object) -> None:
        raise RuntimeError("a broken listener")

    controller.add_listener(broken)
    for _ in range(3):
        controller.session("s").update({"security": 0.5})
    assert total(metrics.registry, "steerloop_controller_listener_errors_total") == 3
    assert total(metrics.registry, "steerloop_controller_steps_total") == 3


def test_store_operations_are_summed_once_per_store_at_scrape_time() -> None:
    store = MemoryStore()
    first, second = Controller(small_policy(), store=store), Controller(small_policy(), store=store)
    metrics = SteerloopMetrics()
    metrics.bind(first)
    metrics.bind(second)
    for step in range(4):
        (first if step % 2 else second).session("shared").update({"security": 0.5})
    stats = dataclasses.asdict(store.stats())
    assert stats["saves"] == 4
    assert stats["loads"] > 0
    exposed = fleet(metrics.registry, "steerloop_store_operations_total", "outcome")
    assert exposed == {outcome: float(count) for outcome, count in stats.items()}


def test_store_fallback_to_memory_is_counted() -> None:
    import socket

    from steerloop.stores import RedisStore

    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5, fallback="memory")
    controller = Controller(small_policy(), store=store)
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    decision = controller.session("s").update({"security": 0.5})
    assert decision.step == 1
    exposed = fleet(metrics.registry, "steerloop_store_operations_total", "outcome")
    assert exposed["fallback_operations"] >= 1
    assert exposed["fallback_operations"] == store.stats().fallback_operations


# -- label hygiene -------------------------------------------------------------------------

ROGUE = 'x"}\n{le="1",session="u-1"} \\ '


def test_values_outside_the_policy_become_other() -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    session = controller.session("s")
    decision = session.update({"security": 0.5})
    rogue = dataclasses.replace(
        decision,
        strategy=ROGUE + "a",
        previous_strategy=ROGUE + "b",
        changed=True,
        rule=ROGUE + "c",
        mode=ROGUE,
        missing=(ROGUE,),
        diagnostics={**decision.diagnostics, "drift.regime": ROGUE, "severity.phase": ROGUE},
    )
    for _ in range(5):
        controller._notify(session, rogue)
    registry = metrics.registry
    assert (
        total(
            registry,
            "steerloop_policy_switches_total",
            from_strategy="other",
            to_strategy="other",
            rule="other",
        )
        == 5
    )
    assert total(registry, "steerloop_controller_missing_scores_total", objective="other") == 5
    assert fleet(registry, "steerloop_sessions_in_regime", "regime")["other"] == 1
    assert fleet(registry, "steerloop_sessions_in_mode", "mode")["other"] == 1
    text = exposition(registry)
    assert "u-1" not in text
    assert ROGUE not in text


def scorer_name_series(name: str) -> tuple[int, list[dict[str, str]], str]:
    def crash(response: object) -> float:
        raise RuntimeError("boom")

    scorers = [CallableScorer(crash, "security", name=name)]
    controller = Controller(small_policy(), scorers=scorers)  # type: ignore[arg-type]
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    for index in range(3):
        controller.session(f"s{index}").observe("response")
    series = steerloop_series(metrics.registry)
    labels = [labels for sample, labels, _ in series if sample == "steerloop_scorer_errors_total"]
    return len(series), labels, exposition(metrics.registry)


def test_label_values_with_quotes_newlines_and_braces_create_no_extra_series() -> None:
    plain_count, plain_labels, _ = scorer_name_series("plain")
    evil = 'ev"il\n{scorer="x",reason="y"}\\'
    evil_count, evil_labels, text = scorer_name_series(evil)
    assert evil_count == plain_count
    assert plain_labels == [{"scorer": "plain", "reason": "raised"}]
    assert evil_labels == [{"scorer": evil, "reason": "raised"}]
    # Escaped on one exposition line: no line starts a series of its own.
    assert sum(line.startswith("steerloop_scorer_errors_total") for line in text.splitlines()) == 1


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=8))
def test_arbitrary_label_text_never_adds_series(values: list[str]) -> None:
    controller, session, decision = _fresh()
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    controller._notify(session, decision)
    baseline = _label_values(metrics.registry)
    for value in values:
        fake = dataclasses.replace(
            decision,
            strategy=value,
            previous_strategy=value,
            changed=True,
            rule=value,
            mode=value,
            missing=(value,),
            alerts=(),
            diagnostics={**decision.diagnostics, "drift.regime": value, "severity.phase": value},
        )
        controller._notify(session, fake)
    allowed = set(small_policy().strategies) | set(OBJECTIVES)
    allowed |= {r.name for r in small_policy().rules} | {"none", "other"}
    for values_ in CATEGORICAL_VALUES.values():
        allowed |= set(values_)
    seen = _label_values(metrics.registry)
    assert seen - baseline <= allowed
    assert len(steerloop_series(metrics.registry)) < 400


_FRESH: list[tuple[Controller, Any, Decision]] = []


def _fresh() -> tuple[Controller, Any, Decision]:
    if not _FRESH:
        controller = Controller(small_policy())
        session = controller.session("s")
        decision = session.update({"security": 0.5, "efficiency": 0.5, "functionality": 0.5})
        _FRESH.append((controller, session, decision))
    controller, session, decision = _FRESH[0]
    for listener in list(controller._listeners):
        controller.remove_listener(listener)
    for hook in list(controller._step_hooks):
        controller.remove_step_hook(hook)
    for listener in list(controller._reload_listeners):
        controller.remove_reload_listener(listener)
    return controller, session, decision


def _label_values(registry: CollectorRegistry) -> set[str]:
    return {
        value
        for _, labels, _ in steerloop_series(registry)
        for key, value in labels.items()
        if key != "le"
    }


def test_a_hundred_thousand_sessions_stay_under_a_thousand_series() -> None:
    policy = Controller(preset="paper").policy
    real = Controller(policy)
    recorder = Recorder()
    real.add_listener(recorder)
    steered_run(real, sessions=3, steps=40, seed=11)
    decisions = [d for _, d in recorder.decisions]
    rogue = [
        dataclasses.replace(decisions[-1], strategy=f"made-up-{i}", changed=True, rule=f"r{i}")
        for i in range(7)
    ]
    pool = decisions + rogue

    fake = FleetController(policy)
    metrics = SteerloopMetrics()
    metrics.bind(fake)  # type: ignore[arg-type]
    sessions = 100_000
    for index in range(sessions):
        fake.step(f"user-{index:06d}", pool[index % len(pool)])
    registry = metrics.registry
    series = steerloop_series(registry)
    assert len(series) <= 1000
    assert total(registry, "steerloop_sessions_active") == sessions
    regimes = fleet(registry, "steerloop_sessions_in_regime", "regime")
    assert sum(regimes.values()) == sessions
    expected = Counter(
        str(pool[i % len(pool)].diagnostics["drift.regime"]) for i in range(sessions)
    )
    assert regimes == {k: float(expected.get(k, 0)) for k in regimes}
    assert total(registry, "steerloop_controller_steps_total") == sessions
    assert "user-0" not in exposition(registry)

    # A scrape reads no session state: a bounded number of membership checks, no iteration.
    fake.contains_calls = fake.iter_calls = 0
    exposition(registry)
    assert fake.iter_calls == 0
    assert fake.contains_calls <= listeners.SWEEP

    # Dropping half the sessions is reflected on the next scrape.
    for index in range(0, sessions, 2):
        del fake.sessions[f"user-{index:06d}"]
    assert total(registry, "steerloop_sessions_active") == sessions // 2
    assert sum(fleet(registry, "steerloop_sessions_in_regime", "regime").values()) == (
        sessions // 2
    )


# -- telemetry never breaks a step -----------------------------------------------------------


def comparable(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.strategy,
        decision.prompt,
        decision.changed,
        decision.rule,
        decision.reason,
        decision.mode,
        dict(decision.diagnostics),
        decision.step,
    )


def test_decisions_are_identical_with_telemetry_on_off_and_unbound() -> None:
    from steerloop.telemetry import SteerloopEvents

    plain = Controller(small_policy())
    observed = Controller(small_policy())
    metrics = SteerloopMetrics()
    events = SteerloopEvents()
    metrics.bind(observed)
    events.bind(observed)
    with capture_logs():
        a = steered_run(plain, sessions=2, steps=25, seed=9)
        b = steered_run(observed, sessions=2, steps=25, seed=9)
    assert {k: [comparable(d) for d in v] for k, v in a.items()} == {
        k: [comparable(d) for d in v] for k, v in b.items()
    }
    metrics.unbind(observed)
    events.unbind(observed)
    assert observed._listeners == []
    assert observed._step_hooks == []
    assert observed._reload_listeners == []
    before = total(metrics.registry, "steerloop_controller_steps_total")
    observed.session("session-0").update({"security": 0.5})
    assert total(metrics.registry, "steerloop_controller_steps_total") == before == 50
    with pytest.raises(KeyError):
        metrics.unbind(observed)
    metrics.bind(observed)
    with pytest.raises(ValueError, match="already bound"):
        metrics.bind(observed)


def test_a_telemetry_failure_never_breaks_a_strict_step(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = Controller(small_policy(), strict=True, events=False)
    metrics = SteerloopMetrics()
    metrics.bind(controller)

    class Broken:
        def observe(self, value: float) -> None:
            raise RuntimeError("histogram storage is gone")

    monkeypatch.setattr(metrics, "severity", Broken())
    monkeypatch.setattr(metrics, "step_seconds", Broken())
    session = controller.session("s")
    with capture_logs() as logs:
        for _ in range(4):
            decision = session.update({"security": 0.5, "efficiency": 0.5, "functionality": 0.5})
    assert decision.step == 4
    assert controller.listener_errors == 0
    assert metrics.errors == 8
    assert total(metrics.registry, "steerloop_telemetry_errors_total") == 8
    assert [entry["event"] for entry in logs] == [TELEMETRY_ERROR]
    assert logs[0]["error_type"] == "RuntimeError"
    assert logs[0]["layer"] == "metrics"
    assert "histogram storage" not in str(logs)


def test_a_failing_scrape_collector_leaves_the_rest_of_the_exposition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    controller.session("s").update({"security": 0.5})

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(metrics, "fleet_counts", broken)
    with capture_logs():
        text = exposition(metrics.registry)
    assert "steerloop_controller_steps_total" in text
    assert "steerloop_sessions_active" not in text
    assert metrics.errors == 1


def test_concurrent_sessions_are_counted_exactly() -> None:
    controller = Controller(small_policy())
    metrics = SteerloopMetrics()
    metrics.bind(controller)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            rng = np.random.default_rng(index)
            simulate(controller.session(f"t{index}"), 30, rng)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    registry = metrics.registry
    assert total(registry, "steerloop_controller_steps_total") == 120
    assert total(registry, "steerloop_controller_step_duration_seconds_count") == 120
    assert sum(fleet(registry, "steerloop_sessions_in_phase", "phase").values()) == 4
