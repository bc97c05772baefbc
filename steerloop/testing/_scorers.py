"""Scorer doubles of :mod:`steerloop.testing`: scripted, raising, hanging and NaN scorers."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["HangingScorer", "NaNScorer", "RaisingScorer", "ScriptedScorer"]

# --------------------------------------------------------------------------------- scorers


def _names(objectives: str | Iterable[str]) -> tuple[str, ...]:
    names = (objectives,) if isinstance(objectives, str) else tuple(objectives)
    if not names:
        raise ValueError("a scorer needs at least one objective")
    return names


class ScriptedScorer:
    """A :class:`~steerloop.scoring.Scorer` that returns scripted scores, one entry per call.

    Parameters
    ----------
    script : iterable of mappings
        The value of each call in turn (``objective -> value``); once the script is used up,
        every further call returns its last entry. Values are returned as given, so a script
        may hold NaN, out-of-range or missing objectives to exercise the validation.
    objectives : str or iterable of str, optional
        The objectives this scorer declares (default: every key of the script, in order of
        appearance).
    name : str
        The scorer's name.

    Attributes
    ----------
    calls : int
        Calls so far.

    Examples
    --------
    >>> from steerloop.scoring import CompositeScorer
    >>> scorer = ScriptedScorer([{"security": 0.9}, {"security": float("nan")}])
    >>> composite = CompositeScorer([scorer], objectives=["security"])
    >>> composite.score("response").scores
    {'security': 0.9}
    >>> result = composite.score("response")          # NaN becomes a missing value
    >>> result.scores, [failure.reason for failure in result.failures]
    ({}, ['non_finite'])
    """

    def __init__(
        self,
        script: Iterable[Mapping[str, float]],
        *,
        objectives: str | Iterable[str] | None = None,
        name: str = "scripted",
    ) -> None:
        self._script = [dict(entry) for entry in script]
        if not self._script:
            raise ValueError("ScriptedScorer needs at least one scripted entry")
        keys = dict.fromkeys(key for entry in self._script for key in entry)
        self.objectives: tuple[str, ...] = _names(keys if objectives is None else objectives)
        self.name = name
        self.calls = 0
        self._lock = threading.Lock()

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """The next scripted entry (the last one once the script is used up)."""
        del response, context
        with self._lock:
            entry = self._script[min(self.calls, len(self._script) - 1)]
            self.calls += 1
        return dict(entry)


class RaisingScorer:
    """A :class:`~steerloop.scoring.Scorer` whose every call raises ``error``.

    Parameters
    ----------
    objectives : str or iterable of str
        The objectives it declares (each call leaves them missing).
    error : BaseException, optional
        What to raise (default ``RuntimeError("scorer failed")``); a
        :class:`~steerloop.errors.ScorerError` is reported with its own reason.
    name : str
        The scorer's name.

    Examples
    --------
    >>> from steerloop.scoring import CompositeScorer
    >>> composite = CompositeScorer([RaisingScorer("security")], objectives=["security"])
    >>> result = composite.score("response")
    >>> result.scores, result.failures[0].reason
    ({}, 'raised')
    """

    def __init__(
        self,
        objectives: str | Iterable[str],
        *,
        error: BaseException | None = None,
        name: str = "raising",
    ) -> None:
        self.objectives = _names(objectives)
        self.name = name
        self.error = error if error is not None else RuntimeError("scorer failed")
        self.calls = 0

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Raise :attr:`error`."""
        del response, context
        self.calls += 1
        raise self.error


class HangingScorer:
    """A :class:`~steerloop.scoring.Scorer` whose calls block until :meth:`release`.

    Give it a longer block than the composite's timeout to test a scorer that hangs: the
    composite reports ``timeout`` and abandons the call (it keeps running in its daemon
    thread). Call :meth:`release` at the end of the test so that no thread stays blocked;
    released calls (and calls made after it) return ``scores``.

    Parameters
    ----------
    objectives : str or iterable of str
        The objectives it declares.
    seconds : float
        The longest a call blocks (default one hour).
    scores : mapping, optional
        What a released call returns (default 0.5 for every objective).
    name : str
        The scorer's name.

    Examples
    --------
    >>> from steerloop.scoring import CompositeScorer
    >>> hanging = HangingScorer("security")
    >>> composite = CompositeScorer([hanging], objectives=["security"], timeout=0.05)
    >>> result = composite.score("response")
    >>> result.scores, result.failures[0].reason
    ({}, 'timeout')
    >>> hanging.release()
    """

    def __init__(
        self,
        objectives: str | Iterable[str],
        *,
        seconds: float = 3600.0,
        scores: Mapping[str, float] | None = None,
        name: str = "hanging",
    ) -> None:
        self.objectives = _names(objectives)
        self.name = name
        self.seconds = float(seconds)
        self.scores = dict(scores) if scores is not None else dict.fromkeys(self.objectives, 0.5)
        self._released = threading.Event()

    def release(self) -> None:
        """Let every blocked call (and every later one) return at once."""
        self._released.set()

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Block until released or :attr:`seconds` passed, then return :attr:`scores`."""
        del response, context
        self._released.wait(self.seconds)
        return dict(self.scores)


class NaNScorer:
    """A :class:`~steerloop.scoring.Scorer` that returns NaN for every objective it declares.

    Examples
    --------
    >>> from steerloop.scoring import CompositeScorer
    >>> composite = CompositeScorer([NaNScorer("security")], objectives=["security"])
    >>> result = composite.score("response")          # missing, never NaN in the filter
    >>> result.scores, result.failures[0].reason
    ({}, 'non_finite')
    """

    def __init__(self, objectives: str | Iterable[str], *, name: str = "nan") -> None:
        self.objectives = _names(objectives)
        self.name = name

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """NaN for every objective."""
        del response, context
        return dict.fromkeys(self.objectives, math.nan)
