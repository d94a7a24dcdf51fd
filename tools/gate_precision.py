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
    # leave-one-out: calibrate on all runs but one, judge that one, for each run
    python tools/gate_precision.py crossval OUT/unchanged/*.json
    # diffperf compare on unchanged runs: each run against the next (cyclic), the others as history,
    # and disjoint blocks of --per-side runs against each other
    python tools/gate_precision.py compare OUT/unchanged/*.json --per-side 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from diffperf.stats import ratios
from diffperf.history.calibrate import calibrate_host, host_record
from diffperf.gate.expectations import HOST, lookup, parse_record
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
    print("| case | planted | regressed | ok | inconclusive | improved | unchecked | median half-width judged |")
    print("|---|---|---|---|---|---|---|---|")
    for case in sorted(statuses):
        counts = [statuses[case].count(status) for status in ("regressed", "ok", "inconclusive", "improved", "unchecked")]
        width = f"{statistics.median(widths[case]):.1%}" if widths[case] else "-"
        print(f"| {case} | {'yes' if is_planted(case.split('/')[0], planted) else ''} | " + " | ".join(map(str, counts))
              + f" | {width} |")


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
    else:
        crossval(args.files)


if __name__ == "__main__":
    main()
