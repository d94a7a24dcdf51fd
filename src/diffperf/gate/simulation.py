"""Optional stopping, simulated: how often the gate's verdict is wrong when more rounds go only where undecided.

Each simulated process has its own offset of the log speed-up (drawn with the calibrated
between-process SD) and, around it, independent log pair ratios (the within-process SD); the true
speed-up equals the expected one, so every "regressed" or "improved" verdict is a false alarm and
every judged interval that excludes the truth is a miss (or, with a planted change, a "regressed"
verdict is a catch). The gate's own code judges each look
(:func:`diffperf.gate.verdicts.speedup_row`), and the rounds follow the latency case's own rule
(:meth:`diffperf.gate.rounds.RoundPolicy.decide`): with an early look, a settled case stops there
(:func:`diffperf.gate.verdicts.settled`); then another stage while the verdict is undecided
(:func:`diffperf.gate.verdicts.undecided`) and the plan has a look left.

``tools/sequential_sim.py`` prints the table of docs/gate.md from it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from diffperf.gate.expectations import Expectation
from diffperf.gate.rounds import RoundPolicy
from diffperf.gate.verdicts import CaseResult, GateRow, speedup_row
from diffperf.stats.ratios import ProcessSpread
from diffperf.stats.sequential import SequentialPlan
from diffperf.stats.status import Status


@dataclass(frozen=True)
class Outcome:
    """What ``trials`` simulated unchanged processes ended with."""

    trials: int
    false_alarms: int  # regressed or improved: false alarms when the speed-up is unchanged
    misses: int  # the last look's judged interval excludes the true speed-up
    inconclusive: int
    mean_rounds: float
    regressed: int = 0  # with a planted change (true speed-up below the expected one): the catches

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.trials

    @property
    def miss_rate(self) -> float:
        return self.misses / self.trials


def calibrated(within_sd: float, between_sd: float, rounds: int = 16, processes: int = 10,
               tolerance: float = 0.03) -> Expectation:
    """The expectation a calibration over ``processes`` processes of ``rounds`` rounds each would store for this
    noise, without its sampling error (true speed-up 1): the median of n normal pairs has variance
    ``(pi / 2) sd**2 / n``, and its 95% half-width is the normal one."""
    within = math.sqrt(math.pi / 2 / rounds) * within_sd  # SD of the log median of ``rounds`` pairs
    run_sd = math.sqrt(between_sd**2 + within**2)
    spread = ProcessSpread(expected=1.0, run_sd=run_sd, between_sd=between_sd, processes=processes,
                           half_width=math.expm1(stats.norm.ppf(0.975) * within))
    return Expectation("reference", 1.0, tolerance, spread)


def simulate(plan: SequentialPlan, expectation: Expectation, within_sd: float, trials: int, seed: int = 0,
             spend: bool = True, min_rounds: int | None = None, true_speedup: float = 1.0) -> Outcome:
    """``trials`` processes judged with ``plan``; ``spend=False`` looks at the plan's overall confidence every time
    (optional stopping without correction), for comparison. ``min_rounds`` below the plan's base adds the early
    look (``--perf-min-rounds``: a settled case stops there). ``true_speedup`` other than the expected 1 plants a
    change: its ``regressed`` verdicts are then catches."""
    generator = np.random.default_rng(seed)
    between_sd = expectation.spread.between_sd
    looked_at = plan if spend else UncorrectedPlan(plan.base, plan.maximum, plan.stage, plan.confidence)
    policy = RoundPolicy(plan.base, min(min_rounds or plan.base, plan.base), warmup=0, sequential=looked_at)
    false_alarms = regressed = misses = inconclusive = total_rounds = 0
    for _ in range(trials):
        offset = math.log(true_speedup) + generator.normal(0.0, between_sd)
        logs = offset + generator.normal(0.0, within_sd, size=plan.maximum)
        judge = functools.cache(functools.partial(_judge, logs, expectation))
        looks = policy.decide(policy.first_rounds(True), judge, extend=lambda rounds: 0.0)
        rounds = looks.rounds[-1]
        row = judge(rounds, looks.confidence)
        total_rounds += rounds
        false_alarms += row.status in (Status.REGRESSED, Status.IMPROVED)
        regressed += row.status == Status.REGRESSED
        misses += not row.judged_low <= true_speedup <= row.judged_high
        inconclusive += row.status == Status.INCONCLUSIVE
    return Outcome(trials, false_alarms, misses, inconclusive, total_rounds / trials, regressed)


class UncorrectedPlan(SequentialPlan):
    """A plan's looks, each at the plan's overall confidence: optional stopping without correction."""

    def confidence_at(self, rounds: int) -> float:
        return self.confidence


def _judge(logs: np.ndarray, expectation: Expectation, rounds: int, confidence: float) -> GateRow:
    """The gate's row for the first ``rounds`` log pair ratios (reference calls take 1: each pair ratio is exp(log))."""
    variant_times = list(np.exp(-logs[:rounds]))
    return speedup_row(CaseResult("variant", "reference", "scenario", variant_times, [1.0] * (rounds + 1), None, None),
                       expectation, confidence)
