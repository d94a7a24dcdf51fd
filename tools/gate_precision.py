"""Measure the speed-up gate's precision: false alarms, smallest slowdown caught, interval widths.

Run on a quiet machine; each run is one whole `pytest perf/test_latency.py` whose JSON keeps the
raw rounds, so the verdicts can be recomputed offline against any expectations:

    python tools/gate_precision.py run OUT/unchanged --runs 10
    python tools/gate_precision.py run OUT/slow10 --runs 10 --plant bf16=0.1,sdpa=0.1,channels-last=0.1,distilled-taesd=0.1
    # expected speed-ups and tolerances from some unchanged runs
    python tools/gate_precision.py calibrate OUT/expectations.json OUT/unchanged/run-0[0-4].json
    # ... or recorded into baselines/<profile>/speedups.json under a hardware key
    python tools/gate_precision.py calibrate baselines OUT/unchanged/run-*.json --key cpu-amd-epyc-2t
    # verdicts of other runs against them: false alarms, planted slowdowns caught, half-widths
    python tools/gate_precision.py judge OUT/expectations.json OUT/unchanged/run-0[5-9].json
    # leave-one-out false alarms: calibrate on all unchanged runs but one, judge that one
    python tools/gate_precision.py crossval OUT/unchanged/run-*.json
    python tools/gate_precision.py judge OUT/expectations.json OUT/slow10/run-*.json --planted bf16,sdpa,channels-last,distilled-taesd
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from diffperf import expectations, gate, ratios
from diffperf.expectations import Expectation, HardwareExpectations, case_id


def run(out: Path, runs: int, plant: str, extra: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for number in range(runs):
        command = [sys.executable, "-m", "pytest", "perf/test_latency.py", "-q", "-p", "no:randomly",
                   "--benchmark-json", str(out / f"run-{number:02d}.json"), *extra]
        if plant:
            command += ["--perf-plant-slowdown", plant]
        result = subprocess.run(command, capture_output=True, text=True)
        print(f"{out.name} run {number}: exit {result.returncode}", flush=True)


def case_results(path: Path) -> list[gate.CaseResult]:
    """The paired cases of one saved run, as the gate saw them."""
    results = []
    for benchmark in json.loads(path.read_text())["benchmarks"]:
        info = benchmark["extra_info"]
        if info.get("reference"):
            results.append(gate.CaseResult(
                info["variant"], info["reference"], info["scenario"], benchmark["stats"]["data"],
                info["reference_rounds"], info.get("peak_memory"), info.get("reference_peak_memory"),
            ))
    return results


def expectations_from(files: list[Path], floor: float) -> tuple[dict, dict]:
    """Expected speed-up = median of the runs' medians; tolerance from how far intervals fell short.

    A run raises a false alarm only when the upper end of its interval lies below
    expected x (1 - tolerance). So the tolerance covers 1.5 times the largest shortfall of an upper
    end seen in calibration, plus a typical half-width for runs not seen yet (at least ``floor``).
    A noisy run with a wide interval does not widen the tolerance: it could not raise an alarm.
    """
    medians, memory_ratios, references, device_type = defaultdict(list), defaultdict(list), {}, "cpu"
    for path in files:
        for result in case_results(path):
            estimate = ratios.paired_ratio(result.reference_rounds, result.variant_rounds)
            case = case_id(result.variant, result.scenario)
            medians[case].append(estimate)
            references[case] = result.reference
            if result.peak_memory and result.reference_peak_memory:
                memory_ratios[case].append(ratios.memory_ratio(result.reference_peak_memory, result.peak_memory))
        device_type = json.loads(path.read_text())["machine_info"]["diffperf"]["device_type"]
    speedups = {}
    for case, estimates in sorted(medians.items()):
        expected = statistics.median(estimate.median for estimate in estimates)
        shortfall = max(max(0.0, 1 - estimate.high / expected) for estimate in estimates)
        typical = statistics.median(estimate.half_width for estimate in estimates)
        tolerance = math.ceil(round(max(floor, 1.5 * shortfall + typical) * 100, 6)) / 100
        speedups[case] = {"reference": references[case], "expected": round(expected, 4), "tolerance": tolerance,
                          "half_width": round(typical, 4), "calibration_runs": len(estimates)}
    memory = {case: {"reference": references[case], "expected": round(statistics.median(values), 4),
                     "tolerance": gate.DEFAULT_MEMORY_TOLERANCE[device_type]}
              for case, values in sorted(memory_ratios.items())}
    return speedups, memory


def calibrate(out: Path, files: list[Path], floor: float, key: str | None = None) -> None:
    """Write the expectations of ``files`` to a JSON file, or record them under ``key`` in baselines ``out``."""
    speedups, memory = expectations_from(files, floor)
    if key is None:
        out.write_text(json.dumps({"speedups": speedups, "memory": memory}, indent=2, sort_keys=True) + "\n")
        print(f"wrote {len(speedups)} expectations from {len(files)} runs to {out}")
        return
    machine = json.loads(files[0].read_text())["machine_info"]["diffperf"]
    recorded = {**machine, "calibration": f"tools/gate_precision.py calibrate, {len(files)} runs"}
    path = expectations.record(out, machine["profile"], key, recorded, speedups, memory)
    print(f"recorded {len(speedups)} expectations from {len(files)} runs as {key} in {path}")


def crossval(files: list[Path], floor: float) -> None:
    """Leave-one-out: calibrate on all runs but one, judge that one; an honest false-alarm rate."""
    alarms = []
    for left_out in files:
        speedups, _ = expectations_from([path for path in files if path != left_out], floor)
        report = gate.evaluate(case_results(left_out), _stored(speedups), "offline")
        alarms += [f"{left_out.name}: {row.variant}/{row.scenario}: {row.message}"
                   for row in report.rows if row.kind == "speed-up" and row.status == "regressed"]
    runs_with_alarm = len({alarm.split(":")[0] for alarm in alarms})
    print(f"leave-one-out over {len(files)} unchanged runs: false alarms in {runs_with_alarm} runs")
    for alarm in alarms:
        print(f"- {alarm}")


def _stored(speedups: dict) -> HardwareExpectations:
    return HardwareExpectations(
        key="offline", recorded={}, memory={},
        speedups={case: Expectation(entry["reference"], entry["expected"], entry["tolerance"])
                  for case, entry in speedups.items()},
    )


def judge(expectations_file: Path, files: list[Path], planted: set[str]) -> None:
    table = json.loads(expectations_file.read_text())["speedups"]
    stored = _stored(table)
    statuses, widths = defaultdict(list), defaultdict(list)
    false_alarm_runs = 0
    for path in files:
        report = gate.evaluate(case_results(path), stored, "offline")
        rows = [row for row in report.rows if row.kind == "speed-up"]
        false_alarm_runs += any(row.status == "regressed" and row.variant not in planted for row in rows)
        for row in rows:
            statuses[case_id(row.variant, row.scenario)].append(row.status)
            widths[case_id(row.variant, row.scenario)].append(row.half_width)
    print(f"{len(files)} runs, planted: {', '.join(sorted(planted)) or 'nothing'}; "
          f"runs with a false alarm: {false_alarm_runs} of {len(files)}")
    print("| case | planted | tolerance | regressed | ok | inconclusive | improved | median half-width | max half-width |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in sorted(statuses):
        counts = [statuses[case].count(status) for status in ("regressed", "ok", "inconclusive", "improved")]
        print(f"| {case} | {'yes' if case.split('/')[0] in planted else ''} | {table[case]['tolerance']:.0%} | "
              + " | ".join(map(str, counts))
              + f" | {statistics.median(widths[case]):.1%} | {max(widths[case]):.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the latency suite N times, saving each run's JSON")
    run_parser.add_argument("out", type=Path)
    run_parser.add_argument("--runs", type=int, default=10)
    run_parser.add_argument("--plant", default="", help="VARIANT=FRACTION,... passed to --perf-plant-slowdown")
    run_parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    calibrate_parser = commands.add_parser("calibrate", help="expectations from unchanged runs")
    calibrate_parser.add_argument("out", type=Path)
    calibrate_parser.add_argument("files", type=Path, nargs="+")
    calibrate_parser.add_argument("--floor", type=float, default=gate.MIN_TOLERANCE)
    calibrate_parser.add_argument("--key", default=None,
                                  help="record into the baselines directory OUT under this hardware key")
    crossval_parser = commands.add_parser("crossval", help="leave-one-out false alarms over unchanged runs")
    crossval_parser.add_argument("files", type=Path, nargs="+")
    crossval_parser.add_argument("--floor", type=float, default=gate.MIN_TOLERANCE)
    judge_parser = commands.add_parser("judge", help="verdicts of saved runs against expectations")
    judge_parser.add_argument("expectations", type=Path)
    judge_parser.add_argument("files", type=Path, nargs="+")
    judge_parser.add_argument("--planted", default="", help="comma-separated variants that were slowed")
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.runs, args.plant, args.extra)
    elif args.command == "calibrate":
        calibrate(args.out, args.files, args.floor, args.key)
    elif args.command == "crossval":
        crossval(args.files, args.floor)
    else:
        judge(args.expectations, args.files, set(filter(None, args.planted.split(","))))


if __name__ == "__main__":
    main()
