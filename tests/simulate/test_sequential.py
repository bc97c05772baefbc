"""Tests of steerloop.simulate.sequential: the SDE paper's open question 3 (arXiv 2510.10739)."""

from __future__ import annotations

import numpy as np
import pytest

from steerloop.simulate.sequential import interference_environment, sequential_vs_simultaneous


def test_interference_environment_mechanism() -> None:
    """Focus strategies: negatively correlated increments ∝ κ; simultaneous slows as κ → ½."""
    weak = interference_environment(0.0)
    strong = interference_environment(0.45)
    assert strong.equilibrium("adaptive_integration") is not None
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.6, size=(4000, 3))
    nxt = strong.step(x, "security_focused", rng)
    corr = np.corrcoef((nxt - x).T)
    assert corr[0, 1] < -0.5 and corr[0, 2] < -0.5
    slow = -np.linalg.eigvals(np.asarray(strong.strategies["adaptive_integration"].A)).real.max()
    fast = -np.linalg.eigvals(np.asarray(weak.strategies["adaptive_integration"].A)).real.max()
    assert slow < 0.3 * fast
    with pytest.raises(ValueError):
        interference_environment(-0.1)


def test_sequential_vs_simultaneous_small() -> None:
    study = sequential_vs_simultaneous(strengths=(0.0, 0.45), sessions=8, steps=40, seed=2)
    assert study.strengths == [0.0, 0.45]
    for report in study.experiments:
        assert set(report.policies) == {"sequential", "simultaneous"}
        assert report.policies["sequential"].kind == "steered"
    strong = study.experiments[1].policies
    assert strong["sequential"].sequential_share > 0.5
    assert study.winner(0.45) in {"sequential", "simultaneous"}


def test_the_old_import_path_names_the_new_one() -> None:
    import steerloop.simulate.experiment as experiment

    with pytest.raises(AttributeError, match=r"moved to steerloop\.simulate\.sequential"):
        _ = experiment.sequential_vs_simultaneous  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'InterferenceStudy'"):
        from steerloop.simulate.experiment import InterferenceStudy  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = experiment.no_such_name  # type: ignore[attr-defined]
