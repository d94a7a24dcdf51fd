"""Unit tests for diffperf.ratios (the speed-up gate); fast and deterministic."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from scipy import stats

from diffperf.ratios import (
    MAX_ROUNDS,
    RatioEstimate,
    TooFewRounds,
    Verdict,
    default_tolerance,
    judge_memory,
    judge_speedup,
    memory_ratio,
    min_pairs,
    paired_ratio,
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
    assert est.method == "paired, exact order-statistic CI of the median"
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


def test_too_few_rounds_names_the_number():
    reference, variant = synthetic_pairs(5)
    with pytest.raises(TooFewRounds, match=r"--perf-rounds 6\b") as info:
        paired_ratio(reference, variant)
    assert isinstance(info.value, ValueError)
    assert (info.value.needed, info.value.got) == (6, 5)
    assert "\n" not in str(info.value)
    assert "got 5" in str(info.value)


def test_too_few_rounds_depends_on_confidence():
    reference, variant = synthetic_pairs(7)
    paired_ratio(reference, variant, confidence=0.95)
    with pytest.raises(TooFewRounds, match=r"--perf-rounds 8\b"):
        paired_ratio(reference, variant, confidence=0.99)


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


def test_paired_ratio_rejects_unequal_lengths():
    reference, variant = synthetic_pairs(8)
    with pytest.raises(ValueError, match="equal lengths: got 8 reference times and 7 variant times") as info:
        paired_ratio(reference, variant[:7])
    assert not isinstance(info.value, TooFewRounds)


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
    assert est.method == "unpaired, percentile bootstrap of the ratio of medians"


def test_unpaired_ratio_degenerate_data_is_a_point():
    est = unpaired_ratio([3.0] * 6, [2.0] * 8)
    assert (est.low, est.median, est.high) == (1.5, 1.5, 1.5)
    assert est.half_width == 0


def test_unpaired_ratio_needs_min_rounds_each():
    with pytest.raises(TooFewRounds, match=r"got 5 .*--perf-rounds 6"):
        unpaired_ratio([1.0] * 10, [1.0] * 5)
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


def test_judge_speedup_regressed_message():
    verdict = judge_speedup(estimate(1.21, 1.18, 1.23), expected=1.5, tolerance=0.05)
    assert verdict == Verdict(
        status="regressed",
        expected=1.5,
        tolerance=0.05,
        message="speed-up 1.21x [1.18, 1.23] is 19% below expected 1.50x (tolerance 5%)",
    )


def test_judge_speedup_improved_hints_update():
    verdict = judge_speedup(estimate(1.8, 1.75, 1.85), expected=1.5, tolerance=0.05)
    assert verdict.status == "improved"
    assert verdict.rounds_needed is None
    assert "20% above expected 1.50x" in verdict.message
    assert "--perf-update-baselines" in verdict.message


def test_judge_speedup_ok():
    verdict = judge_speedup(estimate(1.49, 1.46, 1.52), expected=1.5, tolerance=0.05)
    assert verdict.status == "ok"
    assert verdict.rounds_needed is None
    assert verdict.message == "speed-up 1.49x [1.46, 1.52] is 0.7% below expected 1.50x (tolerance 5%)"


@pytest.mark.parametrize(
    ("median", "low", "high", "status"),
    [
        (1.4, 1.3, 1.4999999, "regressed"),
        (1.4, 1.3, 1.5, "inconclusive"),  # touches the lower threshold: not wholly below
        (1.6, 1.5, 1.7, "ok"),  # low == lower is inside the band
        (2.4, 2.3, 2.5, "ok"),  # high == upper is inside the band
        (1.5, 1.5, 2.5, "ok"),  # the whole band
        (2.6, 2.5, 2.7, "inconclusive"),  # touches the upper threshold: not wholly above
        (2.6, 2.5000001, 2.7, "improved"),
    ],
)
def test_judge_speedup_boundaries(median, low, high, status):
    assert judge_speedup(estimate(median, low, high), expected=2.0, tolerance=0.25).status == status


def test_judge_speedup_touching_threshold_needs_one_more_round():
    verdict = judge_speedup(estimate(1.4, 1.3, 1.5, n=10), expected=2.0, tolerance=0.25)
    assert verdict.rounds_needed == 11


def test_judge_speedup_inconclusive_rounds_needed_lower():
    verdict = judge_speedup(estimate(1.75, 1.25, 2.0, n=10), expected=2.0, tolerance=0.25)
    assert verdict.status == "inconclusive"
    # Towards lower = 1.5 the interval reaches 0.5 below the median, which is 0.25 above it:
    # the interval must shrink by 2, i.e. 4x the pairs.
    assert verdict.rounds_needed == 40
    assert "regression threshold 1.50x" in verdict.message
    assert "--perf-rounds 40" in verdict.message
    assert "improvement" not in verdict.message


def test_judge_speedup_inconclusive_rounds_needed_upper():
    # Straddles upper = 2.5 only: median 2.25, reaches 0.5 above (margin 0.25) -> 4x.
    verdict = judge_speedup(estimate(2.25, 2.0, 2.75, n=8), expected=2.0, tolerance=0.25)
    assert verdict.status == "inconclusive"
    assert verdict.rounds_needed == 32
    assert "improvement threshold 2.50x" in verdict.message


def test_judge_speedup_inconclusive_straddles_both():
    # lower: (1.0 / 0.5)^2 = 4; upper: (1.5 / 0.5)^2 = 9 -> the binding one wins.
    verdict = judge_speedup(estimate(2.0, 1.0, 3.5, n=8), expected=2.0, tolerance=0.25)
    assert verdict.status == "inconclusive"
    assert verdict.rounds_needed == 72
    assert "1.50x" in verdict.message and "2.50x" in verdict.message


def test_judge_speedup_median_on_threshold_cannot_decide():
    verdict = judge_speedup(estimate(1.5, 1.25, 1.75), expected=2.0, tolerance=0.25)
    assert verdict.status == "inconclusive"
    assert verdict.rounds_needed is None
    assert "cannot decide" in verdict.message


def test_judge_speedup_rounds_needed_capped():
    # (0.51 / 0.01)^2 * 10 = 26010 > MAX_ROUNDS.
    verdict = judge_speedup(estimate(1.51, 1.0, 1.6), expected=2.0, tolerance=0.25)
    assert verdict.status == "inconclusive"
    assert verdict.rounds_needed is None
    assert f"cannot decide with {MAX_ROUNDS} rounds" in verdict.message
    # Just under the cap it still gives a number.
    assert judge_speedup(estimate(1.6, 1.0, 1.7, n=100), 2.0, 0.25).rounds_needed == 3600


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
    verdict = judge_memory(measured, expected=0.5, tolerance=0.25)
    assert verdict.status == status
    assert verdict.rounds_needed is None


def test_judge_memory_messages():
    assert judge_memory(0.7, 0.5, 0.25).message == (
        "peak-memory ratio 0.70x is 40% above expected 0.50x (tolerance 25%)"
    )
    assert "--perf-update-baselines" in judge_memory(0.3, 0.5, 0.25).message
    with pytest.raises(ValueError, match="measured_ratio"):
        judge_memory(0.0, 0.5, 0.25)


# --------------------------------------------------------------------------- default_tolerance


@pytest.mark.parametrize(
    ("half_widths", "floor", "expected"),
    [
        ([], 0.03, 0.03),
        ([0.01], 0.03, 0.03),
        ([0.015], 0.03, 0.03),  # 2 * 0.015 == 0.03 exactly: not rounded up to 0.04
        ([0.0151], 0.03, 0.04),
        ([0.012, 0.02, 0.005], 0.03, 0.04),
        ([0.041], 0.03, 0.09),
        ([0.01], 0.05, 0.05),
        ([0.0], 0.0, 0.0),
    ],
)
def test_default_tolerance(half_widths, floor, expected):
    assert default_tolerance(half_widths, floor=floor) == expected


@pytest.mark.parametrize("half_widths", [[-0.01], [float("nan")], [0.6]])
def test_default_tolerance_rejects(half_widths):
    with pytest.raises(ValueError):
        default_tolerance(half_widths)


# --------------------------------------------------------------------------- simulation


def test_gate_simulation_no_false_alarms_and_catches_20pct_slowdown():
    """200 unchanged runs (3% noise per pair ratio, 10 pairs) never alarm; a 20% slowdown always does."""
    rng = np.random.default_rng(2024)
    n, expected, noise = 10, 1.5, 0.03

    def run(true_speedup: float) -> RatioEstimate:
        variant = 2.0 * np.exp(rng.normal(0.0, 0.05, n))
        reference = true_speedup * variant * np.exp(rng.normal(0.0, noise, n))
        return paired_ratio(reference, variant)

    # Tolerance as a baseline recording would derive it: from a few calibration runs.
    tolerance = default_tolerance([run(expected).half_width for _ in range(5)])
    assert 0.03 <= tolerance <= 0.15

    unchanged = [judge_speedup(run(expected), expected, tolerance).status for _ in range(200)]
    slowed = [judge_speedup(run(0.8 * expected), expected, tolerance).status for _ in range(200)]
    assert unchanged.count("regressed") == 0
    assert unchanged.count("improved") == 0
    assert unchanged.count("ok") >= 190
    assert slowed.count("regressed") == 200
