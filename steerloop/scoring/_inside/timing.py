"""The efficiency measurement: reference and candidate timed side by side, in this process.

Unlike the test verdict (:mod:`.checker`), timing runs the candidate *in* the supervisor
process (already confined as the candidate uid): a pipe round trip per call would dilute
the ratio being measured. The candidate can therefore tamper with its own timings; the
efficiency score trusts them, and wrong code is caught by the functionality verdict.

Each side (reference, candidate) loads its program into its own namespace and its own test
namespace; the test units then run in alternating batches (:func:`run`). The builtins are
restored after each side's code and after every pass.
"""

from __future__ import annotations

import builtins
import gc
import time
from types import CodeType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_perf = time.perf_counter
_BUILTINS: dict[str, Any] = builtins.__dict__
_PRISTINE: dict[str, Any] = dict(_BUILTINS)


_clear = dict.clear  # bound now: the builtins are empty while they are restored
_update = dict.update


def _restore_builtins() -> None:
    _clear(_BUILTINS)
    _update(_BUILTINS, _PRISTINE)


class _Side:
    """One program (candidate or reference) with its own test namespace."""

    def __init__(self, job: dict[str, Any], source: str, label: str) -> None:
        self.error: str | None = None
        self.units: list[tuple[CodeType, bool]] = []
        namespace: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": builtins}
        self.tests: dict[str, Any] = {
            "__name__": "__steerloop_tests__",
            "__builtins__": dict(_PRISTINE),
        }
        try:
            exec(compile(source, f"<{label}>", "exec"), namespace)  # noqa: S102 - confined
            _restore_builtins()
            if job.get("prelude"):
                exec(compile(job["prelude"], "<prelude>", "exec"), self.tests)  # noqa: S102
            for test_name, name in job["bind"].items():
                if name in namespace:
                    self.tests[test_name] = namespace[name]
            if job.get("setup"):
                exec(compile(job["setup"], "<test setup>", "exec"), self.tests)  # noqa: S102
            for index, (unit, counts) in enumerate(job["units"]):
                self.units.append((compile(unit, f"<test {index}>", "exec"), bool(counts)))
        except BaseException as exc:  # anything the program raises, SystemExit included
            self.error = type(exc).__name__
        finally:
            _restore_builtins()

    def run(self) -> int:
        """Run every unit once; the number of test units that passed."""
        passed = 0
        broken = False
        for code, counts in self.units:
            if broken:
                continue
            try:
                exec(code, self.tests)  # noqa: S102 - the task's tests over the confined code
            except BaseException:
                broken = not counts
            else:
                passed += counts
        _restore_builtins()
        return passed


def _time_side(side: _Side, repeat: int) -> float:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = _perf()
        for _ in range(repeat):
            side.run()
        return (_perf() - start) / repeat
    finally:
        if was_enabled:
            gc.enable()


def run(job: dict[str, Any]) -> dict[str, object]:
    """Time the units for both sides; the fields of the verdict record.

    Rounds alternate which side goes first, so that a systematic order effect cancels; the
    units repeat so that the slower side's batch lasts about ``job["target"]`` seconds, and
    the whole measurement stays within ``job["budget"]`` seconds.
    """
    total = sum(1 for _, counts in job["units"] if counts)
    started = _perf()
    budget = float(job["budget"])
    reference = _Side(job, job["reference"], "reference")
    if reference.error is not None:
        return {"status": "reference_error", "error": reference.error}
    candidate = _Side(job, job["candidate"], "candidate")
    if candidate.error is not None:
        return {"status": "candidate_error", "error": candidate.error}
    ref_once = _time_side(reference, 1)
    passed = candidate.run()  # warm-up and correctness count
    cand_once = _time_side(candidate, 1)
    rounds = int(job["rounds"])
    slower = max(ref_once, cand_once, 1e-7)
    repeat = max(1, min(10_000, int(float(job["target"]) / slower)))
    remaining = budget - (_perf() - started)
    if (ref_once + cand_once) * repeat * rounds > remaining:
        repeat = max(1, int(remaining / max(rounds * (ref_once + cand_once), 1e-9)))
    times: dict[str, list[float]] = {"candidate": [], "reference": []}
    for index in range(rounds):
        order = (candidate, reference) if index % 2 == 0 else (reference, candidate)
        for side in order:
            key = "candidate" if side is candidate else "reference"
            times[key].append(_time_side(side, repeat))
        if _perf() - started > budget:
            break
    return {"status": "ok", "passed": passed, "total": total, "repeat": repeat, **times}
