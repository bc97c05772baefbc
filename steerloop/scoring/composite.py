"""The fail-open composite that runs a policy's scorers, concurrently and bounded.

The :class:`CompositeScorer` runs all scorers of a policy on each response, each with its
own timeout, and turns every way a scorer can fail into a *missing* value plus a counted
:class:`~steerloop.scoring.protocol.ScorerFailure` — never 0, never NaN — so the Kalman
filter only ever sees valid numbers and the agent loop never sees a scorer exception
(unless ``strict=True``).

Concurrency, threads and timeouts
---------------------------------
One composite serves every session and thread of a controller. Each scorer may have up to
``concurrency`` calls running at once (default 32: at least the worker count of
``concurrent.futures`` and ``asyncio.to_thread`` defaults, ``min(32, cpus + 4)``), from any
mix of threads and coroutines; a call that finds every slot taken waits for one within its
own timeout. The synchronous :meth:`CompositeScorer.score` runs each scorer call in a daemon
thread and waits for it until the timeout. A Python thread cannot be killed: a call that
times out gives its slot back and keeps running, *abandoned* (counted in
:attr:`CompositeScorer.abandoned_calls`); once ``max_abandoned`` abandoned calls of a
scorer are still running, its new calls are reported ``busy`` without starting, until one
ends. So a hung call holds one slot until its timeout, and a scorer that hangs for good
holds at most ``concurrency + max_abandoned`` threads, however many calls arrive. The
threads are daemon threads so that a hung scorer never blocks interpreter exit. The
asynchronous :meth:`CompositeScorer.ascore` awaits a scorer's own ``ascore`` coroutine when
it has one (cancelled on timeout; one that swallows its cancellation is abandoned the same
way) and otherwise runs ``score`` in such a thread; it waits for slots without blocking the
event loop.

Nothing in this package logs; failures are data (:attr:`ScoreResult.failures`,
:attr:`CompositeScorer.failure_counts`) for the telemetry layer to report.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, Protocol

from steerloop.errors import ScorerError
from steerloop.scoring._imports import import_object
from steerloop.scoring._slots import Admission, Call, Slots, start_daemon
from steerloop.scoring._validate import Outcome, check
from steerloop.scoring.callables import CallableScorer
from steerloop.scoring.protocol import Scorer, ScoreResult, ScorerFailure

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_MAX_ABANDONED", "DEFAULT_TIMEOUT", "CompositeScorer"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 32
DEFAULT_MAX_ABANDONED = 8


class ScorerSpecLike(Protocol):
    """What :meth:`CompositeScorer.from_specs` reads of a policy's scorer entry."""

    @property
    def use(self) -> str: ...

    @property
    def options(self) -> Mapping[str, Any]: ...

    @property
    def timeout(self) -> float: ...


def _per_scorer(
    value: float | Mapping[str, float], scorers: Sequence[Scorer], default: float, what: str
) -> dict[str, float]:
    found: dict[str, float] = {}
    for scorer in scorers:
        raw = value.get(scorer.name, default) if isinstance(value, Mapping) else value
        number = float(raw)
        if not (number > 0 and math.isfinite(number)):
            raise ScorerError(scorer.name, "config", f"{what} must be > 0, got {raw}")
        found[scorer.name] = number
    return found


def _validate_scorers(scorers: Sequence[Scorer], objectives: Sequence[str]) -> None:
    names: set[str] = set()
    for scorer in scorers:
        if not isinstance(scorer, Scorer):
            raise ScorerError(
                repr(type(scorer).__name__),
                "config",
                "does not satisfy the Scorer protocol (needs `name`, `objectives` and "
                "`score(response, context)`)",
            )
        if scorer.name in names:
            raise ScorerError(
                scorer.name,
                "config",
                "two scorers share this name; give one of them another name (name=...)",
            )
        names.add(scorer.name)
        if not set(objectives).intersection(scorer.objectives):
            raise ScorerError(
                scorer.name,
                "config",
                f"covers {list(scorer.objectives)}, none of the policy objectives "
                f"{list(objectives)}; rename its objective (objective=...) or drop it",
            )


class CompositeScorer:
    """Run several scorers on one response and collect valid scores (fail open).

    Parameters
    ----------
    scorers
        The scorers. Names must be unique; each must cover at least one of ``objectives``.
    objectives
        The policy's objectives; values for other keys are ignored and counted
        (``unknown_objective``).
    timeout
        Seconds each scorer may take (waiting for a slot included), as one number or a
        mapping ``scorer name -> seconds`` (scorers not in the mapping get 30 s).
    strict
        Raise :class:`~steerloop.errors.ScorerError` for the first failure of a call instead
        of recording it. Failures are counted either way.
    concurrency
        Calls of one scorer that may run at once, as one number or a mapping ``scorer name
        -> calls`` (default 32); set it at least to the number of threads or tasks that
        score at the same time, or lower for scorers that must not run more often.
    max_abandoned
        Calls of one scorer still running after their timeout beyond which its new calls
        are reported ``busy`` instead of starting another thread (default 8).

    Raises
    ------
    ScorerError
        With reason ``"config"`` when names repeat, a scorer covers none of the objectives, or
        a timeout or bound is not positive.

    Examples
    --------
    >>> composite = CompositeScorer(
    ...     [CallableScorer(lambda r: {"a": 0.5, "b": float("nan")}, ["a", "b"], name="f")],
    ...     objectives=["a", "b"],
    ... )
    >>> result = composite.score("response")
    >>> result.scores, [(f.reason, f.objectives) for f in result.failures]
    ({'a': 0.5}, [('non_finite', ('b',))])
    >>> composite.failure_counts[("f", "non_finite")]
    1
    """

    def __init__(
        self,
        scorers: Sequence[Scorer],
        *,
        objectives: Sequence[str],
        timeout: float | Mapping[str, float] = DEFAULT_TIMEOUT,
        strict: bool = False,
        concurrency: int | Mapping[str, int] = DEFAULT_CONCURRENCY,
        max_abandoned: int = DEFAULT_MAX_ABANDONED,
    ) -> None:
        self.objectives: tuple[str, ...] = tuple(objectives)
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ScorerError(
                "<composite>", "config", "objectives must be a non-empty list of unique names"
            )
        self.scorers: tuple[Scorer, ...] = tuple(scorers)
        self.strict = strict
        _validate_scorers(self.scorers, self.objectives)
        self._timeouts = _per_scorer(timeout, self.scorers, DEFAULT_TIMEOUT, "timeout")
        limits = _per_scorer(concurrency, self.scorers, DEFAULT_CONCURRENCY, "concurrency")
        if not (isinstance(max_abandoned, int) and max_abandoned > 0):
            raise ScorerError("<composite>", "config", "max_abandoned must be an int > 0")
        self._slots = {name: Slots(int(limit), max_abandoned) for name, limit in limits.items()}
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[ScorerSpecLike],
        *,
        objectives: Sequence[str],
        strict: bool = False,
        concurrency: int | Mapping[str, int] = DEFAULT_CONCURRENCY,
        max_abandoned: int = DEFAULT_MAX_ABANDONED,
    ) -> CompositeScorer:
        """Build a composite from a policy's ``scorers:`` list.

        Each spec's ``use`` is an import path (``package.module.Name``) of a class or factory,
        called with the spec's ``with`` options as keyword arguments; the spec's ``timeout``
        becomes that scorer's timeout.

        Raises
        ------
        ScorerError
            Reason ``"import"`` when ``use`` cannot be imported, ``"config"`` when calling it
            fails or its result is not a :class:`Scorer`. The message names the spec
            (``scorers[i]``) and the path.
        """
        scorers: list[Scorer] = []
        timeouts: dict[str, float] = {}
        for index, spec in enumerate(specs):
            where = f"scorers[{index}] (use: {spec.use})"
            factory = import_object(spec.use, where)
            try:
                scorer = factory(**spec.options)
            except ScorerError:
                raise
            except Exception as exc:
                raise ScorerError(
                    spec.use,
                    "config",
                    f"{where}: calling it with options {sorted(spec.options)} raised "
                    f"{type(exc).__name__}: {exc}; check the `with:` keys against its signature",
                ) from exc
            if not isinstance(scorer, Scorer):
                raise ScorerError(
                    spec.use,
                    "config",
                    f"{where}: produced a {type(scorer).__name__}, which is not a Scorer (it "
                    "needs `name`, `objectives` and `score(response, context)`)",
                )
            scorers.append(scorer)
            timeouts[scorer.name] = spec.timeout
        return cls(
            scorers,
            objectives=objectives,
            timeout=timeouts,
            strict=strict,
            concurrency=concurrency,
            max_abandoned=max_abandoned,
        )

    # ------------------------------------------------------------------ telemetry

    @property
    def failure_counts(self) -> Counter[tuple[str, str]]:
        """Cumulative failures by ``(scorer name, reason)`` (a copy)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def abandoned_calls(self) -> int:
        """Scorer calls still running after they timed out (threads cannot be killed)."""
        return sum(slots.abandoned for slots in self._slots.values())

    @property
    def abandoned_threads(self) -> int:
        """Alias of :attr:`abandoned_calls` (the name of earlier releases)."""
        return self.abandoned_calls

    @property
    def running_calls(self) -> int:
        """Scorer calls running now that have not timed out."""
        return sum(slots.running for slots in self._slots.values())

    def timeout_for(self, scorer: str) -> float:
        """The timeout in seconds of the scorer named ``scorer``."""
        return self._timeouts[scorer]

    def concurrency_for(self, scorer: str) -> int:
        """How many calls of the scorer named ``scorer`` may run at once."""
        return self._slots[scorer].limit

    def _busy(self, name: str, admission: Admission) -> Outcome:
        slots = self._slots[name]
        if admission == "stuck":
            return Outcome(
                busy=f"{slots.abandoned} earlier calls are still running after their timeout "
                f"(max_abandoned={slots.max_abandoned}); not started"
            )
        return Outcome(
            busy=f"all {slots.limit} slots stayed taken for the whole "
            f"{self._timeouts[name]:g} s timeout (concurrency={slots.limit}); not started"
        )

    # ------------------------------------------------------------------ sync path

    def _launch(
        self, scorer: Scorer, response: object, context: Mapping[str, Any]
    ) -> tuple[Call, Future[Any]]:
        call = self._slots[scorer.name].call()
        return call, start_daemon(_bind(scorer.score, response, context), call.finish)

    def score(self, response: object, context: Mapping[str, Any] | None = None) -> ScoreResult:
        """Score ``response`` with every scorer, concurrently, each within its timeout.

        Returns
        -------
        ScoreResult
            Valid scores (missing objectives absent) and the failures of this call.

        Raises
        ------
        ScorerError
            Only when ``strict=True``, for the first failure.
        """
        ctx: Mapping[str, Any] = context if context is not None else {}
        started = time.monotonic()
        running: dict[str, tuple[Call, Future[Any]]] = {}
        outcomes: dict[str, Outcome] = {}
        waiting: list[Scorer] = []
        for scorer in self.scorers:  # start what can start now, then wait for slots
            admission = self._slots[scorer.name].try_acquire()
            if admission == "ok":
                running[scorer.name] = self._launch(scorer, response, ctx)
            elif admission == "full":
                waiting.append(scorer)
            else:
                outcomes[scorer.name] = self._busy(scorer.name, admission)
        for scorer in waiting:
            admission = self._slots[scorer.name].acquire(started + self._timeouts[scorer.name])
            if admission == "ok":
                running[scorer.name] = self._launch(scorer, response, ctx)
            else:
                outcomes[scorer.name] = self._busy(scorer.name, admission)
        for name, (call, future) in running.items():
            remaining = started + self._timeouts[name] - time.monotonic()
            outcomes[name] = _wait(call, future, remaining)
        return self._finish(outcomes)

    # ------------------------------------------------------------------ async path

    async def ascore(
        self, response: object, context: Mapping[str, Any] | None = None
    ) -> ScoreResult:
        """Asynchronous :meth:`score`: native ``ascore`` coroutines, else worker threads."""
        ctx: Mapping[str, Any] = context if context is not None else {}
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(self._arun(scorer, response, ctx, started) for scorer in self.scorers)
        )
        return self._finish({s.name: o for s, o in zip(self.scorers, outcomes, strict=True)})

    async def _arun(
        self, scorer: Scorer, response: object, context: Mapping[str, Any], started: float
    ) -> Outcome:
        deadline = started + self._timeouts[scorer.name]
        admission = await self._slots[scorer.name].aacquire(deadline)
        if admission != "ok":
            return self._busy(scorer.name, admission)
        native = getattr(scorer, "ascore", None)
        threaded = not callable(native) or (
            isinstance(scorer, CallableScorer) and not scorer.is_async
        )
        if threaded:
            call, future = self._launch(scorer, response, context)
            wrapped = asyncio.wrap_future(future)
            wrapped.add_done_callback(_consume)
            return await _await_with_timeout(call, wrapped, deadline)
        call = self._slots[scorer.name].call()
        assert native is not None
        try:
            awaitable = native(response, context)
        except Exception as exc:
            call.finish()
            return Outcome(error=exc)
        if not inspect.isawaitable(awaitable):
            call.finish()
            return Outcome(value=awaitable)
        task = asyncio.ensure_future(awaitable)
        task.add_done_callback(_consume)
        task.add_done_callback(lambda _: call.finish())
        return await _await_with_timeout(call, task, deadline)

    # ------------------------------------------------------------------ validation

    def _finish(self, outcomes: Mapping[str, Outcome]) -> ScoreResult:
        collected: dict[str, list[float]] = {}
        failures: list[ScorerFailure] = []
        for scorer in self.scorers:
            outcome = outcomes[scorer.name]
            values, problems = check(scorer, outcome, self.objectives, self._timeouts[scorer.name])
            failures.extend(problems)
            for objective, value in values.items():
                collected.setdefault(objective, []).append(value)
        scores = {
            objective: math.fsum(collected[objective]) / len(collected[objective])
            for objective in self.objectives
            if objective in collected
        }
        with self._lock:
            for failure in failures:
                self._counts[(failure.scorer, failure.reason)] += 1
        if self.strict and failures:
            first = failures[0]
            raise ScorerError(first.scorer, first.reason, first.message)
        return ScoreResult(scores=scores, failures=tuple(failures))


def _wait(call: Call, future: Future[Any], remaining: float) -> Outcome:
    """The outcome of a threaded call, abandoning it when ``remaining`` seconds pass."""
    try:
        value = future.result(timeout=max(0.0, remaining))
    except FutureTimeoutError:
        if call.abandon():
            return Outcome(timed_out=True)
        return _settled(future)
    except Exception as exc:
        return Outcome(error=exc)
    except BaseException as exc:  # SystemExit & co. raised *inside* the scorer
        if future.done() and future.exception() is exc:
            return Outcome(error=exc)
        raise
    return Outcome(value=value)


def _settled(future: Future[Any]) -> Outcome:
    """The outcome of a call that returned just as its caller timed out."""
    error = future.exception(timeout=0)
    return Outcome(error=error) if error is not None else Outcome(value=future.result())


async def _await_with_timeout(call: Call, task: asyncio.Future[Any], deadline: float) -> Outcome:
    # asyncio.wait (not wait_for) so that a coroutine that swallows its cancellation
    # cannot hold the call: the task is cancelled and abandoned.
    done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
    if not done and call.abandon():
        task.cancel()
        return Outcome(timed_out=True)
    if not task.done():  # returned in the same instant (its thread finished): wait briefly
        await asyncio.wait({task})
    if task.cancelled():
        return Outcome(error=asyncio.CancelledError())
    error = task.exception()
    if error is not None:
        return Outcome(error=error)
    return Outcome(value=task.result())


def _bind(
    fn: Callable[[object, Mapping[str, Any]], Any], response: object, context: Mapping[str, Any]
) -> Callable[[], Any]:
    def call() -> Any:
        return fn(response, context)

    return call


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's exception so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()
