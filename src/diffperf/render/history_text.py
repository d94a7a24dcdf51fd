"""Saved runs in words: comparison and trend tables with their notes, regression lines, the A/B summary,
what a calibration recorded, change points, and the report's words for the gate's rows.

Everything here reads numbers, statuses and reason codes from :mod:`diffperf.history`; nothing
here computes a statistic.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

from diffperf.gate.verdicts import GateRow
from diffperf.history import compare, identity
from diffperf.history.calibrate import Recorded
from diffperf.history.changepoints import ChangePoint
from diffperf.history.hosts import HostMatrix
from diffperf.history.runs import (
    SAVE_DATA_HINT, MachineKey, Run, comparable_groups, group_by_machine,
)
from diffperf.history.values import CI, GATE, IQR, LATENCY, SPEEDUP, Level
from diffperf.render.gate_text import GateContext, differences_text, row_line
from diffperf.render.table import (
    STATUS_STYLES, Column, Table, markdown_section, seconds, signed_change, status_cell,
)
from diffperf.render.throughput_text import flop_rate, fraction
from diffperf.stats.status import Status

__all__ = [
    "ab_summary", "calibration_line", "host_matrix_tables", "hosts_summary", "change_point_line", "comparison_label", "comparison_tables", "gate_detail",
    "gate_summary", "identity_warnings", "interval_name", "level_text",
    "machine_warnings", "mixed_machines_warning", "percent", "planted_warnings", "ratio", "regression_lines", "side_label", "trend_tables", "trend_warnings",
    "ungated_detail", "untested_warning", "value_text",
]

UNTESTED_WHY = {
    compare.ONE_RUN_PER_SIDE: "one run per side cannot separate a change from run-to-run variation: give several "
                              "runs per side (--base RUN... --head RUN...) or saved runs of this machine (--history)",
    compare.SHORT_HISTORY: "one run per side, and the history holds fewer than two comparable runs of the case on "
                           "this machine to learn the run-to-run spread from",
    compare.NO_SPEEDUP: f"a side has no paired raw rounds to take a speed-up from ({SAVE_DATA_HINT})",
    compare.REFERENCE_CHANGED: "the sides measure the speed-up against different reference variants",
}
_PRIOR_WORDS = {
    compare.HISTORY: "the history",
    compare.CALIBRATION: "this host's calibration",
    compare.ALL_CASES: "all cases pooled",
}
_ORDER = [compare.SLOWER, compare.LOWER, compare.FASTER, compare.HIGHER, compare.NO_CHANGE, compare.INCONCLUSIVE,
          compare.UNTESTED, compare.NOT_COMPARABLE]


# --------------------------------------------------------------------------- numbers


def percent(fraction: float) -> str:
    """0.95 -> '95%', 0.975 -> '97.5%'."""
    return f"{round(fraction * 100, 6):g}%"


def ratio(value: float) -> str:
    return f"{value:.3f}x"


def value_text(metric: str, value: float) -> str:
    """A latency in a readable unit, a speed-up as '1.234x'."""
    return seconds(value) if metric == LATENCY else ratio(value)


def interval_name(level: Level | None) -> str:
    """What a level's interval is: '95% CI', 'gate 95% CI', 'IQR' or '-'."""
    if level is None or level.kind is None:
        return "-"
    if level.kind == IQR:
        return "IQR"
    confidence = f"{percent(level.confidence)} " if level.confidence else ""
    return f"{confidence}CI" if level.kind == CI else f"gate {confidence}CI"


def level_text(metric: str, level: Level, separator: str = " ") -> str:
    """'180.0 ms [178.2 ms, 181.9 ms]' (the interval left out when there is none)."""
    text = value_text(metric, level.value)
    if level.low is not None and level.high is not None:
        text += f"{separator}[{value_text(metric, level.low)}, {value_text(metric, level.high)}]"
    return text


# --------------------------------------------------------------------------- compare


def side_label(runs: list[Run]) -> str:
    """A run's label, or 'N runs (first, ..., last)'."""
    if len(runs) == 1:
        return runs[0].label
    shown = ", ".join(run.label for run in runs) if len(runs) <= 3 else f"{runs[0].label}, ..., {runs[-1].label}"
    return f"{len(runs)} runs ({shown})"


def comparison_label(comparison: compare.Comparison) -> str:
    return f"{side_label(comparison.new_runs)} vs {side_label(comparison.old_runs)}"


def _side_description(runs: list[Run]) -> str:
    if len(runs) == 1:
        return f"{runs[0].label} ({runs[0].commit_label}, {runs[0].when_label})"
    commits = ", ".join(dict.fromkeys(run.commit_label for run in runs))
    return f"{side_label(runs)} ({commits}; {runs[0].when_label} to {runs[-1].when_label})"


def _change_sentence(change: compare.Change, comparison: compare.Comparison) -> str:
    threshold = f"the ±{percent(comparison.threshold)} threshold"
    if change.status == compare.NOT_COMPARABLE:
        return f"not comparable (x): the scenario differs: {differences_text(change.differs)}"
    if not change.tested:
        return UNTESTED_WHY[change.reason]
    history = f", {change.history_df} from {' and '.join(_PRIOR_WORDS[prior] for prior in change.priors)}" \
        if change.history_df else ""
    measured = (f"{change.metric} {signed_change(change.ratio)} [{signed_change(change.low)}, "
                f"{signed_change(change.high)}] between runs (t, {change.df} df{history})")
    if change.status == compare.NO_CHANGE:
        return f"{measured}: within {threshold}"
    if change.status == compare.INCONCLUSIVE and change.not_among_all:
        tested = sum(other.p_beyond is not None for case in comparison.cases for other in case.changes)
        return f"{measured}: beyond {threshold} on its own, but not among the {tested} changes compared " \
               f"together, where chance alone takes some that far; more runs per side would decide"
    if change.status == compare.INCONCLUSIVE:
        return f"{measured}: the {percent(comparison.confidence)} interval straddles {threshold}; more runs per " \
               f"side would decide"
    return f"{measured}: {change.status} beyond {threshold}"


def regression_lines(comparison: compare.Comparison) -> list[str]:
    """One line per slower latency or lower speed-up."""
    return [f"{case.label}: {_change_sentence(change, comparison)}" for case, change in comparison.regressed]


def _side_cell(metric: str, side: compare.Side | None) -> str:
    if side is None:
        return "-"
    text = value_text(metric, side.value)
    if side.runs > 1:
        return f"{text}\n{side.runs} runs"
    if side.within is not None and side.within.low is not None:
        return f"{text}\n[{value_text(metric, side.within.low)}, {value_text(metric, side.within.high)}]"
    return text


def _change_cells(change: compare.Change) -> list:
    text = "-" if math.isnan(change.ratio) else signed_change(change.ratio)  # NaN: a side has no value
    if change.low is not None:
        text += f"\n[{signed_change(change.low)}, {signed_change(change.high)}]"
    p_value = "-" if change.p_value is None else f"{change.p_value:.2g}"
    return [text, p_value, status_cell(change.status)]


def _tally(changes: Iterable[compare.Change]) -> str:
    changes = list(changes)
    counts = {status: sum(change.status == status for change in changes) for status in _ORDER}
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "nothing compared"


def _change_notes(pairs: list[tuple[compare.CaseComparison, compare.Change]],
                  comparison: compare.Comparison) -> list[str]:
    """A note per regression or inconclusive change, and one per reason for the untested ones."""
    notes = [f"{case.label}: {_change_sentence(change, comparison)}" for case, change in pairs
             if change.status in (*compare.REGRESSIONS, compare.INCONCLUSIVE, compare.NOT_COMPARABLE)]
    for case, change in pairs:
        if change.reason == compare.REFERENCE_CHANGED:
            notes.append(f"{case.label}: reference changed from {case.old_reference} to {case.reference}: "
                         "speed-ups not comparable")
    for reason in (compare.ONE_RUN_PER_SIDE, compare.SHORT_HISTORY, compare.NO_SPEEDUP):
        untested = [case.label for case, change in pairs if change.reason == reason]
        if untested:
            notes.append(f"untested ({len(untested)}): {UNTESTED_WHY[reason]}")
    return notes


def _basis_note(comparison: compare.Comparison) -> str:
    sides = f"{len(comparison.old_runs)} vs {len(comparison.new_runs)} run(s)"
    note = (f"verdicts between runs ({sides}): pooled t interval on log per-run values against the "
            f"±{percent(comparison.threshold)} threshold")
    if comparison.history_runs:
        note += f"; the run-to-run spread of {comparison.history_runs} saved run(s) moderates the sides' own"
    return note + ("; old, new: a run's value [its own within-run interval: information only, blind to "
                   "run-to-run variation]")


def comparison_tables(comparison: compare.Comparison) -> list[Table]:
    """The latency table and (when any case has a reference) the speed-up table."""
    c = comparison
    where = f"{_side_description(c.old_runs)} -> {_side_description(c.new_runs)}; {c.machine}"
    ci = f"{percent(c.confidence)} CI"
    latency = Table(f"Latency: {where}", [
        Column("variant"), Column("scenario"), Column("old", "right", min_width=8), Column("new", "right", min_width=8),
        Column(f"time change [{ci}]", "right", min_width=9), Column("p", "right", wrap=False),
        Column("verdict", wrap=False, min_width=7)])
    speedup = Table(f"Speed-up over reference: {where}", [
        Column("variant vs reference"), Column("scenario"), Column("old", "right", min_width=8),
        Column("new", "right", min_width=8), Column(f"change [{ci}]", "right", min_width=9),
        Column("p", "right", wrap=False), Column("verdict", wrap=False, min_width=7)])
    for case in c.cases:
        latency.rows.append([case.variant, case.scenario or "-", _side_cell(LATENCY, case.old_latency),
                             _side_cell(LATENCY, case.new_latency), *_change_cells(case.latency)])
        if case.speedup is not None:
            speedup.rows.append([f"{case.variant}\nvs {case.reference or '-'}", case.scenario or "-",
                                 _side_cell(SPEEDUP, case.old_speedup),
                                 _side_cell(SPEEDUP, case.new_speedup), *_change_cells(case.speedup)])
    latency.notes += _change_notes([(case, case.latency) for case in c.cases], c)
    latency.notes.append(f"{_tally(case.latency for case in c.cases)}; {_basis_note(c)}")
    if c.software:
        latency.notes.append(f"the sides run other software ({differences_text(c.software)}): every change "
                             "includes it")
    latency.notes += [f"only in {side_label(runs)}: {', '.join(labels)}"
                      for runs, labels in ((c.old_runs, c.only_old), (c.new_runs, c.only_new)) if labels]
    tables = [latency]
    if speedup.rows:
        pairs = [(case, case.speedup) for case in c.cases if case.speedup is not None]
        speedup.notes += _change_notes(pairs, c) + [_tally(change for _, change in pairs)]
        tables.append(speedup)
    throughput = _throughput_table(c, where)
    return tables + ([throughput] if throughput.rows else [])


def _rate_cell(side: compare.Side | None) -> str:
    if side is None:
        return "-"
    return flop_rate(side.value) + (f"\n{side.runs} runs" if side.runs > 1 else "")


def _throughput_table(c: compare.Comparison, where: str) -> Table:
    """Achieved FLOP/s of the whole call per side, where the runs recorded it: information, never a verdict."""
    table = Table(f"Achieved throughput: {where}", [
        Column("variant"), Column("scenario"), Column("old", "right", min_width=8), Column("new", "right", min_width=8),
        Column("change", "right"), Column("new / measured peak", "right")])
    for case in c.cases:
        if case.old_flop_rate is None and case.new_flop_rate is None:
            continue
        change = "-" if case.old_flop_rate is None or case.new_flop_rate is None else \
            signed_change(case.new_flop_rate.value / case.old_flop_rate.value)
        table.rows.append([case.variant, case.scenario or "-", _rate_cell(case.old_flop_rate),
                           _rate_cell(case.new_flop_rate), change, fraction(case.new_peak_fraction)])
    table.notes.append("whole-call FLOP/s = the call's FLOPs (torch.utils.flop_counter) / its median time, geometric "
                       "mean over a side's runs; information only: with unchanged FLOPs it moves with the latency "
                       "judged above")
    return table


def untested_warning(comparisons: list[compare.Comparison]) -> str | None:
    """How many changes went untested, and that they cannot fail a comparison."""
    untested = [change for comparison in comparisons for change in comparison.untested]
    if not untested:
        return None
    reasons = sorted({change.reason for change in untested})
    return (f"{len(untested)} change(s) untested ({', '.join(reasons)}): untested changes cannot fail the "
            "comparison; see the notes under the tables")


def identity_warnings(runs: list[Run]) -> list[str]:
    """Runs of one machine that are not comparable (asv's "x"): which field keeps each group apart."""
    warnings = []
    for members in group_by_machine(runs).values():
        groups = list(comparable_groups(members).values())
        for group in groups[1:]:
            differs = groups[0][0].identity.differences(group[0].identity, identity.SETUP)
            warnings.append(f"not comparable (x) with {groups[0][0].label}: {', '.join(run.label for run in group)} "
                            f"({differences_text(differs)}); compared only among themselves")
    return warnings


def mixed_machines_warning(groups: Mapping[MachineKey, list[Run]]) -> str | None:
    """A one-line warning when runs come from more than one profile/hardware, else None."""
    if len(groups) < 2:
        return None
    parts = [f"{key} ({', '.join(run.label for run in runs)})" for key, runs in groups.items()]
    return (f"runs from {len(groups)} different profiles/hardware are kept apart, "
            f"never compared with each other: " + "; ".join(parts))


def planted_warnings(runs: Iterable[Run]) -> list[str]:
    """A one-line warning per run made with ``--perf-plant-slowdown`` or ``--perf-plant-memory``: its numbers are
    not the code's own."""
    return [f"{run.label} was run with {run.planted.text()}" for run in runs if run.planted]


def machine_warnings(runs: list[Run]) -> list[str]:
    """Runs of several profiles/hardware are kept apart; a run alone on its machine is compared with nothing."""
    groups = group_by_machine(runs)
    mixed = mixed_machines_warning(groups)
    if mixed is None:
        return []
    return [mixed] + [f"{members[0].label} ({key}) has no other run of the same profile and hardware"
                      for key, members in groups.items() if len(members) < 2]


def hosts_summary(tables: list[Table]) -> str:
    """``diffperf gather --summary``: the hosts' tables as Markdown under one heading."""
    return markdown_section("diffperf: speed-ups by host", tables)


def ab_summary(tables: list[Table]) -> str:
    """``diffperf ab --summary``: the comparison's tables as Markdown under one heading."""
    return markdown_section("diffperf A/B: base vs head, same machine", tables)


# --------------------------------------------------------------------------- calibration


def calibration_line(entry: Recorded) -> str:
    """What ``diffperf calibrate`` recorded, one line a record."""
    if entry.table == "portable":
        return (f"recorded portable bands {entry.key} for {entry.speedups} speed-ups from {entry.hosts} host(s) "
                f"in {entry.path}")
    return (f"recorded {entry.speedups} speed-ups and {entry.memory} memory ratios of {entry.key} "
            f"({entry.processes} processes) in {entry.path}")


# --------------------------------------------------------------------------- trend and change points


def change_point_line(label: str, point: ChangePoint) -> str:
    """'distilled/astronaut: speed-up -12.0% from x.json (abc1234, 2026-11-03 10:00): mean 1.420x -> 1.250x, p = 2e-05'."""
    run, shift = point.run, point.shift
    return (f"{label}: {point.metric} {signed_change(1 + shift.change)} from {run.label} ({run.commit_label}, "
            f"{run.when_label}): mean {value_text(point.metric, shift.before)} -> "
            f"{value_text(point.metric, shift.after)}, p = {shift.p_value:.2g}")


def trend_tables(trends) -> list[Table]:
    """Per profile/hardware: each case's first and latest latency and speed-up, and its change points."""
    tables = []
    for key, members in trends.groups.items():
        first_run, last_run = members[0], members[-1]
        table = Table(
            f"Trend, {key}: {len(members)} run(s) from {first_run.when_label} to {last_run.when_label}",
            [Column("variant"), Column("scenario"), Column("runs", "right"), Column("latency first -> latest", "right"),
             Column("change", "right"), Column("speed-up first -> latest", "right"), Column("change", "right"),
             Column("change points", "right")])
        for series in trends.series[key]:
            first, last = series.points[0].latency.value, series.points[-1].latency.value
            speeds = [point.speedup.value for point in series.points if point.speedup is not None]
            table.rows.append([
                series.variant, series.scenario or "-", str(len(series.points)),
                f"{seconds(first)} -> {seconds(last)}", signed_change(last / first),
                f"{ratio(speeds[0])} -> {ratio(speeds[-1])}" if speeds else "-",
                signed_change(speeds[-1] / speeds[0]) if speeds else "-", str(len(series.change_points)),
            ])
            table.notes += [change_point_line(series.label, point) for point in series.change_points]
        table.notes.append(f"first run {first_run.label} ({first_run.commit_label}), latest {last_run.label} "
                           f"({last_run.commit_label}); change points: ruptures PELT + t test, p < {trends.max_pvalue:g}")
        tables.append(table)
    return tables


def trend_warnings(trends) -> list[str]:
    """Runs kept apart by profile/hardware, and runs whose intervals are quartiles for lack of raw rounds."""
    warnings = [mixed_machines_warning(trends.groups)] if len(trends.groups) > 1 else []
    for runs in trends.groups.values():
        for before, after in zip(runs, runs[1:]):
            differs = before.identity.differences(after.identity)
            if differs:
                warnings.append(f"from {after.label} ({after.commit_label}, {after.when_label}) the runs measure "
                                f"under another identity ({differences_text(differs)}): change points restart there")
    if trends.without_raw:
        warnings.append(f"no raw rounds in {', '.join(trends.without_raw)}: latency bars there are the IQR, "
                        "not a confidence interval")
    return warnings


# --------------------------------------------------------------------------- the report's gate rows


def gate_row_of(row: Mapping) -> GateRow | None:
    """A row of the gate's JSON as the :class:`GateRow` it was saved from; None for files written before the gate
    kept its numbers, or a row without them."""
    if row.get("message"):
        return None
    known = {field.name for field in dataclasses.fields(GateRow)}
    numbers = {name: value for name, value in row.items() if name in known}
    numbers.setdefault("kind", "speed-up")
    try:
        return GateRow(**numbers)
    except TypeError:
        return None


def gate_detail(row: Mapping) -> str:
    """What a row of the gate's JSON means, from its numbers (its own ``message`` in files that have one)."""
    if row.get("message"):
        return str(row["message"])
    # A saved run does not say which host or baselines it was judged on: only the command is named.
    context = GateContext(host_key="", portable_key="", path="", calibrate_hint="diffperf calibrate")
    found = gate_row_of(row)
    try:
        return row_line(found, context) if found is not None else str(row.get("reason") or "")
    except (TypeError, ValueError):  # a row without the numbers its status needs
        return str(row.get("reason") or "")


def ungated_detail(level: Level | None) -> str:
    """Why a speed-up in a file without the gate's results has no verdict."""
    if level is None:
        return f"no paired raw rounds and no reference in this run: no speed-up ({SAVE_DATA_HINT})"
    if level.kind in (CI, GATE):
        return "no gate results in this file: not judged"
    return f"no paired raw rounds: ratio of medians, no interval ({SAVE_DATA_HINT})"


def gate_summary(gate: Mapping) -> str:
    """One line on the gate's section of a run file: its outcome and what it was judged against."""
    if gate.get("note"):  # files written before the gate kept numbers only
        return f"{gate['note']} (baseline key {gate.get('baseline_key')})"
    if not gate.get("baseline_key"):
        return "nothing judged: no expectations for this host"
    outcome = "failed" if gate.get("failed") else "passed" if gate.get("judged") else "nothing judged"
    source = {"host": "this host's calibration", "portable": "portable bands",
              "forced": "the key named with --perf-baseline-key"}.get(str(gate.get("baseline_source")), "expectations")
    line = f"{outcome}: {gate.get('judged', 0)} ratio(s) judged against {source} {gate['baseline_key']}"
    if gate.get("closest_host"):
        line += f" (closest calibrated host: {gate['closest_host']})"
    return line


# --------------------------------------------------------------------------- many hosts side by side


def host_matrix_tables(matrix: HostMatrix) -> list[Table]:
    """One table per family: each speed-up (rows) per host (columns), with each host's own verdict."""
    tables = []
    for family in dict.fromkeys(family for family, _ in matrix.cases):
        table = Table(f"Speed-ups by host{f': {family}' if family else ''}",
                      [Column("speed-up")] + [Column(host.host, "right") for host in matrix.hosts])
        for _, case in (item for item in matrix.cases if item[0] == family):
            cells = [case]
            for host in matrix.hosts:
                row = matrix.cells.get((case, host.host))
                if row is None or row.get("value") is None:
                    cells.append("-")
                    continue
                status = str(row.get("status") or Status.UNCHECKED)  # a saved file's word, known or not
                cells.append((f"{row['value']:.2f}x {status}", STATUS_STYLES.get(status, "")))
            table.rows.append(cells)
        tables.append(table)
    if tables:
        tables[-1].notes = [f"{host.host}: {'FAILED' if host.failed else 'passed'}, judged against "
                            f"{host.judged_against or 'nothing (no calibration for this host)'} ({host.run.label})"
                            for host in matrix.hosts]
    return tables
