"""Steer LangChain v1 agents: :class:`SteeringMiddleware` for ``langchain.agents.create_agent``.

Needs the ``agents`` extra (``pip install 'steerloop[agents]'``).

Per model call the middleware

1. finds the session — its id is ``config["configurable"]["thread_id"]`` (configurable key),
   so each conversation thread is steered on its own (a run without it raises ``ValueError``
   unless you opt in to one shared session with ``default_session``) — and, when the agent
   state carries a snapshot this process did not write (a restart, another worker, time
   travel), restores it;
2. sets the system message to the strategy prompt combined with the agent's own system
   prompt (``wrap_model_call``/``awrap_model_call`` via ``request.override``);
3. after the model answered (``after_model``) scores the last ``AIMessage``, updates the
   session, and writes its snapshot to the agent state as a private attribute
   (``steerloop_state``), so a checkpointer persists it per thread.

Refine mode (``refine=True``): when the model gives a final answer (no tool calls) and the
target is not met, the middleware adds a short revise instruction and jumps back to the
model, at most ``max_iterations`` times per invocation. The output state carries
``steerloop_stop_reason`` (``"target_met"``, ``"max_iterations"`` or ``"fault"``) and
``steerloop_decision`` (a summary of the last decision).

Faults fail open (counted in :attr:`SteeringMiddleware.faults`, logged without message text);
``strict=True`` re-raises. The model's own exceptions pass through untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, TypeAlias, cast

from steerloop.adapters._common import (
    Observer,
    Scoring,
    TargetMetric,
    decision_payload,
    require_session_id,
    resolve_target,
    target_met,
)

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, hook_config
    from langchain.agents.middleware.types import OmitFromInput, PrivateStateAttr
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langgraph.channels.untracked_value import UntrackedValue
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "steerloop.adapters.agents needs LangChain v1 agents (langchain>=1.0, langgraph>=1.0); "
        "install them with: pip install 'steerloop[agents]'"
    ) from error

if TYPE_CHECKING:
    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langchain.agents.middleware.types import ExtendedModelResponse
    from langgraph.runtime import Runtime

    from steerloop.controller import Controller, Decision, Session

__all__ = [
    "STATE_KEY",
    "Placement",
    "RefineStopReason",
    "SteeringMiddleware",
    "SteeringState",
]

#: Agent state key holding the session snapshot (JSON of ``SessionState``).
STATE_KEY = "steerloop_state"
#: How the strategy prompt is combined with the agent's own system prompt.
Placement: TypeAlias = Literal["prepend", "append", "replace"]
#: Why refine mode stopped.
RefineStopReason: TypeAlias = Literal["target_met", "max_iterations", "fault"]
_MARK = "steerloop"
_REFINE_MARK = "steerloop_refine"
_DEFAULT_REFINE_MESSAGE = (
    "Revise your previous answer so that it better meets the instructions in the system "
    "message. Reply with the complete revised answer."
)
ModelResult: TypeAlias = "ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]"


class SteeringState(AgentState[Any]):
    """Agent state keys added by :class:`SteeringMiddleware`."""

    steerloop_state: NotRequired[Annotated[str | None, PrivateStateAttr]]
    steerloop_refine_count: NotRequired[Annotated[int, UntrackedValue, PrivateStateAttr]]
    steerloop_stop_reason: NotRequired[Annotated[str | None, OmitFromInput]]
    steerloop_decision: NotRequired[Annotated[dict[str, Any] | None, OmitFromInput]]


def _configurable() -> Mapping[str, Any] | None:
    """``configurable`` of the running graph's config (``None`` outside a graph)."""
    from langgraph.config import get_config

    try:
        config = get_config()
    except RuntimeError:
        return None
    return cast("Mapping[str, Any]", config.get("configurable") or {})


def _last_ai_message(messages: object) -> AIMessage | None:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return message
    return None


class SteeringMiddleware(AgentMiddleware[SteeringState, Any]):
    """Agent middleware that steers every model call of a ``create_agent`` agent.

    Parameters
    ----------
    controller : Controller
        The controller holding the sessions.
    session_key : str
        ``config["configurable"]`` key holding the session id (default ``"thread_id"``).
    default_session : str | None
        Session id when the config has none (an agent run without a thread). ``None``
        (default): such a run raises ``ValueError``, so users are never merged by accident.
    scorer : Scoring | None
        ``fn(ai_message) -> {objective: score}`` (may be async for ``ainvoke``) or a steerloop
        ``Scorer``; default: the controller's scorers.
    strict : bool | None
        Re-raise scorer/controller faults; ``None`` follows ``controller.strict``.
    placement : {"prepend", "append", "replace"}
        Where the strategy prompt goes relative to the agent's own system prompt.
    score_tool_calls : bool
        Also score model turns that only call tools (default: yes, every model response).
    refine : bool
        Jump back to the model until ``target`` is met or ``max_iterations`` refinements.
    target : float | Mapping[str, float] | None
        Refine target; ``None`` takes the ``target`` of the policy's first ``sequential``
        rule (by priority).
    metric : {"objective", "score"}
        Compare the target with the filtered state (default) or the last raw scores.
    max_iterations : int
        Refinements allowed per invocation.
    refine_message : str
        The human message added before each refinement.

    Examples
    --------
    >>> from langchain.agents import create_agent
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> from langgraph.checkpoint.memory import InMemorySaver
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> middleware = SteeringMiddleware(
    ...     controller,
    ...     scorer=lambda msg: {"security": 0.9, "efficiency": 0.8, "functionality": 0.9})
    >>> agent = create_agent(FakeListChatModel(responses=["done"]), middleware=[middleware],
    ...                      checkpointer=InMemorySaver())
    >>> config = {"configurable": {"thread_id": "t1"}}
    >>> agent.invoke({"messages": [("user", "hi")]}, config)["messages"][-1].content
    'done'
    >>> controller.session("t1").step
    1
    """

    state_schema = SteeringState

    def __init__(
        self,
        controller: Controller,
        *,
        session_key: str = "thread_id",
        default_session: str | None = None,
        scorer: Scoring | None = None,
        strict: bool | None = None,
        placement: Placement = "prepend",
        score_tool_calls: bool = True,
        refine: bool = False,
        target: float | Mapping[str, float] | None = None,
        metric: TargetMetric = "objective",
        max_iterations: int = 3,
        refine_message: str = _DEFAULT_REFINE_MESSAGE,
    ) -> None:
        super().__init__()
        if placement not in ("prepend", "append", "replace"):
            raise ValueError(f"placement must be prepend, append or replace, got {placement!r}")
        if metric not in ("objective", "score"):
            raise ValueError(f"metric must be 'objective' or 'score', got {metric!r}")
        if max_iterations < 0:
            raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
        self.controller = controller
        self.session_key = session_key
        self.default_session = default_session
        self.placement: Placement = placement
        self.score_tool_calls = score_tool_calls
        self.refine = refine
        self.metric: TargetMetric = metric
        self.max_iterations = max_iterations
        self.refine_message = refine_message
        self.target: dict[str, float] | None = None
        if refine:
            self.target = resolve_target(self._default_target(target), self._objectives())
        self._observer = Observer(controller, "agent", scorer=scorer, strict=strict)
        self._written: dict[str, int] = {}

    def _objectives(self) -> list[str]:
        return list(self.controller.policy.objectives)

    def _default_target(self, target: float | Mapping[str, float] | None) -> Any:
        if target is not None:
            return target
        for rule in self.controller.policy.rules_by_priority:
            if rule.then.sequential is not None:
                return rule.then.sequential.target
        raise ValueError(
            "refine=True needs a target: pass target=0.8 or {objective: level}, or use a "
            "policy with a sequential rule (its target is used)"
        )

    @property
    def faults(self) -> int:
        """Scorer/controller faults swallowed so far."""
        return self._observer.faults

    # -- session and state ----------------------------------------------------------------

    def session_id(self) -> str:
        """The session id of the running graph (its ``session_key`` configurable)."""
        return require_session_id(
            _configurable(),
            self.session_key,
            self.default_session,
            adapter="SteeringMiddleware",
            where="config['configurable']",
            example=f"agent.invoke(input, {{'configurable': {{{self.session_key!r}: 'user-42'}}}})",
        )

    def _session(self, state: Mapping[str, Any]) -> Session:
        """The thread's session, restored from the agent state when that is newer to us."""
        session_id = self.session_id()
        snapshot = state.get(STATE_KEY)
        if not isinstance(snapshot, str) or (
            self._written.get(session_id) == hash(snapshot) and session_id in self.controller
        ):
            return self.controller.session(session_id)
        try:
            from steerloop.controller.state import SessionState

            restored = SessionState.model_validate_json(snapshot)
            if restored.session_id != session_id:  # a forked or copied thread
                restored = restored.model_copy(update={"session_id": session_id})
            session = self.controller.restore(restored)
        except Exception as error:
            if self._observer.strict:
                raise
            self._observer.fault("restore", error, session_id)
            session = self.controller.session(session_id)
        self._written[session_id] = hash(snapshot)
        return session

    def _snapshot(self, session: Session) -> str | None:
        try:
            snapshot = session.snapshot().model_dump_json()
        except Exception as error:
            if self._observer.strict:
                raise
            self._observer.fault("snapshot", error, session.id)
            return None
        self._written[session.id] = hash(snapshot)
        return snapshot

    # -- system message -------------------------------------------------------------------

    def _system_message(self, base: SystemMessage | None, prompt: str) -> SystemMessage:
        if base is None or self.placement == "replace":
            return SystemMessage(content=prompt, additional_kwargs={_MARK: True})
        content = base.content
        if isinstance(content, str):
            parts = [prompt, content] if self.placement == "prepend" else [content, prompt]
            merged: Any = "\n\n".join(part for part in parts if part)
        else:
            block = {"type": "text", "text": prompt}
            merged = [block, *content] if self.placement == "prepend" else [*content, block]
        return SystemMessage(
            content=merged, additional_kwargs={**base.additional_kwargs, _MARK: True}
        )

    def _steer_request(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        session = self._session(request.state)
        prompt = self._observer.prompt(session)
        if not prompt:
            return request
        if hasattr(request, "system_message"):
            base: SystemMessage | None = request.system_message
            return request.override(system_message=self._system_message(base, prompt))
        # langchain < 1.1: the request has only a ``system_prompt`` string.
        text: str | None = getattr(request, "system_prompt", None)
        merged = self._system_message(
            None if text is None else SystemMessage(content=text), prompt
        ).text
        override = getattr(request, "override", None)
        if callable(override):
            return cast("ModelRequest[Any]", override(system_prompt=merged))
        old_style: Any = request  # typed against the installed (newer) ModelRequest
        return cast("ModelRequest[Any]", dataclasses.replace(old_style, system_prompt=merged))

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResult:
        """Call the model with the strategy prompt in the system message."""
        return handler(self._steer_request(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResult:
        """Async twin of :meth:`wrap_model_call`."""
        return await handler(self._steer_request(request))

    # -- after the model ------------------------------------------------------------------

    def _response(self, state: Mapping[str, Any]) -> AIMessage | None:
        message = _last_ai_message(state.get("messages"))
        if message is None or (message.tool_calls and not self.score_tool_calls):
            return None
        return message

    def _after(
        self, state: Mapping[str, Any], session: Session, decision: Decision | None
    ) -> dict[str, Any]:
        update: dict[str, Any] = {"steerloop_decision": decision_payload(decision)}
        snapshot = self._snapshot(session)
        if snapshot is not None:
            update[STATE_KEY] = snapshot
        if not self.refine or self.target is None:
            return update
        message = _last_ai_message(state.get("messages"))
        if message is None or message.tool_calls:
            return update  # the agent is still working; refine only final answers
        count = int(state.get("steerloop_refine_count") or 0)
        reason: RefineStopReason | None = None
        if decision is None:
            reason = "fault"
        elif target_met(decision, self.target, self.metric):
            reason = "target_met"
        elif count >= self.max_iterations:
            reason = "max_iterations"
        if reason is not None:
            update["steerloop_stop_reason"] = reason
            return update
        update["steerloop_refine_count"] = count + 1
        update["steerloop_stop_reason"] = None
        update["messages"] = [
            HumanMessage(content=self.refine_message, additional_kwargs={_REFINE_MARK: True})
        ]
        update["jump_to"] = "model"
        return update

    @hook_config(can_jump_to=["model"])
    def after_model(self, state: SteeringState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Score the model's answer, store the snapshot, and maybe jump back to refine."""
        session = self._session(state)
        message = self._response(state)
        decision = None if message is None else self._observer.observe(session, message)
        if message is None and not self.refine:
            return None
        return self._after(state, session, decision)

    @hook_config(can_jump_to=["model"])
    async def aafter_model(
        self, state: SteeringState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`after_model`."""
        session = self._session(state)
        message = self._response(state)
        decision = None if message is None else await self._observer.aobserve(session, message)
        if message is None and not self.refine:
            return None
        return self._after(state, session, decision)
