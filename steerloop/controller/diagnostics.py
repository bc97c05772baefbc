"""The diagnostics namespace: the names a session reports and policy conditions read.

The names, kinds and categorical values are defined in :mod:`steerloop.policies.metrics`
and re-exported here. A session's :class:`~steerloop.controller.session.Decision` carries
``diagnostics``, a flat mapping from these names to a float or a string. Missing or
not-yet-estimated values are ``None`` (a condition on a ``None`` metric is false). Policies
are validated against :func:`metric_kinds`, so a typo in a rule is a load-time error, not a
silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping

# The namespace itself lives in the policies layer (rules are written against it); it is
# re-exported here for the controller and for code that imported it from this module.
from steerloop.policies.metrics import (
    CATEGORICAL_VALUES,
    Diagnostics,
    DiagnosticValue,
    MetricKind,
    metric_kinds,
)

__all__ = [
    "CATEGORICAL_VALUES",
    "DiagnosticValue",
    "Diagnostics",
    "LazyDiagnostics",
    "MetricKind",
    "metric_kinds",
]


class LazyDiagnostics(Mapping[str, DiagnosticValue]):
    """A diagnostics mapping whose costly entries are computed on first read.

    ``values`` holds the entries computed during the step; ``lazy`` maps names to
    zero-argument functions that must capture the numbers they need *at that step* (the
    session keeps changing). Each is called at most once. Iteration, ``len`` and equality
    include the lazy names, so ``dict(diagnostics)`` computes everything.

    Examples
    --------
    >>> calls = []
    >>> diagnostics = LazyDiagnostics({"step": 1.0}, {"slow": lambda: calls.append(1) or 2.0})
    >>> diagnostics["step"], len(diagnostics), calls
    (1.0, 2, [])
    >>> diagnostics.get("slow"), diagnostics["slow"], calls
    (2.0, 2.0, [1])
    """

    __slots__ = ("_lazy", "_values")

    def __init__(
        self,
        values: dict[str, DiagnosticValue],
        lazy: dict[str, Callable[[], DiagnosticValue]] | None = None,
    ) -> None:
        self._values = values
        self._lazy = lazy or {}

    def __getitem__(self, name: str) -> DiagnosticValue:
        try:
            return self._values[name]
        except KeyError:
            compute = self._lazy.pop(name)  # KeyError for unknown names, as a dict would
            value = self._values[name] = compute()
            return value

    def get(self, name: str, default: DiagnosticValue = None) -> DiagnosticValue:  # type: ignore[override]
        """Like ``dict.get`` (computes a lazy entry on first read)."""
        try:
            return self._values[name]
        except KeyError:
            if name in self._lazy:
                return self[name]
            return default

    @property
    def computed(self) -> Mapping[str, DiagnosticValue]:
        """The entries computed so far (the mapping itself: read, do not modify)."""
        return self._values

    @property
    def pending(self) -> Collection[str]:
        """Names of the lazy entries not computed yet (a live view)."""
        return self._lazy.keys()

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        yield from list(self._values)
        yield from list(self._lazy)

    def __len__(self) -> int:
        return len(self._values) + len(self._lazy)

    def __repr__(self) -> str:
        return f"LazyDiagnostics({dict(self)!r})"
