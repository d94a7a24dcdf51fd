"""Optional stopping, simulated (docs/gate.md, "Rounds only where undecided" and "The early look").

For each noise level: unchanged processes judged with 16 rounds at 95% (the tiny profile's rounds), with
extra rounds up to --max-rounds looking at 95% every time (optional stopping, uncorrected), and
with the same extra rounds under diffperf's alpha-spending plan (--perf-max-rounds). Prints, as
Markdown, the false-alarm rate (regressed or improved), the miss rate (the judged interval
excludes the true speed-up), the share left inconclusive and the mean rounds per case.

Then the early look (--perf-min-rounds): the same noise judged with all 16 rounds and with a look
after --min-rounds where a settled case stops; on unchanged processes and on processes whose
speed-up fell by --slowdown, whose "regressed" verdicts are catches.

    python tools/sequential_sim.py --trials 4000 --max-rounds 32 --min-rounds 10 --slowdown 0.10
"""

from __future__ import annotations

import argparse

from diffperf.gate.simulation import calibrated, simulate
from diffperf.stats.sequential import SequentialPlan

# (within-process SD of a log pair ratio, between-process SD of the log ratio): ratios whose rounds' noise
# dominates (rounds can decide them), one with some between-process spread, and one like host C's noisiest,
# whose between-process spread alone reaches past a 5% band (docs/validation.md).
NOISE = [(0.04, 0.0), (0.06, 0.0), (0.04, 0.01), (0.10, 0.03)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--max-rounds", type=int, default=32)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-rounds", type=int, default=10)
    parser.add_argument("--slowdown", type=float, default=0.10, help="the planted fall of the speed-up")
    args = parser.parse_args()
    fixed = SequentialPlan(args.rounds, args.rounds, 1)
    plan = SequentialPlan.for_rounds(args.rounds, args.max_rounds)
    looks = ", ".join(f"{n} ({plan.confidence_at(n):.2%})" for n in plan.looks())
    print(f"{args.trials} unchanged processes per row; tolerance ±{args.tolerance:.0%}; looks: {looks}\n")
    print("| within SD | between SD | design | false alarms | misses | inconclusive | mean rounds |")
    print("|---|---|---|---|---|---|---|")
    for within, between in NOISE:
        expectation = calibrated(within, between, args.rounds, tolerance=args.tolerance)
        designs = [(f"{args.rounds} rounds, 95%", fixed, True),
                   (f"up to {args.max_rounds}, 95% at every look", plan, False),
                   (f"up to {args.max_rounds}, alpha spent over the looks", plan, True)]
        for name, design, spend in designs:
            outcome = simulate(design, expectation, within, args.trials, args.seed, spend=spend)
            print(f"| {within:.0%} | {between:.1%} | {name} | {outcome.false_alarm_rate:.2%} | "
                  f"{outcome.miss_rate:.2%} | {outcome.inconclusive / outcome.trials:.1%} | {outcome.mean_rounds:.1f} |")

    print(f"\nThe early look after {args.min_rounds} of {args.rounds} rounds; planted: the speed-up "
          f"{args.slowdown:.0%} lower\n")
    print("| within SD | between SD | design | false alarms (unchanged) | catches (planted) | inconclusive (unchanged) "
          "| mean rounds (unchanged / planted) |")
    print("|---|---|---|---|---|---|---|")
    for within, between in NOISE:
        expectation = calibrated(within, between, args.rounds, tolerance=args.tolerance)
        for name, min_rounds in ((f"{args.rounds} rounds", None),
                                 (f"a look at {args.min_rounds}, then {args.rounds}", args.min_rounds)):
            unchanged = simulate(fixed, expectation, within, args.trials, args.seed, min_rounds=min_rounds)
            planted = simulate(fixed, expectation, within, args.trials, args.seed, min_rounds=min_rounds,
                               true_speedup=1 - args.slowdown)
            print(f"| {within:.0%} | {between:.1%} | {name} | {unchanged.false_alarm_rate:.2%} | "
                  f"{planted.regressed / planted.trials:.1%} | {unchanged.inconclusive / unchanged.trials:.1%} | "
                  f"{unchanged.mean_rounds:.1f} / {planted.mean_rounds:.1f} |")


if __name__ == "__main__":
    main()
