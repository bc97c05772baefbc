"""The tables and text lines the commands print (one builder per table, shared by commands).

:func:`experiment_table` is the comparison table of ``steerloop demo`` and ``steerloop
simulate``; :func:`analysis_table`, :func:`interference_table`, :func:`severity_line` and
:func:`warning_lines` make up ``steerloop analyze``. Estimates are printed with their
standard errors, and an estimate the data cannot support is withheld with a warning instead
of printed as if it meant something.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from steerloop.cli.output import fmt, fmt_estimate

if TYPE_CHECKING:
    from steerloop.analysis.fit import AnalysisReport
    from steerloop.simulate.experiment import ExperimentReport

__all__ = [
    "analysis_table",
    "experiment_table",
    "interference_table",
    "severity_line",
    "warning_lines",
]

Table = tuple[list[str], list[list[str]]]


def experiment_table(report: ExperimentReport) -> Table:
    """Columns and rows comparing the policies of an experiment (final hidden state)."""
    columns = [
        "policy",
        *report.objectives,
        "min",
        "HV",
        f"reach≥{report.target:g}",
        "steps",
        f"end≥{report.target:g}",
        "switches",
        "alarms",
        "ms/update",
    ]
    rows: list[list[str]] = []
    for outcome in report.policies.values():
        per_update = outcome.microseconds_per_update
        rows.append(
            [
                f"{outcome.name} ({outcome.kind})",
                *(fmt(outcome.final_means[o], 2) for o in report.objectives),
                fmt(outcome.final_min_mean, 2),
                fmt(outcome.hypervolume, 3),
                f"{outcome.reached_fraction:.0%}",
                fmt(outcome.steps_to_target, 1),
                f"{outcome.final_reached_fraction:.0%}",
                fmt(outcome.switches_per_session, 1),
                fmt(outcome.severity_alarm_steps, 1),
                fmt(per_update / 1000.0 if per_update is not None else None, 2),
            ]
        )
    return columns, rows


def analysis_table(report: AnalysisReport) -> Table:
    """One row per strategy: counts, rate ± se, regime, R², final means (``*``: see warnings)."""
    columns = [
        "strategy",
        "sessions",
        "transitions",
        "rate ρ ± se (1/step)",
        "regime",
        "R²",
        *(f"final {o}" for o in report.objectives),
    ]
    rows = []
    for fit in report.strategies.values():
        finals = fit.final_means or {}
        rows.append(
            [
                fit.strategy + (" *" if fit.note else ""),
                str(fit.sessions),
                str(fit.transitions),
                fmt_estimate(fit.rate, fit.rate_stderr, 3),
                fit.regime,
                fmt(fit.r2),
                *(fmt(finals.get(o), 2) for o in report.objectives),
            ]
        )
    return columns, rows


def interference_table(report: AnalysisReport) -> Table:
    """The pooled interference matrix, one row per objective."""
    names = report.objectives
    rows = [
        [a, *(fmt(v, 2) for v in row)]
        for a, row in zip(names, report.interference or [], strict=False)
    ]
    return ["", *names], rows


def severity_line(report: AnalysisReport) -> str | None:
    """The severity fit in one line with standard errors; withheld when not meaningful."""
    sev = report.severity
    if sev is None:
        return None
    head = f"severity ({sev.source}, {sev.transitions} transitions): "
    if sev.note:
        return head + "not reported (see warnings; --json has the raw estimates)"
    return head + (
        f"α = {fmt_estimate(sev.alpha, sev.alpha_stderr, 3)}, "
        f"β = {fmt_estimate(sev.beta, sev.beta_stderr, 3)}, "
        f"γ = {fmt_estimate(sev.gamma, sev.gamma_stderr, 4)}, "
        f"α − β = {fmt_estimate(sev.margin, sev.margin_stderr, 3)} → {sev.phase}"
    )


def warning_lines(report: AnalysisReport) -> list[str]:
    """``warning: ...`` lines for every caveat of the report (empty when there is none)."""
    return [f"warning: {line}" for line in report.warnings()]
