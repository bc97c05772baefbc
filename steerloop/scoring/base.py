"""The scorer protocol and the fail-open composite that runs a policy's scorers.

A *scorer* maps one LLM response to scores in [0, 1] for the objectives it covers. The
:class:`CompositeScorer` runs all scorers of a policy on each response, each with its own
timeout, and turns every way a scorer can fail into a *missing* value plus a counted
:class:`ScorerFailure` — never 0, never NaN — so the Kalman filter only ever sees valid
numbers and the agent loop never sees a scorer exception (unless ``strict=True``).

Failure reasons
---------------
``raised``
    the scorer raised an exception (only its type is recorded, never its message, which may
    quote the response);
``timeout``
    the scorer did not return within its timeout;
``busy``
    the scorer's previous call is still running after a timeout (see below), so it was not
    started again;
``non_numeric``
    a value (or the whole return value) is not a real number or a mapping of them;
``non_finite``
    a value is NaN or infinite;
``out_of_range``
    a value is outside [0, 1] (values within ``1e-9`` of the range are clipped);
``missing``
    the scorer declares an objective of the policy but returned no value for it;
``unknown_objective``
    the scorer returned keys that are not objectives of the policy (ignored; counted once
    per call and scorer);
``invalid_input``, ``malformed``, ``unavailable``
    reasons a scorer reports itself by raising :class:`~steerloop.errors.ScorerError` (for
    example code that does not parse, judge output that is not valid JSON, a sandbox that
    cannot start).

Threads and timeouts
--------------------
The synchronous :meth:`CompositeScorer.score` runs every scorer in its own daemon thread
and waits for each until its timeout. A Python thread cannot be killed: a scorer that hangs
keeps its thread; the composite *abandons* it (counted in
:attr:`CompositeScorer.abandoned_threads`) and reports ``busy`` for that scorer until the
thread finishes, so a hung scorer holds at most one thread. The threads are daemon threads
so that a hung scorer never blocks interpreter exit (``concurrent.futures`` worker threads
are joined at exit, which would hang the process). The asynchronous
:meth:`CompositeScorer.ascore` awaits a scorer's own ``ascore`` coroutine when it has one
(cancelled on timeout) and otherwise runs ``score`` in such a thread.

Nothing in this package logs; failures are data (:attr:`ScoreResult.failures`,
:attr:`CompositeScorer.failure_counts`) for the telemetry layer to report.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import numbers
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast, runtime_checkable

from steerloop.errors import ScorerError
from steerloop.scoring.text import extract_code, response_text

if TYPE_CHECKING:
    from steerloop.policies.schema import ScorerSpec

__all__ = [
    "AsyncScorer",
    "CallableScorer",
    "CompositeScorer",
    "FailureReason",
    "ScoreResult",
    "Scorer",
    "ScorerFailure",
    "extract_code",
    "response_text",
]

FailureReason = Literal[
    "raised",
    "timeout",
    "busy",
    "non_numeric",
    "non_finite",
    "out_of_range",
    "missing",
    "unknown_objective",
    "invalid_input",
    "malformed",
    "unavailable",
]
# Reasons a scorer may report itself through ScorerError.reason.
_SELF_REPORTED: frozenset[str] = frozenset({"invalid_input", "malformed", "unavailable", "timeout"})
_RANGE_TOLERANCE = 1e-9
DEFAULT_TIMEOUT = 30.0

_T = TypeVar("_T")


@runtime_checkable
class Scorer(Protocol):
    """Scores one response on the objectives it covers.

    Attributes
    ----------
    name
        A short identifier, unique within a composite (it keys timeouts and failure counts).
    objectives
        The objectives this scorer gives values for.

    Notes
    -----
    ``score`` returns a mapping ``objective -> value`` with values in [0, 1]. It may raise or
    return bad values: the :class:`CompositeScorer` turns that into missing values. A scorer
    may also define ``async def ascore(response, context)`` (see :class:`AsyncScorer`);
    without it the composite runs ``score`` in a worker thread on the async path.
    """

    name: str
    objectives: tuple[str, ...]

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Return scores in [0, 1] for (some of) :attr:`objectives`."""
        ...


@runtime_checkable
class AsyncScorer(Scorer, Protocol):
    """A :class:`Scorer` with a native coroutine twin of :meth:`score`."""

    async def ascore(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Asynchronous :meth:`Scorer.score`."""
        ...


@dataclass(frozen=True)
class ScorerFailure:
    """One way one scorer failed on one response.

    ``message`` says what went wrong and never contains the response text.
    """

    scorer: str
    reason: FailureReason
    objectives: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class ScoreResult:
    """Valid scores and the failures met while computing them.

    ``scores`` holds only finite values in [0, 1]; an objective with no valid value is absent
    (it is *missing*). When several scorers give a valid value for one objective, ``scores``
    holds their mean.
    """

    scores: dict[str, float]
    failures: tuple[ScorerFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """``True`` when no scorer failed."""
        return not self.failures

    def missing(self, objectives: Sequence[str]) -> tuple[str, ...]:
        """The objectives among ``objectives`` that have no valid score."""
        return tuple(name for name in objectives if name not in self.scores)


class CallableScorer:
    """Wrap a plain function as a :class:`Scorer`.

    Parameters
    ----------
    fn
        ``fn(response)`` or ``fn(response, context)``, returning a mapping
        ``objective -> value``, or a single number when the scorer covers one objective.
        Coroutine functions are accepted too (``score`` then runs them with
        :func:`asyncio.run`, ``ascore`` awaits them).
    objectives
        The objectives ``fn`` covers (a single name is accepted).
    name
        The scorer's name; defaults to ``fn.__name__``.

    Examples
    --------
    >>> scorer = CallableScorer(lambda response: min(1.0, len(response) / 100), "brevity",
    ...                         name="brevity")
    >>> scorer.score("x" * 50, {})
    {'brevity': 0.5}
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        objectives: str | Sequence[str],
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("CallableScorer needs a callable")
        self.objectives: tuple[str, ...] = (
            (objectives,) if isinstance(objectives, str) else tuple(objectives)
        )
        if not self.objectives:
            raise ValueError("CallableScorer needs at least one objective")
        self.name: str = name or str(getattr(fn, "__name__", "callable"))
        self._fn = fn
        self.is_async: bool = inspect.iscoroutinefunction(fn)
        self._takes_context = _accepts_two_args(fn)

    def _call(self, response: object, context: Mapping[str, Any]) -> Any:
        if self._takes_context:
            return self._fn(response, context)
        return self._fn(response)

    def _normalize(self, value: Any) -> Mapping[str, float]:
        if _is_real(value) and len(self.objectives) == 1:
            return {self.objectives[0]: value}
        return cast(Mapping[str, float], value)

    def score(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Call the wrapped function and return its scores as a mapping."""
        value = self._call(response, context)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
        return self._normalize(value)

    async def ascore(self, response: object, context: Mapping[str, Any]) -> Mapping[str, float]:
        """Await the wrapped coroutine function, or run a plain one in a daemon thread."""
        if self.is_async:
            value = self._call(response, context)
            if inspect.isawaitable(value):
                value = await value
            return self._normalize(value)
        future = _start_daemon(lambda: self.score(response, context))
        return await asyncio.wrap_future(future)


def _accepts_two_args(fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    positional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional >= 2


async def _await(value: Awaitable[_T]) -> _T:
    return await value


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _start_daemon(fn: Callable[[], _T]) -> Future[_T]:
    """Run ``fn`` in a new daemon thread; the future completes with its result or error."""
    future: Future[_T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as exc:  # reported to the waiting caller, never lost
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name="steerloop-scorer", daemon=True).start()
    return future


@dataclass
class _Outcome:
    """What one scorer produced on one call: a value, an exception or a timeout."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    busy: bool = False
    elapsed: float = 0.0
    extra: list[ScorerFailure] = field(default_factory=list)


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
        Seconds each scorer may take, as one number or a mapping ``scorer name -> seconds``
        (scorers not in the mapping get 30 s).
    strict
        Raise :class:`~steerloop.errors.ScorerError` for the first failure of a call instead
        of recording it. Failures are counted either way.

    Raises
    ------
    ScorerError
        With reason ``"config"`` when names repeat, a scorer covers none of the objectives, or
        a timeout is not positive.

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
    ) -> None:
        self.objectives: tuple[str, ...] = tuple(objectives)
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ScorerError(
                "<composite>", "config", "objectives must be a non-empty list of unique names"
            )
        self.scorers: tuple[Scorer, ...] = tuple(scorers)
        self.strict = strict
        names: set[str] = set()
        policy = set(self.objectives)
        for scorer in self.scorers:
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
            if not policy.intersection(scorer.objectives):
                raise ScorerError(
                    scorer.name,
                    "config",
                    f"covers {list(scorer.objectives)}, none of the policy objectives "
                    f"{list(self.objectives)}; rename its objective (objective=...) or drop it",
                )
        self._timeouts: dict[str, float] = {}
        for scorer in self.scorers:
            seconds = (
                float(timeout.get(scorer.name, DEFAULT_TIMEOUT))
                if isinstance(timeout, Mapping)
                else float(timeout)
            )
            if not (seconds > 0 and math.isfinite(seconds)):
                raise ScorerError(scorer.name, "config", f"timeout must be > 0, got {seconds}")
            self._timeouts[scorer.name] = seconds
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._inflight: dict[str, Future[Any]] = {}
        self._async_inflight: dict[str, asyncio.Future[Any]] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[ScorerSpec],
        *,
        objectives: Sequence[str],
        strict: bool = False,
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
            factory = _import_object(spec.use, where)
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
        return cls(scorers, objectives=objectives, timeout=timeouts, strict=strict)

    # ------------------------------------------------------------------ telemetry

    @property
    def failure_counts(self) -> Counter[tuple[str, str]]:
        """Cumulative failures by ``(scorer name, reason)`` (a copy)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def abandoned_threads(self) -> int:
        """Scorer threads still running after their call timed out (they cannot be killed)."""
        with self._lock:
            return sum(1 for future in self._inflight.values() if not future.done())

    def timeout_for(self, scorer: str) -> float:
        """The timeout in seconds of the scorer named ``scorer``."""
        return self._timeouts[scorer]

    # ------------------------------------------------------------------ sync path

    def score(self, response: object, context: Mapping[str, Any] | None = None) -> ScoreResult:
        """Score ``response`` with every scorer, in parallel, each with its timeout.

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
        futures: dict[str, Future[Any]] = {}
        outcomes: dict[str, _Outcome] = {}
        with self._lock:
            for scorer in self.scorers:
                previous = self._inflight.get(scorer.name)
                if previous is not None and not previous.done():
                    outcomes[scorer.name] = _Outcome(busy=True)
                    continue
                future = _start_daemon(_bind(scorer.score, response, ctx))
                self._inflight[scorer.name] = future
                futures[scorer.name] = future
        for scorer in self.scorers:
            future_or_none = futures.get(scorer.name)
            if future_or_none is None:
                continue
            remaining = started + self._timeouts[scorer.name] - time.monotonic()
            try:
                value = future_or_none.result(timeout=max(0.0, remaining))
            except FutureTimeoutError:
                outcomes[scorer.name] = _Outcome(timed_out=True)
            except Exception as exc:
                outcomes[scorer.name] = _Outcome(error=exc)
            except BaseException as exc:  # SystemExit & co. raised *inside* the scorer
                if future_or_none.done() and future_or_none.exception() is exc:
                    outcomes[scorer.name] = _Outcome(error=exc)
                else:
                    raise
            else:
                outcomes[scorer.name] = _Outcome(value=value)
        return self._finish(outcomes)

    # ------------------------------------------------------------------ async path

    async def ascore(
        self, response: object, context: Mapping[str, Any] | None = None
    ) -> ScoreResult:
        """Asynchronous :meth:`score`: native ``ascore`` coroutines, else worker threads."""
        ctx: Mapping[str, Any] = context if context is not None else {}
        outcomes = await asyncio.gather(
            *(self._arun(scorer, response, ctx) for scorer in self.scorers)
        )
        return self._finish({s.name: o for s, o in zip(self.scorers, outcomes, strict=True)})

    async def _arun(self, scorer: Scorer, response: object, context: Mapping[str, Any]) -> _Outcome:
        timeout = self._timeouts[scorer.name]
        native = getattr(scorer, "ascore", None)
        threaded = not callable(native) or (
            isinstance(scorer, CallableScorer) and not scorer.is_async
        )
        if threaded:
            with self._lock:
                previous = self._inflight.get(scorer.name)
                if previous is not None and not previous.done():
                    return _Outcome(busy=True)
                future = _start_daemon(_bind(scorer.score, response, context))
                self._inflight[scorer.name] = future
            wrapped = asyncio.wrap_future(future)
            wrapped.add_done_callback(_consume)
            return await self._await_with_timeout(wrapped, timeout)
        assert native is not None
        with self._lock:
            previous_task = self._async_inflight.get(scorer.name)
            if previous_task is not None and not previous_task.done():
                return _Outcome(busy=True)
        try:
            awaitable = native(response, context)
        except Exception as exc:
            return _Outcome(error=exc)
        if not inspect.isawaitable(awaitable):
            return _Outcome(value=awaitable)
        task = asyncio.ensure_future(awaitable)
        task.add_done_callback(_consume)
        with self._lock:
            self._async_inflight[scorer.name] = task
        return await self._await_with_timeout(task, timeout)

    @staticmethod
    async def _await_with_timeout(task: asyncio.Future[Any], timeout: float) -> _Outcome:
        # asyncio.wait (not wait_for) so that a coroutine that swallows its cancellation
        # cannot hold the call: the task is cancelled and abandoned.
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            return _Outcome(timed_out=True)
        if task.cancelled():
            return _Outcome(error=asyncio.CancelledError())
        error = task.exception()
        if error is not None:
            return _Outcome(error=error)
        return _Outcome(value=task.result())

    # ------------------------------------------------------------------ validation

    def _finish(self, outcomes: Mapping[str, _Outcome]) -> ScoreResult:
        collected: dict[str, list[float]] = {}
        failures: list[ScorerFailure] = []
        for scorer in self.scorers:
            outcome = outcomes[scorer.name]
            values, problems = self._check(scorer, outcome)
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

    def _check(
        self, scorer: Scorer, outcome: _Outcome
    ) -> tuple[dict[str, float], list[ScorerFailure]]:
        name = scorer.name
        covered = tuple(o for o in scorer.objectives if o in self.objectives)
        timeout = self._timeouts[name]
        if outcome.busy:
            return {}, [
                ScorerFailure(
                    name,
                    "busy",
                    covered,
                    "the previous call is still running after its timeout (abandoned "
                    "thread); not started again",
                )
            ]
        if outcome.timed_out:
            return {}, [ScorerFailure(name, "timeout", covered, f"no result within {timeout:g} s")]
        if outcome.error is not None:
            return {}, [_failure_from_error(name, covered, outcome.error)]
        raw = outcome.value
        if _is_real(raw) and len(scorer.objectives) == 1:
            raw = {scorer.objectives[0]: raw}
        if not isinstance(raw, Mapping):
            return {}, [
                ScorerFailure(
                    name,
                    "non_numeric",
                    covered,
                    f"returned a {type(raw).__name__}, expected a mapping objective -> float",
                )
            ]
        values: dict[str, float] = {}
        bad: dict[FailureReason, list[str]] = {}
        unknown: list[str] = []
        for key, value in raw.items():
            if key not in self.objectives:
                unknown.append(str(key)[:64])
                continue
            reason = _invalid_reason(value)
            if reason is None:
                values[key] = min(1.0, max(0.0, float(value)))
            else:
                bad.setdefault(reason, []).append(key)
        failures = [
            ScorerFailure(name, reason, tuple(keys), _REASON_TEXT[reason])
            for reason, keys in bad.items()
        ]
        if unknown:
            failures.append(
                ScorerFailure(
                    name,
                    "unknown_objective",
                    tuple(unknown),
                    f"returned keys that are not policy objectives {list(self.objectives)}; "
                    "they were ignored",
                )
            )
        absent = tuple(o for o in covered if o not in raw)
        if absent:
            failures.append(
                ScorerFailure(name, "missing", absent, "declared objectives without a value")
            )
        return values, failures


_REASON_TEXT: dict[FailureReason, str] = {
    "non_numeric": "value is not a real number",
    "non_finite": "value is NaN or infinite",
    "out_of_range": "value is outside [0, 1]",
}


def _invalid_reason(value: object) -> FailureReason | None:
    if not _is_real(value):
        return "non_numeric"
    try:
        number = float(cast(float, value))
    except (TypeError, ValueError, OverflowError):
        return "non_numeric"
    if not math.isfinite(number):
        return "non_finite"
    if number < -_RANGE_TOLERANCE or number > 1.0 + _RANGE_TOLERANCE:
        return "out_of_range"
    return None


def _failure_from_error(
    name: str, objectives: tuple[str, ...], error: BaseException
) -> ScorerFailure:
    if isinstance(error, ScorerError):
        reason = error.reason if error.reason in _SELF_REPORTED else "raised"
        # Messages of ScorerError are written by scorers to be safe to report.
        return ScorerFailure(name, cast(FailureReason, reason), objectives, str(error))
    return ScorerFailure(
        name,
        "raised",
        objectives,
        f"{type(error).__name__} raised by the scorer (message withheld: it may quote the "
        "response)",
    )


def _bind(
    fn: Callable[[object, Mapping[str, Any]], _T], response: object, context: Mapping[str, Any]
) -> Callable[[], _T]:
    def call() -> _T:
        return fn(response, context)

    return call


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's exception so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()


def _import_object(path: str, where: str) -> Callable[..., Any]:
    parts = path.split(".")
    error: Exception | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (
                module_name == exc.name or module_name.startswith(exc.name + ".")
            ):
                # The module exists but one of *its* imports is missing (an extra).
                raise ScorerError(
                    path,
                    "import",
                    f"{where}: importing {module_name!r} failed: {exc}; install the extra it "
                    "needs (for the code scorers: pip install 'steerloop[code]')",
                ) from exc
            error = exc
            continue
        except Exception as exc:
            raise ScorerError(
                path, "import", f"{where}: importing {module_name!r} raised {exc!r}"
            ) from exc
        try:
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
        except AttributeError as exc:
            raise ScorerError(
                path,
                "import",
                f"{where}: module {module_name!r} has no attribute "
                f"{'.'.join(parts[cut:])!r}; check the spelling of `use`",
            ) from exc
        if not callable(target):
            raise ScorerError(
                path, "import", f"{where}: {path!r} is not a class or factory function"
            )
        return cast(Callable[..., Any], target)
    raise ScorerError(
        path,
        "import",
        f"{where}: cannot import {path!r} ({error}); `use` must be a full import path such as "
        "steerloop.scoring.code.SecurityScorer",
    )
