"""Offline analysis of logged loops: the JSONL trajectory format and the papers' batch fit.

See :mod:`steerloop.analysis.trajectory` for the file format,
:mod:`steerloop.analysis.recorder` for recording a live loop, :mod:`steerloop.analysis.fit`
for what :func:`fit_trajectories` computes (with :mod:`~steerloop.analysis.severity` and
:mod:`~steerloop.analysis.uncertainty`). Plots live in :mod:`steerloop.analysis.plots` and
:mod:`steerloop.analysis.timeline` (extra ``plot``).
"""

from steerloop.analysis.fit import (
    AnalysisReport,
    DriftFit,
    InterferencePair,
    SeverityFit,
    StrategyFit,
    fit_drift,
    fit_severity,
    fit_trajectories,
    increment_correlation,
)
from steerloop.analysis.recorder import TrajectoryRecorder
from steerloop.analysis.trajectory import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TrajectoryArrays,
    TrajectoryHeader,
    TrajectoryLog,
    TrajectoryRecord,
    _moved,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "AnalysisReport",
    "DriftFit",
    "InterferencePair",
    "SeverityFit",
    "StrategyFit",
    "TrajectoryArrays",
    "TrajectoryHeader",
    "TrajectoryLog",
    "TrajectoryRecord",
    "TrajectoryRecorder",
    "fit_drift",
    "fit_severity",
    "fit_trajectories",
    "increment_correlation",
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
]


def __getattr__(name: str) -> object:
    return _moved(name, __name__)
