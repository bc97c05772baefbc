"""An environment standing in for an LLM: a fake model whose responses carry their scores.

:class:`FakeScoredModel` is a plain callable ``(prompt: str) -> str``. It recognises which
strategy a prompt asks for by finding a strategy's rendered prompt text inside it (so an
adapter may wrap the steering prompt in any template), advances one hidden session of an
:class:`~steerloop.simulate.environment.Environment` by one Euler–Maruyama step under that
strategy, and answers with JSON text::

    {"scores": {"security": 0.41, "efficiency": 0.52, "functionality": 0.63},
     "strategy": "feature_focused", "step": 1}

:class:`SimulatedScoresScorer` reads the scores back, so a policy whose scorer is
``steerloop.simulate.SimulatedScoresScorer`` drives the whole middleware path (adapter →
model → scorer → controller → next prompt) with no LLM.

Examples
--------
>>> import numpy as np
>>> from steerloop.simulate.paper import paper_environment
>>> prompts = {"feature_focused": "Add features.", "security_focused": "Harden it."}
>>> model = FakeScoredModel(paper_environment(), prompts, rng=np.random.default_rng(0))
>>> reply = model("System: Harden it.\\nUser: improve my code")
>>> scorer = SimulatedScoresScorer(("security", "efficiency", "functionality"))
>>> sorted(scorer.score(reply, {})), model.last_strategy
(['efficiency', 'functionality', 'security'], 'security_focused')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from steerloop.simulate.environment import Environment
from steerloop.simulate.paper import PAPER_OBJECTIVES

if TYPE_CHECKING:
    from steerloop.policies.schema import Policy

__all__ = ["FakeScoredModel", "SimulatedScoresScorer"]

FloatArray = NDArray[np.float64]


def _prompt_variants(policy: Policy) -> dict[str, list[str]]:
    """Every rendering of each strategy prompt (no focus, and each objective in focus)."""
    variants: dict[str, list[str]] = {}
    objectives = list(policy.objectives)
    for name, strategy in policy.strategies.items():
        texts = {strategy.render(objectives, None)}
        texts.update(strategy.render(objectives, focus) for focus in objectives)
        variants[name] = sorted(texts, key=len, reverse=True)
    return variants


class FakeScoredModel:
    """A callable fake LLM backed by one hidden session of an environment.

    Parameters
    ----------
    env : Environment
        The simulated dynamics; every strategy that can be recognised must exist in it.
    prompts : Policy or mapping of strategy name to prompt text
        What each strategy's steering prompt looks like. With a :class:`Policy` every
        rendering (``{focus}`` filled with each objective, or none) is recognised.
    rng : numpy.random.Generator
        Source of every draw (initial state, steps, score noise).
    fallback : str, optional
        Strategy used when the prompt contains no known strategy prompt; by default such a
        prompt raises :class:`ValueError` (it usually means the adapter dropped the
        steering prompt).

    Notes
    -----
    The hidden state starts at ``env.reset(1, rng)``. Each call steps it once under the
    recognised strategy (eq. (2) of :mod:`steerloop.simulate.environment`) and observes it
    (eq. (3)); the response is the JSON text in the module docstring. When several strategy
    prompts occur in the text the longest match wins.
    """

    def __init__(
        self,
        env: Environment,
        prompts: Policy | Mapping[str, str],
        *,
        rng: np.random.Generator,
        fallback: str | None = None,
    ) -> None:
        if isinstance(prompts, Mapping):
            variants = {name: [text] for name, text in prompts.items()}
        else:
            variants = _prompt_variants(prompts)
        for name in variants:
            env.strategy_index(name)  # raises KeyError naming the environment's strategies
        if fallback is not None:
            env.strategy_index(fallback)
        self._env = env
        self._patterns = sorted(
            ((text, name) for name, texts in variants.items() for text in texts if text),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        self._rng = rng
        self._fallback = fallback
        self._state: FloatArray = env.reset(1, rng)
        self._steps = 0
        self._last_strategy: str | None = None

    @property
    def state(self) -> FloatArray:
        """Hidden objective state x, shape (d,) (a copy)."""
        state: FloatArray = self._state[0].copy()
        return state

    @property
    def steps(self) -> int:
        """Number of calls so far."""
        return self._steps

    @property
    def last_strategy(self) -> str | None:
        """Strategy recognised on the last call."""
        return self._last_strategy

    def strategy_for(self, prompt: str) -> str:
        """The strategy whose prompt text occurs in ``prompt`` (longest match)."""
        for text, name in self._patterns:
            if text in prompt:
                return name
        if self._fallback is not None:
            return self._fallback
        raise ValueError(
            "the prompt contains none of the strategy prompts "
            f"({len(self._patterns)} known); pass fallback=... to accept unsteered prompts"
        )

    def __call__(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        """Step the hidden state under the prompt's strategy; return the scores as JSON."""
        strategy = self.strategy_for(str(prompt))
        self._state = self._env.step(self._state, strategy, self._rng)
        scores = self._env.observe(self._state, self._rng)[0]
        self._steps += 1
        self._last_strategy = strategy
        payload = {
            "scores": {
                name: float(v) for name, v in zip(self._env.objectives, scores, strict=True)
            },
            "strategy": strategy,
            "step": self._steps,
        }
        return json.dumps(payload)


class SimulatedScoresScorer:
    """Scorer that reads the scores a :class:`FakeScoredModel` put in its response.

    Conforms to the scorer protocol: ``name``, ``objectives`` and
    ``score(response, context) -> Mapping[str, float]``. Objectives absent from the response
    (or non-finite) are left out, i.e. reported missing.

    Parameters
    ----------
    objectives : sequence of str
        The objectives to report (usually the policy's; default: the paper's
        ``security, efficiency, functionality``). In a policy file:
        ``{use: steerloop.simulate.SimulatedScoresScorer, with: {objectives: [...]}}``.
    name : str
        Scorer name.
    """

    def __init__(
        self, objectives: Sequence[str] = PAPER_OBJECTIVES, *, name: str = "simulated"
    ) -> None:
        self.name = name
        self.objectives: tuple[str, ...] = tuple(objectives)

    def score(
        self, response: object, context: Mapping[str, Any] | None = None
    ) -> Mapping[str, float]:
        """Parse ``{"scores": {...}}`` out of the response text.

        Raises
        ------
        ValueError
            When the response is not such JSON (the controller counts it as a scorer error).
        """
        from steerloop.scoring.text import response_text

        text = response if isinstance(response, str) else response_text(response)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"response is not the simulator's JSON ({error.msg})") from None
        scores = payload.get("scores") if isinstance(payload, dict) else None
        if not isinstance(scores, dict):
            raise ValueError('response JSON has no "scores" object')
        out: dict[str, float] = {}
        for name in self.objectives:
            value = scores.get(name)
            if isinstance(value, int | float) and math.isfinite(value):
                out[name] = float(value)
        return out
