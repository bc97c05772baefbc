"""The per-step fast paths give the same numbers as the reference computations they replace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerloop import Controller
from steerloop.controller import _linalg
from steerloop.estimators.ewstats import EWMoments
from steerloop.estimators.interference import off_diagonal_minimum
from steerloop.estimators.kalman import ObjectiveFilter
from steerloop.estimators.rls import RecursiveLeastSquares, ScalarRLS
from steerloop.estimators.spectrum import analyze_spectrum, summarize_spectrum
from steerloop.controller.state import RLSState
from steerloop.errors import NumericalError, ShapeError


def _matrices(seed: int, count: int = 300) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for k in range(count):
        dim = 1 + k % 6
        matrix = rng.standard_normal((dim, dim)) * 10.0 ** rng.uniform(-3, 1)
        out.append(matrix)
    out += [
        np.zeros((3, 3)),
        -np.eye(3),
        np.diag([-0.4, -0.9, 0.0]),
        np.array([[-0.1, -1.0], [1.0, -0.1]]),
        np.array([[-0.3, -0.5], [0.5, -0.3]]),
        -2.5 * np.eye(2),
        np.diag([-1.8, -0.6]),
        np.array([[-0.5, 1.0], [0.0, -0.5]]),  # defective
    ]
    return out


# ----------------------------------------------------------------------------- _linalg


@pytest.mark.parametrize("seed", [0, 1])
def test_linalg_helpers_are_bit_identical_to_numpy(seed: int) -> None:
    for matrix in _matrices(seed):
        expected = np.linalg.eigvals(matrix).astype(np.complex128)
        assert np.array_equal(_linalg.eigvals(matrix), expected)
        symmetric = matrix + matrix.T
        assert np.array_equal(_linalg.eigvalsh(symmetric), np.linalg.eigvalsh(symmetric))
        assert np.array_equal(
            _linalg.singular_values(matrix), np.linalg.svd(matrix, compute_uv=False)
        )
        if np.linalg.cond(matrix) < 1e10:
            assert np.array_equal(_linalg.inv(matrix), np.linalg.inv(matrix))
            b = np.arange(matrix.shape[0], dtype=np.float64)
            assert np.array_equal(_linalg.solve(matrix, b), np.linalg.solve(matrix, b))


def test_linalg_helpers_raise_like_numpy() -> None:
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError):
        _linalg.inv(singular)
    with pytest.raises(np.linalg.LinAlgError):
        _linalg.solve(singular, np.ones(2))


def test_linalg_helpers_keep_the_callers_error_state() -> None:
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    before = np.geterr()
    with np.errstate(all="raise"):
        inside = np.geterr()
        with pytest.raises(np.linalg.LinAlgError):
            _linalg.inv(singular)
        assert np.geterr() == inside
        _linalg.eigvals(np.eye(2))
        assert np.geterr() == inside
    with pytest.raises(np.linalg.LinAlgError):
        _linalg.solve(singular, np.ones(2))
    _linalg.eigvalsh(np.eye(2))
    _linalg.singular_values(np.eye(2))
    assert np.geterr() == before


# ----------------------------------------------------------------------------- spectrum


@pytest.mark.parametrize("dt", [1.0, 0.5, 2.0])
def test_summarize_spectrum_matches_analyze_spectrum(dt: float) -> None:
    rng = np.random.default_rng(3)
    for matrix in _matrices(2):
        dim = matrix.shape[0]
        for equilibrium in (None, rng.uniform(-0.2, 1.2, dim), np.full(dim, 0.5)):
            report = analyze_spectrum(matrix, dt=dt, equilibrium=equilibrium)
            summary = summarize_spectrum(matrix, dt=dt, equilibrium=equilibrium)
            assert summary.regime == report.regime
            assert summary.overshoot == report.overshoot
            for got, want in (
                (summary.rate, report.rate),
                (summary.max_real, report.max_real),
                (summary.spectral_radius, report.spectral_radius),
            ):
                assert got == want or (math.isnan(got) and math.isnan(want))


def test_summarize_spectrum_unknown_for_non_finite_matrix() -> None:
    matrix = np.array([[np.nan, 0.0], [0.0, -1.0]])
    assert summarize_spectrum(matrix).regime == analyze_spectrum(matrix).regime == "unknown"


# ----------------------------------------------------------------------------- ScalarRLS


@pytest.mark.parametrize("forgetting", [1.0, 0.98, 0.6])
def test_scalar_rls_matches_vector_rls(forgetting: float) -> None:
    rng = np.random.default_rng(4)
    reference = RecursiveLeastSquares(3, 1, forgetting=forgetting, max_trace=1e3)
    fast = ScalarRLS(3, forgetting=forgetting, max_trace=1e3)
    for _ in range(2000):
        phi = rng.standard_normal(3)
        target = float(phi @ [0.5, -1.0, 2.0] + 0.1 * rng.standard_normal())
        reference.update(phi, np.array([target]))
        fast.update(phi.tolist(), target)
        assert fast.predict(phi.tolist()) == pytest.approx(
            float(reference.predict(phi)[0]), rel=1e-9, abs=1e-12
        )
    np.testing.assert_allclose(fast.theta, reference.theta[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.covariance, reference.covariance, rtol=1e-9, atol=1e-12)
    assert fast.count == reference.count == 2000


def test_scalar_rls_state_round_trip_and_errors() -> None:
    rls = ScalarRLS(2, forgetting=0.9)
    for k in range(20):
        rls.update([1.0, 0.05 * k], 0.3 + 0.01 * k)
    state = RLSState.model_validate_json(rls.to_state().model_dump_json())
    restored = ScalarRLS.from_state(state, forgetting=0.9)
    for rls_ in (rls, restored):
        rls_.update([1.0, 0.7], 0.2)
    assert restored.theta == rls.theta and restored.covariance == rls.covariance
    assert RecursiveLeastSquares.from_state(state, forgetting=0.9).theta.shape == (2, 1)
    with pytest.raises(NumericalError):
        rls.update([1.0, math.nan], 0.0)
    with pytest.raises(ShapeError):
        rls.update([1.0], 0.0)
    with pytest.raises(ValueError, match="forgetting"):
        ScalarRLS(2, forgetting=0.0)


# ----------------------------------------------------------------------------- EW moments


def test_ew_moments_in_place_update_matches_the_recurrence() -> None:
    rng = np.random.default_rng(5)
    moments = EWMoments(3, forgetting=0.97)
    weight, mean, scatter = 0.0, np.zeros(3), np.zeros((3, 3))
    for _ in range(200):
        value = rng.standard_normal(3)
        moments.update(value)
        decayed = 0.97 * weight
        weight = decayed + 1.0
        delta = value - mean
        mean = mean + delta / weight
        scatter = 0.97 * scatter + (decayed / weight) * np.outer(delta, delta)
    assert moments.weight == weight
    assert np.array_equal(moments.mean, mean)
    assert np.array_equal(moments.scatter, scatter)
    scale = np.sqrt(np.diag(scatter))
    assert np.array_equal(moments.correlation, np.clip(scatter / np.outer(scale, scale), -1, 1))


# ----------------------------------------------------------------------------- Kalman


def test_kalman_predict_fast_check_keeps_the_results() -> None:
    rng = np.random.default_rng(6)
    for scale in (1.0, 1e20, 1e49, 1e60):
        fast = ObjectiveFilter(3)
        F = np.eye(3) * 0.5 + rng.standard_normal((3, 3)) * 0.01
        offset = rng.standard_normal(3) * scale
        Q = np.eye(3) * 1e-3 * scale
        fast.predict(F, offset, Q)
        reference = ObjectiveFilter(3)
        reference._kf.predict(u=offset.reshape(3, 1), B=np.eye(3), F=F, Q=Q)
        assert reference._stabilize()
        assert np.array_equal(fast.mean, reference.mean)
        assert np.array_equal(fast.covariance, reference.covariance)
    with pytest.raises(NumericalError):
        ObjectiveFilter(3).predict(np.eye(3), np.array([0.0, math.inf, 0.0]), np.eye(3))


def test_kalman_written_out_predict_and_update_equal_filterpy() -> None:
    """The hot path's predict and full update give filterpy's KalmanFilter numbers exactly."""
    from filterpy.kalman import KalmanFilter

    rng = np.random.default_rng(11)
    for d in (1, 3, 6):
        noise = rng.uniform(0.005, 0.05, d)
        fast = ObjectiveFilter(d, measurement_noise=noise)
        reference = KalmanFilter(dim_x=d, dim_z=d, dim_u=d)
        reference.x = np.full((d, 1), 0.5)
        reference.P = np.eye(d)
        reference.R = np.diag(noise)
        for _ in range(200):
            F = np.eye(d) - 0.3 * np.eye(d) + 0.05 * rng.standard_normal((d, d))
            offset = 0.1 * rng.standard_normal(d)
            root = 0.03 * rng.standard_normal((d, d))
            Q = root @ root.T + 1e-6 * np.eye(d)
            fast.predict(F, offset, Q)
            reference.predict(u=offset.reshape(d, 1), B=np.eye(d), F=F, Q=Q)
            P = (reference.P + reference.P.T) * 0.5
            assert np.array_equal(fast.mean, reference.x[:, 0])
            np.testing.assert_allclose(fast.covariance, P, rtol=0, atol=1e-12)
            reference.P = fast.covariance  # same starting point (symmetrized and floored)
            y = rng.random(d)
            assert fast.update(y.tolist()).all()
            reference.update(y.reshape(d, 1), R=np.diag(noise), H=np.eye(d))
            assert np.array_equal(fast.mean, reference.x[:, 0])
            np.testing.assert_allclose(fast.covariance, reference.P, rtol=0, atol=1e-12)
            assert np.array_equal(fast.innovation, reference.y[:, 0])
            reference.P = fast.covariance


# ----------------------------------------------------------------------------- session


def test_session_diagnostics_match_the_estimators() -> None:
    controller = Controller(preset="paper")
    session = controller.session("hot")
    rng = np.random.default_rng(7)
    x = np.full(3, 0.5)
    for _ in range(120):
        x = np.clip(x + 0.3 * (np.array([0.7, 0.2, 0.8]) - x) + 0.05 * rng.standard_normal(3), 0, 1)
        decision = session.update(dict(zip(controller.policy.objectives, x.tolist(), strict=True)))
    tracker = session._est.interference
    matrix = tracker.matrix()
    assert decision.diagnostics["interference.min"] == off_diagonal_minimum(matrix)
    names = controller.policy.objectives
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            if i != j:
                assert decision.diagnostics[f"interference.{first}.{second}"] == matrix[i, j]
    strategy = controller.policy.strategies[decision.strategy]
    assert decision.prompt == strategy.render(list(names), decision.focus)
    assert decision.diagnostics["drift.r2"] == session._est.drift[decision.previous_strategy].r2


def _textbook_scalar_rls(
    n: int, forgetting: float, max_trace: float, data: list[tuple[list[float], float]]
) -> tuple[list[float], list[list[float]]]:
    """ScalarRLS's recursion as plain index loops (the reference for the written-out paths)."""
    theta = [0.0] * n
    cov = [[100.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for phi, target in data:
        gain = []
        for i in range(n):
            total = 0.0
            for j in range(n):
                total += cov[i][j] * phi[j]
            gain.append(total)
        denom = forgetting
        for i in range(n):
            denom += phi[i] * gain[i]
        scale = 1.0 / math.sqrt(denom)
        w = [g * scale for g in gain]
        prediction = 0.0
        for i in range(n):
            prediction += theta[i] * phi[i]
        error = (prediction - target) * scale
        theta = [theta[i] - error * w[i] for i in range(n)]
        cov = [[cov[i][j] - w[i] * w[j] for j in range(n)] for i in range(n)]
        trace = 0.0
        for i in range(n):
            trace += cov[i][i]
        if trace / forgetting > max_trace:
            factor = max_trace / trace
        elif forgetting != 1.0:
            factor = 1.0 / forgetting
        else:
            factor = 1.0
        if factor != 1.0:
            cov = [[value * factor for value in row] for row in cov]
    return theta, cov


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize(("forgetting", "max_trace"), [(1.0, 1e6), (0.98, 1e6), (0.9, 350.0)])
def test_scalar_rls_written_out_paths_equal_the_loops(
    n: int, forgetting: float, max_trace: float
) -> None:
    rng = np.random.default_rng(n)
    data: list[tuple[list[float], float]] = []
    for k in range(2000):
        s = float(rng.random()) if k % 97 else 0.0
        phi = [s * (1.0 - s), -s * s, 1.0] if n == 3 else [1.0, s]
        data.append((phi, float(rng.normal(0.0, 0.1)) if k % 89 else -0.0))
    rls = ScalarRLS(n, forgetting=forgetting, max_trace=max_trace)
    for phi, target in data:
        rls.update(phi, target)
    theta, cov = _textbook_scalar_rls(n, forgetting, max_trace, data)
    assert rls.theta == theta
    assert rls.covariance == cov
    probe = [float(v) for v in rng.standard_normal(n)]
    leverage = 0.0
    for j in range(n):
        column = 0.0
        for i in range(n):
            column += probe[i] * cov[i][j]
        leverage += column * probe[j]
    assert rls.quadratic(probe) == leverage


def test_kalman_gershgorin_shortcut_keeps_the_guard_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import steerloop.estimators.kalman as kalman_module

    rng = np.random.default_rng(7)
    cases = []
    for k in range(400):
        dim = 1 + k % 4
        root = rng.standard_normal((dim, dim)) * 10.0 ** rng.uniform(-7, 2)
        covariance = root @ root.T + np.diag(rng.uniform(0.0, 1.0, dim)) * 10.0 ** rng.uniform(
            -14, 0
        )
        cases.append((dim, covariance, rng.uniform(0.0, 1.0, dim)))

    def run() -> list[tuple[bytes, bool]]:
        out = []
        for dim, covariance, mean in cases:
            kf = ObjectiveFilter(dim, measurement_noise=0.01)
            kf._kf.x = mean.reshape(dim, 1).copy()
            kf._kf.P = covariance.copy()
            assert kf._stabilize()
            out.append((np.asarray(kf._kf.P).tobytes(), kf._safe))
        return out

    fast = run()
    monkeypatch.setattr(kalman_module, "_GERSHGORIN_MAX_DIM", 0)
    assert fast == run()


def test_condition_bound_bounds_cond2_and_keeps_the_equilibrium(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import steerloop.estimators.drift as drift_module
    from steerloop.estimators.drift import DriftModel

    for matrix in _matrices(11):
        bound = _linalg.condition_bound(matrix)
        if matrix.shape[0] > 3:
            assert bound == math.inf
        elif math.isfinite(bound):
            assert np.linalg.cond(matrix) <= bound * (1.0 + 1e-12)
    assert _linalg.condition_bound(np.zeros((3, 3))) == math.inf
    assert _linalg.condition_bound(np.array([[np.nan, 0.0], [0.0, 1.0]])) == math.inf

    rng = np.random.default_rng(5)

    def equilibria() -> list[bytes | None]:
        out: list[bytes | None] = []
        for k in range(120):
            dim = 1 + k % 3
            model = DriftModel(dim, forgetting=0.98, warmup=dim + 2)
            A = rng.standard_normal((dim, dim)) * 0.5 - 0.5 * np.eye(dim)
            if k % 10 == 0:
                A[0] = A[-1] * (1.0 + 1e-10)  # nearly singular
            x = rng.uniform(0.0, 1.0, dim)
            for _ in range(30):
                following = x + A @ x + 0.1 + 0.01 * rng.standard_normal(dim)
                model.update(x, following)
                x = np.clip(following, -5.0, 5.0)
            solution = model.equilibrium
            out.append(None if solution is None else solution.tobytes())
        return out

    state = rng.bit_generator.state
    fast = equilibria()
    monkeypatch.setattr(drift_module, "_CONDITION_BOUND_LIMIT", -1.0)
    rng.bit_generator.state = state
    assert fast == equilibria()
