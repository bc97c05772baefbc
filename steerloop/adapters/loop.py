"""Steer plain Python loops: a decorator and a "run until target or max_steps" iterator.

The manual form needs no adapter at all::

    session = controller.session("user-42")
    response = generate(session.prompt, task)
    decision = session.observe(response)          # or session.update(scores)

This module adds two conveniences on top of it:

* :func:`steer` decorates ``fn(prompt, *args, **kwargs) -> response`` (sync or async): each
  call receives the current strategy prompt as its first argument, the response is scored
  and fed to the session, and the response is returned unchanged.
* :func:`steered_steps` yields :class:`Step` objects until the target is met, a predicate
  says stop, or ``max_steps`` is reached; :attr:`SteeredLoop.stop_reason` says which.

Both fail open: a scorer or controller fault is counted (``.faults``), logged without any
prompt or response text, and the loop goes on; ``strict=True`` re-raises. Exceptions raised
by the wrapped function itself always pass through untouched.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

from steerloop.adapters._common import (
    Observer,
    Scoring,
    Target,
    TargetMetric,
    renamed_scorer,
    resolve_target,
    target_met,
)

if TYPE_CHECKING:
    from steerloop.controller import Controller, Decision, Session

__all__ = [
    "AsyncSteeredFunction",
    "SteeredFunction",
    "SteeredLoop",
    "Step",
    "StopReason",
    "steer",
    "steered_steps",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Why a :class:`SteeredLoop` ended.
StopReason: TypeAlias = Literal["target_met", "until", "max_steps", "stopped"]
SessionIdArg: TypeAlias = "str | Callable[..., str]"
ContextArg: TypeAlias = "Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None"


class _SteeredBase:
    """State shared by the sync and async decorated functions."""

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(
        self,
        fn: Callable[..., Any],
        controller: Controller,
        session_id: SessionIdArg,
        context: ContextArg,
        observer: Observer,
    ) -> None:
        functools.update_wrapper(cast("Callable[..., Any]", self), fn)
        self._fn = fn
        self._controller = controller
        self._session_id = session_id
        self._context = context
        self._observer = observer
        self.last_decision: Decision | None = None
        """Decision after the most recent call (``None`` before it or after a fault)."""

    @property
    def controller(self) -> Controller:
        """The controller steering this function."""
        return self._controller

    @property
    def faults(self) -> int:
        """Scorer/controller faults swallowed so far."""
        return self._observer.faults

    @property
    def session(self) -> Session:
        """The session, when ``session_id`` is a fixed string."""
        if not isinstance(self._session_id, str):
            raise TypeError("session_id is computed per call; use controller.session(id)")
        return self._controller.session(self._session_id)

    def _resolve(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Session, Mapping[str, Any] | None]:
        sid = self._session_id
        session_id = sid if isinstance(sid, str) else sid(*args, **kwargs)
        context = self._context
        if callable(context):
            context = context(*args, **kwargs)
        return self._controller.session(session_id), context


class SteeredFunction(_SteeredBase, Generic[P, R]):
    """A synchronous ``fn(prompt, *args, **kwargs)`` called with the current strategy prompt.

    Call it without the prompt: ``steered(*args, **kwargs)``. Made by :func:`steer`.
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        session, context = self._resolve(args, kwargs)
        response: R = self._fn(self._observer.prompt(session), *args, **kwargs)
        self.last_decision = self._observer.observe(session, response, context)
        return response


class AsyncSteeredFunction(_SteeredBase, Generic[P, R]):
    """The async twin of :class:`SteeredFunction` (``await steered(*args, **kwargs)``)."""

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        session, context = self._resolve(args, kwargs)
        response: R = await self._fn(self._observer.prompt(session), *args, **kwargs)
        self.last_decision = await self._observer.aobserve(session, response, context)
        return response


class _Steer:
    """The decorator returned by :func:`steer`."""

    def __init__(
        self,
        controller: Controller,
        session_id: SessionIdArg,
        scorer: Scoring | None,
        context: ContextArg,
        strict: bool | None,
    ) -> None:
        self._controller = controller
        self._session_id = session_id
        self._scorer = scorer
        self._context = context
        self._strict = strict

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[str, P], Coroutine[Any, Any, R]]
    ) -> AsyncSteeredFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[str, P], R]) -> SteeredFunction[P, R]: ...

    def __call__(
        self, fn: Callable[..., Any]
    ) -> SteeredFunction[..., Any] | AsyncSteeredFunction[..., Any]:
        observer = Observer(self._controller, "loop", scorer=self._scorer, strict=self._strict)
        if inspect.iscoroutinefunction(fn):
            return AsyncSteeredFunction(
                fn, self._controller, self._session_id, self._context, observer
            )
        return SteeredFunction(fn, self._controller, self._session_id, self._context, observer)


def steer(
    controller: Controller,
    *,
    session_id: str | Callable[..., str] | None = None,
    scorer: Scoring | None = None,
    context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    strict: bool | None = None,
    score: Scoring | None = None,
) -> _Steer:
    """Decorate ``fn(prompt, *args, **kwargs) -> response`` to run under a controller.

    Each call reads the session's current strategy prompt, calls
    ``fn(prompt, *args, **kwargs)``, scores the response, updates the session and returns the
    response unchanged. Works for ``def`` and ``async def`` functions.

    Parameters
    ----------
    controller : Controller
        The controller to steer with.
    session_id : str | Callable[..., str] | None
        A fixed session id, or ``f(*args, **kwargs) -> id`` computed from each call's
        arguments (the prompt excluded). Omitting it is deprecated: every call then shares
        the session ``"default"`` (and a ``DeprecationWarning`` says so); it will be required.
    scorer : Scoring | None
        ``fn(response) -> {objective: score}`` (may be ``async`` for async functions) or a
        steerloop ``Scorer``; default: the controller's scorers.
    context : Mapping | Callable[..., Mapping] | None
        Context for the controller's scorers (e.g. tests), or ``f(*args, **kwargs)``.
    strict : bool | None
        Re-raise scorer/controller faults; ``None`` follows ``controller.strict``.
    score : Scoring | None
        Deprecated old name of ``scorer`` (``DeprecationWarning``).

    Returns
    -------
    decorator
        Turns ``fn`` into a :class:`SteeredFunction` or :class:`AsyncSteeredFunction` with
        ``.last_decision``, ``.faults`` and ``.session``.

    Examples
    --------
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> @steer(controller, session_id="demo",
    ...        scorer=lambda r: {"security": 0.9, "efficiency": 0.8, "functionality": 0.7})
    ... def generate(prompt, task):
    ...     return f"code for {task}"
    >>> generate("parse a CSV file")
    'code for parse a CSV file'
    >>> generate.last_decision.step, generate.faults
    (1, 0)
    """
    scorer = renamed_scorer(scorer, score, "steer()")
    if session_id is None:
        warnings.warn(
            "steer() without session_id steers every call in one shared session 'default'; "
            "pass session_id='...' (or session_id=f(*args, **kwargs) -> id, one session per "
            "user); it will be required in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        session_id = "default"
    return _Steer(controller, session_id, scorer, context, strict)


class Step:
    """One iteration of a :class:`SteeredLoop`: the prompt to use and where to report back.

    Attributes
    ----------
    index : int
        0-based position in the loop.
    prompt : str
        The strategy prompt to use for this iteration.
    strategy : str
        Its strategy name.
    decision : Decision | None
        Set by :meth:`observe`/:meth:`update` (``None`` before, or after a fault).
    """

    __slots__ = ("_loop", "_reported", "decision", "index", "prompt", "strategy")

    def __init__(self, loop: SteeredLoop, index: int, prompt: str, strategy: str) -> None:
        self._loop = loop
        self._reported = False
        self.index = index
        self.prompt = prompt
        self.strategy = strategy
        self.decision: Decision | None = None

    def _claim(self) -> None:
        if self._reported:
            raise RuntimeError(f"step {self.index} was already observed; report once per step")
        self._reported = True

    def observe(
        self, response: object, context: Mapping[str, Any] | None = None
    ) -> Decision | None:
        """Score ``response`` and update the session (fails open: ``None`` on a fault)."""
        observer = self._loop._observer
        if not observer.can_score:
            raise ValueError(
                "no scorer: pass scorer= to steered_steps, give the controller scorers, "
                "or report scores with step.update({...})"
            )
        self._claim()
        self.decision = observer.observe(self._loop.session, response, context)
        return self.decision

    def update(self, scores: Mapping[str, object]) -> Decision | None:
        """Feed scores you computed yourself (fails open: ``None`` on a fault)."""
        self._claim()
        self.decision = self._loop._observer.update(self._loop.session, scores)
        return self.decision

    async def aobserve(
        self, response: object, context: Mapping[str, Any] | None = None
    ) -> Decision | None:
        """Async twin of :meth:`observe`."""
        observer = self._loop._observer
        if not observer.can_score:
            raise ValueError(
                "no scorer: pass scorer= to steered_steps, give the controller scorers, "
                "or report scores with await step.aupdate({...})"
            )
        self._claim()
        self.decision = await observer.aobserve(self._loop.session, response, context)
        return self.decision

    async def aupdate(self, scores: Mapping[str, object]) -> Decision | None:
        """Async twin of :meth:`update`."""
        self._claim()
        self.decision = await self._loop._observer.aupdate(self._loop.session, scores)
        return self.decision

    def __repr__(self) -> str:
        return f"Step(index={self.index}, strategy={self.strategy!r})"


class SteeredLoop:
    """Iterate steps until the target is met, ``until`` says stop, or ``max_steps``.

    Use it with ``for`` (or ``async for``), optionally inside ``with`` so that leaving the
    block early is recorded as ``"stopped"``. Made by :func:`steered_steps`; iterate once.

    Attributes
    ----------
    stop_reason : StopReason | None
        ``"target_met"``, ``"until"``, ``"max_steps"`` or ``"stopped"`` (left early by
        ``break``/an exception); ``None`` while running.
    steps : int
        Steps yielded so far.
    last_decision : Decision | None
        Decision of the last observed step.
    """

    def __init__(
        self,
        session: Session,
        *,
        max_steps: int,
        target: Target | None,
        metric: TargetMetric,
        until: Callable[[Decision], bool] | None,
        observer: Observer,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if metric not in ("objective", "score"):
            raise ValueError(f"metric must be 'objective' or 'score', got {metric!r}")
        self.session = session
        self.max_steps = max_steps
        objectives = list(session.controller.policy.objectives)
        self.target: dict[str, float] | None = (
            None if target is None else resolve_target(target, objectives)
        )
        self.metric: TargetMetric = metric
        self._until = until
        self._observer = observer
        self._started = False
        self.stop_reason: StopReason | None = None
        self.steps = 0
        self.last_decision: Decision | None = None

    @property
    def faults(self) -> int:
        """Scorer/controller faults swallowed so far."""
        return self._observer.faults

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("a SteeredLoop runs once; call steered_steps(...) again")
        self._started = True

    def _next_step(self, index: int) -> Step:
        self.steps = index + 1
        session = self.session
        return Step(self, index, self._observer.prompt(session), session.strategy)

    def _finished(self, step: Step) -> StopReason | None:
        decision = step.decision
        if decision is None:
            return None
        self.last_decision = decision
        if self.target is not None and target_met(decision, self.target, self.metric):
            return "target_met"
        if self._until is not None and self._until(decision):
            return "until"
        return None

    def __iter__(self) -> Generator[Step, None, None]:
        self._start()
        try:
            for index in range(self.max_steps):
                step = self._next_step(index)
                yield step
                reason = self._finished(step)
                if reason is not None:
                    self.stop_reason = reason
                    return
            self.stop_reason = "max_steps"
        finally:
            if self.stop_reason is None:
                self.stop_reason = "stopped"

    async def __aiter__(self) -> AsyncIterator[Step]:
        # The same steps as __iter__ (nothing in a step awaits); closing this generator
        # closes that one, so an early exit is recorded the same way.
        steps = self.__iter__()
        try:
            for step in steps:
                yield step
        finally:
            steps.close()

    def __enter__(self) -> SteeredLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.stop_reason is None:
            self.stop_reason = "stopped"

    async def __aenter__(self) -> SteeredLoop:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __repr__(self) -> str:
        return (
            f"SteeredLoop(session={self.session.id!r}, steps={self.steps}, "
            f"max_steps={self.max_steps}, stop_reason={self.stop_reason!r})"
        )


def steered_steps(
    session: Session,
    *,
    max_steps: int,
    target: float | Mapping[str, float] | None = None,
    metric: TargetMetric = "objective",
    until: Callable[[Decision], bool] | None = None,
    scorer: Scoring | None = None,
    strict: bool | None = None,
    score: Scoring | None = None,
) -> SteeredLoop:
    """Run a loop under a session until the target is met or ``max_steps`` is reached.

    Each :class:`Step` carries the prompt to use; report the response with
    ``step.observe(response)`` (scored with ``scorer`` or the controller's scorers) or the
    scores with ``step.update({...})``. After a reported step the loop stops when every
    targeted objective reached its level (``stop_reason == "target_met"``) or ``until``
    returns true (``"until"``); otherwise it ends after ``max_steps`` (``"max_steps"``).

    Parameters
    ----------
    session : Session
        The session to drive (``controller.session(id)``).
    max_steps : int
        Upper bound on iterations (>= 1).
    target : float | Mapping[str, float] | None
        One level for every objective or ``{objective: level}``; ``None``: no target.
    metric : {"objective", "score"}
        Compare the target with the filtered state (default) or the last raw scores.
    until : Callable[[Decision], bool] | None
        Extra stop condition on each decision.
    scorer : Scoring | None
        ``fn(response) -> {objective: score}`` or a steerloop ``Scorer``, for
        :meth:`Step.observe` (default: the controller's scorers).
    strict : bool | None
        Re-raise scorer/controller faults; ``None`` follows ``controller.strict``.
    score : Scoring | None
        Deprecated old name of ``scorer`` (``DeprecationWarning``).

    Returns
    -------
    SteeredLoop
        Iterate it with ``for`` or ``async for``; read ``stop_reason`` afterwards.

    Examples
    --------
    >>> from steerloop import Controller
    >>> session = Controller(preset="paper").session("refine")
    >>> loop = steered_steps(session, max_steps=20, target=0.75, metric="score")
    >>> for step in loop:
    ...     quality = min(1.0, 0.5 + 0.1 * step.index)      # stand-in for an LLM + scorer
    ...     _ = step.update({"security": quality, "efficiency": quality,
    ...                      "functionality": quality})
    >>> loop.stop_reason, loop.steps
    ('target_met', 4)
    """
    observer = Observer(
        session.controller,
        "loop",
        scorer=renamed_scorer(scorer, score, "steered_steps()"),
        strict=strict,
        require_scorer=False,
    )
    return SteeredLoop(
        session,
        max_steps=max_steps,
        target=target,
        metric=metric,
        until=until,
        observer=observer,
    )
