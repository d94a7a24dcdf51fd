"""Measure the speed-up gate's precision: false alarms, smallest slowdown caught, interval widths.

Usage (run on a quiet machine; each run is one whole `pytest perf/test_latency.py`):

    python tools/gate_precision.py run OUT/unchanged --runs 10
    python tools/gate_precision.py run OUT/slow10 --runs 10 --plant bf16=0.1,sdpa=0.1,channels-last=0.1,distilled-taesd=0.1
    python tools/gate_precision.py summary OUT/unchanged OUT/slow10

``run`` calls pytest with ``--benchmark-json OUT/run-N.json`` (plus any extra pytest arguments after
``--``); ``summary`` reads the gate's verdicts from those files: runs with a false alarm (any
"regressed" where nothing was planted), planted cases caught, and each ratio's interval half-width.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def run(out: Path, runs: int, plant: str, extra: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "planted.txt").write_text(plant)
    for number in range(runs):
        command = [sys.executable, "-m", "pytest", "perf/test_latency.py", "-q", "-p", "no:randomly",
                   "--benchmark-json", str(out / f"run-{number:02d}.json"), *extra]
        if plant:
            command += ["--perf-plant-slowdown", plant]
        result = subprocess.run(command, capture_output=True, text=True)
        print(f"run {number}: exit {result.returncode}", flush=True)


def summary(directories: list[Path]) -> None:
    for directory in directories:
        planted_text = (directory / "planted.txt").read_text() if (directory / "planted.txt").exists() else ""
        planted = {item.split("=")[0] for item in planted_text.split(",") if item}
        files = sorted(directory.glob("run-*.json"))
        half_widths = defaultdict(list)
        statuses = defaultdict(list)
        false_alarm_runs = 0
        for path in files:
            gate = json.loads(path.read_text())["diffperf"]
            alarms = 0
            for row in gate["speedups"]:
                case = f"{row['variant']}/{row['scenario']}"
                statuses[case].append(row["status"])
                if row["half_width"] is not None:
                    half_widths[case].append(row["half_width"])
                if row["status"] == "regressed" and row["variant"] not in planted:
                    alarms += 1
            false_alarm_runs += alarms > 0
        print(f"## {directory.name}: {len(files)} runs, planted: {planted_text or 'nothing'}")
        print(f"runs with a false alarm: {false_alarm_runs} of {len(files)}")
        print("| case | planted | regressed | ok | inconclusive | improved | median half-width | max half-width |")
        print("|---|---|---|---|---|---|---|---|")
        for case in sorted(statuses):
            counts = {status: statuses[case].count(status) for status in ("regressed", "ok", "inconclusive", "improved")}
            widths = half_widths[case]
            print(f"| {case} | {'yes' if case.split('/')[0] in planted else ''} | {counts['regressed']} | {counts['ok']} "
                  f"| {counts['inconclusive']} | {counts['improved']} "
                  f"| {statistics.median(widths):.1%} | {max(widths):.1%} |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("out", type=Path)
    run_parser.add_argument("--runs", type=int, default=10)
    run_parser.add_argument("--plant", default="")
    run_parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    summary_parser = commands.add_parser("summary")
    summary_parser.add_argument("directories", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.runs, args.plant, args.extra)
    else:
        summary(args.directories)


if __name__ == "__main__":
    main()
