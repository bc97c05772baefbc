"""SessionModels: which observations each estimator learns, severity, noise, fits, priors."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from controller_helpers import A_TRUE, X_STAR, make_policy

from steerloop.controller.models import SessionModels
from steerloop.controller.settings import NOISE_PRIOR, ModelSettings
from steerloop.estimators.drift import DriftModel
from steerloop.estimators.rls import LeastSquaresStats

NAN = math.nan


def settings(**estimation: Any) -> ModelSettings:
    block = {"forgetting": 0.99, "warmup": 5, **estimation}
    return ModelSettings.from_policy(make_policy(estimation=block, rules=[]))


def trajectory(seed: int, steps: int) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    rng = np.random.default_rng(seed)
    x = np.array([0.3, 0.2, 0.4])
    out = []
    for _ in range(steps):
        out.append(np.clip(x + rng.normal(0.0, 0.01, 3), 0.0, 1.0))
        x = np.clip(x + A_TRUE @ x - A_TRUE @ X_STAR + rng.normal(0.0, 0.05, 3), 0.0, 1.0)
    return out


def learn_all(models: SessionModels, vectors: list[Any], strategy: str = "balanced") -> None:
    for vector in vectors:
        models.learn(np.asarray(vector, dtype=np.float64), strategy)
        models.predict(strategy)


def test_settings_come_from_the_policy() -> None:
    policy = make_policy(
        estimation={"forgetting": 0.95, "warmup": 7, "measurement_noise": 0.004, "dt": 0.5}
    )
    s = ModelSettings.from_policy(policy)
    assert (s.objectives, s.dim, s.forgetting, s.warmup, s.dt) == (
        ("security", "efficiency", "functionality"),
        3,
        0.95,
        7,
        0.5,
    )
    assert (s.drift.dim, s.drift.forgetting, s.drift.warmup, s.drift.dt) == (3, 0.95, 7, 0.5)
    assert s.measurement_noise == 0.004 and s.input == "raw"
    assert s.severity.forgetting == policy.severity.forgetting


def test_a_transition_needs_two_consecutive_complete_score_vectors() -> None:
    models = SessionModels(settings())
    first = models.learn(np.array([0.2, 0.3, 0.4]), "balanced")
    assert first.transition is None and models.drift_models == {}
    second = models.learn(np.array([0.3, 0.35, 0.45]), "balanced")
    assert second.transition is not None
    previous, current = second.transition
    assert previous.tolist() == [0.2, 0.3, 0.4] and current.tolist() == [0.3, 0.35, 0.45]
    gap = models.learn(np.array([0.4, NAN, 0.5]), "fast")  # a missing score breaks the chain
    after = models.learn(np.array([0.45, 0.4, 0.5]), "fast")
    assert gap.transition is None and after.transition is None
    again = models.learn(np.array([0.5, 0.42, 0.52]), "fast")
    assert again.transition is not None
    assert {name: m.count for name, m in models.drift_models.items()} == {"balanced": 1, "fast": 1}
    # interference learns the same raw increments, pooled over strategies
    assert models.interference.to_state().pooled.count == 2


def test_filtered_input_learns_the_filtered_states() -> None:
    models = SessionModels(settings(input="filtered"))
    models.learn(np.array([0.2, 0.3, 0.4]), "balanced")
    before = models.kalman.mean
    learned = models.learn(np.array([0.3, NAN, 0.45]), "balanced")  # partly missing: filtered
    assert learned.transition is not None
    np.testing.assert_array_equal(learned.transition[0], before)
    np.testing.assert_array_equal(learned.transition[1], learned.filtered)
    assert models.learn(np.full(3, NAN), "balanced").transition is None  # nothing used


def test_all_missing_scores_leave_the_filter_mean() -> None:
    models = SessionModels(settings())
    models.learn(np.array([0.2, 0.3, 0.4]), "balanced")
    mean = models.kalman.mean
    learned = models.learn(np.full(3, NAN), "balanced")
    assert not learned.used.any()
    np.testing.assert_array_equal(learned.filtered, mean)


@pytest.mark.parametrize(
    ("source", "override", "expected"),
    [
        (None, None, "1 - min"),
        ({"objective": "security", "invert": True}, None, "1 - security"),
        ({"objective": "efficiency", "invert": False}, None, "efficiency"),
        ({"objective": "security", "invert": True}, 0.25, "0.25"),
        ({"score": "severity"}, None, "none"),  # a severity score arrives as ``severity=``
    ],
)
def test_severity_comes_from_the_configured_source(
    source: dict[str, Any] | None, override: float | None, expected: str
) -> None:
    severity: dict[str, Any] = {} if source is None else {"from": source}
    models = SessionModels(ModelSettings.from_policy(make_policy(severity=severity, rules=[])))
    learned = models.learn(np.array([0.2, 0.9, 0.6]), "balanced", severity=override)
    x = learned.filtered
    value = {
        "1 - min": 1.0 - float(x.min()),
        "1 - security": 1.0 - float(x[0]),
        "efficiency": float(x[1]),
        "0.25": 0.25,
        "none": None,
    }[expected]
    assert learned.severity == value
    assert models.severity.value == value


def test_severity_is_clipped_to_the_unit_interval() -> None:
    models = SessionModels(ModelSettings.from_policy(make_policy(rules=[])))
    models.kalman.predict(np.eye(3), np.array([0.9, 0.9, 0.9]), np.eye(3) * 1e-6)  # mean 1.4
    learned = models.learn(np.full(3, NAN), "balanced")
    assert learned.filtered.min() > 1.0 and learned.severity == 0.0


def test_measurement_noise_configured_or_estimated() -> None:
    fixed = SessionModels(settings(measurement_noise=0.004))
    assert fixed.filter_noise().tolist() == [0.004] * 3
    auto = SessionModels(settings())
    assert auto.filter_noise().tolist() == [NOISE_PRIOR] * 3
    learn_all(auto, trajectory(0, 60))
    estimate = auto.estimated_noise
    assert np.isfinite(estimate).all() and (estimate > 0).all()
    estimate[0] = 99.0
    assert auto.estimated_noise[0] != 99.0  # a copy


def test_the_fit_waits_for_the_warmup_then_is_the_drift_models_noise_corrected_fit() -> None:
    models = SessionModels(settings())
    vectors = trajectory(1, 60)
    learn_all(models, vectors[:5])  # 4 transitions
    assert models.fit("balanced") is None and models.fit("fast") is None
    learn_all(models, vectors[5:])
    fit = models.fit("balanced")
    assert fit is not None
    assert models.fit("balanced") is fit  # cached until something changes
    drift = models.drift_models["balanced"]
    direct = drift.fit(None, models.to_state().fit_noise["balanced"])
    np.testing.assert_allclose(fit.A, direct.A, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fit.b, direct.b, rtol=1e-12, atol=1e-15)


def test_a_pooled_prior_makes_a_strategy_known_before_its_own_warmup() -> None:
    donor = DriftModel(settings().drift)
    vectors = trajectory(2, 120)
    for before, after in itertools.pairwise(vectors):
        donor.update(before, after)
    pooled: LeastSquaresStats = donor.stats.scaled(20.0 / donor.stats.weight)
    models = SessionModels(settings())

    def prior(strategy: str) -> LeastSquaresStats | None:
        return pooled if strategy == "fast" else None

    assert models.fit("fast") is None
    fit = models.fit("fast", prior)
    assert fit is not None and fit.effective_size == pytest.approx(pooled.effective_size)
    np.testing.assert_allclose(fit.equilibrium, X_STAR, atol=0.05)
    model = models.strategy_model("fast", prior)
    assert model is not None and model.equilibrium_covariance is not None
    assert models.strategy_model("fast") is None  # without the prior it is unknown


def test_predict_is_a_random_walk_until_the_strategy_is_known() -> None:
    models = SessionModels(settings(process_noise=0.003))
    learned = models.learn(np.array([0.2, 0.3, 0.4]), "balanced")
    models.predict("balanced")
    np.testing.assert_array_equal(models.kalman.mean, learned.filtered)
    np.testing.assert_allclose(
        models.kalman.covariance, learned.covariance + 0.003 * np.eye(3), rtol=1e-12, atol=0
    )


def test_predict_uses_the_learnt_drift_when_it_contracts() -> None:
    models = SessionModels(settings())
    learn_all(models, trajectory(3, 80))
    model = models.strategy_model("balanced")
    assert model is not None
    mean = models.kalman.mean
    F = np.eye(3) + model.A * model.dt
    assert np.abs(np.linalg.eigvals(F)).max() < 1.0
    models.predict("balanced")
    np.testing.assert_allclose(models.kalman.mean, F @ mean + model.b * model.dt, rtol=1e-12)


def test_prediction_uses_the_plain_fit_and_diagnostics_the_corrected_one() -> None:
    """The planner's and the filter's model is the least-squares fit without the
    errors-in-variables correction; the corrected fit (rates, equilibria) differs from it
    once R̂ is positive."""
    models = SessionModels(settings())
    learn_all(models, trajectory(4, 120))
    plain, corrected = models.fit("balanced", corrected=False), models.fit("balanced")
    model = models.strategy_model("balanced")
    assert plain is not None and corrected is not None and model is not None
    np.testing.assert_allclose(model.A, plain.A, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.b, plain.b, rtol=1e-12, atol=1e-15)
    assert float(models.estimated_noise.max()) > 0
    assert not np.allclose(plain.A, corrected.A, rtol=1e-6, atol=1e-9)


def test_posterior_draws_are_seeded_and_centred_on_the_fit() -> None:
    models = SessionModels(settings())
    learn_all(models, trajectory(4, 120))
    fit = models.fit("balanced", corrected=False)  # what predicts (module docstring)
    assert fit is not None
    one = models.strategy_model("balanced", rng=np.random.default_rng(5))
    two = models.strategy_model("balanced", rng=np.random.default_rng(5))
    other = models.strategy_model("balanced", rng=np.random.default_rng(6))
    assert one is not None and two is not None and other is not None
    np.testing.assert_array_equal(one.A, two.A)
    assert not np.array_equal(one.A, other.A)
    assert one.equilibrium_covariance is None  # a draw carries no further uncertainty
    rng = np.random.default_rng(7)
    draws = [models.strategy_model("balanced", rng=rng) for _ in range(2000)]
    mean_A = np.mean([d.A for d in draws if d is not None], axis=0)
    spread = np.std([d.A for d in draws if d is not None], axis=0)
    # Monte Carlo: the mean of 2000 draws is within 4 standard errors of the fit.
    assert (np.abs(mean_A - fit.A) <= 4 * spread / math.sqrt(2000) + 1e-12).all()
    residual, scale = fit.parameter_covariance()  # type: ignore[misc]
    expected_sd = np.sqrt(np.outer(np.diag(scale)[:3], np.diag(residual))).T
    np.testing.assert_allclose(spread, expected_sd, rtol=0.1)


def test_snapshot_restores_and_continues_identically() -> None:
    vectors = trajectory(5, 90)
    models = SessionModels(settings())
    learn_all(models, vectors[:40], "balanced")
    learn_all(models, vectors[40:50], "fast")
    restored = SessionModels.from_state(models.to_state(), settings())
    for vector in vectors[50:]:
        a = models.learn(vector, "fast")
        b = restored.learn(vector, "fast")
        models.predict("fast")
        restored.predict("fast")
        assert a.filtered.tobytes() == b.filtered.tobytes()
        assert a.noise.tobytes() == b.noise.tobytes()
    fa, fb = models.fit("fast"), restored.fit("fast")
    assert fa is not None and fb is not None and fa.A.tobytes() == fb.A.tobytes()
