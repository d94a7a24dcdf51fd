"""Optional stopping, simulated: extra rounds under the alpha-spending plan keep the gate's error at 5%."""

from diffperf.gate.simulation import calibrated, simulate
from diffperf.stats.sequential import SequentialPlan

TRIALS = 1500  # seeded: the same counts on every run


def test_spending_the_error_over_the_looks_keeps_misses_at_five_percent_where_looking_freely_does_not():
    expectation = calibrated(within_sd=0.10, between_sd=0.0, rounds=16, tolerance=0.0)  # worst case: no band
    plan = SequentialPlan.for_rounds(16, 48)
    fixed = simulate(SequentialPlan(16, 16, 1), expectation, 0.10, TRIALS, seed=1)
    free = simulate(plan, expectation, 0.10, TRIALS, seed=1, spend=False)
    spending = simulate(plan, expectation, 0.10, TRIALS, seed=1)
    # 3 binomial standard errors of 5% over 1500 trials: 1.7%
    assert spending.miss_rate <= 0.05 + 0.017
    assert free.miss_rate > spending.miss_rate and free.false_alarm_rate > spending.false_alarm_rate
    assert fixed.mean_rounds == 16 and 16 < spending.mean_rounds <= 48


def test_extra_rounds_decide_cases_that_fixed_rounds_leave_inconclusive():
    # within-process noise dominating, as on a quiet host: rounds narrow the interval
    expectation = calibrated(within_sd=0.06, between_sd=0.0, rounds=16, tolerance=0.05)
    fixed = simulate(SequentialPlan(16, 16, 1), expectation, 0.06, TRIALS, seed=2)
    spending = simulate(SequentialPlan.for_rounds(16, 32), expectation, 0.06, TRIALS, seed=2)
    # (the one-sided ok test leaves a fifth of fixed cases inconclusive here: 317 of 1500, spending 270)
    assert spending.inconclusive < 0.9 * fixed.inconclusive and 16 < spending.mean_rounds
    assert spending.false_alarms <= fixed.false_alarms + 3
    # the between-process spread alone reaching past the tolerance: ok is judged in the band the host resolves,
    # where 4 of 5 clean processes are ok by construction; the extra rounds decide some of the rest, falsely none
    wide = calibrated(within_sd=0.10, between_sd=0.03, rounds=16, tolerance=0.05)
    assert wide.resolves > 0.05
    noisy = simulate(SequentialPlan.for_rounds(16, 32), wide, 0.10, 200, seed=3)
    assert noisy.false_alarms == 0 and noisy.inconclusive < 0.25 * noisy.trials


def test_the_early_look_saves_rounds_without_raising_false_alarms_or_losing_catches():
    # host C's noise: the between-process spread alone reaches past a 3% band, so clean cases end inconclusive
    expectation = calibrated(within_sd=0.08, between_sd=0.02, rounds=16, tolerance=0.03)
    fixed = SequentialPlan(16, 16, 1)
    full = simulate(fixed, expectation, 0.08, TRIALS, seed=4)
    early = simulate(fixed, expectation, 0.08, TRIALS, seed=4, min_rounds=10)
    assert early.false_alarms <= full.false_alarms and early.mean_rounds < 14
    slowed = dict(true_speedup=0.85)
    caught_full = simulate(fixed, expectation, 0.08, TRIALS, seed=5, **slowed).regressed
    caught_early = simulate(fixed, expectation, 0.08, TRIALS, seed=5, min_rounds=10, **slowed).regressed
    assert caught_full > TRIALS / 2 and caught_early >= 0.97 * caught_full
