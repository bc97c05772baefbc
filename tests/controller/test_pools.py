"""FleetPool: pooled, discounted sufficient statistics per strategy, lent as a bounded prior."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from steerloop.controller.pools import FleetPool, PoolState
from steerloop.estimators.rls import LeastSquaresStats


def transitions(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        before = rng.random(2)
        out.append((before, before + 0.3 * (0.5 - before) + 0.01 * rng.standard_normal(2)))
    return out


def batch_stats(pairs: list[tuple[np.ndarray, np.ndarray]], forgetting: float) -> LeastSquaresStats:  # type: ignore[type-arg]
    """The discounted statistics written out as sums (observation k of n has λ^(n−1−k))."""
    n = len(pairs)
    weights = [forgetting ** (n - 1 - k) for k in range(n)]
    phis = [np.append(before, 1.0) for before, _ in pairs]
    targets = [after - before for before, after in pairs]
    return LeastSquaresStats(
        sum(w * np.outer(p, p) for w, p in zip(weights, phis, strict=True)),
        sum(w * np.outer(p, z) for w, p, z in zip(weights, phis, targets, strict=True)),
        sum(w * np.outer(z, z) for w, z in zip(weights, targets, strict=True)),
        sum(weights),
        sum(w * w for w in weights),
        n,
    )


def assert_stats_close(a: LeastSquaresStats, b: LeastSquaresStats) -> None:
    for name in ("information", "cross", "target_scatter"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-15)
    assert a.weight == pytest.approx(b.weight, rel=1e-12)
    assert a.weight_sq == pytest.approx(b.weight_sq, rel=1e-12)
    assert a.count == b.count


def test_the_pool_is_the_discounted_sum_over_transitions() -> None:
    pool = FleetPool(2, memory=50.0)
    pairs = transitions(0, 30)
    for index, (before, after) in enumerate(pairs):
        pool.add("fast", before, after, 1.0, first=index == 0)
    assert pool.sessions == 1
    lam = 1.0 - 1.0 / 50.0
    assert pool.transitions("fast") == pytest.approx((1 - lam**30) / (1 - lam), rel=1e-12)
    assert pool.transitions("slow") == 0.0
    assert_stats_close(pool.to_state().strategies["fast"], batch_stats(pairs, lam))


def test_dt_scales_the_targets() -> None:
    pool = FleetPool(2)
    pool.add("x", np.array([0.2, 0.4]), np.array([0.3, 0.2]), 0.5, first=True)
    cross = pool.to_state().strategies["x"].cross
    np.testing.assert_allclose(cross[-1], [0.2, -0.4], rtol=1e-12)  # φ's 1 times Δy / Δt


def test_the_prior_lends_at_most_prior_weight_transitions() -> None:
    pool = FleetPool(2, memory=1e9, prior_weight=10.0)
    assert pool.prior("fast") is None
    pairs = transitions(1, 40)
    for before, after in pairs[:4]:
        pool.add("fast", before, after, 1.0, first=False)
    small = pool.prior("fast")
    lam = 1.0 - 1e-9
    assert small is not None
    assert small.weight == pytest.approx(sum(lam**k for k in range(4)), rel=1e-12)  # all of it
    assert pool.prior("fast") is small  # cached while unchanged
    for before, after in pairs[4:]:
        pool.add("fast", before, after, 1.0, first=False)
    lent = pool.prior("fast")
    assert lent is not None and lent is not small
    assert lent.weight == pytest.approx(10.0, rel=1e-12)
    whole = pool.to_state().strategies["fast"]
    np.testing.assert_allclose(
        lent.information, whole.information * 10.0 / whole.weight, rtol=1e-12
    )
    # scaling keeps the estimate and shrinks the weight: same ratio of cross to information
    np.testing.assert_allclose(
        np.linalg.solve(lent.information, lent.cross),
        np.linalg.solve(whole.information, whole.cross),
        rtol=1e-9,
    )
    assert FleetPool(2, prior_weight=0.0).prior("fast") is None


def test_merge_equals_adding_the_transitions_one_by_one() -> None:
    first, second = transitions(2, 12), transitions(3, 9)
    lam = 1.0 - 1.0 / 40.0
    sequential = FleetPool(2, memory=40.0)
    for before, after in first + second:
        sequential.add("x", before, after, 1.0, first=False)
    base = FleetPool(2, memory=40.0)
    for index, (before, after) in enumerate(first):
        base.add("x", before, after, 1.0, first=index == 0)
    worker = FleetPool(2, memory=40.0)
    for index, (before, after) in enumerate(second):
        worker.add("x", before, after, 1.0, first=index == 0)
    version = base.version
    base.merge(worker.to_state())
    assert base.version > version
    assert base.sessions == 2
    assert_stats_close(base.to_state().strategies["x"], sequential.to_state().strategies["x"])
    assert_stats_close(base.to_state().strategies["x"], batch_stats(first + second, lam))


def test_load_replaces_the_contents() -> None:
    source = FleetPool(2)
    for before, after in transitions(4, 5):
        source.add("x", before, after, 1.0, first=False)
    target = FleetPool(2)
    target.add("y", np.zeros(2), np.ones(2), 1.0, first=True)
    target.load(PoolState(source.to_state().strategies, 7))
    assert (target.sessions, target.transitions("y")) == (7, 0.0)
    assert target.transitions("x") == source.transitions("x")


def test_concurrent_adds_lose_nothing() -> None:
    pool = FleetPool(2, memory=1e12)
    pairs = transitions(5, 50)

    def worker() -> None:
        for before, after in pairs:
            pool.add("x", before, after, 1.0, first=False)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pool.to_state().strategies["x"].count == 200


@pytest.mark.parametrize(("dim", "memory"), [(0, 10.0), (2, 0.5)])
def test_bad_settings_are_rejected(dim: int, memory: float) -> None:
    with pytest.raises(ValueError):
        FleetPool(dim, memory=memory)
