"""A run's plan in words: the table of ``diffperf plan``, and the lines ``--perf-budget`` prints."""

from __future__ import annotations

from diffperf.plan.fitting import FittedDevice
from diffperf.plan.jobs import AB_PROCESSES, CALIBRATE_PROCESSES, JobSizes
from diffperf.plan.schedule import BudgetError, RunPlan, Selection
from diffperf.render.table import Column, Table


def duration(seconds: float) -> str:
    """``95 s``, ``14.2 min``, ``3.1 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def budget_error_line(error: BudgetError) -> str:
    """Why a budget was refused, and what to give instead (one line)."""
    return (f"--perf-budget {duration(error.budget)} cannot hold tier 1 ({error.cases} cases, up to "
            f"{duration(error.needed)} on {error.device}): give at least {duration(error.needed)}, or select fewer "
            "cases with -k")


def budget_line(selection: Selection, device: str) -> str:
    """What a budget holds and what it leaves out, by name (one line)."""
    running = len(selection.chosen) + len(selection.left_out)
    line = (f"--perf-budget {duration(selection.budget)} holds {len(selection.chosen)} of {running} cases "
            f"(predicted {duration(selection.predicted)}, at most {duration(selection.most)} on {device})")
    if selection.left_out:
        line += f"; left out: {', '.join(case.case_id for case in selection.left_out)}"
    return line


def plan_table(plan: RunPlan, selection: Selection | None = None, every_case: bool = False) -> Table:
    """The table of ``diffperf plan``: each running case (``every_case``: the skipped ones too, with why), its tier,
    partner, rounds, calls and predicted seconds; under it, the device class and the run's totals."""
    chosen = {case.case_id for case in selection.chosen} if selection is not None else None
    rows = []
    for case in plan.cases:
        if not case.runs and not every_case:
            continue
        rounds = f"{case.most_rounds}" if case.fewest_rounds == case.most_rounds else \
            f"{case.fewest_rounds}-{case.most_rounds}"
        status = case.why_not or ("left out" if chosen is not None and case.case_id not in chosen else "runs")
        rows.append([case.case_id, str(case.tier), case.partner or "-", rounds, str(case.calls),
                     f"{case.variant_seconds:.2f}", f"{case.seconds():.0f}", status])
    columns = [Column("case"), Column("tier", "right"), Column("partner"), Column("rounds", "right"),
               Column("calls", "right"), Column("s/call", "right"), Column("case s", "right"), Column("")]
    device = plan.device
    running = plan.running
    first = [case for case in running if case.tier == 1]
    notes = [f"{device.description} ({device.name}): {device.origin}", *device.notes,
             f"{plan.profile} profile: {len(running)} of {len(plan.cases)} cases run; predicted "
             f"{duration(plan.predicted())} (at most {duration(plan.predicted(most=True))}); tier 1 ({len(first)} "
             f"cases): {duration(plan.predicted(first))} (at most {duration(plan.predicted(first, most=True))})"]
    if selection is not None:
        notes.append(budget_line(selection, device.name))
    return Table(f"diffperf plan: {plan.profile} on {device.name}", columns, rows, notes)


def jobs_lines(jobs: JobSizes) -> list[str]:
    """The GPU workflow's jobs on one device class: each one's budget and predicted wall time (installs apart)."""
    return [
        f"GPU workflow on {jobs.device} (measuring; installs apart):",
        f"  pull request: {duration(jobs.pull_request)} = suite {duration(jobs.suite_budget)} (--perf-budget) + "
        f"A/B {duration(jobs.ab_budget)} ({AB_PROCESSES} processes per side, diffperf ab --budget)",
        f"  push to main: {duration(jobs.main)} (the suite)",
        f"  calibration: {duration(jobs.calibration)} = {CALIBRATE_PROCESSES} processes of "
        f"{duration(jobs.suite_budget)} (diffperf calibrate --budget {duration(jobs.calibrate_budget)}) + one "
        f"run recording the images",
    ]


def fitted_lines(fitted: FittedDevice, source: str) -> list[str]:
    """A device's cost model fitted on a saved run, as the fields of a device class (diffperf.plan.devices)."""
    model = fitted.model
    rates = ", ".join(f"{name} {rate / 1e9:.3g} GFLOP/s" for name, rate in sorted(model.rates.items()))
    startup = "not recorded" if fitted.startup_seconds is None else f"{fitted.startup_seconds:.1f} s"
    share = "no early look" if fitted.continued_share is None else f"{fitted.continued_share:.2f}"
    return [f"fitted on {fitted.cases} latency cases of {source}:",
            f"  rates: {rates}",
            f"  step overhead: {model.step_overhead * 1e3:.2f} ms per denoiser call; call overhead: "
            f"{model.call_overhead * 1e3:.1f} ms per call; classic attention: x{model.classic_attention:.3f}",
            f"  probes: {fitted.case_overhead:.2f} calls of the variant per latency case; start-up: {startup}; "
            f"cases past their early look: {share}"]
