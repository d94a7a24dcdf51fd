"""The end of a ``pytest perf`` run: look up the expectations, judge, and decide the exit status."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from diffperf.gate import verdicts
from diffperf.gate.expectations import ExpectationsError, expectations_path, lookup
from diffperf.gate.published import published_expectations
from diffperf.gate.verdicts import CaseResult, GateReport
from diffperf.measure.host import Host
from diffperf.options import PerfOptions
from diffperf.render import gate_text


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
    return gate_text.unreadable_line(error, calibrate_hint(profile, options)), _unreadable_exit_code(options)


def judge_session(session, interrupted: bool = False) -> GateOutcome:
    """The speed-up gate over the cases ``session`` (a diffperf.session.PerfSession) ran so far; nothing judged if
    ``interrupted``."""
    return judge_run(session.results, session.skipped, session.host, session.profile_name, session.policy.rounds,
                     session.options, interrupted)


def judge_parts(parts: list, options: PerfOptions, interrupted: bool = False) -> GateOutcome:
    """The speed-up gate over every pytest-xdist worker's cases (diffperf.cases.parallel.WorkerPart), judged as one
    run; a one-line ValueError when the workers were not one host."""
    from diffperf.cases.parallel import merge_parts

    run = merge_parts(parts)
    return judge_run(run.results, run.skipped, run.host, run.profile, run.rounds, options,
                     interrupted or run.interrupted)


def judge_run(results: list[CaseResult], skipped: dict[str, str], host: Host, profile: str, rounds: int,
              options: PerfOptions, interrupted: bool = False) -> GateOutcome:
    """Judge what the run measured against this host's expectations (or its portable bands).

    An ``interrupted`` run judges nothing and leaves pytest's exit status (interrupted) as it is.
    """
    expectations = error = None
    # --perf-no-gate measures only (calibration's processes): an unreadable file must not fail the runs
    # that `diffperf calibrate` would replace it with, so it is not read.
    if not options.no_gate:
        try:
            expectations = lookup(options.baselines_dir, profile, host, options.baseline_key)
        except ExpectationsError as problem:
            error = str(problem)
    if expectations is None and error is None:
        expectations = published_expectations(results, host)
    if options.workload_overrides:  # expectations hold for the profile's own workload, not this one
        expectations = None
    report = verdicts.evaluate(results, expectations, skipped, interrupted=interrupted)
    context = gate_text.GateContext(
        host_key=host.key,
        portable_key=host.portable_key,
        path=str(expectations_path(options.baselines_dir, profile)),
        calibrate_hint=calibrate_hint(profile, options),
        error=error,
        workload_overridden=bool(options.workload_overrides),
    )
    return GateOutcome(report, gate_text.terminal_lines(report, context), gate_text.markdown(report, context),
                       _exit_code(report, options, error))


def _exit_code(report: GateReport, options: PerfOptions, error: str | None) -> pytest.ExitCode | None:
    """Fail on a regression or an unusable expectations file; a usage error when the user's options cannot work."""
    if report.interrupted:  # pytest's own exit status (interrupted) stands
        return None
    if error is not None:
        return _unreadable_exit_code(options)
    if options.no_gate:
        return None
    if report.failed:
        return pytest.ExitCode.TESTS_FAILED
    too_few = [row for row in report.rows if row.reason == verdicts.TOO_FEW_ROUNDS]
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
