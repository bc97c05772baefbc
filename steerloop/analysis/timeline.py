"""Per-session timeline: what the controller saw and did, step by step (extra ``plot``).

A :class:`SessionTimeline` holds one session's records of a trajectory file
(:mod:`steerloop.analysis.trajectory`); :func:`draw_timeline` draws it on one matplotlib
``Axes``:

* **strategy bands**: the background of each step is the colour of the strategy whose prompt
  produced that response;
* **objectives**: per objective, the filtered state x̂_t (solid line) over the raw scores y_t
  (dots) — the dots' scatter around the line is the measurement noise the filter removes.
  Records without filtered values (static runs, version-1 files) draw the scores as a line;
* **switches**: a dashed vertical line between step t and t + 1 where the decision after
  step t changed the strategy, labelled with the rule that acted; a rule that matched without
  switching (the minimum dwell held the strategy) is a small triangle at the top.

:func:`write_timelines` draws several sessions (one panel each, shared colours and legend)
into one PNG; ``steerloop plot FILE --session ID`` and ``steerloop demo`` use it. Matplotlib
is used through its object-oriented API with the Agg canvas only (see
:mod:`steerloop.analysis.plots`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steerloop.analysis.trajectory import Source, TrajectoryRecord, iter_jsonl

__all__ = [
    "OBJECTIVE_COLOURS",
    "STRATEGY_COLOURS",
    "SessionTimeline",
    "draw_timeline",
    "read_timelines",
    "strategy_colours",
    "write_timelines",
]

#: Line colours of the objectives, in objective order (colour-blind-safe Okabe–Ito).
OBJECTIVE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
#: Band colours of the strategies, in order of first appearance (light, distinguishable).
STRATEGY_COLOURS = (
    "#a6cee3",
    "#fdbf6f",
    "#b2df8a",
    "#fb9a99",
    "#cab2d6",
    "#ffff99",
    "#d9d9d9",
    "#80b1d3",
)


@dataclass(frozen=True)
class SessionTimeline:
    """One session's steps, in step order.

    Attributes
    ----------
    session : str
    objectives : tuple of str
    steps : int array (n,)
    strategies : tuple of str (n,)
        Strategy that produced each step's response.
    scores, filtered : float arrays (n, d)
        Raw scores and filtered objectives (NaN where missing or not recorded).
    rules : tuple of (str or None) (n,)
        Rule that acted in the decision after each step.
    switched : bool array (n,)
        Whether that decision changed the strategy.
    """

    session: str
    objectives: tuple[str, ...]
    steps: NDArray[np.intp]
    strategies: tuple[str, ...]
    scores: NDArray[np.float64]
    filtered: NDArray[np.float64]
    rules: tuple[str | None, ...]
    switched: NDArray[np.bool_]

    @classmethod
    def from_records(
        cls, session: str, records: Iterable[TrajectoryRecord], objectives: Sequence[str]
    ) -> SessionTimeline:
        """The timeline of ``session`` from records (other sessions' records are ignored).

        Raises
        ------
        ValueError
            When no record belongs to ``session``.
        """
        rows = sorted((r for r in records if r.session == session), key=lambda r: r.step)
        if not rows:
            raise ValueError(f"no records for session {session!r}")

        return cls(
            session=session,
            objectives=tuple(objectives),
            steps=np.array([r.step for r in rows], dtype=np.intp),
            strategies=tuple(r.strategy for r in rows),
            scores=_matrix([r.scores for r in rows], objectives),
            filtered=_matrix([r.filtered for r in rows], objectives),
            rules=tuple(r.rule for r in rows),
            switched=np.array([bool(r.switched) for r in rows], dtype=np.bool_),
        )

    @property
    def has_filtered(self) -> bool:
        """Whether any step carries filtered objectives (a steered run)."""
        return bool(np.isfinite(self.filtered).any())

    def segments(self) -> list[tuple[int, int, str]]:
        """Runs of one strategy as (first step, last step, strategy), in step order."""
        runs: list[tuple[int, int, str]] = []
        for step, strategy in zip(self.steps.tolist(), self.strategies, strict=True):
            if runs and runs[-1][2] == strategy and runs[-1][1] == step - 1:
                runs[-1] = (runs[-1][0], step, strategy)
            else:
                runs.append((step, step, strategy))
        return runs

    def switches(self) -> list[tuple[int, str | None]]:
        """(step, rule) of every decision that changed the strategy after that step."""
        return [
            (int(step), rule)
            for step, rule, changed in zip(self.steps, self.rules, self.switched, strict=True)
            if changed
        ]


def _matrix(
    rows: Sequence[Mapping[str, float | None] | None], objectives: Sequence[str]
) -> NDArray[np.float64]:
    out = np.full((len(rows), len(objectives)), np.nan)
    for i, row in enumerate(rows):
        for j, name in enumerate(objectives):
            value = (row or {}).get(name)
            if value is not None:
                out[i, j] = value
    return out


def read_timelines(
    source: Source, sessions: Sequence[str], *, progress: Callable[[int], None] | None = None
) -> list[SessionTimeline]:
    """Stream a trajectory file and return the timelines of ``sessions``, in that order.

    ``progress`` is passed to :func:`~steerloop.analysis.trajectory.iter_jsonl`.

    Raises
    ------
    steerloop.errors.TrajectoryFormatError
        When the file is malformed.
    ValueError
        When a session is not in the file (the message names some that are).
    """
    wanted = set(sessions)
    kept: dict[str, list[TrajectoryRecord]] = {name: [] for name in sessions}
    seen: dict[str, None] = {}
    items = iter_jsonl(source, progress=progress)
    header = next(items)
    objectives: list[str] = getattr(header, "objectives", [])
    for item in items:
        if isinstance(item, TrajectoryRecord):
            seen.setdefault(item.session)
            if item.session in wanted:
                kept[item.session].append(item)
    missing = [name for name in sessions if not kept[name]]
    if missing:
        examples = ", ".join(repr(name) for name in list(seen)[:5])
        raise ValueError(
            f"session(s) {missing} not in the file; it has {len(seen)} session(s)"
            + (f", e.g. {examples}" if examples else "")
        )
    return [SessionTimeline.from_records(name, kept[name], objectives) for name in sessions]


def strategy_colours(timelines: Iterable[SessionTimeline]) -> dict[str, str]:
    """One band colour per strategy, in order of first appearance (cycling the palette)."""
    names: dict[str, None] = {}
    for timeline in timelines:
        names.update(dict.fromkeys(timeline.strategies))
    return {name: STRATEGY_COLOURS[k % len(STRATEGY_COLOURS)] for k, name in enumerate(names)}


def draw_timeline(
    axis: Any, timeline: SessionTimeline, colours: Mapping[str, str], *, title: str | None = None
) -> None:
    """Draw ``timeline`` on the matplotlib ``axis`` (bands, objectives, switches; see above)."""
    for first, last, strategy in timeline.segments():
        axis.axvspan(first - 0.5, last + 0.5, color=colours[strategy], alpha=0.55, linewidth=0)
    steps = timeline.steps
    steered = timeline.has_filtered
    for j in range(len(timeline.objectives)):
        colour = OBJECTIVE_COLOURS[j % len(OBJECTIVE_COLOURS)]
        if steered:
            axis.plot(steps, timeline.filtered[:, j], color=colour, linewidth=1.6)
            axis.plot(steps, timeline.scores[:, j], ".", color=colour, markersize=3, alpha=0.6)
        else:
            axis.plot(
                steps, timeline.scores[:, j], color=colour, linewidth=1.2, marker=".", markersize=3
            )
    for step, rule in timeline.switches():
        axis.axvline(step + 0.5, color="black", linestyle="--", linewidth=0.8)
        axis.text(
            step + 0.7,
            0.98,
            rule or "(no rule)",
            rotation=90,
            va="top",
            ha="left",
            fontsize=6,
            transform=axis.get_xaxis_transform(),
            clip_on=True,
        )
    held = [
        s
        for s, r, c in zip(steps, timeline.rules, timeline.switched, strict=True)
        if r is not None and not c
    ]
    if held:
        axis.plot(
            held,
            [1.02] * len(held),
            "v",
            color="black",
            markersize=3,
            clip_on=False,
            transform=axis.get_xaxis_transform(),
        )
    axis.set_xlim(float(steps.min()) - 0.5, float(steps.max()) + 0.5)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("step (iteration of the loop)", fontsize=8)
    axis.set_ylabel("objective score (0–1)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.set_title(
        title if title is not None else f"session {timeline.session}", fontsize=9, loc="left"
    )


def _legend_handles(timelines: Sequence[SessionTimeline], colours: Mapping[str, str]) -> Any:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    objectives = timelines[0].objectives
    handles: list[Any] = [
        Line2D([], [], color=OBJECTIVE_COLOURS[j % len(OBJECTIVE_COLOURS)], label=name)
        for j, name in enumerate(objectives)
    ]
    if any(t.has_filtered for t in timelines):
        handles.append(Line2D([], [], color="grey", label="line: filtered x̂ (steered)"))
        handles.append(
            Line2D([], [], color="grey", marker=".", linestyle="", label="dots: raw scores")
        )
    if not all(t.has_filtered for t in timelines):
        handles.append(Line2D([], [], color="grey", marker=".", label="scores (static run)"))
    handles.append(Line2D([], [], color="black", linestyle="--", label="switch (label: rule)"))
    handles.append(
        Line2D(
            [],
            [],
            color="black",
            marker="v",
            linestyle="",
            markersize=4,
            label="rule matched, strategy held",
        )
    )
    handles += [Patch(color=colour, alpha=0.55, label=name) for name, colour in colours.items()]
    return handles


def write_timelines(
    timelines: Sequence[SessionTimeline],
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
) -> Path:
    """Draw ``timelines`` (one panel each, shared colours and legend) into the PNG ``path``.

    Raises
    ------
    ImportError
        When matplotlib is not installed (the message names the ``plot`` extra).
    ValueError
        When ``timelines`` is empty or their objectives differ.
    """
    from steerloop.analysis.plots import require_matplotlib

    if not timelines:
        raise ValueError("no timelines to draw")
    if len({t.objectives for t in timelines}) > 1:
        raise ValueError("the timelines have different objectives")
    figure_type, canvas_type = require_matplotlib()
    colours = strategy_colours(timelines)
    handles = _legend_handles(timelines, colours)
    n = len(timelines)
    legend_inches = 0.22 * math.ceil(len(handles) / 4) + 0.25
    height = 2.6 * n + legend_inches + (0.3 if suptitle else 0.0)
    figure = figure_type(figsize=(10.0, height))
    canvas_type(figure)
    for k, timeline in enumerate(timelines):
        axis = figure.add_subplot(n, 1, k + 1)
        draw_timeline(axis, timeline, colours, title=None if titles is None else titles[k])
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    top = 1.0 - (0.3 / height if suptitle else 0.0)
    figure.tight_layout(rect=(0.0, legend_inches / height, 1.0, top))
    out = Path(path)
    figure.savefig(out, dpi=110)
    return out
