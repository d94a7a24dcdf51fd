"""Unit tests for diffperf.stats.ratios (the speed-up gate); fast and deterministic."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from scipy import stats

from diffperf.stats.ratios import (
    BETWEEN_RUNS,
    BRACKETED,
    PAIRED,
    UNPAIRED,
    ProcessSpread,
    RatioEstimate,
    TooFewRounds,
    Verdict,
    across_processes,
    between_process_margin,
    between_runs,
    false_alarm_controlled,
    judge_memory,
    judge_speedup,
    ok_confidence,
    resolvable_tolerance,
    memory_ratio,
    min_pairs,
    is_paired,
    pair_ratios,
    paired_ratio,
    process_spread,
    rounds_to_decide,
    run_to_run_sd,
    unpaired_ratio,
)


def synthetic_pairs(n: int, ratio: float = 1.5, noise: float = 0.03, seed: int = 0):
    """variant ~ 2 s with 5% spread; reference = ratio * variant * lognormal(noise)."""
    rng = np.random.default_rng(seed)
    variant = 2.0 * np.exp(rng.normal(0.0, 0.05, n))
    reference = ratio * variant * np.exp(rng.normal(0.0, noise, n))
    return reference, variant


def estimate(median: float, low: float, high: float, n: int = 10, confidence: float = 0.95) -> RatioEstimate:
    return RatioEstimate(median=median, low=low, high=high, confidence=confidence, n=n, method="hand-built")


# --------------------------------------------------------------------------- min_pairs


@pytest.mark.parametrize(("confidence", "expected"), [(0.90, 5), (0.95, 6), (0.99, 8)])
def test_min_pairs(confidence, expected):
    assert min_pairs(confidence) == expected
    # Smallest n with 2 * 0.5**n < 1 - confidence: k = 1 order statistic exists.
    assert 2 * 0.5**expected < 1 - confidence <= 2 * 0.5 ** (expected - 1)


def test_min_pairs_matches_scipy_nan_below():
    n = min_pairs(0.95)
    below = stats.quantile_test(np.arange(n - 1.0), p=0.5).confidence_interval(0.95)
    at = stats.quantile_test(np.arange(float(n)), p=0.5).confidence_interval(0.95)
    assert math.isnan(below.low) and math.isnan(below.high)
    assert np.isfinite([at.low, at.high]).all()


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_min_pairs_rejects_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        min_pairs(confidence)


# --------------------------------------------------------------------------- paired_ratio


def test_paired_ratio_recovers_known_ratio():
    reference, variant = synthetic_pairs(20, ratio=1.5, noise=0.03, seed=1)
    est = paired_ratio(reference, variant)
    assert est.low <= est.median <= est.high
    assert est.low <= 1.5 <= est.high
    assert est.half_width < 0.03
    assert est.n == 20
    assert est.confidence == 0.95
    assert est.method == PAIRED
    assert est.median == pytest.approx(np.median(reference / variant))


def test_paired_ratio_accepts_lists_and_exact_minimum():
    reference, variant = synthetic_pairs(min_pairs(), seed=2)
    est = paired_ratio(list(reference), list(variant))
    assert est.n == 6
    # n = 6 at 95%: the interval is the full range of the ratios.
    ratios = reference / variant
    assert (est.low, est.high) == (ratios.min(), ratios.max())


@pytest.mark.parametrize(
    ("n", "confidence"),
    [(n, c) for c in (0.90, 0.95, 0.99) for n in (5, 6, 7, 8, 10, 15, 20, 31) if n >= min_pairs(c)],
)
def test_paired_interval_is_exact_order_statistic_interval(n, confidence):
    reference, variant = synthetic_pairs(n, seed=n)
    est = paired_ratio(reference, variant, confidence=confidence)
    ordered = np.sort(reference / variant)
    # Independent derivation: [x_(k), x_(n+1-k)] covers the median with probability
    # 1 - 2 * P(B <= k - 1), B ~ Binomial(n, 1/2); k is the largest with coverage >= confidence.
    coverage = lambda k: 1 - 2 * stats.binom.cdf(k - 1, n, 0.5)  # noqa: E731
    k = max(k for k in range(1, n // 2 + 1) if coverage(k) >= confidence)
    assert est.low == ordered[k - 1]
    assert est.high == ordered[n - k]
    assert coverage(k) >= confidence > coverage(k + 1)  # guaranteed, and the tightest such


def test_pairing_cancels_shared_drift():
    n = 12
    rng = np.random.default_rng(3)
    # Strong machine drift (trend + 15% jitter) shared by both members of each pair.
    drift = np.exp(np.linspace(0.0, 0.4, n) + rng.normal(0.0, 0.15, n))
    variant = 2.0 * drift * np.exp(rng.normal(0.0, 0.01, n))
    reference = 1.5 * 2.0 * drift * np.exp(rng.normal(0.0, 0.01, n))

    paired = paired_ratio(reference, variant)
    unpaired = unpaired_ratio(reference, variant)
    assert paired.low <= 1.5 <= paired.high
    assert paired.half_width < 0.02
    assert unpaired.half_width > 5 * paired.half_width


def test_too_few_rounds_carries_the_numbers():
    reference, variant = synthetic_pairs(5)
    with pytest.raises(TooFewRounds) as info:
        paired_ratio(reference, variant)
    assert isinstance(info.value, ValueError)
    assert (info.value.needed, info.value.got, info.value.confidence) == (6, 5, 0.95)


def test_too_few_rounds_depends_on_confidence():
    reference, variant = synthetic_pairs(7)
    paired_ratio(reference, variant, confidence=0.95)
    with pytest.raises(TooFewRounds) as info:
        paired_ratio(reference, variant, confidence=0.99)
    assert (info.value.needed, info.value.got) == (8, 7)


def test_too_few_rounds_pickles():
    error = pickle.loads(pickle.dumps(TooFewRounds(6, 3, 0.95)))
    assert isinstance(error, TooFewRounds)
    assert str(error) == str(TooFewRounds(6, 3, 0.95))


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (float("nan"), r"reference_times .*finite, positive.*nan at index 2"),
        (0.0, r"reference_times .*finite, positive.*0\.0 at index 2"),
        (-1.0, r"reference_times .*finite, positive.*-1\.0 at index 2"),
        (float("inf"), r"reference_times .*finite, positive.*inf at index 2"),
    ],
)
def test_paired_ratio_rejects_invalid_times(bad, pattern):
    reference, variant = synthetic_pairs(8)
    reference[2] = bad
    with pytest.raises(ValueError, match=pattern):
        paired_ratio(reference, variant)
    with pytest.raises(ValueError, match=pattern.replace("reference_times", "variant_times")):
        paired_ratio(variant, reference)


def test_paired_ratio_rejects_lengths_that_do_not_pair():
    reference, variant = synthetic_pairs(8)
    with pytest.raises(ValueError, match="or one more: got 8 reference times and 6 variant times") as info:
        paired_ratio(reference, variant[:6])
    assert not isinstance(info.value, TooFewRounds)
    with pytest.raises(ValueError, match="got 7 reference times and 8 variant times"):
        paired_ratio(reference[:7], variant)


def test_bracketed_ratio_is_against_the_reference_calls_on_both_sides():
    reference = np.array([1.0, 4.0, 9.0, 1.0])
    variant = np.array([1.0, 2.0, 3.0])
    assert pair_ratios(reference, variant) == pytest.approx([2.0, 3.0, 1.0])  # sqrt(1*4)/1, sqrt(4*9)/2, sqrt(9)/3
    assert pair_ratios(reference[:3], variant) == pytest.approx([1.0, 2.0, 3.0])  # plain pairs: R_i / V_i


def test_bracketing_cancels_linear_drift_that_plain_pairs_do_not():
    # The machine slows by 2% per call; the true speed-up is 1.5. R V R V ... R: call 2i is R_i, 2i+1 is V_i.
    n = 16
    speed = 1.02 ** np.arange(2 * n + 1)
    reference, variant = 1.5 * speed[0::2], speed[1::2]
    bracketed = paired_ratio(reference, variant)
    plain = paired_ratio(reference[:-1], variant)
    assert bracketed.method == BRACKETED and plain.method == PAIRED
    assert bracketed.median == pytest.approx(1.5)
    assert plain.median == pytest.approx(1.5 / 1.02)  # each reference ran one call earlier, on a faster machine
    assert is_paired(n + 1, n) and is_paired(n, n) and not is_paired(n + 2, n) and not is_paired(0, 0)


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0], [3.0, 4.0]]])
def test_paired_ratio_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="non-empty 1-D"):
        paired_ratio(bad, bad)


def test_paired_ratio_rejects_bad_confidence():
    reference, variant = synthetic_pairs(8)
    with pytest.raises(ValueError, match="confidence"):
        paired_ratio(reference, variant, confidence=95)


# --------------------------------------------------------------------------- unpaired_ratio


def test_unpaired_ratio_of_medians_deterministic():
    reference, variant = synthetic_pairs(15, seed=4)
    est = unpaired_ratio(reference, variant[:10], seed=7)
    assert est == unpaired_ratio(reference, variant[:10], seed=7)
    assert est.median == pytest.approx(np.median(reference) / np.median(variant[:10]))
    assert est.low <= est.median <= est.high
    assert est.low <= 1.5 <= est.high
    assert est.n == 10
    assert est.method == UNPAIRED


def test_unpaired_ratio_degenerate_data_is_a_point():
    est = unpaired_ratio([3.0] * 6, [2.0] * 8)
    assert (est.low, est.median, est.high) == (1.5, 1.5, 1.5)
    assert est.half_width == 0


def test_unpaired_ratio_needs_min_rounds_each():
    with pytest.raises(TooFewRounds) as info:
        unpaired_ratio([1.0] * 10, [1.0] * 5)
    assert (info.value.needed, info.value.got) == (6, 5)
    with pytest.raises(ValueError, match="variant_times"):
        unpaired_ratio([1.0] * 10, [1.0] * 9 + [0.0])


# --------------------------------------------------------------------------- RatioEstimate


def test_ratio_estimate_half_width_and_validation():
    assert estimate(2.0, 1.8, 2.4).half_width == pytest.approx(0.15)
    with pytest.raises(ValueError, match="low <= median <= high"):
        estimate(1.0, 1.1, 1.2)
    with pytest.raises(ValueError, match="finite and positive"):
        estimate(1.0, 0.0, 1.2)
    with pytest.raises(AttributeError):
        estimate(1.0, 0.9, 1.1).median = 2.0  # frozen


# --------------------------------------------------------------------------- judge_speedup
# expected 2.0, tolerance 0.25 -> band [1.5, 2.5], exact in binary floating point.


def test_judge_speedup_regressed():
    verdict = judge_speedup(estimate(1.21, 1.18, 1.23), expected=1.5, tolerance=0.05)
    assert verdict == Verdict("regressed", 1.5, 0.05, lower=1.5 * 0.95, upper=1.5 * 1.05, ok_lower=1.5 * 0.95)


def test_judge_speedup_improved_and_ok():
    assert judge_speedup(estimate(1.8, 1.75, 1.85), expected=1.5, tolerance=0.05).status == "improved"
    assert judge_speedup(estimate(1.49, 1.46, 1.52), expected=1.5, tolerance=0.05).status == "ok"


@pytest.mark.parametrize(
    ("median", "low", "high", "status"),
    [
        (1.4, 1.3, 1.4999999, "regressed"),
        (1.4, 1.3, 1.5, "inconclusive"),  # touches the lower threshold: not wholly below
        (1.6, 1.5, 1.7, "ok"),  # low == lower is inside the band
        (2.4, 2.3, 2.5, "ok"),  # high == upper is inside the band
        (1.5, 1.5, 2.5, "ok"),  # the whole band
        (2.6, 2.5, 2.7, "ok"),  # touches the upper threshold: not wholly above, and not below the band
        (2.6, 2.5000001, 2.7, "improved"),
        (1.6, 1.4999999, 2.7, "inconclusive"),  # may be below the band, not surely
    ],
)
def test_judge_speedup_boundaries(median, low, high, status):
    assert judge_speedup(estimate(median, low, high), expected=2.0, tolerance=0.25).status == status


@pytest.mark.parametrize(
    ("median", "low", "high", "status"),
    [
        (1.4, 1.25, 1.6, "ok"),  # below the tolerance's edge, within what the host resolves (ok above 1.2)
        (1.4, 1.1, 1.6, "inconclusive"),  # may be below the host's edge
        (1.3, 1.25, 1.4999999, "regressed"),  # regressed is judged at the tolerance, whatever the host resolves
        (1.3, 1.15, 1.4999999, "regressed"),
    ],
)
def test_judge_speedup_resolution_widens_only_the_ok_edge(median, low, high, status):
    verdict = judge_speedup(estimate(median, low, high), expected=2.0, tolerance=0.25, resolution=0.4)
    assert verdict.status == status
    assert (verdict.lower, verdict.ok_lower) == (1.5, 2.0 * 0.6)


def test_judge_speedup_ok_is_tested_on_the_one_sided_interval():
    wide, narrow = estimate(1.9, 1.45, 2.2), estimate(1.9, 1.55, 2.1)
    assert judge_speedup(wide, expected=2.0, tolerance=0.25).status == "inconclusive"
    assert judge_speedup(wide, expected=2.0, tolerance=0.25, ok_estimate=narrow).status == "ok"


def test_judge_speedup_a_resolution_within_the_tolerance_changes_nothing():
    verdict = judge_speedup(estimate(1.6, 1.5, 1.7), expected=2.0, tolerance=0.25, resolution=0.1)
    assert (verdict.status, verdict.ok_lower) == ("ok", 1.5)


def test_ok_confidence_is_the_one_sided_level():
    assert ok_confidence(0.95) == pytest.approx(0.90)
    assert ok_confidence(0.99) == pytest.approx(0.98)


# --------------------------------------------------------------------------- rounds_to_decide


def decide(within: RatioEstimate, judged: RatioEstimate | None = None, expected=2.0, tolerance=0.25):
    judged = judged or within
    return rounds_to_decide(within, judged, judge_speedup(judged, expected, tolerance))


def test_rounds_to_decide_touching_threshold_needs_one_more_round():
    assert decide(estimate(1.4, 1.3, 1.5, n=10)) == 11


def test_rounds_to_decide_scales_as_the_square_of_log_widths():
    # lower = 1.5: the interval reaches ln(1.75/1.25) below the median, the bound is ln(1.75/1.5) away.
    expected = math.ceil(10 * (math.log(1.75 / 1.25) / math.log(1.75 / 1.5)) ** 2)
    assert decide(estimate(1.75, 1.25, 2.0, n=10)) == expected == 48


def test_rounds_to_decide_looks_at_the_edge_on_the_median_s_side():
    within = estimate(2.0, 1.0, 3.5, n=8)  # above the band's lower edge: rounds must lift the low end past it
    assert decide(within) == math.ceil(8 * (math.log(2.0 / 1.0) / math.log(2.0 / 1.5)) ** 2)
    below = estimate(1.4, 1.0, 1.6, n=8)  # below it: rounds must bring the high end under it
    assert decide(below) == math.ceil(8 * (math.log(1.6 / 1.4) / math.log(1.5 / 1.4)) ** 2)


def test_rounds_to_decide_uses_the_ok_interval_on_the_ok_side():
    within, ok_within = estimate(1.9, 1.3, 2.5, n=8), estimate(1.9, 1.4, 2.3, n=8)
    verdict = judge_speedup(within, 2.0, 0.25, ok_within)
    assert verdict.status == "inconclusive"
    assert rounds_to_decide(within, within, verdict, ok_within, ok_within) == math.ceil(
        8 * (math.log(1.9 / 1.4) / math.log(1.9 / 1.5)) ** 2)


def test_rounds_to_decide_between_the_edges_takes_the_nearer():
    # ok above 1.2 (the host resolves 40%), regressed below 1.5: rounds can settle a median between them either way.
    within = estimate(1.4, 1.1, 1.6, n=16)
    to_ok = 16 * (math.log(1.4 / 1.1) / math.log(1.4 / 1.2)) ** 2
    to_regressed = 16 * (math.log(1.6 / 1.4) / math.log(1.5 / 1.4)) ** 2
    verdict = judge_speedup(within, 2.0, 0.25, resolution=0.4)
    assert rounds_to_decide(within, within, verdict) == math.ceil(min(to_ok, to_regressed))


def test_rounds_to_decide_none_when_decided_or_undecidable():
    assert decide(estimate(1.9, 1.8, 2.0)) is None  # ok: nothing to decide
    assert decide(estimate(1.5, 1.25, 1.75)) is None  # the median sits on the bound
    assert decide(estimate(1.51, 1.0, 1.6)) is None  # beyond MAX_ROUNDS


def test_rounds_to_decide_none_when_the_between_process_part_alone_reaches_the_bound():
    within = estimate(1.6, 1.58, 1.62, n=16)
    # The between-process part (0.2 in log units) is wider than the margin to 1.5 (ln(1.6/1.5) = 0.065).
    judged = estimate(1.6, 1.6 * math.exp(-0.2), 1.6 * math.exp(0.2), n=16)
    assert decide(within, judged) is None
    # A between-process part smaller than the margin leaves a finite number of rounds.
    judged = estimate(1.6, 1.6 * math.exp(-math.hypot(0.2, 0.05)), 1.6 * math.exp(math.hypot(0.01, 0.05)), n=16)
    within = estimate(1.6, 1.6 * math.exp(-0.2), 1.6 * math.exp(0.01), n=16)
    d, w, m = math.log(1.6 / 1.5), 0.2, 0.05
    assert decide(within, judged) == math.ceil(16 * w**2 / (d**2 - m**2))


# --------------------------------------------------------------------------- between processes


def test_process_spread_numbers():
    estimates = [estimate(m, m * 0.99, m * 1.01) for m in (1.0, 1.02, 0.98, 1.01, 0.99)]
    spread = process_spread(estimates)
    logs = np.log([1.0, 1.02, 0.98, 1.01, 0.99])
    assert spread.expected == pytest.approx(np.exp(np.median(logs)))
    assert spread.run_sd == pytest.approx(np.std(logs, ddof=1))
    within = (np.log(1.01) - np.log(0.99)) / 2 / stats.norm.ppf(0.975)
    assert spread.between_sd == pytest.approx(math.sqrt(spread.run_sd**2 - within**2))
    assert (spread.processes, spread.half_width) == (5, pytest.approx(0.01))


def test_process_spread_between_part_is_never_negative():
    # Processes agree better than their own intervals suggest: all of the spread is within-process noise.
    spread = process_spread([estimate(m, m * 0.9, m * 1.1) for m in (1.0, 1.001, 0.999)])
    assert spread.between_sd == 0.0
    with pytest.raises(ValueError, match="at least 2 processes"):
        process_spread([estimate(1.0, 0.9, 1.1)])


def test_across_processes_widens_each_side_in_quadrature():
    spread = ProcessSpread(expected=1.5, run_sd=0.02, between_sd=0.015, processes=10, half_width=0.01)
    margin = between_process_margin(spread)
    t = stats.t.ppf(0.975, 9)
    assert margin == pytest.approx(t * math.sqrt(0.015**2 + 0.02**2 / 10))
    within = estimate(1.5, 1.47, 1.56)
    judged = across_processes(within, spread)
    assert math.log(1.5 / judged.low) == pytest.approx(math.hypot(math.log(1.5 / 1.47), margin))
    assert math.log(judged.high / 1.5) == pytest.approx(math.hypot(math.log(1.56 / 1.5), margin))
    assert judged.median == 1.5 and judged.n == within.n


def test_a_ratio_whose_few_processes_agreed_by_chance_is_moderated_toward_the_hosts_spread():
    """Six processes that agree within 0.3% on a ratio whose host spreads 2%: the margin is not 0.3%'s."""
    lucky = ProcessSpread(expected=1.13, run_sd=0.003, between_sd=0.0, processes=6, half_width=0.014)
    assert between_process_margin(lucky) == pytest.approx(stats.t.ppf(0.975, 5) * 0.003 / math.sqrt(6))
    moderated = ProcessSpread(1.13, 0.003, 0.0, 6, 0.014, host_run_sd=0.016, host_between_sd=0.013)
    between, run = (0.0 + 0.013**2) / 2, (0.003**2 + 0.016**2) / 2
    assert between_process_margin(moderated) == pytest.approx(stats.t.ppf(0.975, 10) * math.sqrt(between + run / 6))
    # A ratio noisier than its host keeps its own, wider margin.
    noisy = ProcessSpread(0.93, 0.031, 0.028, 6, 0.027, host_run_sd=0.016, host_between_sd=0.013)
    assert between_process_margin(noisy) == pytest.approx(between_process_margin(
        ProcessSpread(0.93, 0.031, 0.028, 6, 0.027)))


def test_across_processes_with_no_spread_keeps_the_interval():
    spread = ProcessSpread(expected=1.5, run_sd=0.0, between_sd=0.0, processes=10, half_width=0.01)
    within = estimate(1.5, 1.47, 1.56)
    judged = across_processes(within, spread)
    assert (judged.low, judged.high) == pytest.approx((1.47, 1.56))


def test_a_process_mode_inside_the_calibration_does_not_raise_an_alarm():
    """Ten calibration processes with a 4% between-process offset; a new process 8% low is not 'regressed'."""
    rng = np.random.default_rng(5)
    calibration = []
    for _ in range(10):
        offset = np.exp(rng.normal(0, 0.04))
        reference, variant = synthetic_pairs(16, ratio=1.5 * offset, noise=0.01, seed=int(rng.integers(1 << 30)))
        calibration.append(paired_ratio(reference, variant))
    spread = process_spread(calibration)
    reference, variant = synthetic_pairs(16, ratio=1.5 * 0.92, noise=0.01, seed=99)
    within = paired_ratio(reference, variant)
    assert judge_speedup(within, spread.expected, 0.03).status == "regressed"  # what one process claims
    assert judge_speedup(across_processes(within, spread), spread.expected, 0.03).status != "regressed"


# --------------------------------------------------------------------------- between runs


def test_between_runs_pooled_t_on_logs():
    old, new = [1.0, 1.02, 0.98], [1.1, 1.12, 1.08]
    change = between_runs(old, new)
    a, b = np.log(old), np.log(new)
    pooled = math.sqrt((np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2)) / 4)
    se = pooled * math.sqrt(1 / 3 + 1 / 3)
    t = stats.t.ppf(0.975, 4)
    assert change.df == 4
    assert change.estimate.median == pytest.approx(math.exp(b.mean() - a.mean()))
    assert change.estimate.low == pytest.approx(math.exp(b.mean() - a.mean() - t * se))
    assert change.p_value == pytest.approx(stats.ttest_ind(b, a).pvalue)
    assert change.estimate.method == BETWEEN_RUNS


def test_between_runs_one_run_a_side_needs_a_history():
    assert between_runs([1.0], [1.1]) is None
    change = between_runs([1.0], [1.1], history_sd=0.02, history_df=9)
    t = stats.t.ppf(0.975, 9)
    assert change.df == 9
    assert change.estimate.high == pytest.approx(1.1 * math.exp(t * 0.02 * math.sqrt(2)))


def test_run_to_run_sd_pools_cases():
    sd, df = run_to_run_sd([[1.0, 1.02, 0.98], [2.0, 2.04]])
    logs = [np.log([1.0, 1.02, 0.98]), np.log([2.0, 2.04])]
    squares = sum(np.sum((x - x.mean()) ** 2) for x in logs)
    assert df == 3 and sd == pytest.approx(math.sqrt(squares / 3))
    assert run_to_run_sd([[1.0], [2.0]]) is None


@pytest.mark.parametrize(("expected", "tolerance"), [(0.0, 0.05), (-1.0, 0.05), (1.5, 1.0), (1.5, -0.01), (1.5, float("nan"))])
def test_judges_reject_bad_expectations(expected, tolerance):
    with pytest.raises(ValueError):
        judge_speedup(estimate(1.5, 1.4, 1.6), expected, tolerance)
    with pytest.raises(ValueError):
        judge_memory(0.5, expected, tolerance)


# --------------------------------------------------------------------------- memory


def test_memory_ratio():
    assert memory_ratio(4_000_000_000, 2_000_000_000) == 0.5
    with pytest.raises(ValueError, match="reference_peak_bytes"):
        memory_ratio(0, 1)
    with pytest.raises(ValueError, match="variant_peak_bytes"):
        memory_ratio(1, float("nan"))


@pytest.mark.parametrize(
    ("measured", "status"),
    [(0.7, "regressed"), (0.625, "ok"), (0.5, "ok"), (0.375, "ok"), (0.3, "improved")],
)
def test_judge_memory(measured, status):
    # expected 0.5, tolerance 0.25 -> band [0.375, 0.625]; lower is better.
    assert judge_memory(measured, expected=0.5, tolerance=0.25).status == status


def test_judge_memory_band_and_bad_input():
    assert judge_memory(0.7, 0.5, 0.25) == Verdict("regressed", 0.5, 0.25, lower=0.375, upper=0.625)
    with pytest.raises(ValueError, match="measured_ratio"):
        judge_memory(0.0, 0.5, 0.25)


# --------------------------------------------------------------------------- simulation


def test_gate_simulation_no_false_alarms_and_catches_20pct_slowdown():
    """200 unchanged runs (3% noise per pair ratio, 10 pairs) never alarm; a 20% slowdown always does."""
    rng = np.random.default_rng(2024)
    n, expected, noise = 10, 1.5, 0.03

    def run(true_speedup: float) -> RatioEstimate:
        variant = 2.0 * np.exp(rng.normal(0.0, 0.05, n))
        reference = true_speedup * variant * np.exp(rng.normal(0.0, noise, n))
        return paired_ratio(reference, variant)

    # Expected value and spread as diffperf calibrate derives them: from several processes.
    spread = process_spread([run(expected) for _ in range(10)])
    tolerance = 0.03

    def status(speedup):
        return judge_speedup(across_processes(run(speedup), spread), spread.expected, tolerance).status

    unchanged = [status(expected) for _ in range(200)]
    slowed = [status(0.8 * expected) for _ in range(200)]
    assert unchanged.count("regressed") == 0
    assert unchanged.count("improved") == 0
    assert unchanged.count("ok") + unchanged.count("inconclusive") == 200
    assert slowed.count("regressed") == 200


# --------------------------------------------------------------------------- many changes at once


def test_p_beyond_tests_the_threshold_not_zero():
    change = between_runs([1.0, 1.01, 0.99], [1.10, 1.11, 1.09])  # +10%, tight
    assert change.p_beyond(0.05) < 0.005  # well beyond +5%
    assert change.p_beyond(0.15) > 0.99  # well within +15%
    halfway = math.exp((math.log(1.05) + math.log(change.estimate.median)) / 2) - 1
    assert change.p_beyond(0.05) < change.p_beyond(halfway) < 0.5
    lower = between_runs([1.10, 1.11, 1.09], [1.0, 1.01, 0.99])  # -10%: beyond on the lower side
    assert lower.p_beyond(0.05) == pytest.approx(change.p_beyond(math.exp(-math.log(0.95)) - 1), rel=1e-6)


def test_false_alarm_control_keeps_strong_changes_and_drops_chance_ones_among_many():
    # One test at p = 0.001 alone rejects at 0.025; among 40 tests it is what chance gives.
    assert false_alarm_controlled([0.001]) == [True]
    assert false_alarm_controlled([0.001] + [0.5] * 39) == [False] + [False] * 39
    assert false_alarm_controlled([1e-6] + [0.5] * 39)[0] is True
    assert false_alarm_controlled([]) == []
    # Under no change at all, p-values are uniform: the family rejects anything in about 1 run in 20 at most.
    rng = np.random.default_rng(0)
    families = [false_alarm_controlled(rng.uniform(size=36)) for _ in range(2000)]
    assert np.mean([any(family) for family in families]) < 0.035
