"""Observe-only steering of LangChain runs you cannot wrap: :class:`SteeringCallbackHandler`.

Also importable as :class:`steerloop.adapters.langchain.SteeringCallbackHandler`. It scores
every LLM/chat model output a run produces and updates the run's session; it cannot change
prompts (use :class:`~steerloop.adapters.langchain.SteeredRunnable` for that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from steerloop.adapters._common import Observer, Scoring, require_session_id

if TYPE_CHECKING:
    from uuid import UUID

    from steerloop.controller import Controller, Decision

__all__ = ["SteeringCallbackHandler"]


class SteeringCallbackHandler(BaseCallbackHandler):
    """Observe-only steering for chains you cannot wrap: scores every LLM/chat model output.

    Attach it as a callback (``config={"callbacks": [handler]}`` or on the model). It cannot
    change prompts; read ``controller.session(id).prompt`` yourself where you build them.
    Do not combine it with a :class:`SteeredRunnable` around the same model (each output
    would be observed twice).

    Parameters
    ----------
    controller : Controller
        The controller holding the sessions.
    session_id : str | None
        Session used when the run's metadata carries no ``session_key``. ``None`` (default):
        such a run raises ``ValueError`` from the model call, so different users are never
        merged into one session.
    session_key : str
        Metadata key holding the session id (``config={"metadata": {"session_id": ...}}``;
        LangGraph puts ``thread_id`` there, so ``session_key="thread_id"`` works in graphs).
    scorer : Scoring | None
        ``fn(output) -> {objective: score}`` or a steerloop ``Scorer``; default: the
        controller's scorers. The output is the generated ``AIMessage`` for chat models, the
        text for LLMs.
    strict : bool | None
        Re-raise scorer/controller faults (the callback manager then propagates them);
        ``None`` follows ``controller.strict``.

    Examples
    --------
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> from steerloop import Controller
    >>> controller = Controller(preset="paper")
    >>> handler = SteeringCallbackHandler(
    ...     controller, session_id="watch",
    ...     scorer=lambda msg: {"security": 0.9, "efficiency": 0.9, "functionality": 0.9})
    >>> FakeListChatModel(responses=["ok"]).invoke("hi", {"callbacks": [handler]}).content
    'ok'
    >>> controller.session("watch").step, handler.faults
    (1, 0)
    """

    def __init__(
        self,
        controller: Controller,
        *,
        session_id: str | None = None,
        session_key: str = "session_id",
        scorer: Scoring | None = None,
        strict: bool | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.session_id = session_id
        self.session_key = session_key
        self._observer = Observer(controller, "callback", scorer=scorer, strict=strict)
        # Let a missing session id reach the caller; the observer swallows every other fault
        # unless strict (which then propagates too).
        self.raise_error = True
        self._runs: dict[UUID, str] = {}
        self.last_decision: Decision | None = None

    @property
    def faults(self) -> int:
        """Scorer/controller faults swallowed so far."""
        return self._observer.faults

    def _remember(self, run_id: UUID, metadata: dict[str, Any] | None) -> None:
        self._runs[run_id] = require_session_id(
            metadata,
            self.session_key,
            self.session_id,
            adapter="SteeringCallbackHandler",
            where="the run's metadata",
            example=f"model.invoke(input, config={{'metadata': {{{self.session_key!r}: "
            "'user-42'}, 'callbacks': [handler]})",
            opt_in="session_id",
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember which session this run belongs to."""
        self._remember(run_id, metadata)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember which session this run belongs to."""
        self._remember(run_id, metadata)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Score the first generation and update the session."""
        session_id = self._runs.pop(run_id, self.session_id)
        if session_id is None or not response.generations or not response.generations[0]:
            return  # a run whose start was not seen has no session to update
        generation = response.generations[0][0]
        output: object = (
            generation.message if isinstance(generation, ChatGeneration) else generation.text
        )
        try:
            session = self.controller.session(session_id)
        except Exception as error:  # e.g. an unreachable session store
            if self._observer.strict:
                raise
            self._observer.fault("session", error, session_id)
            return
        self.last_decision = self._observer.observe(session, output)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the failed run (the model's error is not steerloop's to handle)."""
        self._runs.pop(run_id, None)
