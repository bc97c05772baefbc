"""CallableScorer: a plain function (sync or async) as a :class:`~.protocol.Scorer`."""

from __future__ import annotations

import asyncio
import inspect
import numbers
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from steerloop.scoring._slots import start_daemon

__all__ = ["CallableScorer", "is_real"]

_T = TypeVar("_T")


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
        if is_real(value) and len(self.objectives) == 1:
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
        future = start_daemon(lambda: self.score(response, context))
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


def is_real(value: object) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
