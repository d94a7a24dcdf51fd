"""The end of a ``pytest perf`` run, in one place: the gate's verdicts and exit status, the verdicts in the run's JSON,
the HTML report, the workers' JSON parts as one run (under ``-n``), the Markdown summaries and the terminal's gate
section (:class:`RunEnd`); and the one function that gives a run its expectations (:func:`run_expectations`),
which the early look of each case and the gate at the end both judge against.

Light to import (the plugin registers :class:`RunEnd` in every pytest run): the gate, the words and the files
are imported when a run has something to judge.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from diffperf.options import PerfOptions

if TYPE_CHECKING:
    from diffperf.gate.expectations import Expectations
    from diffperf.gate.verdicts import CaseResult, GateReport
    from diffperf.measure.host import Host


@dataclass(frozen=True)
class Measured:
    """What a run's latency cases measured, for the gate: this process's session (diffperf.session.PerfSession.
    measured) or every pytest-xdist worker's, merged (diffperf.wiring.parallel.merge_parts)."""

    results: list[CaseResult]
    skipped: dict[str, str]  # case id -> why it did not run
    throughput: list[dict]  # what each case achieved (diffperf.measure.flops.Throughput.case_info)
    host: Host
    profile: str
    interrupted: bool = False  # a worker was interrupted: nothing is judged
    placements: list[dict] = field(default_factory=list)  # under -n: each worker's, in worker order


def run_expectations(options: PerfOptions, profile: str, host: Host, results: list[CaseResult]) -> Expectations | None:
    """What a run's cases are judged against, by the early look of each case and by the gate at the end alike:
    this host's stored record (its own, else its class's portable bands, or the record --perf-baseline-key names),
    else the figures published for this host's GPU kind for the cases of ``results``, else None.

    None too when --perf-steps or --perf-resolution changed the workload (the expectations hold for the profile's
    own); --perf-no-gate reads no ``speedups.json`` (calibration's processes: an unreadable file must not fail the
    runs that `diffperf calibrate` would replace it with). :class:`diffperf.gate.expectations.ExpectationsError` when
    ``speedups.json`` cannot be used.
    """
    from diffperf.gate.expectations import lookup
    from diffperf.gate.published import published_expectations

    found = None
    if not options.no_gate:
        found = lookup(options.baselines_dir, profile, host, options.baseline_key)
    if found is None:
        found = published_expectations(results, host)
    return None if options.workload_overrides else found


@dataclass(frozen=True)
class GateOutcome:
    report: GateReport
    lines: list[str]  # the terminal summary, verdict line last
    markdown: str
    exit_code: pytest.ExitCode | None  # None: the gate does not change pytest's exit status


def calibrate_hint(profile: str, options: PerfOptions) -> str:
    """The command that records expectations where this run reads them."""
    hint = "diffperf calibrate"
    if options.profile:
        hint += f" --profile {profile}"
    if options.baselines_given:
        hint += f" --baselines {options.baselines_dir}"
    return hint


def unreadable_expectations(error: str, profile: str, options: PerfOptions) -> tuple[str, pytest.ExitCode]:
    """A ``speedups.json`` that cannot be used (``error``), found before anything is measured: the gate's line for it
    and the run's exit status."""
    from diffperf.render import gate_text

    return gate_text.unreadable_line(error, calibrate_hint(profile, options)), _unreadable_exit_code(options)


def judge(measured: Measured, options: PerfOptions, interrupted: bool = False) -> GateOutcome:
    """Judge what the run measured against its expectations (:func:`run_expectations`).

    An ``interrupted`` run judges nothing and leaves pytest's exit status (interrupted) as it is.
    """
    from diffperf.gate import verdicts
    from diffperf.gate.expectations import ExpectationsError, expectations_path
    from diffperf.render import gate_text

    expectations = error = None
    try:
        expectations = run_expectations(options, measured.profile, measured.host, measured.results)
    except ExpectationsError as problem:
        error = str(problem)
    report = verdicts.evaluate(measured.results, expectations, measured.skipped,
                               interrupted=interrupted or measured.interrupted)
    context = gate_text.GateContext(
        host_key=measured.host.key,
        portable_key=measured.host.portable_key,
        path=str(expectations_path(options.baselines_dir, measured.profile)),
        calibrate_hint=calibrate_hint(measured.profile, options),
        error=error,
        workload_overridden=bool(options.workload_overrides),
    )
    return GateOutcome(report, gate_text.terminal_lines(report, context), gate_text.markdown(report, context),
                       _exit_code(report, options, error))


def _exit_code(report: GateReport, options: PerfOptions, error: str | None) -> pytest.ExitCode | None:
    """Fail on a regression or an unusable expectations file; a usage error when the user's options cannot work."""
    from diffperf.gate.verdicts import TOO_FEW_ROUNDS

    if report.interrupted:  # pytest's own exit status (interrupted) stands
        return None
    if error is not None:
        return _unreadable_exit_code(options)
    if options.no_gate:
        return None
    if report.failed:
        return pytest.ExitCode.TESTS_FAILED
    too_few = [row for row in report.rows if row.reason == TOO_FEW_ROUNDS]
    if options.rounds is not None and too_few and not report.judged:
        return pytest.ExitCode.USAGE_ERROR
    return None


def _unreadable_exit_code(options: PerfOptions) -> pytest.ExitCode:
    """An unusable speedups.json fails the run; a usage error where the user named a record in it."""
    return pytest.ExitCode.USAGE_ERROR if options.baseline_key else pytest.ExitCode.TESTS_FAILED


def drop_unfinished_cases(output_json: dict) -> list[str]:
    """Take out of pytest-benchmark's JSON the latency cases whose measurement did not finish; their names.

    pytest-benchmark keeps the rounds an interrupted case had timed (Ctrl-C is no error to it); a diffperf
    case records its ``extra_info`` only once its rounds are done, so a case without it is half measured.
    """
    unfinished = []
    kept = []
    for bench in output_json.get("benchmarks", []):
        params = bench.get("params") or {}
        if {"variant", "scenario"} <= set(params) and "variant" not in (bench.get("extra_info") or {}):
            unfinished.append(bench.get("name"))
        else:
            kept.append(bench)
    output_json["benchmarks"] = kept
    return unfinished


class RunEnd:
    """The end of a run judged in this process: a run without ``-n``, or pytest-xdist's controller, which judges
    every worker's cases at once. A plugin object of its own.

    ``measured`` gives what the run measured (None: nothing yet; a one-line ValueError when the workers' parts
    cannot be judged as one run) and ``merged_json`` the run's JSON for it to write (None where pytest-benchmark
    writes it: without ``-n``)."""

    def __init__(self, options: PerfOptions, config: pytest.Config, measured: Callable[[], Measured | None],
                 merged_json: Callable[[], dict | None] = lambda: None):
        self.options = options
        self.config = config
        self.measured = measured
        self.merged_json = merged_json
        self.outcome: GateOutcome | None = None  # once judged
        self.interrupted = False  # Ctrl-C or a stop before the end: nothing is judged
        self.error: str | None = None  # why what was measured could not be judged as one run

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C, a stop asked for (``session.shouldstop``) or ``pytest.exit``: the run is judged as interrupted."""
        self.interrupted = True

    def gate_outcome(self, measured: Measured) -> GateOutcome:
        """The gate's verdicts, rendered, computed once (pytest-benchmark's JSON may ask first)."""
        if self.outcome is None:
            self.outcome = judge(measured, self.options, self.interrupted)
        return self.outcome

    def pytest_benchmark_update_json(self, config: pytest.Config, output_json: dict) -> None:
        """Add the gate's verdicts to the JSON, less the cases whose measurement did not finish; with
        --perf-report, write the HTML report beside it."""
        unfinished = drop_unfinished_cases(output_json)
        measured = self.measured()
        if measured is None or not measured.results:
            return
        output_json["diffperf"] = {**self.gate_outcome(measured).report.to_json(), "unfinished": unfinished}
        self.write_report(output_json)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Judge the speed-ups, write the run's JSON where this process writes it, the summaries, and fail on a
        regression."""
        try:
            measured = self.measured()
        except ValueError as error:  # under -n, workers that were not one host: nothing can be judged as one run
            self.error = str(error)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.write_merged_json(None)  # what was measured is kept, without verdicts
            return
        if measured is None or not measured.results:
            return
        outcome = self.gate_outcome(measured)
        self.write_merged_json(outcome)
        if outcome.exit_code is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = outcome.exit_code
        from diffperf.files import write_text_atomic
        from diffperf.render import throughput_text

        markdown = outcome.markdown + throughput_text.markdown(measured.throughput)
        if self.options.summary_path:
            write_text_atomic(self.options.summary_path, markdown)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with Path(step_summary).open("a") as stream:  # GitHub's file: append, as actions do
                stream.write(markdown)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.error:
            terminalreporter.write_line(f"diffperf: {self.error}")
        if self.outcome is None:
            return
        terminalreporter.section("diffperf speed-up gate")
        for line in self.outcome.lines:
            terminalreporter.write_line(line)
        from diffperf.render import throughput_text

        lines = throughput_text.terminal_lines(self.measured().throughput, self.config.getoption("verbose") > 0)
        if lines:
            terminalreporter.section(throughput_text.TITLE)
            for line in lines:
                terminalreporter.write_line(line)

    def write_report(self, output_json: dict) -> None:
        """With --perf-report: the run's JSON (when written elsewhere) and its HTML report in the report directory."""
        if not self.options.report_dir:
            return
        from diffperf.files import write_json_atomic
        from diffperf.render.report import write_report

        directory = Path(self.options.report_dir)
        if Path(self.config.getoption("benchmark_json")).resolve() != (directory / "run.json").resolve():
            write_json_atomic(directory / "run.json", output_json)
        write_report(output_json, directory / "report.html", images_dir=Path(self.options.output_dir) / "images")

    def write_merged_json(self, outcome: GateOutcome | None) -> None:
        """Under -n: the workers' parts of the JSON as one run, with the gate's verdicts (``outcome``, None: none could
        be made), where the run writes it."""
        output_json = self.merged_json()
        if output_json is None:  # without -n, no JSON asked for, or no worker wrote its part (--benchmark-disable)
            return
        from diffperf.files import write_json_atomic

        verdicts = outcome.report.to_json() if outcome is not None else {"error": self.error}
        output_json["diffperf"] = {**verdicts, "unfinished": output_json["diffperf"]["unfinished"]}
        write_json_atomic(self.config.getoption("benchmark_json"), output_json)
        if outcome is not None:
            self.write_report(output_json)
