"""One step's diagnostics: the snapshot that rules, metrics and events read.

:func:`step_diagnostics` turns what a step learnt (:class:`~steerloop.controller.models.
Learned`) into the flat namespace of :mod:`steerloop.policies.metrics`. Estimates are reported
only when they mean something (docs/architecture.md, "Honest estimates"):

* ``drift.rate``/``drift.regime`` once the running strategy's fit rests on at least
  ``estimation.min_effective_samples`` effective transitions and the rate's standard error
  (first-order eigenvalue perturbation, :func:`~steerloop.estimators.spectrum.max_real_stderr`)
  is at most :data:`RATE_MAX_STDERR` — a rate known only to ±0.25 per step is not known; the
  regime "unstable" needs max Re λ beyond two of those standard errors. The residual variance
  behind that standard error is floored at :data:`RESIDUAL_VARIANCE_FLOOR`, so constant
  scores (zero residuals, nothing learnt) report no rate rather than an exact one;
* ``interference.*`` once the increments' effective sample size reaches the same threshold,
  entry by entry only where both increments vary;
* ``drift.r2`` is ``None`` on constant targets (undefined), else in [0, 1].

Costly entries (the severity first-passage time, a quadrature; the plan) are computed on
first read (:class:`LazyDiagnostics`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Collection, Iterator, Mapping

import numpy as np
from numpy.typing import NDArray

from steerloop.estimators.drift import DriftFit
from steerloop.estimators.spectrum import analyze_spectrum, max_real_stderr
from steerloop.policies.metrics import DiagnosticValue

__all__ = ["RATE_MAX_STDERR", "LazyDiagnostics", "drift_diagnostics", "interference_diagnostics"]

#: drift.rate and drift.regime are reported only when se(rate) is at most this (per step).
RATE_MAX_STDERR = 0.25
#: Floor of the residual variance behind se(rate), per unit Δt² (a residual sd of 0.01 a step):
#: scores are never that exact, and without it a direction the data never moved (constant
#: scores: zero residuals) would look perfectly known.
RESIDUAL_VARIANCE_FLOOR = 1e-4

FloatArray = NDArray[np.float64]


class LazyDiagnostics(Mapping[str, DiagnosticValue]):
    """A diagnostics mapping whose costly entries are computed on first read.

    ``values`` holds the entries computed during the step; ``lazy`` maps names to
    zero-argument functions that capture the numbers they need *at that step*. Each is called
    at most once (thread-safe). Iteration, ``len`` and equality include the lazy names, so
    ``dict(diagnostics)`` computes everything.

    Examples
    --------
    >>> calls = []
    >>> diagnostics = LazyDiagnostics({"step": 1.0}, {"slow": lambda: calls.append(1) or 2.0})
    >>> diagnostics["step"], len(diagnostics), calls
    (1.0, 2, [])
    >>> diagnostics.get("slow"), diagnostics["slow"], calls
    (2.0, 2.0, [1])
    """

    __slots__ = ("_lazy", "_lock", "_values")

    def __init__(
        self,
        values: dict[str, DiagnosticValue],
        lazy: dict[str, Callable[[], DiagnosticValue]] | None = None,
    ) -> None:
        self._values = values
        self._lazy = lazy or {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> DiagnosticValue:
        try:
            return self._values[name]
        except KeyError:
            with self._lock:
                if name in self._values:
                    return self._values[name]
                compute = self._lazy[name]  # KeyError for unknown names, as a dict would
                value = compute()
                self._values[name] = value
                del self._lazy[name]
                return value

    def get(self, name: str, default: DiagnosticValue = None) -> DiagnosticValue:  # type: ignore[override]
        """Like ``dict.get`` (computes a lazy entry on first read)."""
        if name in self._values or name in self._lazy:
            return self[name]
        return default

    @property
    def pending(self) -> Collection[str]:
        """Names of the lazy entries not computed yet."""
        return tuple(self._lazy)

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        yield from list(self._values)
        yield from list(self._lazy)

    def __len__(self) -> int:
        return len(self._values) + len(self._lazy)

    def __repr__(self) -> str:
        return f"LazyDiagnostics({dict(self)!r})"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def drift_diagnostics(
    fit: DriftFit | None, objectives: tuple[str, ...], min_effective: float
) -> dict[str, DiagnosticValue]:
    """``drift.*`` entries of the running strategy's fit (module docstring)."""
    out: dict[str, DiagnosticValue] = {
        "drift.rate": None,
        "drift.rate_se": None,
        "drift.max_real": None,
        "drift.regime": "unknown",
        "drift.r2": None,
        "drift.samples": None if fit is None else fit.effective_size,
    }
    equilibrium = None if fit is None else fit.equilibrium
    for index, name in enumerate(objectives):
        out[f"drift.equilibrium.{name}"] = (
            None if equilibrium is None else _finite(float(equilibrium[index]))
        )
    if fit is None:
        return out
    out["drift.r2"] = _finite(fit.r2)
    parameters = fit.parameter_covariance()
    if fit.effective_size < min_effective or parameters is None:
        return out
    residual, scale = parameters
    d = len(objectives)
    floored = residual + np.eye(d) * RESIDUAL_VARIANCE_FLOOR / (fit.dt * fit.dt)
    stderr = max_real_stderr(fit.A, floored, scale[:d, :d])
    if not stderr <= RATE_MAX_STDERR:
        return out
    report = analyze_spectrum(fit.A, dt=fit.dt, equilibrium=equilibrium, max_real_se=stderr)
    out["drift.rate"] = _finite(report.rate)
    out["drift.rate_se"] = stderr
    out["drift.max_real"] = _finite(report.max_real)
    out["drift.regime"] = report.regime
    return out


def interference_diagnostics(
    matrix: FloatArray | None, objectives: tuple[str, ...]
) -> dict[str, DiagnosticValue]:
    """``interference.*`` entries: each defined pair, and the most negative (module doc)."""
    out: dict[str, DiagnosticValue] = {"interference.min": None}
    lowest: float | None = None
    for i, first in enumerate(objectives):
        for j, second in enumerate(objectives):
            if i == j:
                continue
            value = None if matrix is None else float(matrix[i, j])
            value = None if value is None or math.isnan(value) else value
            out[f"interference.{first}.{second}"] = value
            if value is not None and j > i and (lowest is None or value < lowest):
                lowest = value
    out["interference.min"] = lowest
    return out
