"""Tests of steerloop.analysis.plots (PNG files; the error when matplotlib is missing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from steerloop.analysis import fit_trajectories
from steerloop.analysis.plots import PLOT_FILES, require_matplotlib, write_plots
from steerloop.simulate import PAPER_STRATEGIES, paper_environment, rollout_arrays


def test_write_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = rollout_arrays(
        paper_environment(), PAPER_STRATEGIES, sessions=10, steps=20, rng=np.random.default_rng(0)
    )
    report = fit_trajectories(data)
    paths = write_plots(report, data, tmp_path / "out", reference_rates={"feature_focused": 1.29})
    assert [p.name for p in paths] == list(PLOT_FILES)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"steerloop\[plot\]"):
        require_matplotlib()
