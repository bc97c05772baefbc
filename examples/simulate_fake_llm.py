"""The simulator standing in for an LLM: the whole middleware path with no model and no network.

A ``FakeScoredModel`` recognises which strategy prompt it was given, advances a hidden session
of the paper environment by one Euler–Maruyama step under that strategy and answers with the
scores as JSON; ``SimulatedScoresScorer`` reads them back. The controller scores each response,
filters, learns the drift and switches the prompt exactly as it would with a real model.

Run: python examples/simulate_fake_llm.py
"""

from __future__ import annotations

import numpy as np

from steerloop.controller import Controller
from steerloop.policies.loader import load_preset
from steerloop.simulate import FakeScoredModel, SimulatedScoresScorer, paper_environment


def main() -> None:
    policy = load_preset("paper")
    controller = Controller(policy, scorers=[SimulatedScoresScorer(policy.objectives)])
    model = FakeScoredModel(paper_environment(), policy, rng=np.random.default_rng(0))
    session = controller.session("example")
    for _ in range(30):
        # any template around the steering prompt works: the fake model finds the prompt in it
        response = model(f"System: {session.prompt}\n\nUser: please revise my code.")
        decision = session.observe(response)
        state = " ".join(
            f"{name[:4]}={value:.2f}"
            for name, value in zip(policy.objectives, model.state, strict=True)
        )
        change = f" -> {decision.strategy} ({decision.rule})" if decision.changed else ""
        print(f"step {decision.step:2d}  {model.last_strategy:20s}  true state {state}{change}")


if __name__ == "__main__":
    main()
