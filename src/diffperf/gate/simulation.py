"""Optional stopping, simulated: how often the gate's verdict is wrong when more rounds go only where undecided.

Each simulated process has its own offset of the log speed-up (drawn with the calibrated
between-process SD) and, around it, independent log pair ratios (the within-process SD); the true
speed-up equals the expected one, so every "regressed" or "improved" verdict is a false alarm and
every judged interval that excludes the truth is a miss. The gate's own code judges each look
(:func:`diffperf.gate.verdicts.speedup_row`), and extra rounds follow the rule the latency case
uses (:func:`diffperf.cases.latency.extra_rounds`): another stage while the verdict is undecided
(:func:`diffperf.gate.verdicts.undecided`) and the plan has a look left.

``tools/sequential_sim.py`` prints the table of docs/gate.md from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffperf.gate.expectations import Expectation
from diffperf.gate.verdicts import CaseResult, speedup_row, undecided
from diffperf.stats.ratios import ProcessSpread
from diffperf.stats.sequential import SequentialPlan
from diffperf.stats.status import Status


@dataclass(frozen=True)
class Outcome:
    """What ``trials`` simulated unchanged processes ended with."""

    trials: int
    false_alarms: int  # regressed or improved
    misses: int  # the last look's judged interval excludes the true speed-up
    inconclusive: int
    mean_rounds: float

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
    ``(pi / 2) sd**2 / n``."""
    run_sd = math.sqrt(between_sd**2 + within_sd**2 * math.pi / 2 / rounds)
    spread = ProcessSpread(expected=1.0, run_sd=run_sd, between_sd=between_sd, processes=processes,
                           half_width=0.0)
    return Expectation("reference", 1.0, tolerance, spread)


def simulate(plan: SequentialPlan, expectation: Expectation, within_sd: float, trials: int, seed: int = 0,
             spend: bool = True) -> Outcome:
    """``trials`` unchanged processes judged with ``plan``; ``spend=False`` looks at the plan's overall confidence
    every time (optional stopping without correction), for comparison."""
    generator = np.random.default_rng(seed)
    between_sd = expectation.spread.between_sd
    false_alarms = misses = inconclusive = total_rounds = 0
    for _ in range(trials):
        offset = generator.normal(0.0, between_sd)
        logs = offset + generator.normal(0.0, within_sd, size=plan.maximum)
        rounds = plan.base
        while True:
            confidence = plan.confidence_at(rounds) if spend else plan.confidence
            variant_times = list(np.exp(-logs[:rounds]))  # reference calls take 1: each pair ratio is exp(log)
            row = speedup_row(CaseResult("variant", "reference", "scenario", variant_times, [1.0] * (rounds + 1),
                                         None, None), expectation, confidence)
            following = plan.next_look(rounds)
            if not undecided(row) or following is None:
                break
            rounds = following
        total_rounds += rounds
        false_alarms += row.status in (Status.REGRESSED, Status.IMPROVED)
        misses += not row.judged_low <= 1.0 <= row.judged_high
        inconclusive += row.status == Status.INCONCLUSIVE
    return Outcome(trials, false_alarms, misses, inconclusive, total_rounds / trials)
