"""Steer langchain-core Runnables: :class:`SteeredRunnable` and :class:`SteeringCallbackHandler`.

:class:`SteeredRunnable` wraps any Runnable (a chat model, a ``prompt | model`` chain, ...)
and, per call:

1. takes the session id from ``config["configurable"][session_key]`` (default key
   ``"session_id"``, the same key ``RunnableWithMessageHistory`` uses); like that class it
   raises ``ValueError`` when the key is missing (or misspelled), so different users are
   never merged into one session — unless you opt in with ``default_session="..."``;
2. injects the session's current strategy prompt — as a leading ``SystemMessage`` for chat
   input (a previous steerloop system message is replaced, never stacked), or as a named
   variable for dict input (for a ``ChatPromptTemplate`` with a ``{steering_prompt}`` slot);
3. calls the inner Runnable, scores its output, updates the session, and returns the inner
   output unchanged.

When callbacks are configured (LangSmith, ``astream_events``, your handlers) the wrapper
opens its own chain run, tags it and the inner run with ``steerloop_session_id`` and
``steerloop_strategy`` metadata, and records each decision as a child run named
``"steerloop"`` whose outputs are the decision (strategy, changed, rule, reason, ...). With
no callbacks configured none of this is built, which keeps the overhead low.

Faults fail open: a scorer or controller error is counted (:attr:`SteeredRunnable.faults`)
and logged, never raised, unless ``strict=True``. Exceptions of the inner Runnable pass
through untouched, so it composes with ``with_retry``/``with_fallbacks``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    get_config_list,
    patch_config,
)

from steerloop.adapters._common import (
    Observer,
    Scoring,
    decision_payload,
    require_session_id,
)
from steerloop.adapters.callbacks import SteeringCallbackHandler  # re-exported (its home)

if TYPE_CHECKING:
    from langchain_core.runnables.graph import Graph
    from langchain_core.runnables.utils import ConfigurableFieldSpec
    from langchain_core.utils.pydantic import TypeBaseModel

    from steerloop.controller import Controller, Decision, Session

__all__ = [
    "DEFAULT_PROMPT_VARIABLE",
    "STEERING_MESSAGE_ID",
    "SteeredRunnable",
    "SteeringCallbackHandler",
    "is_steering_message",
]

Input = TypeVar("Input")
Output = TypeVar("Output")

#: Dict key the prompt is passed under when ``prompt_variable`` is not given.
DEFAULT_PROMPT_VARIABLE = "steering_prompt"
#: ``id`` of the system message steerloop injects (also marked in ``additional_kwargs``).
STEERING_MESSAGE_ID = "steerloop-steering"
_MARK = "steerloop"
_DECISION_RUN = "steerloop"
_CACHE_LIMIT = 256


def is_steering_message(message: object) -> bool:
    """Whether ``message`` is a system message injected by steerloop.

    Examples
    --------
    >>> from langchain_core.messages import SystemMessage
    >>> is_steering_message(SystemMessage("be careful"))
    False
    >>> is_steering_message(SystemMessage("be careful", id=STEERING_MESSAGE_ID))
    True
    """
    return isinstance(message, SystemMessage) and (
        message.id == STEERING_MESSAGE_ID or bool(message.additional_kwargs.get(_MARK))
    )


class _Call:
    """One steered call: its session, the strategy used, the prepared input, its run."""

    __slots__ = ("config", "manager", "prepared", "run", "session", "strategy")

    def __init__(
        self, session: Session, strategy: str, prepared: Any, config: RunnableConfig, manager: Any
    ) -> None:
        self.session = session
        self.strategy = strategy
        self.prepared = prepared
        self.config = config
        # The callback manager when someone listens (tracing, handlers), else None.
        self.manager = manager
        self.run: CallbackManagerForChainRun | AsyncCallbackManagerForChainRun | None = None


class SteeredRunnable(Runnable[Input, Output]):
    """A Runnable that steers every call of the Runnable it wraps.

    Parameters
    ----------
    runnable : Runnable
        The Runnable to steer (chat model, chain, ...). Its output is returned unchanged.
    controller : Controller
        The controller holding the sessions.
    session_key : str
        ``config["configurable"]`` key holding the session id.
    default_session : str | None
        Session id used when the config carries none. ``None`` (default): such a call
        raises ``ValueError`` before the wrapped Runnable runs.
    prompt_variable : str | None
        Key the prompt is passed under for dict input; ``None`` means ``"steering_prompt"``.
    scorer : Scoring | None
        ``fn(output) -> {objective: score}`` (may be async for the async paths) or a
        steerloop ``Scorer``; default: the controller's scorers.
    strict : bool | None
        Re-raise scorer/controller faults; ``None`` follows ``controller.strict``.
    name : str | None
        Run name in traces (default ``"SteeredRunnable"``).

    Notes
    -----
    Chat input (a message list, a ``PromptValue`` or a string, which becomes one human
    message) gets a leading ``SystemMessage`` with id :data:`STEERING_MESSAGE_ID`; a previous
    one anywhere in the list is removed first. Dict input gets the prompt under
    ``prompt_variable``. Any other input type raises ``TypeError``.

    Put the wrapper *inside* history or retry wrappers
    (``RunnableWithMessageHistory(SteeredRunnable(model, ...), ...)``,
    ``SteeredRunnable(...).with_retry()``): a history wrapped inside it would store the
    injected system message with the conversation.

    Examples
    --------
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> model = FakeListChatModel(responses=["def add(a, b): return a + b"])
    >>> steered = SteeredRunnable(
    ...     model, controller,
    ...     scorer=lambda msg: {"security": 0.9, "efficiency": 0.8, "functionality": 0.9})
    >>> steered.invoke("write add()", {"configurable": {"session_id": "u1"}}).content
    'def add(a, b): return a + b'
    >>> controller.session("u1").step
    1
    """

    def __init__(
        self,
        runnable: Runnable[Input, Output],
        controller: Controller,
        *,
        session_key: str = "session_id",
        default_session: str | None = None,
        prompt_variable: str | None = None,
        scorer: Scoring | None = None,
        strict: bool | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(runnable, Runnable):
            raise TypeError(f"runnable must be a langchain Runnable, got {type(runnable).__name__}")
        self.bound = runnable
        self.controller = controller
        self.session_key = session_key
        self.default_session = default_session
        self.prompt_variable = prompt_variable or DEFAULT_PROMPT_VARIABLE
        self.name = name
        self._observer = Observer(controller, "runnable", scorer=scorer, strict=strict)
        self._messages: dict[str, SystemMessage] = {}

    # -- Runnable plumbing ----------------------------------------------------------------

    @property
    def faults(self) -> int:
        """Scorer/controller faults swallowed so far."""
        return self._observer.faults

    @property
    def InputType(self) -> type[Input]:  # noqa: N802 - langchain's name
        """The wrapped Runnable's input type."""
        return self.bound.InputType

    @property
    def OutputType(self) -> type[Output]:  # noqa: N802 - langchain's name
        """The wrapped Runnable's output type."""
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        """The wrapped Runnable's input schema."""
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        """The wrapped Runnable's output schema."""
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The wrapped Runnable's configurable fields."""
        return self.bound.config_specs

    def get_graph(self, config: RunnableConfig | None = None) -> Graph:
        """The wrapped Runnable's graph."""
        return self.bound.get_graph(config)

    def __repr__(self) -> str:
        return f"SteeredRunnable(bound={self.bound!r}, session_key={self.session_key!r})"

    # -- preparing a call -----------------------------------------------------------------

    def session_for(self, config: RunnableConfig | None) -> Session:
        """The session a call with this config is steered by (``ValueError`` if none)."""
        configurable = (config or {}).get("configurable") or {}
        session_id = require_session_id(
            configurable,
            self.session_key,
            self.default_session,
            adapter="SteeredRunnable",
            where="config['configurable']",
            example=f"chain.invoke(input, config={{'configurable': {{{self.session_key!r}: "
            "'user-42'}})",
        )
        return self.controller.session(session_id)

    def _system_message(self, prompt: str) -> SystemMessage:
        message = self._messages.get(prompt)
        if message is None:
            if len(self._messages) >= _CACHE_LIMIT:
                self._messages.clear()
            message = SystemMessage(
                content=prompt, id=STEERING_MESSAGE_ID, additional_kwargs={_MARK: True}
            )
            self._messages[prompt] = message
        return message

    def inject(self, input: Any, prompt: str) -> Any:
        """Return ``input`` with ``prompt`` injected (a leading system message or a variable).

        Examples
        --------
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> from steerloop import Controller
        >>> steered = SteeredRunnable(
        ...     FakeListChatModel(responses=["ok"]), Controller(preset="paper"),
        ...     scorer=lambda msg: {})
        >>> [m.type for m in steered.inject("hi", "Be secure.")]
        ['system', 'human']
        >>> steered.inject({"question": "hi"}, "Be secure.")["steering_prompt"]
        'Be secure.'
        """
        if isinstance(input, Mapping):
            if not prompt:
                return input
            return {**input, self.prompt_variable: prompt}
        if isinstance(input, str):
            messages: Sequence[Any] = [HumanMessage(content=input)]
        elif isinstance(input, PromptValue):
            messages = input.to_messages()
        elif isinstance(input, (list, tuple)):
            messages = input
        else:
            raise TypeError(
                f"SteeredRunnable cannot inject a prompt into {type(input).__name__} input; "
                "pass a message list, a string, a PromptValue or a dict (the prompt then goes "
                f"under {self.prompt_variable!r})"
            )
        kept = [message for message in messages if not is_steering_message(message)]
        if not prompt:
            return kept
        return [self._system_message(prompt), *kept]

    def _begin(self, input: Input, config: RunnableConfig | None, sync: bool) -> _Call:
        config = ensure_config(config)
        session = self.session_for(config)
        prompt = self._observer.prompt(session)
        strategy = session.strategy
        prepared = self.inject(input, prompt)
        manager = (
            get_callback_manager_for_config(config)
            if sync
            else get_async_callback_manager_for_config(config)
        )
        if not manager.handlers:  # nobody listens: no runs to build (keeps overhead low)
            return _Call(session, strategy, prepared, config, None)
        manager.add_metadata(
            {"steerloop_session_id": session.id, "steerloop_strategy": strategy}, inherit=True
        )
        return _Call(session, strategy, prepared, config, manager)

    def _name(self, config: RunnableConfig) -> str:
        return config.get("run_name") or self.get_name()

    def _start(self, call: _Call, input: Input) -> None:
        if call.manager is None:
            return
        run = call.manager.on_chain_start(
            None, input, name=self._name(call.config), run_id=call.config.pop("run_id", None)
        )
        call.run = run
        call.config = patch_config(call.config, callbacks=run.get_child())

    async def _astart(self, call: _Call, input: Input) -> None:
        if call.manager is None:
            return
        run = await call.manager.on_chain_start(
            None, input, name=self._name(call.config), run_id=call.config.pop("run_id", None)
        )
        call.run = run
        call.config = patch_config(call.config, callbacks=run.get_child())

    # -- finishing a call -----------------------------------------------------------------

    def _decision_inputs(self, call: _Call) -> dict[str, Any]:
        return {"session_id": call.session.id, "strategy": call.strategy}

    def _finish(self, call: _Call, output: Any) -> Decision | None:
        run = cast("CallbackManagerForChainRun | None", call.run)
        if run is None:
            return self._observer.observe(call.session, output)
        try:
            decision = self._observe_traced(call, run, output)
        except BaseException as error:
            run.on_chain_error(error)
            raise
        run.on_chain_end(output)
        return decision

    def _observe_traced(
        self, call: _Call, run: CallbackManagerForChainRun, output: Any
    ) -> Decision | None:
        trace = run.get_child().on_chain_start(
            None, self._decision_inputs(call), name=_DECISION_RUN
        )
        try:
            decision = self._observer.observe(call.session, output)
        except BaseException as error:
            trace.on_chain_error(error)
            raise
        trace.on_chain_end(decision_payload(decision))
        return decision

    async def _afinish(self, call: _Call, output: Any) -> Decision | None:
        run = cast("AsyncCallbackManagerForChainRun | None", call.run)
        if run is None:
            return await self._observer.aobserve(call.session, output)
        try:
            trace = await run.get_child().on_chain_start(
                None, self._decision_inputs(call), name=_DECISION_RUN
            )
            try:
                decision = await self._observer.aobserve(call.session, output)
            except BaseException as error:
                await trace.on_chain_error(error)
                raise
            await trace.on_chain_end(decision_payload(decision))
        except BaseException as error:
            await run.on_chain_error(error)
            raise
        await run.on_chain_end(output)
        return decision

    def _fail(self, call: _Call, error: BaseException) -> None:
        if call.run is not None:
            cast("CallbackManagerForChainRun", call.run).on_chain_error(error)

    async def _afail(self, call: _Call, error: BaseException) -> None:
        if call.run is not None:
            await cast("AsyncCallbackManagerForChainRun", call.run).on_chain_error(error)

    # -- public API -----------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        """Inject the strategy prompt, invoke the wrapped Runnable, observe, return its output."""
        call = self._begin(input, config, sync=True)
        self._start(call, input)
        try:
            output = self.bound.invoke(call.prepared, call.config, **kwargs)
        except BaseException as error:
            self._fail(call, error)
            raise
        self._finish(call, output)
        return output

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        """Async twin of :meth:`invoke`."""
        call = self._begin(input, config, sync=False)
        await self._astart(call, input)
        try:
            output = await self.bound.ainvoke(call.prepared, call.config, **kwargs)
        except BaseException as error:
            await self._afail(call, error)
            raise
        await self._afinish(call, output)
        return output

    def batch(
        self,
        inputs: list[Input],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Output]:
        """Steer each input by its own config's session and call the wrapped ``batch`` once.

        Outputs that are exceptions (``return_exceptions=True``) are not observed. Inputs
        of the same session all get the prompt in force when the batch started, and the
        session is updated with their outputs in input order.
        """
        if not inputs:
            return []
        calls: list[_Call] = []
        for item, item_config in zip(inputs, get_config_list(config, len(inputs)), strict=True):
            call = self._begin(item, item_config, sync=True)
            self._start(call, item)
            calls.append(call)
        try:
            outputs = self.bound.batch(
                [call.prepared for call in calls],
                [call.config for call in calls],
                return_exceptions=return_exceptions,
                **kwargs,
            )
        except BaseException as error:
            for call in calls:
                self._fail(call, error)
            raise
        for call, output in zip(calls, outputs, strict=True):
            if isinstance(output, Exception):
                self._fail(call, output)
            else:
                self._finish(call, output)
        return outputs

    async def abatch(
        self,
        inputs: list[Input],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Output]:
        """Async twin of :meth:`batch` (the wrapped ``abatch`` is awaited once)."""
        if not inputs:
            return []
        calls: list[_Call] = []
        for item, item_config in zip(inputs, get_config_list(config, len(inputs)), strict=True):
            call = self._begin(item, item_config, sync=False)
            await self._astart(call, item)
            calls.append(call)
        try:
            outputs = await self.bound.abatch(
                [call.prepared for call in calls],
                [call.config for call in calls],
                return_exceptions=return_exceptions,
                **kwargs,
            )
        except BaseException as error:
            for call in calls:
                await self._afail(call, error)
            raise
        for call, output in zip(calls, outputs, strict=True):
            if isinstance(output, Exception):
                await self._afail(call, output)
            else:
                await self._afinish(call, output)
        return outputs

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        """Yield the wrapped Runnable's chunks as they come; observe the aggregate once.

        Chunks are aggregated with ``+`` (message chunks, strings); a stream left early
        (``break``) is not observed.
        """
        call = self._begin(input, config, sync=True)
        self._start(call, input)
        final: Any = None
        started = False
        try:
            for chunk in self.bound.stream(call.prepared, call.config, **kwargs):
                yield chunk
                final, started = _aggregate(final, chunk, started)
        except BaseException as error:
            self._fail(call, error)
            raise
        if started:
            self._finish(call, final)
        else:
            self._fail(call, RuntimeError("the wrapped Runnable streamed no output"))

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        """Async twin of :meth:`stream`."""
        call = self._begin(input, config, sync=False)
        await self._astart(call, input)
        final: Any = None
        started = False
        try:
            async for chunk in self.bound.astream(call.prepared, call.config, **kwargs):
                yield chunk
                final, started = _aggregate(final, chunk, started)
        except BaseException as error:
            await self._afail(call, error)
            raise
        if started:
            await self._afinish(call, final)
        else:
            await self._afail(call, RuntimeError("the wrapped Runnable streamed no output"))


def _aggregate(final: Any, chunk: Any, started: bool) -> tuple[Any, bool]:
    """Add ``chunk`` to the aggregate like ``Runnable.transform`` does."""
    if not started:
        return chunk, True
    try:
        return final + chunk, True
    except TypeError:
        return chunk, True
