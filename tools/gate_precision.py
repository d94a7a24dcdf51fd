"""Measure the speed-up gate offline from saved runs: between-process spread, false alarms, catches.

The figures of docs/validation.md come from it.

Every run is one whole process's pytest-benchmark JSON with raw rounds (``diffperf calibrate``
keeps them, as does ``pytest perf --benchmark-json``), so verdicts can be recomputed against any
stored expectations, with exactly the code a run uses (diffperf.gate.verdicts.evaluate):

    # each ratio's per-process medians: spread across processes, one column per set of runs
    python tools/gate_precision.py spread before=OUT/before/*.json after=OUT/after/*.json
    # verdicts of runs against a record of baselines/<profile>/speedups.json
    python tools/gate_precision.py judge baselines OUT/unchanged/*.json
    python tools/gate_precision.py judge baselines OUT/slow10/*.json --planted distilled,bf16
    python tools/gate_precision.py judge baselines OUT/all15/*.json --planted '*'     # every variant slowed
    python tools/gate_precision.py judge baselines OUT/slow10/*.json --planted distilled --first-rounds 16  # as 16 rounds
    python tools/gate_precision.py judge baselines OUT/unchanged/*.json --key cpu-x86-64-avx512-bf16-2t   # portable bands
    # leave-one-out over a host's stored calibration processes (its medians and half-widths), with planted shifts
    python tools/gate_precision.py record baselines cpu-amd-epyc-2t-55e82777 --shifts 0.9,0.87,0.8
    # leave-one-out: calibrate on all runs but one, judge that one, for each run
    python tools/gate_precision.py crossval OUT/unchanged/*.json
    # diffperf compare on unchanged runs: each run against the next (cyclic), the others as history,
    # and disjoint blocks of --per-side runs against each other
    python tools/gate_precision.py compare OUT/unchanged/*.json --per-side 5
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from diffperf.stats import ratios
from diffperf.history.calibrate import calibrate_host, host_record
from diffperf.gate.expectations import HOST, Expectation, expectations_path, load_file, lookup, parse_record
from diffperf.gate.verdicts import CaseResult, evaluate
from diffperf.history.compare import compare_runs, compare_sides
from diffperf.history.runs import Run, load_run
from diffperf.measure.host import Host


def case_results(run: Run, first_rounds: int | None = None) -> list[CaseResult]:
    """The paired cases of one saved run, as the gate saw them (at their last look's confidence: the early look's,
    or under --perf-max-rounds the plan's); with ``first_rounds``, as a run of that many rounds would have been
    judged: its first rounds (and the reference call after the last), at the gate's 95%."""
    results = []
    for case in run.cases:
        if not (case.reference and case.paired):
            continue
        variant_rounds, reference_rounds = list(case.data), list(case.reference_rounds)
        confidence = (case.extra_info.get("looks") or {}).get("confidence")
        if first_rounds is not None:
            reference_rounds = reference_rounds[:first_rounds + len(reference_rounds) - len(variant_rounds)]
            variant_rounds, confidence = variant_rounds[:first_rounds], None
        results.append(CaseResult(case.variant, case.reference, case.scenario, variant_rounds, reference_rounds,
                                  case.number("peak_memory"), case.number("reference_peak_memory"),
                                  confidence=confidence))
    return results


def spread(groups: list[str]) -> None:
    """Per ratio and set of runs: processes, median of the per-process medians, range (max/min - 1), log SD."""
    columns = {}
    for group in groups:
        label, _, pattern = group.partition("=")
        medians = defaultdict(list)
        for path in sorted(Path().glob(pattern)) if not Path(pattern).is_absolute() else sorted(
                Path("/").glob(pattern.lstrip("/"))):
            for result in case_results(load_run(path)):
                estimate = ratios.paired_ratio(result.reference_rounds, result.variant_rounds)
                medians[f"{result.variant}/{result.scenario}"].append(estimate.median)
        columns[label] = medians
    names = sorted({name for medians in columns.values() for name in medians})
    print("| ratio | " + " | ".join(f"{label}: processes, median, range, SD" for label in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in names:
        cells = []
        for medians in columns.values():
            values = medians.get(name, [])
            if len(values) < 2:
                cells.append("-")
                continue
            sd = statistics.stdev(math.log(value) for value in values)
            cells.append(f"{len(values)}, {statistics.median(values):.3f}, {max(values) / min(values) - 1:.1%}, "
                         f"{sd:.1%}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def judge(baselines: str, paths: list[Path], planted: set[str], key: str | None,
          first_rounds: int | None = None) -> None:
    """Verdicts of saved runs against stored expectations: false alarms and catches, per case."""
    statuses, widths = defaultdict(list), defaultdict(list)
    alarm_runs = 0
    source = None
    for path in paths:
        run = load_run(path)
        info = run.machine_info["diffperf"]
        expectations = lookup(baselines, info["profile"], Host.from_record(info), key)
        if expectations is None:
            sys.exit(f"{path}: no expectations for {info['host_key']} in {baselines}")
        source = f"{expectations.key} ({expectations.source})"
        report = evaluate(case_results(run, first_rounds), expectations)
        rows = [row for row in report.rows if row.kind == "speed-up"]
        alarm_runs += any(row.status == "regressed" and not is_planted(row.variant, planted) for row in rows)
        for row in rows:
            statuses[row.case].append(row.status)
            if row.judged_low is not None:
                widths[row.case].append((row.judged_high - row.judged_low) / 2 / row.value)
    print(f"{len(paths)} runs judged against {source}; planted: {', '.join(sorted(planted)) or 'nothing'}; "
          f"runs with a false alarm: {alarm_runs} of {len(paths)}")
    every = [status for found in statuses.values() for status in found]
    print("speed-up verdicts: " + ", ".join(f"{every.count(status)} {status}" for status in
                                            ("regressed", "ok", "inconclusive", "improved", "unchecked")))
    print("| case | planted | regressed | ok | inconclusive | improved | unchecked | median half-width judged |")
    print("|---|---|---|---|---|---|---|---|")
    for case in sorted(statuses):
        counts = [statuses[case].count(status) for status in ("regressed", "ok", "inconclusive", "improved", "unchecked")]
        width = f"{statistics.median(widths[case]):.1%}" if widths[case] else "-"
        print(f"| {case} | {'yes' if is_planted(case.split('/')[0], planted) else ''} | " + " | ".join(map(str, counts))
              + f" | {width} |")


def record(baselines: str, profile: str, key: str, cases: list[str], shifts: list[float]) -> None:
    """Leave-one-out over a host's calibration as stored (its processes' medians and within-process half-widths):
    each process in turn judged against a spread calibrated from the others, as a fresh process of that host would
    be; with each of ``shifts`` (0.87: the speed-up 13% lower) applied to the judged process, the catches.

    Each stored process is rebuilt as its median with a symmetric 95% interval of its recorded half-width (the
    one-sided ok interval scaled by the normal quantiles): an approximation of the order-statistic intervals a run
    has, for hosts whose raw runs are not at hand.
    """
    host = load_file(expectations_path(baselines, profile), profile)["hosts"][key]
    entries = {name: entry for name, entry in host["speedups"].items()
               if (not cases or name in cases) and len(entry.get("process_half_widths", [])) >= 3}
    z95, z90 = ratios.stats.norm.ppf(0.975), ratios.stats.norm.ppf(0.95)
    tallies = {shift: defaultdict(int) for shift in [1.0, *shifts]}
    resolutions = []
    for name, entry in sorted(entries.items()):
        medians, widths = entry["process_medians"], entry["process_half_widths"]
        rebuilt = [estimate_of(median, width, z95, z95) for median, width in zip(medians, widths)]
        for i in range(len(rebuilt)):
            others = rebuilt[:i] + rebuilt[i + 1:]
            spread = dataclasses.replace(ratios.process_spread(others), host_run_sd=entry.get("host_run_sd"),
                                         host_between_sd=entry.get("host_between_sd"))
            expectation = Expectation(entry["reference"], spread.expected, entry["tolerance"], spread)
            if i == 0:
                resolutions.append(expectation.resolves)
            for shift, tally in tallies.items():
                within = estimate_of(medians[i] * shift, widths[i], z95, z95)
                ok_within = estimate_of(medians[i] * shift, widths[i], z95, z90, 0.90)
                verdict = ratios.judge_speedup(ratios.across_processes(within, spread), spread.expected,
                                               expectation.tolerance, ratios.across_processes(ok_within, spread),
                                               expectation.resolves)
                tally[verdict.status] += 1
    print(f"{key} ({profile}): {len(entries)} speed-ups, leave-one-out over their stored processes")
    print(f"resolves (first fold): median {statistics.median(resolutions):.0%}, "
          f"{sum(r <= 0.08 for r in resolutions)} of {len(resolutions)} at 8% or less, widest {max(resolutions):.0%}")
    print("| speed-up scaled by | judged | regressed | ok | inconclusive | improved |")
    print("|---|---|---|---|---|---|")
    for shift, tally in tallies.items():
        total = sum(tally.values())
        print(f"| x{shift:g} | {total} | " + " | ".join(f"{tally[status]} ({tally[status] / total:.0%})" for status in
                                                        ("regressed", "ok", "inconclusive", "improved")) + " |")


def estimate_of(median: float, half_width: float, z_recorded: float, z_wanted: float,
                confidence: float = 0.95) -> ratios.RatioEstimate:
    """A process's interval rebuilt from its median and recorded 95% relative half-width, at ``confidence``."""
    reach = math.log1p(half_width) * z_wanted / z_recorded
    return ratios.RatioEstimate(median, median * math.exp(-reach), median * math.exp(reach), confidence, 16,
                                ratios.ACROSS_PROCESSES)


def is_planted(variant: str, planted: set[str]) -> bool:
    """Whether the runs slowed ``variant`` on purpose (``*``: every variant, as ``--perf-plant-slowdown '*=F'``)."""
    return "*" in planted or variant in planted


def crossval(paths: list[Path]) -> None:
    """Leave-one-out: calibrate on all runs but one, judge that one; an honest false-alarm rate."""
    runs = [load_run(path) for path in paths]
    alarms = []
    for index, left_out in enumerate(runs):
        calibration = calibrate_host(runs[:index] + runs[index + 1:], min_processes=2)
        _, speedups, memory = host_record(calibration, "crossval")
        expectations = parse_record(Path("crossval"), calibration.key, {"speedups": speedups, "memory": memory}, HOST)
        report = evaluate(case_results(left_out), expectations)
        alarms += [f"{left_out.label}: {row.case}: {row.value:.3f}x, judged [{row.judged_low:.3f}, "
                   f"{row.judged_high:.3f}], expected {row.expected:.3f}x"
                   for row in report.rows if row.status == "regressed"]
    print(f"leave-one-out over {len(runs)} runs: false alarms in {len({a.split(':')[0] for a in alarms})} runs")
    for alarm in alarms:
        print(f"- {alarm}")


def compare(paths: list[Path], per_side: int) -> None:
    """False regressions of ``diffperf compare`` between unchanged runs: one run per side with history, and blocks."""
    runs = [load_run(path) for path in paths]
    regressions = []
    for index, old in enumerate(runs):
        new = runs[(index + 1) % len(runs)]
        history = [run for run in runs if run is not old and run is not new]
        comparison = compare_runs(old, new, history=history)
        regressions += [f"{old.label} -> {new.label}: {line}" for line in comparison.regressions]
    print(f"{len(runs)} pairs of unchanged runs, one run per side, the other {len(runs) - 2} as history: "
          f"{len(regressions)} regressions")
    for line in regressions:
        print(f"- {line}")
    blocks = [runs[start:start + per_side] for start in range(0, len(runs) - per_side + 1, per_side)]
    block_regressions, pairs = [], 0
    for index in range(len(blocks) - 1):
        for later in blocks[index + 1:]:
            pairs += 1
            block_regressions += compare_sides(blocks[index], later).regressions
    print(f"{pairs} pairs of disjoint blocks of {per_side} runs per side: {len(block_regressions)} regressions")
    for line in block_regressions:
        print(f"- {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    spread_parser = commands.add_parser("spread", help="between-process spread of each ratio")
    spread_parser.add_argument("groups", nargs="+", metavar="LABEL=GLOB")
    judge_parser = commands.add_parser("judge", help="verdicts of saved runs against stored expectations")
    judge_parser.add_argument("baselines")
    judge_parser.add_argument("files", type=Path, nargs="+")
    judge_parser.add_argument("--planted", default="", help="comma-separated variants that were slowed")
    judge_parser.add_argument("--key", default=None, help="judge against this record (e.g. the portable bands)")
    judge_parser.add_argument("--first-rounds", type=int, default=None, metavar="N",
                              help="judge each case on its first N rounds at 95%%, as a run of N rounds would be")
    record_parser = commands.add_parser("record", help="leave-one-out over a host's stored calibration processes")
    record_parser.add_argument("baselines")
    record_parser.add_argument("key", help="the host record (e.g. cpu-amd-epyc-2t-55e82777)")
    record_parser.add_argument("--profile", default="tiny")
    record_parser.add_argument("--cases", default="", help="comma-separated speed-ups (default: every one)")
    record_parser.add_argument("--shifts", default="0.9,0.87,0.8", help="planted changes of the judged process")
    crossval_parser = commands.add_parser("crossval", help="leave-one-out false alarms over unchanged runs")
    crossval_parser.add_argument("files", type=Path, nargs="+")
    compare_parser = commands.add_parser("compare", help="false regressions of diffperf compare on unchanged runs")
    compare_parser.add_argument("files", type=Path, nargs="+")
    compare_parser.add_argument("--per-side", type=int, default=5, help="runs per side in the block comparisons")
    args = parser.parse_args()
    if args.command == "spread":
        spread(args.groups)
    elif args.command == "judge":
        judge(args.baselines, args.files, set(filter(None, args.planted.split(","))), args.key, args.first_rounds)
    elif args.command == "compare":
        compare(args.files, args.per_side)
    elif args.command == "record":
        record(args.baselines, args.profile, args.key, list(filter(None, args.cases.split(","))),
               [float(shift) for shift in args.shifts.split(",")])
    else:
        crossval(args.files)


if __name__ == "__main__":
    main()
