"""Score an LLM's code answer on security, functionality and efficiency.

Run: ``python examples/scoring_code.py`` (needs ``pip install 'steerloop[code]'``).

The three code scorers run together in a fail-open ``CompositeScorer``: bandit findings for
security, the task's tests in a sandboxed process for functionality, and the runtime of those
tests against a reference solution for efficiency.
"""

from __future__ import annotations

import time

from steerloop.scoring import CompositeScorer
from steerloop.scoring.code import EfficiencyScorer, FunctionalityScorer, SecurityScorer
from steerloop.scoring.sandbox import probe_isolation
from steerloop.scoring.tasks import CodeTask

TASK = CodeTask(
    prompt="def dedupe(items):\n    '''Drop duplicates, keeping first occurrences.'''\n",
    entry_point="dedupe",
    tests=(
        "assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]",
        "assert dedupe([]) == []",
        "assert dedupe(list(range(300)) * 2) == list(range(300))",
    ),
    reference="def dedupe(items):\n    return list(dict.fromkeys(items))\n",
)

RESPONSES = {
    "quadratic, with eval": (
        "Here you go:\n```python\n"
        "def dedupe(items):\n"
        "    out = []\n"
        "    for item in items:\n"
        "        if eval(repr(item)) not in out:\n"
        "            out.append(item)\n"
        "    return out\n"
        "```\n"
    ),
    "linear and safe": (
        "```python\n"
        "def dedupe(items):\n"
        "    seen = set()\n"
        "    out = []\n"
        "    for item in items:\n"
        "        if item not in seen:\n"
        "            seen.add(item)\n"
        "            out.append(item)\n"
        "    return out\n"
        "```\n"
    ),
    "broken": "```python\ndef dedupe(items):\n    return sorted(set(items))\n```\n",
}


def main() -> None:
    print("Sandbox protections here:")
    print("  " + probe_isolation().describe().replace("\n", "\n  "))
    composite = CompositeScorer(
        [SecurityScorer(), FunctionalityScorer(), EfficiencyScorer()],
        objectives=["security", "functionality", "efficiency"],
        timeout=20.0,
    )
    for label, response in RESPONSES.items():
        started = time.perf_counter()
        result = composite.score(response, {"task": TASK})
        scores = ", ".join(f"{name} {value:.2f}" for name, value in sorted(result.scores.items()))
        print(f"{label:>22}: {scores}  ({time.perf_counter() - started:.2f} s)")
        for failure in result.failures:
            print(f"{'':>24}{failure.scorer}: {failure.reason} - {failure.message}")


if __name__ == "__main__":
    main()
