"""The ``diffperf`` command line: ``diffperf variants``, and the saved-run commands ``compare``,
``trend`` and ``report`` (docs/history.md).

Exit status: 0 done, 1 a regression with ``compare --fail-on-regression``, 2 bad input (one line on
stderr, no traceback)."""

from __future__ import annotations

import argparse
import json
import sys

from diffperf.models.noise import ignore_known_warnings, quiet_known_log_lines
from diffperf.models.profiles import PROFILE_NAMES


def _cmd_record_baselines(args) -> int:
    from diffperf.cases.similarity import record_skipped_baselines
    from diffperf.models.builtin import builtin_registry
    from diffperf.models.zoo import ModelNotAvailable
    from diffperf.options import PerfOptions, check_writable_directory
    from diffperf.session import PerfSession

    registry = builtin_registry()
    try:
        unknown = [name for name in args.variants if name not in registry.variants]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}: `diffperf variants` lists them")
        check_writable_directory("--baselines", args.baselines)
        session = PerfSession(PerfOptions(profile=args.profile, device=args.device, baselines_dir=args.baselines),
                              registry)
        recorded = record_skipped_baselines(session, args.variants)
    except (ValueError, ModelNotAvailable) as error:
        print(f"diffperf record-baselines: {error}", file=sys.stderr)
        return 2
    for entry in recorded:
        if entry.error:
            print(f"not recorded: {entry.error}", file=sys.stderr)
        else:
            print(f"recorded {entry.path} ({entry.note or 'runs here'})")
    return 1 if any(entry.error for entry in recorded) else 0


def _cmd_variants(args) -> int:
    from pathlib import Path

    from diffperf.options import check_suite

    suite = args.suite if args.suite is not None else ("perf" if Path("perf").is_dir() else None)
    if suite:
        try:
            check_suite(suite)  # at once: loading a suite imports torch and diffusers first
        except ValueError as error:
            print(f"diffperf: {error}", file=sys.stderr)
            return 2

    from diffperf.cases.declarations import suite_registry
    from diffperf.models.catalogue import variants_table
    import torch

    from diffperf.models.zoo import ModelNotAvailable
    from diffperf.options import PerfOptions, check_device_name
    from diffperf.render.variants_text import variants_lines

    try:
        registry = suite_registry(suite or None)
        # A device type named is judged for as it is, present or not: a GPU job is planned from a laptop.
        device = torch.device(check_device_name(args.device)) if args.device else PerfOptions().resolved_device()
        rows = variants_table(args.profile, device, registry)
    except (ValueError, ModelNotAvailable) as error:
        print(f"diffperf: {error}", file=sys.stderr)
        return 2
    if args.json:
        json.dump({"profile": args.profile, "variants": rows}, sys.stdout, indent=2)
        print()
    else:
        print("\n".join(variants_lines(rows, args.profile)))
    return 0


# ---- saved runs: compare, trend, report -----------------------------------------------------------

def _warn(message: str) -> None:
    print(f"diffperf: warning: {message}", file=sys.stderr)


def _history_command(handler):
    """Run ``handler(args)``; bad input (HistoryError, unwritable output) is one line and exit 2."""
    def run(args) -> int:
        from diffperf.history.runs import HistoryError

        try:
            return handler(args)
        except HistoryError as error:
            print(f"diffperf {args.command}: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            where = f"{error.filename}: " if getattr(error, "filename", None) else ""
            print(f"diffperf {args.command}: {where}{error.strerror or error}", file=sys.stderr)
            return 2
    return run


def _check_outputs(option: str, paths) -> None:
    """Before anything is read: each of ``paths`` can be written (one-line HistoryError naming ``option`` and the
    path, found out as :func:`diffperf.options.check_writable_file` does)."""
    from diffperf.history.runs import HistoryError
    from diffperf.options import check_writable_file

    for path in paths:
        try:
            check_writable_file(option, str(path))
        except ValueError as error:
            raise HistoryError(str(error)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%), got {text!r}")
    return value


def _load_history(paths):
    """Saved runs named by --history (None when the option was not given)."""
    from diffperf.history.runs import load_runs

    if not paths:
        return None
    runs, warnings = load_runs(paths)
    for message in warnings:
        _warn(message)
    return runs


def _comparisons(args) -> list:
    """``RUN RUN ...`` (each later run against the first of its machine) or ``--base RUN... --head RUN...``."""
    from diffperf.history.compare import calibrated_spreads, compare_many, compare_sides
    from diffperf.history.runs import HistoryError, load_runs
    from diffperf.render.history_text import identity_warnings, machine_warnings, planted_warnings

    history = _load_history(args.history)
    if args.base or args.head:
        if args.files or not (args.base and args.head):
            raise HistoryError("give RUN RUN ... or both --base RUN... and --head RUN..., not a mix")
        (base, base_warnings), (head, head_warnings) = load_runs(args.base), load_runs(args.head)
        both = [run for run in head if run.digest in {other.digest for other in base}]
        if both:
            raise HistoryError(f"{both[0].source}: the same run is on both sides (--base and --head): a run "
                               "compared with itself shows no change; give each side its own runs")
        for message in base_warnings + head_warnings + planted_warnings(base + head):
            _warn(message)
        calibration = calibrated_spreads(base + head, args.baselines)
        return [compare_sides(base, head, args.confidence, args.threshold, history, calibration)]
    if not args.files:
        raise HistoryError("nothing to compare: give RUN RUN ... or --base RUN... --head RUN...")
    runs, warnings = load_runs(args.files)
    if len(runs) < 2:
        copies = ", and the other files given hold the same run" if len(args.files) > 1 else ""
        raise HistoryError(f"need at least two different runs, got one ({runs[0].source}{copies}): give another "
                           "run to compare it with")
    comparisons = compare_many(runs, args.confidence, args.threshold, history,
                               calibrated_spreads(runs, args.baselines))
    for message in warnings + machine_warnings(runs) + identity_warnings(runs) + planted_warnings(runs):
        _warn(message)  # once the runs could be compared: a refusal is its one line
    return comparisons


def _cmd_compare(args) -> int:
    from diffperf.render.history_text import comparison_label, comparison_tables, regression_lines, untested_warning
    from diffperf.render.table import render

    comparisons = _comparisons(args)
    render([table for comparison in comparisons for table in comparison_tables(comparison)])
    untested = untested_warning(comparisons)
    if untested:
        _warn(untested)
    regressions = [f"{comparison_label(c)}: {line}" for c in comparisons for line in regression_lines(c)]
    return _print_regressions(args.command, regressions, args.fail_on_regression, comparisons)


NOTHING_TESTED = 3
"""Exit status of ``compare`` and ``ab`` with ``--fail-on-regression`` when no change could be tested."""


def _print_regressions(command: str, regressions: list[str], fail_on_regression: bool, comparisons: list) -> int:
    """One ``REGRESSION ...`` line each; the exit status: 1 when there are any and they should fail,
    :data:`NOTHING_TESTED` when they should and not one change could be tested."""
    for line in regressions:
        print(f"REGRESSION {line}")
    if regressions and fail_on_regression:
        print(f"diffperf {command}: {len(regressions)} regression(s)", file=sys.stderr)
        return 1
    tested = any(change.tested for comparison in comparisons for case in comparison.cases for change in case.changes)
    if fail_on_regression and not tested:
        print(f"diffperf {command}: --fail-on-regression, but no change could be tested: give several runs per "
              "side, saved runs of this machine (--history), or calibrate this host (diffperf calibrate)",
              file=sys.stderr)
        return NOTHING_TESTED
    return 0


def _cmd_trend(args) -> int:
    from diffperf.history.runs import load_runs
    from diffperf.history.trend import build_trends
    from diffperf.render.pages import write_trend
    from diffperf.render.history_text import planted_warnings, trend_tables, trend_warnings
    from diffperf.render.table import render

    outputs = args.out or []
    for out in outputs:
        if not out.lower().endswith((".png", ".html", ".htm")):
            print(f"diffperf trend: --out {out}: use a .png or .html file name", file=sys.stderr)
            return 2
    _check_outputs("--out", outputs)
    runs, warnings = load_runs(args.paths)
    trends = build_trends(runs, confidence=args.confidence)
    for message in warnings + trend_warnings(trends) + planted_warnings(runs):
        _warn(message)
    render(trend_tables(trends))
    for out in outputs:
        write_trend(trends, out)
        print(f"wrote {out}")
    return 0


def _cmd_report(args) -> int:
    from pathlib import Path

    from diffperf.render.report import report_path, write_report
    from diffperf.history.runs import HistoryError

    if args.images is not None and not Path(args.images).is_dir():
        raise HistoryError(f"--images {args.images} is not a directory: give the directory of the run's images "
                           "(images/ in its --perf-output) or leave the option out")
    _check_outputs("--out", [report_path(args.out)])
    history = _load_history(args.history)
    out = write_report(args.run, args.out, images_dir=args.images, confidence=args.confidence, history=history)
    print(f"wrote {out}")
    return 0


def _cmd_gather(args) -> int:
    from diffperf.files import write_text_atomic
    from diffperf.history.hosts import host_matrix
    from diffperf.history.runs import load_runs
    from diffperf.render.history_text import host_matrix_tables, hosts_summary
    from diffperf.render.table import render

    _check_outputs("--summary", [args.summary] if args.summary else [])
    runs, warnings = load_runs(args.runs, distinct=True)
    for message in warnings:
        _warn(message)
    matrix = host_matrix(runs)
    tables = host_matrix_tables(matrix)
    render(tables)
    if args.summary:
        write_text_atomic(args.summary, hosts_summary(tables))
    if matrix.failed and args.fail_on_regression:
        print(f"diffperf gather: the gate failed on {', '.join(host.host for host in matrix.failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_store_runs(args) -> int:
    from diffperf.history.store import append_runs

    for entry in append_runs(args.runs, args.repo, args.branch, args.remote, allow_planted=args.allow_planted):
        if entry.added:
            print(f"added {entry.path} to {args.branch} ({entry.commit[:12]})")
        else:
            print(f"{entry.source}: already in {args.branch} as {entry.path}: not added again")
    return 0


def _add_history_commands(commands) -> None:
    compare = commands.add_parser(
        "compare", help="compare saved runs: latency and speed-up changes judged against run-to-run variation",
        description="Compare pytest-benchmark JSON runs (--benchmark-json / --benchmark-autosave files). "
                    "RUN RUN ...: the first run of each profile and hardware is the base every later one is "
                    "compared with. --base/--head: several runs per side, tested between runs. With one run "
                    "on a side, --history supplies the run-to-run spread; without it such changes are untested.")
    compare.add_argument("files", nargs="*", metavar="RUN", help="pytest-benchmark JSON files or directories")
    compare.add_argument("--base", nargs="+", metavar="RUN", default=None,
                         help="the old side: runs (files or directories) of the base revision")
    compare.add_argument("--head", nargs="+", metavar="RUN", default=None,
                         help="the new side: runs (files or directories) of the head revision")
    compare.add_argument("--history", nargs="+", metavar="PATH", default=None,
                         help="saved runs (files or directories) whose run-to-run spread is used when a side has "
                              "one run; only runs of the same profile and hardware count")
    compare.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when a latency is significantly slower or a speed-up significantly lower "
                              f"(exit {NOTHING_TESTED} when no change could be tested)")
    compare.add_argument("--baselines", default="baselines", metavar="DIR",
                         help="where the runs' host calibration is (its between-process spread of each speed-up "
                              "decides one-run sides; default: baselines)")
    compare.add_argument("--threshold", type=_fraction, default=0.05,
                         help="smallest change that counts, relative (default 0.05 = 5%%)")
    compare.add_argument("--confidence", type=_fraction, default=0.95, help="interval confidence (default 0.95)")
    compare.set_defaults(handler=_history_command(_cmd_compare))

    trend = commands.add_parser(
        "trend", help="each variant's speed-up and latency over commits and dates, with change points",
        description="Plot speed-ups and latencies of saved runs over time, one panel per profile, hardware "
                    "and scenario, and find where a persistent shift began (ruptures PELT and a t test).")
    trend.add_argument("paths", nargs="+", metavar="RUNS", help="pytest-benchmark JSON files or directories "
                       "(e.g. .benchmarks/)")
    trend.add_argument("--out", action="append", metavar="FILE",
                       help="write a .png chart or a self-contained .html page (repeatable)")
    trend.add_argument("--confidence", type=_fraction, default=0.95, help="interval confidence (default 0.95)")
    trend.set_defaults(handler=_history_command(_cmd_trend))

    report = commands.add_parser(
        "report", help="one self-contained HTML page for a run",
        description="Speed-up table with verdicts, latency and memory charts, per-stage breakdown, "
                    "baseline/current/difference images and, with --history, change points, in one HTML file.")
    report.add_argument("run", metavar="RUN.json", help="a pytest-benchmark JSON file")
    report.add_argument("--out", required=True, metavar="FILE",
                        help="the HTML file to write, or a directory to write report.html in")
    report.add_argument("--images", default=None, metavar="DIR",
                        help="directory of <variant>-<scenario>-{expected,actual,diff}.png images")
    report.add_argument("--history", nargs="+", metavar="PATH", default=None,
                        help="saved runs (files or directories): add each case's change points over them")
    report.add_argument("--confidence", type=_fraction, default=0.95, help="interval confidence (default 0.95)")
    report.set_defaults(handler=_history_command(_cmd_report))

    stored = commands.add_parser(
        "store-runs", help="append saved runs to the history branch (a git branch kept for data)",
        description="Commit saved runs to a branch that holds nothing but runs (runs/<profile>/<machine>/), without "
                    "touching the checkout, and push it when --remote is given, retrying when another push got there "
                    "first (docs/history.md). Read it back with a checkout of the branch.")
    stored.add_argument("runs", nargs="+", metavar="RUN.json", help="pytest-benchmark JSON files")
    stored.add_argument("--repo", default=".", metavar="DIR", help="the git repository (default: .)")
    stored.add_argument("--branch", default="perf-history", help="the history branch (default: perf-history)")
    stored.add_argument("--remote", default=None, help="push to this remote (e.g. origin); default: local only")
    stored.add_argument("--allow-planted", action="store_true",
                        help="store runs made with --perf-plant-slowdown or --perf-plant-memory too (refused "
                             "otherwise: the history holds what the code measures)")
    stored.set_defaults(handler=_history_command(_cmd_store_runs))

    gather = commands.add_parser(
        "gather", help="many hosts' runs side by side: each speed-up per host, judged against its own host",
        description="Line up the speed-up verdicts of runs of one revision made on several hosts (one run per "
                    "host, each judged in its own run against its own host's record): a table per family, and "
                    "with --summary the same as Markdown for a job summary.")
    gather.add_argument("runs", nargs="+", metavar="RUN", help="pytest-benchmark JSON files or directories")
    gather.add_argument("--summary", default=None, metavar="FILE.md", help="also write the tables as Markdown")
    gather.add_argument("--fail-on-regression", action="store_true", help="exit 1 when any host's gate failed")
    gather.set_defaults(handler=_history_command(_cmd_gather))


# ---- calibration and same-machine A/B: measurement across processes -------------------------------

def _plan(profile: str | None, device_class: str | None, suite: str | None, rounds: int | None = None,
          enabled: frozenset[str] = frozenset(), no_gate: bool = True, baselines: str = "baselines"):
    """The plan of a suite (``suite``: its directory; None: perf/ when there is one) on a device class (None: this
    machine's, with the early looks its stored expectations give unless ``no_gate``) under ``profile`` (None: the
    device type's default); one-line ValueError for what cannot work."""
    from pathlib import Path

    from diffperf.cases.budget import plan_of_run
    from diffperf.cases.declarations import suite_registry
    from diffperf.options import PerfOptions
    from diffperf.plan.devices import device_class as named_class

    options = PerfOptions(profile=profile, rounds=rounds, enabled=enabled, no_gate=no_gate, baselines_dir=baselines)
    registry = suite_registry(suite if suite is not None else ("perf" if Path("perf").is_dir() else None) or None)
    return plan_of_run(options, registry, device=named_class(device_class) if device_class is not None else None)


def _budget_cases(budget: str | None, processes: int, profile: str | None, suite: str, pytest_args,
                  whole_first_tier: bool, command: str) -> tuple[str, ...]:
    """With ``--budget``: the case ids each of ``processes`` processes of ``suite`` (the latency suite's test file)
    runs so that all fit it (one line printed naming what is left out); empty without a budget."""
    from diffperf.options import parse_duration
    from diffperf.plan.schedule import fit_budget
    from diffperf.render.plan_text import budget_line

    seconds = parse_duration("--budget", budget)
    if seconds is None:
        return ()
    rounds = _rounds_given(pytest_args)
    plan = _plan(profile, None, suite, rounds, _opt_ins_given(pytest_args))
    selection = fit_budget(plan, seconds / processes, whole_first_tier)
    print(f"diffperf {command}: each of {processes} processes: {budget_line(selection, plan.device.name)}", flush=True)
    return tuple(case.case_id for case in selection.chosen)


def _rounds_given(pytest_args) -> int | None:
    arguments = list(pytest_args or [])
    for index, argument in enumerate(arguments):
        if argument == "--perf-rounds" and index + 1 < len(arguments):
            return int(arguments[index + 1])
        if argument.startswith("--perf-rounds="):
            return int(argument.split("=", 1)[1])
    return None


def _opt_ins_given(pytest_args) -> frozenset[str]:
    return frozenset(flag for flag in ("--perf-compile", "--perf-speedups") if flag in (pytest_args or []))


def _cmd_plan(args) -> int:
    from diffperf.options import parse_duration
    from diffperf.plan.jobs import size_jobs
    from diffperf.plan.schedule import BudgetError, fit_budget
    from diffperf.render.plan_text import budget_error_line, jobs_lines, plan_table
    from diffperf.render.table import render

    if args.fit_run:
        return _fit_run(args.fit_run)
    enabled = frozenset(flag for flag, given in (("--perf-compile", args.compile), ("--perf-speedups", args.speedups))
                        if given)
    try:
        budget = parse_duration("--budget", args.budget)
        plan = _plan(args.profile, args.device_class, args.suite, args.rounds, enabled, no_gate=False,
                     baselines=args.baselines)
        selection = fit_budget(plan, budget) if budget is not None else None
    except BudgetError as error:
        print(f"diffperf plan: {budget_error_line(error)}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"diffperf plan: {error}", file=sys.stderr)
        return 2
    jobs = size_jobs(plan) if args.jobs else None
    if args.json:
        json.dump({"profile": plan.profile, "device": plan.device.name, "predicted": plan.predicted(),
                   "most": plan.predicted(most=True),
                   "cases": [{"case": case.case_id, "tier": case.tier, "partner": case.partner, "runs": case.runs,
                              "why_not": case.why_not, "rounds": case.rounds, "most_rounds": case.most_rounds,
                              "calls": case.calls, "call_seconds": case.variant_seconds, "seconds": case.seconds()}
                             for case in plan.cases],
                   "chosen": [case.case_id for case in selection.chosen] if selection else None,
                   "jobs": jobs.to_json() if jobs else None}, sys.stdout, indent=2)
        print()
        return 0
    render([plan_table(plan, selection, every_case=args.all)])
    if jobs is not None:
        print("\n".join(jobs_lines(jobs)))
        if args.github_output:
            import os

            with open(os.environ.get("GITHUB_OUTPUT", os.devnull), "a") as stream:  # GitHub's file: append
                for name in ("suite_budget", "ab_budget", "calibrate_budget"):
                    stream.write(f"{name}={getattr(jobs, name):.0f}s\n")
    return 0


def _fit_run(path: str) -> int:
    from diffperf.plan.fitting import fit_run
    from diffperf.render.plan_text import fitted_lines

    try:
        with open(path) as stream:
            fitted = fit_run(json.load(stream))
    except (OSError, ValueError) as error:
        print(f"diffperf plan: --fit-run {path}: {error}", file=sys.stderr)
        return 2
    print("\n".join(fitted_lines(fitted, path)))
    return 0


def _cmd_calibrate(args) -> int:
    from diffperf.gate.expectations import ExpectationsError
    from diffperf.history.calibrate import CalibrationError, calibrate_and_record
    from diffperf.history.runs import HistoryError, load_runs
    from diffperf.measure.workers import (Worker, WorkerFailed, default_out_dir, find_latency_suite, run_alternating,
                                          worker_pytest_args)
    from diffperf.options import check_writable_directory
    from diffperf.plan.schedule import BudgetError
    from diffperf.render.history_text import calibration_line
    from diffperf.render.plan_text import budget_error_line

    command = "diffperf " + " ".join(args.argv)  # args.argv starts with the subcommand
    if not args.from_runs and args.processes < args.min_processes:
        print(f"diffperf calibrate: --processes {args.processes}: a calibration needs at least {args.min_processes} "
              "processes; nothing recorded", file=sys.stderr)
        return 2
    try:
        check_writable_directory("--baselines", args.baselines)  # before anything is measured
        if args.from_runs:
            runs, warnings = load_runs(args.from_runs, distinct=True)  # one run per process
            for message in warnings:
                _warn(message)
        else:
            suite = find_latency_suite(".", args.suite)
            cases = _budget_cases(args.budget, args.processes, args.profile, suite, args.pytest_args, True, "calibrate")
            worker = Worker(suite=suite, cases=cases,
                            pytest_args=tuple(worker_pytest_args(args.pytest_args, args.profile, args.baselines)))
            out = default_out_dir(args.out, "calibration")
            check_writable_directory("--out", str(out))
            print(f"diffperf calibrate: {args.processes} processes of {suite}, runs in {out}", flush=True)
            paths = run_alternating({"run": worker}, args.processes, out,
                                    progress=lambda label, index, path: print(f"  process {index + 1} done: {path}",
                                                                              flush=True))["run"]
            runs, _ = load_runs(paths)
        calibrate_and_record(runs, args.baselines, command, args.min_processes, args.portable, warn=_warn,
                             progress=lambda entry: print(calibration_line(entry)))
    except BudgetError as error:
        print(f"diffperf calibrate: {budget_error_line(error)}; nothing recorded", file=sys.stderr)
        return 2
    except (CalibrationError, HistoryError, ExpectationsError, ValueError, WorkerFailed) as error:
        print(f"diffperf calibrate: {error}; nothing recorded", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffperf calibrate: interrupted; nothing recorded", file=sys.stderr)
        return 130
    return 0


AB_MIN_PROCESSES = 2
"""``diffperf ab --processes`` at least: one process per side cannot separate a change from run-to-run variation."""


def _cmd_ab(args) -> int:
    from pathlib import Path

    from diffperf.history.compare import calibrated_spreads, compare_sides
    from diffperf.history.runs import load_runs
    from diffperf.measure.workers import (Worker, WorkerFailed, default_out_dir, find_latency_suite, run_alternating,
                                          worker_pytest_args)
    from diffperf.options import check_directory, check_writable_directory, check_writable_file
    from diffperf.plan.schedule import BudgetError
    from diffperf.render.history_text import ab_summary, comparison_tables, regression_lines
    from diffperf.render.plan_text import budget_error_line
    from diffperf.render.table import render

    if args.processes < AB_MIN_PROCESSES:
        print(f"diffperf ab: --processes {args.processes}: an A/B comparison needs at least {AB_MIN_PROCESSES} "
              "processes per side (one per side cannot separate a change from run-to-run variation); "
              "nothing measured", file=sys.stderr)
        return 2
    extra = tuple(worker_pytest_args(args.pytest_args, args.profile, args.baselines))
    out = default_out_dir(args.out, "ab")
    try:
        sides = {"base": (args.base_python, args.base_dir), "head": (args.head_python, args.head_dir)}
        suites = {label: find_latency_suite(directory, args.suite) for label, (_, directory) in sides.items()}
        cases = _budget_cases(args.budget, 2 * args.processes, args.profile, str(Path(args.head_dir) / suites["head"]),
                              args.pytest_args, False, "ab")
        workers = {label: Worker(python=python, directory=directory, suite=suites[label], pytest_args=extra,
                                 cases=cases)
                   for label, (python, directory) in sides.items()}
        check_directory("--baselines", args.baselines)  # every path before anything is measured
        check_writable_directory("--out", str(out))
        if args.summary:
            check_writable_file("--summary", args.summary)
        print(f"diffperf ab: {args.processes} processes each of base ({args.base_dir}) and head ({args.head_dir}), "
              f"alternating; runs in {out}", flush=True)
        paths = run_alternating(workers, args.processes, out,
                                progress=lambda label, index, path: print(f"  {label} process {index + 1} done",
                                                                          flush=True))
    except BudgetError as error:
        print(f"diffperf ab: {budget_error_line(error)}; nothing measured", file=sys.stderr)
        return 2
    except (ValueError, WorkerFailed) as error:
        print(f"diffperf ab: {error}", file=sys.stderr)
        return 2
    base, _ = load_runs(paths["base"])
    head, _ = load_runs(paths["head"])
    comparison = compare_sides(base, head, confidence=args.confidence, threshold=args.threshold,
                               calibration=calibrated_spreads(base + head, args.baselines))
    tables = comparison_tables(comparison)
    render(tables)
    if args.summary:
        from diffperf.files import write_text_atomic

        write_text_atomic(args.summary, ab_summary(tables))
    return _print_regressions(args.command, regression_lines(comparison), args.fail_on_regression, [comparison])


def _add_measurement_commands(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate", help="record expected speed-ups, measured across several fresh processes",
        description="Run the latency suite in several fresh processes (or read saved runs) and record, per "
                    "speed-up, its expected value, its between-process spread and the host it was measured on "
                    "in <baselines>/<profile>/speedups.json, merged case by case. Arguments after -- go to pytest.")
    calibrate.add_argument("--processes", type=int, default=10, help="fresh processes to measure (default 10, at least 5)")
    calibrate.add_argument("--min-processes", type=int, default=5, help=argparse.SUPPRESS)
    calibrate.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="model profile (default: the suite's)")
    calibrate.add_argument("--baselines", default="baselines", help="baselines directory (default baselines/)")
    calibrate.add_argument("--out", default=None, metavar="DIR", help="where the runs' JSON files go")
    calibrate.add_argument("--from-runs", nargs="+", metavar="RUN", default=None,
                           help="calibrate from saved runs (JSON files or directories) instead of measuring")
    calibrate.add_argument("--portable", action="store_true",
                           help="also record portable bands of each class measured, from every host of that class recorded")
    calibrate.add_argument("--budget", default=None, metavar="DURATION",
                           help="fit the calibration into DURATION (e.g. 75m): each process runs what its share holds, "
                                "tier 1 whole (diffperf plan)")
    calibrate.add_argument("--suite", default=None, metavar="PATH",
                           help="the latency suite: its test file, or a directory to search for the test file that "
                                "imports diffperf's test_latency (default: perf/)")
    calibrate.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then arguments for pytest")
    calibrate.set_defaults(handler=_cmd_calibrate)

    ab = commands.add_parser(
        "ab", help="same-machine A/B: two environments measured in alternating processes, then compared",
        description="Measure two environments on this machine, alternating processes (base, head, base, ...), "
                    "and judge the change of every latency and speed-up between them, as asv continuous does. "
                    "Each side is a Python interpreter (say a virtual environment with one git revision or one "
                    "diffusers version installed) and a checkout holding the suite (perf/, or --suite). Arguments "
                    "after -- go to pytest.")
    ab.add_argument("--base-python", default=sys.executable, help="the base side's Python (default: this one)")
    ab.add_argument("--base-dir", default=".", help="the base side's checkout (default: .)")
    ab.add_argument("--head-python", default=sys.executable, help="the head side's Python (default: this one)")
    ab.add_argument("--head-dir", default=".", help="the head side's checkout (default: .)")
    ab.add_argument("--processes", type=int, default=3, help="processes per side (default 3, at least 2)")
    ab.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="model profile (default: the suite's)")
    ab.add_argument("--out", default=None, metavar="DIR", help="where the runs' JSON files go")
    ab.add_argument("--threshold", type=_fraction, default=0.05, help="smallest change that counts (default 5%%)")
    ab.add_argument("--confidence", type=_fraction, default=0.95, help="interval confidence (default 0.95)")
    ab.add_argument("--summary", default=None, metavar="FILE.md", help="also write the tables as Markdown")
    ab.add_argument("--fail-on-regression", action="store_true",
                    help=f"exit 1 on a significant regression ({NOTHING_TESTED} when no change could be tested)")
    ab.add_argument("--baselines", default="baselines", metavar="DIR",
                    help="where this host's calibration is (it decides speed-ups with few processes; default: "
                         "baselines)")
    ab.add_argument("--budget", default=None, metavar="DURATION",
                    help="fit both sides' processes into DURATION (e.g. 8m): each runs what its share holds, in tier "
                         "order (diffperf plan); what is left out is named")
    ab.add_argument("--suite", default=None, metavar="PATH",
                    help="the latency suite in each checkout: its test file, or a directory to search for the test "
                         "file that imports diffperf's test_latency (default: perf/)")
    ab.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then arguments for pytest")
    ab.set_defaults(handler=_history_command(_cmd_ab))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    variants = commands.add_parser("variants", help="list the pipeline variants and whether they run here")
    variants.add_argument("--profile", choices=PROFILE_NAMES, default="full")
    variants.add_argument("--device", default=None, help="torch device to judge for (default: cuda if available)")
    variants.add_argument("--json", action="store_true", help="machine-readable output")
    variants.add_argument("--suite", default=None, metavar="DIR",
                          help="the suite whose conftest.py declarations to include (default: perf/ when there is "
                               "one; '' for the built-in families only)")
    variants.set_defaults(handler=_cmd_variants)
    record = commands.add_parser(
        "record-baselines", help="record image baselines of variants that would be skipped here",
        description="Record the image baselines of the variants named on every scenario of their family, also "
                    "those that would be skipped on this device (fp16 on a CPU without fp16 kernels runs with ATen's "
                    "fallback kernels), so that a machine where they run passes its first run. Each such "
                    "baseline's index entry notes how it was recorded (docs/similarity.md).")
    record.add_argument("variants", nargs="+", metavar="VARIANT")
    record.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="model profile (default: the device's)")
    record.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    record.add_argument("--baselines", default="baselines", metavar="DIR", help="baselines directory (default baselines/)")
    record.set_defaults(handler=_cmd_record_baselines)
    plan = commands.add_parser(
        "plan", help="predict a run's cases, rounds, calls and wall time on a device class, before anything runs",
        description="List the cases a run would make, with their tier, rounds and calls, and predict each case's "
                    "and the run's wall time from the cost model (FLOPs of each call counted on meta tensors at full "
                    "size, at the device class's sustained rates: docs/getting-started.md). No device is needed.")
    plan.add_argument("--profile", choices=PROFILE_NAMES, default=None,
                      help="model profile (default: full on a GPU class, tiny on cpu)")
    plan.add_argument("--gpu", "--device-class", dest="device_class", default=None, metavar="CLASS",
                      help="a100, h100, h200 or cpu (default: this machine's)")
    plan.add_argument("--budget", default=None, metavar="DURATION", help="what --perf-budget DURATION would hold")
    plan.add_argument("--rounds", type=int, default=None, help="as --perf-rounds")
    plan.add_argument("--speedups", action="store_true", help="as --perf-speedups")
    plan.add_argument("--compile", action="store_true", help="as --perf-compile")
    plan.add_argument("--suite", default=None, metavar="DIR",
                      help="the suite whose conftest.py declarations to include (default: perf/ when there is one)")
    plan.add_argument("--baselines", default="baselines", metavar="DIR",
                      help="where this machine's expectations are: the cases they hold get their early look "
                           "(default: baselines)")
    plan.add_argument("--all", action="store_true", help="also list the cases that do not run, with why")
    plan.add_argument("--jobs", action="store_true",
                      help="size the GPU workflow's jobs from the plan (pull request, main, calibration)")
    plan.add_argument("--github-output", action="store_true",
                      help="with --jobs: write the budgets to $GITHUB_OUTPUT (suite_budget, ab_budget, "
                           "calibrate_budget)")
    plan.add_argument("--fit-run", default=None, metavar="RUN.json",
                      help="fit the cost model of the device a saved pytest perf run was measured on, and print it")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=_cmd_plan)
    _add_history_commands(commands)
    _add_measurement_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    ignore_known_warnings()  # before diffusers and transformers are imported: their known, harmless lines
    quiet_known_log_lines()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
