"""A corpus of hostile policy files, and a measurement of what rejecting each one costs.

Every case is generated (most are about 1 MiB, just under the size limit, so that the
limits checked *while* reading are what stops them). ``test_hostile.py`` checks that each
is rejected with a positioned :class:`~steerloop.errors.PolicyError` within generous
bounds; running this file measures the real figures::

    python tests/policies/hostile.py            # wall and CPU time, Python and RSS peaks
    python tests/policies/hostile.py --python   # the same with PyYAML's pure-Python parser

Method: each case runs in a fresh subprocess (so RSS growth is that case's alone): one
warm-up parse of a valid policy, then the best of five timed rejections (wall clock and
CPU time), then one rejection under ``tracemalloc`` for the peak of Python allocations; RSS
growth is ``ru_maxrss`` after minus before, which includes libyaml's own buffers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from texts import HEAD

#: One megabyte less a little: the size limit itself is not what these cases test.
BUDGET = (1 << 20) - 4096


def _fill(prefix: str, unit: str, suffix: str = "") -> bytes:
    count = (BUDGET - len(prefix) - len(suffix)) // len(unit)
    return (prefix + unit * count + suffix).encode()


def _billion_laughs() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return (HEAD + "\n".join(lines) + "\n").encode()


def _deep_block() -> bytes:
    lines = [HEAD + "rules:"]
    indent = 0
    while sum(map(len, lines)) < BUDGET - 2000:
        lines.append(" " * indent + "- x:")
        indent += 2
    return "\n".join(lines).encode()


def _prompt_placeholders() -> bytes:
    long_names = [f"objective_{index:02d}_" + "n" * 80 for index in range(64)]
    template = "{objectives}" * 1600
    return (
        f"objectives: [{', '.join(long_names)}]\n"
        f"strategies: {{s: {{prompt: '{template}'}}}}\ninitial: s\n"
    ).encode()


def _unknown_metrics() -> bytes:
    names = [f"objective_{index:02d}" for index in range(64)]
    head = (
        f"objectives: [{', '.join(names)}]\nstrategies: {{s: {{prompt: p}}}}\ninitial: s\nrules:\n"
    )
    rule = (
        "  - {{name: r{0}, when: {{metric: interference.objective_0.objectivex{0}, above: 0}}, "
        "then: {{hold: true}}}}\n"
    )
    body = "".join(rule.format(index) for index in range(650))
    return (head + body).encode()


def _sequential_rules() -> bytes:
    names = [f"o{index}" for index in range(64)]
    strategies = "".join(
        f"  s{index}: {{prompt: p, emphasis: {{o0: 1}}}}\n" for index in range(700)
    )
    rule = "  - {{name: r{0}, when: {{metric: step, above: 0}}, then: {{sequential: {{}}}}}}\n"
    rules = "".join(rule.format(index) for index in range(300))
    return (
        f"objectives: [{', '.join(names)}]\nstrategies:\n{strategies}initial: s0\nrules:\n{rules}"
    ).encode()


def _many_errors() -> bytes:
    rule = "  - {{name: r{0}, when: {{metric: drift.rate, above: x}}, then: {{switch_to: nope}}}}\n"
    return (HEAD + "rules:\n" + "".join(rule.format(index) for index in range(700))).encode()


#: name -> (generator, a fragment the first issue's message must contain)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "list_items": (lambda: _fill(HEAD + "name:\n", "- a\n"), "more than"),
    "flow_items": (lambda: _fill(HEAD + "name: [", "a,", "a]\n"), "more than"),
    "mapping_keys": (
        lambda: (HEAD + "".join(f"k{index}: v\n" for index in range(120_000)))[:BUDGET].encode(),
        "more than",
    ),
    "billion_laughs": (_billion_laughs, "billion laughs"),
    "alias_fan_out": (
        lambda: _fill(HEAD + "a: &a x\nname: [", "*a,", "*a]\n"),
        "aliases",
    ),
    "recursive_alias": (lambda: (HEAD + "name: &r [a, *r]\n").encode(), "recursive alias"),
    "deep_block": (_deep_block, "deeper than"),
    "deep_flow": (lambda: _fill(HEAD + "name: ", "["), "deeper than"),
    "deep_flow_mappings": (lambda: _fill(HEAD + "name: ", "{a: "), "deeper than"),
    "huge_plain_scalar": (lambda: _fill(HEAD + "name: ", "a", "\n"), "characters"),
    "huge_quoted_scalar": (lambda: _fill(HEAD + 'name: "', "a", '"\n'), "characters"),
    "huge_block_scalar": (lambda: _fill(HEAD + "name: |\n", "  " + "a" * 78 + "\n"), "characters"),
    "huge_key": (lambda: _fill(HEAD + '? "', "k", '"\n: 1\n'), "characters"),
    "huge_integer": (lambda: _fill(HEAD + "rules: [{priority: ", "9", "}]\n"), "characters"),
    "blank_lines": (lambda: _fill("", "\n"), "empty"),
    "comment_lines": (lambda: _fill("", "#" + "x" * 98 + "\n"), "empty"),
    "long_line_of_spaces": (lambda: _fill(HEAD + "name: [a", " ", "]\n"), "expected a string"),
    "many_documents": (lambda: _fill(HEAD, "---\na: 1\n"), "one YAML document"),
    "too_large": (lambda: (HEAD + "#" * (1 << 20)).encode(), "larger than"),
    "prompt_format_spec": (
        lambda: (
            HEAD.replace("Make the code faster.", "'{objectives:>200000000}'") + "name: x\n"
        ).encode(),
        "format spec",
    ),
    "prompt_placeholders": (_prompt_placeholders, "renders to up to"),
    "unknown_metrics": (_unknown_metrics, "unknown metric"),
    "sequential_rules": (_sequential_rules, "sequential mode cannot focus"),
    "many_errors": (_many_errors, ""),
}


def _measure(name: str, pure_python: bool) -> dict[str, float]:
    """Measure one case in this process (see the module docstring)."""
    import contextlib
    import resource
    import time
    import tracemalloc

    from steerloop.errors import PolicyError
    from steerloop.policies import bounded_yaml, load_preset, parse_policy

    bounded_yaml.LIBYAML = bounded_yaml.HAVE_LIBYAML and not pure_python

    data = CASES[name][0]()
    load_preset("paper")
    with contextlib.suppress(PolicyError):
        parse_policy("a: [")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall = cpu = float("inf")
    for _ in range(5):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(PolicyError):
            parse_policy(data)
        wall = min(wall, time.perf_counter() - start_wall)
        cpu = min(cpu, time.process_time() - start_cpu)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    with contextlib.suppress(PolicyError):
        parse_policy(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "bytes": len(data),
        "wall_ms": wall * 1e3,
        "cpu_ms": cpu * 1e3,
        "python_peak_mb": peak / 1e6,
        "rss_growth_mb": (rss_after - rss_before) / 1e3,  # ru_maxrss is in KiB on Linux
    }


def main(pure_python: bool) -> None:
    """Print one line per case, each measured in a fresh subprocess."""
    import platform

    from steerloop.policies import bounded_yaml

    parser = "libyaml" if bounded_yaml.HAVE_LIBYAML and not pure_python else "pure-Python"
    machine = platform.processor() or platform.machine()
    print(f"# {machine}, Python {platform.python_version()}, {parser} parser")
    print(f"{'case':24s} {'bytes':>9s} {'wall ms':>8s} {'cpu ms':>8s} {'py MB':>7s} {'rss MB':>7s}")
    for name in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--case", name, *(["--python"] if pure_python else [])],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout)
        print(
            f"{name:24s} {row['bytes']:9d} {row['wall_ms']:8.1f} {row['cpu_ms']:8.1f} "
            f"{row['python_peak_mb']:7.1f} {row['rss_growth_mb']:7.1f}"
        )


if __name__ == "__main__":
    python_parser = "--python" in sys.argv
    if len(sys.argv) >= 3 and sys.argv[1] == "--case":
        print(json.dumps(_measure(sys.argv[2], python_parser)))
    else:
        main(python_parser)
