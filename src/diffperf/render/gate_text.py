"""The speed-up gate in words: one line per verdict, the run's verdict line, a terminal table and Markdown.

Everything here reads numbers and statuses from :mod:`diffperf.gate.verdicts`; nothing here
computes a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffperf.gate import verdicts
from diffperf.gate.expectations import FORCED, HOST, PORTABLE, PUBLISHED
from diffperf.gate.verdicts import GateReport, GateRow
from diffperf.models.family import YARDSTICK
from diffperf.render.table import Column, Table, plain_text, status_cell, wrapped
from diffperf.stats.status import FAILING, Status


@dataclass(frozen=True)
class GateContext:
    """What the words need beyond the report: where the expectations were looked up, and how to fix things."""

    host_key: str
    portable_key: str
    path: str  # the speedups.json looked up
    calibrate_hint: str  # the command that records expectations for this run's profile and baselines
    error: str | None = None  # speedups.json could not be used
    workload_overridden: bool = False  # --perf-steps / --perf-resolution: no expectation holds for this workload


STATUS_ORDER = (Status.REGRESSED, Status.ERROR, Status.IMPROVED, Status.INCONCLUSIVE, Status.OK)
HEADER = ["ratio", "variant", "scenario", "measured [95% CI]", "across processes", "expected", "verdict"]

def best_first(rows: list[GateRow]) -> list[GateRow]:
    """``rows`` with the best stacks' rows first (``Variant.best_stack``: their speed-up over fp32 is the
    figure users ask for first), each group in its own order."""
    return sorted(rows, key=lambda row: not row.best_stack)


def percent(fraction: float) -> str:
    """0.1933 -> '19%', 0.035 -> '3.5%', 0.05 -> '5%'."""
    value = fraction * 100
    return f"{value:.0f}%" if abs(value) >= 9.95 else f"{round(value, 1):g}%"


def row_line(row: GateRow, context: GateContext) -> str:
    """One line saying what a verdict means and, where something is to be done, what."""
    if row.status == Status.UNCHECKED:
        return _unchecked(row, context)
    if row.status == Status.ERROR:
        return (f"the expectation was recorded against {row.stored_reference}, the variant now runs against "
                f"{row.reference}: recalibrate with `{context.calibrate_hint}`")
    deviation = row.value / row.expected - 1
    side = "below" if deviation < 0 else "above"
    if row.kind == "memory":
        measured = f"peak-memory ratio {row.value:.2f}x"
    else:
        measured = f"speed-up {row.value:.2f}x, across processes [{row.judged_low:.2f}, {row.judged_high:.2f}],"
    line = (f"{measured} is {percent(abs(deviation))} {side} expected {row.expected:.2f}x "
            f"(band {row.lower:.2f}x to {row.upper:.2f}x)")
    if row.status == Status.REGRESSED and row.reference == YARDSTICK:
        line += (f"; every pipeline of {row.family or 'the family'} got slower against torch's own kernels, not one "
                 "speed-up: look at what all its variants share" if row.kind == "speed-up" else
                 f"; the fp32 baseline's peak memory rose against the yardstick's fixed footprint: every variant of "
                 f"{row.family or 'the family'} likely holds more")
    elif row.status == Status.IMPROVED:
        line += f"; recalibrate with `{context.calibrate_hint}`"
    elif row.status == Status.INCONCLUSIVE:
        rounds = verdicts.advisable_rounds(row)
        edge = f"{row.ok_lower:.2f}x" if row.ok_lower is not None else "the band"
        line += f"; its one-sided interval reaches below {edge}" + (
            f": about {rounds} paired rounds would decide (--perf-rounds {rounds})" if rounds else
            ", within this host's noise: no rounds in reach decide it")
    return line


def differences_text(differs) -> str:
    """[("steps", "50", "25")] -> 'steps 50 -> 25': what differs between two records, field by field."""
    return "; ".join(f"{name} {before} -> {after}" for name, before, after in differs)


def published_line(row: GateRow) -> str:
    """'fp16/astronaut: published x1.50 on A100; here x1.43 [1.40, 1.46]'."""
    here = "not measured" if row.value is None else f"x{row.value:.2f}" + (
        f" [{row.low:.2f}, {row.high:.2f}]" if row.low is not None else "")
    return f"{row.case}: published x{row.published:.2f} on {row.published_on}; here {here}"


def _unchecked(row: GateRow, context: GateContext) -> str:
    measured = f"{row.value:.2f}x [{row.low:.2f}, {row.high:.2f}]" if row.low is not None else (
        f"{row.value:.2f}x" if row.value is not None else "")
    if row.reason == verdicts.TOO_FEW_ROUNDS:
        return (f"no verdict: {row.n} paired rounds give no 95% interval; at least {row.min_rounds} needed "
                f"(--perf-rounds {row.min_rounds})")
    if row.reason == verdicts.NOT_MEASURED:
        return "no verdict: nothing was timed (benchmarks disabled)"
    if row.reason == verdicts.NO_SPREAD:
        return f"{measured}: the stored expectation has no between-process spread: recalibrate with " \
               f"`{context.calibrate_hint}`"
    return f"{measured}: no expectation stored for this case"


def source_line(report: GateReport, context: GateContext) -> str:
    """Where the expectations came from (or why there are none)."""
    found = report.expectations
    if context.error:
        return unreadable_line(context.error, context.calibrate_hint)
    if context.workload_overridden:
        return "nothing gated: --perf-steps or --perf-resolution changed the workload the expectations were calibrated on"
    if found is None:
        return (f"no calibration for this host ({context.host_key}) and no portable bands for "
                f"{context.portable_key} in {context.path}: nothing gated; record them with "
                f"`{context.calibrate_hint}`")
    calibration = found.calibration
    # Records merge case by case, so their cases may come from calibrations over different numbers of processes.
    counts = sorted({entry.spread.processes for entry in found.speedups.values() if entry.spread is not None})
    shown = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}" if counts else calibration.get("processes")
    processes = f", {shown} processes" if shown else ""
    when = f", {calibration['date']}" if calibration.get("date") else ""
    resolves = resolution_text(verdicts.resolution(report.rows))
    if found.source == HOST:
        return f"judged against this host's calibration ({found.key}{processes}{when}){resolves}"
    if found.source == FORCED:
        return f"judged against {found.key} (--perf-baseline-key; this host is {context.host_key}){resolves}"
    if found.source == PUBLISHED:
        tolerance = next(iter(found.speedups.values())).tolerance
        return (f"judged against the {found.key} with a ±{tolerance:.0%} band, stated not measured: this host "
                f"({context.host_key}) has no calibration; calibrate it with `{context.calibrate_hint}`")
    assert found.source == PORTABLE
    line = f"judged against the portable bands {found.key}: this host ({context.host_key}) has no calibration"
    if found.closest_host:
        shown = differences_text(found.differences[:6])
        more = f" and {len(found.differences) - 6} more" if len(found.differences) > 6 else ""
        line += f"; it differs from {found.closest_host} in {shown}{more}"
    return line + f"{resolves}; calibrate it with `{context.calibrate_hint}`"


def resolution_text(found: verdicts.Resolution | None) -> str:
    """'; this host resolves changes of 9% or more in 13 of 15 speed-ups (baseline/vase 11%, ...)', or ''."""
    if found is None:
        return ""
    if found.band <= found.tolerance and not found.wider:
        return f"; it resolves the ±{percent(found.tolerance)} band in all {found.total} speed-ups"
    share = f"all {found.total}" if not found.wider else f"{found.within} of {found.total}"
    named = ", ".join(f"{case} {percent(band)}" for case, band in found.wider[-3:][::-1])
    more = f" and {len(found.wider) - 3} more" if len(found.wider) > 3 else ""
    return (f"; this host resolves changes of {percent(found.band)} or more in {share} speed-ups"
            + (f" ({named}{more})" if named else ""))


def unreadable_line(error: str, calibrate_hint: str) -> str:
    """What to do about a ``speedups.json`` that cannot be used (``error`` names it and what is wrong)."""
    return f"expected speed-ups could not be read: {error}: restore it from git or run `{calibrate_hint}`"


def verdict_line(report: GateReport, context: GateContext) -> str:
    """``speed-up gate: FAILED (...)``, ``passed (...)`` or ``nothing judged (why)``."""
    judged = report.judged
    if judged and not context.error:
        counts: dict[str, int] = {}
        for row in judged:
            counts[row.status] = counts.get(row.status, 0) + 1
        tally = ", ".join(f"{counts[status]} {status}" for status in STATUS_ORDER if status in counts)
        return f"speed-up gate: {'FAILED' if report.failed else 'passed'} ({tally})"
    reasons = {row.reason for row in report.rows}
    if report.interrupted:
        why = "the run was interrupted: run it to the end to judge the speed-ups"
    elif context.error:
        why = "expectations unreadable"
    elif report.rows and reasons == {verdicts.NOT_MEASURED}:
        why = "benchmarks disabled: nothing was timed"
    elif report.rows and verdicts.TOO_FEW_ROUNDS in reasons and reasons <= {
            verdicts.TOO_FEW_ROUNDS, verdicts.NO_EXPECTATION, verdicts.NO_SPEEDUP_JUDGED}:
        row = next(row for row in report.rows if row.reason == verdicts.TOO_FEW_ROUNDS)
        why = f"{row.n} rounds give no 95% interval, at least {row.min_rounds} needed"
    elif context.workload_overridden:
        why = "workload overridden"
    elif report.expectations is None:
        why = "no expectations for this host"
    else:
        why = "no stored expectation for any case that ran"
    return f"speed-up gate: nothing judged ({why})"


def _cells(row: GateRow) -> list[str]:
    if row.value is None:
        measured = "-"
    elif row.low is not None:
        measured = f"{row.value:.3f}x [{row.low:.3f}, {row.high:.3f}]"
    else:
        measured = f"{row.value:.3f}x"
    across = f"[{row.judged_low:.3f}, {row.judged_high:.3f}]" if row.judged_low is not None else "-"
    expected = "-" if row.expected is None else f"{row.expected:.3f}x ±{row.tolerance:.0%}"
    if row.ok_lower is not None and row.ok_lower < row.lower:  # ok down to what the host resolves
        expected += f" (ok to -{1 - row.ok_lower / row.expected:.0%})"
    return [row.kind, f"{row.variant} vs {row.reference}", row.scenario, measured, across, expected, row.status]


def needs_action(row: GateRow) -> bool:
    """Verdicts a reader can act on: failures, improvements to record, inconclusive speed-ups that rounds in reach
    would decide (:func:`~diffperf.gate.verdicts.advisable_rounds`), and ratios left without a verdict for a reason
    a command fixes."""
    return row.status in (*FAILING, Status.IMPROVED) or verdicts.advisable_rounds(row) is not None or row.reason in (
        verdicts.TOO_FEW_ROUNDS, verdicts.NO_SPREAD)


def within_noise(rows: list[GateRow]) -> list[GateRow]:
    """Inconclusive speed-ups that nothing in reach decides: the host's noise, not a finding."""
    return [row for row in rows if row.status == Status.INCONCLUSIVE and not needs_action(row)]


def noise_line(rows: list[GateRow], where: str = "see --perf-summary") -> str | None:
    """'2 speed-ups inconclusive within this host's noise (bf16/vase, sdxl/astronaut-xl): see --perf-summary'."""
    quiet = within_noise(rows)
    if not quiet:
        return None
    cases = ", ".join(row.case for row in quiet[:4]) + (f" and {len(quiet) - 4} more" if len(quiet) > 4 else "")
    what = "speed-up" if len(quiet) == 1 else "speed-ups"
    return f"{len(quiet)} {what} inconclusive within this host's noise ({cases}): {where}"


def _notes(report: GateReport, context: GateContext) -> list[str]:
    notes = [f"{row.status.upper()}: {row.kind} {row.case}: {row_line(row, context)}"
             for _, rows in by_family(report.rows) for row in rows if needs_action(row)]
    notes += [line for line in [noise_line(report.rows)] if line]
    notes += [published_line(row) for _, rows in by_family(report.rows) for row in rows if row.published]
    notes += [f"not run, though expected: {', '.join(cases)}: {why}" for why, cases in _not_run_by_reason(report).items()]
    return notes


def _not_run_by_reason(report: GateReport) -> dict[str, list[str]]:
    """The cases with a stored expectation that did not run, grouped by why (one line per reason, not per case).

    A reason names its variant first (``channels-last is opt-in on cpu (...): pass --perf-speedups``);
    grouping by what follows the name puts every case left out for the same reason on one line.
    """
    groups: dict[str, list[str]] = {}
    for case, why in report.not_run.items():
        variant = case.split("/", 1)[0]
        reason = "each " + why[len(variant):].strip() if why.startswith(variant + " ") else why
        groups.setdefault(reason, []).append(case)
    return groups


def by_family(rows: list[GateRow]) -> list[tuple[str | None, list[GateRow]]]:
    """The rows grouped by model family, in the order the families ran, each group best stacks first."""
    groups: dict[str | None, list[GateRow]] = {}
    for row in rows:
        groups.setdefault(row.family, []).append(row)
    return [(family, best_first(members)) for family, members in groups.items()]


TERMINAL_HEADER = ["ratio", "variant", "measured", "95% across processes", "expected", "verdict"]
"""The terminal's columns: the scenario is each table's title and the within-process interval is left to the
Markdown and the JSON, so that the longest names fit 120 columns."""


def _terminal_cells(row: GateRow) -> list[str]:
    kind, variant, _, measured, across, expected, _ = _cells(row)
    return [kind, variant, measured.split(" [")[0], across, expected]


def as_tables(report: GateReport, context: GateContext) -> list[Table]:
    """The verdicts as one :class:`diffperf.render.table.Table` per family and scenario (rich on a terminal, plain
    text in CI logs); the notes under the last."""
    tables = []
    for family, rows in by_family(report.rows):
        scenarios = dict.fromkeys(row.scenario for row in rows)
        for scenario in scenarios:
            title = f"{family}, {scenario}:" if family else f"{scenario}:"
            tables.append(Table(title, [Column(header) for header in TERMINAL_HEADER],
                                [[*_terminal_cells(row), status_cell(row.status)]
                                 for row in rows if row.scenario == scenario]))
    tables = tables or [Table("", [Column(header) for header in TERMINAL_HEADER])]
    tables[-1].notes = _notes(report, context)
    return tables


def terminal_lines(report: GateReport, context: GateContext) -> list[str]:
    """Plain aligned text: readable in a terminal and in CI logs alike; the source line first, the verdict line last."""
    lines = wrapped(source_line(report, context))
    for table in as_tables(report, context):
        lines += plain_text(table).splitlines()
    return lines + [verdict_line(report, context)]


def markdown(report: GateReport, context: GateContext) -> str:
    """The gate as a Markdown section (for --perf-summary and $GITHUB_STEP_SUMMARY)."""
    line = verdict_line(report, context)
    icon = "❌" if report.failed or context.error else "✅" if report.judged else "⚠️"
    lines = [f"## diffperf {line.replace('speed-up gate: ', 'speed-up gate: ' + icon + ' ')}", "",
             source_line(report, context), ""]
    for family, rows in by_family(report.rows):
        if family:
            lines += [f"### {family}", ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows] + [""]
    details = [f"- **{row.status}** {row.kind} `{row.case}`: {row_line(row, context)}"
               for _, rows in by_family(report.rows) for row in rows if needs_action(row)]
    details += [f"- {published_line(row)}" for _, rows in by_family(report.rows) for row in rows if row.published]
    details += [f"- `{case}` has a stored expectation but did not run ({why})" for case, why in report.not_run.items()]
    quiet = within_noise(report.rows)
    if quiet:
        details += ["", f"<details><summary>{len(quiet)} inconclusive within this host's noise</summary>", ""]
        details += [f"- `{row.case}`: {row_line(row, context)}" for row in quiet]
        details += ["", "</details>"]
    return "\n".join(lines + details) + "\n"
