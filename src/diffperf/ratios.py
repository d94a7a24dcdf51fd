"""Statistics of speed-up ratios: the speed-up gate.

A benchmark case times a *variant* pipeline and its *reference* interleaved
(A B A B ...), giving paired rounds ``reference_times[i]`` / ``variant_times[i]``
measured back to back.  The speed-up of pair ``i`` is
``reference_times[i] / variant_times[i]``; slow drift of the machine (clocks,
temperature, background load) hits both members of a pair and cancels in the
ratio.

The gate estimates the median speed-up with a distribution-free confidence
interval and compares the *whole interval* with a tolerance band around the
expected (stored) speed-up, so a verdict is only "regressed" or "improved"
when the data say so with the requested confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "MAX_ROUNDS",
    "RatioEstimate",
    "TooFewRounds",
    "Verdict",
    "default_tolerance",
    "judge_memory",
    "judge_speedup",
    "memory_ratio",
    "min_pairs",
    "paired_ratio",
    "unpaired_ratio",
]

#: Largest number of rounds ``judge_speedup`` will suggest; beyond it the
#: verdict says it cannot decide.
MAX_ROUNDS = 10_000

PAIRED_METHOD = "paired, exact order-statistic CI of the median"
UNPAIRED_METHOD = "unpaired, percentile bootstrap of the ratio of medians"


class TooFewRounds(ValueError):
    """Too few rounds for a distribution-free confidence interval."""

    def __init__(self, needed: int, got: int, confidence: float, what: str = "paired rounds") -> None:
        self.needed = needed
        self.got = got
        self.confidence = confidence
        self.what = what
        super().__init__(
            f"need at least {needed} {what} for a {_exact_pct(confidence)} confidence interval, "
            f"got {got} (run with --perf-rounds {needed})"
        )

    def __reduce__(self):  # keep picklable (e.g. across pytest-xdist workers)
        return (type(self), (self.needed, self.got, self.confidence, self.what))


@dataclass(frozen=True)
class RatioEstimate:
    """A speed-up (or other ratio) with a two-sided confidence interval."""

    median: float
    low: float
    high: float
    confidence: float
    n: int
    method: str

    def __post_init__(self) -> None:
        values = (self.median, self.low, self.high)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"ratio estimate must be finite and positive, got {values}")
        if not self.low <= self.median <= self.high:
            raise ValueError(f"need low <= median <= high, got {self.low} <= {self.median} <= {self.high}")
        _check_confidence(self.confidence)
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")

    @property
    def half_width(self) -> float:
        """Relative half-width of the interval: ``(high - low) / 2 / median``."""
        return (self.high - self.low) / 2 / self.median


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing a measurement with its expected value."""

    status: str  # "regressed" | "improved" | "ok" | "inconclusive"
    expected: float
    tolerance: float  # relative, e.g. 0.05
    message: str  # one line, human readable
    rounds_needed: int | None = None  # inconclusive only: pairs estimated to decide


# --------------------------------------------------------------------------- estimates


@lru_cache(maxsize=None)
def min_pairs(confidence: float = 0.95) -> int:
    """Smallest n for which a distribution-free two-sided CI of the median exists.

    The interval ``[x_(k), x_(n+1-k)]`` needs ``2 * 0.5**n < 1 - confidence``
    even for ``k = 1`` (6 at 95%, 8 at 99%).  Found by asking
    ``scipy.stats.quantile_test`` itself, so it always agrees with
    :func:`paired_ratio`.
    """
    _check_confidence(confidence)
    for n in range(1, 1024):
        ci = stats.quantile_test(np.arange(n, dtype=float), q=0.0, p=0.5).confidence_interval(
            confidence_level=confidence
        )
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return n
    raise ValueError(f"confidence {confidence} is too close to 1")


def paired_ratio(
    reference_times: Sequence[float],
    variant_times: Sequence[float],
    confidence: float = 0.95,
) -> RatioEstimate:
    """Median speed-up of interleaved pairs with an exact distribution-free CI.

    ``r_i = reference_times[i] / variant_times[i]``.  The interval comes from
    ``scipy.stats.quantile_test(r, p=0.5).confidence_interval``: two order
    statistics of ``r`` chosen from the Binomial(n, 1/2) distribution, so it
    covers the true median ratio with probability >= ``confidence`` for any
    continuous distribution of i.i.d. pair ratios.
    """
    _check_confidence(confidence)
    reference = _as_times("reference_times", reference_times)
    variant = _as_times("variant_times", variant_times)
    if reference.size != variant.size:
        raise ValueError(
            f"paired rounds need equal lengths: got {reference.size} reference times "
            f"and {variant.size} variant times"
        )
    needed = min_pairs(confidence)
    if reference.size < needed:
        raise TooFewRounds(needed, int(reference.size), confidence)

    ratios = reference / variant
    median = float(np.median(ratios))
    # The interval depends only on `p` and `alternative`, not on `q` (q only
    # feeds the p-value); 'two-sided' splits 1 - confidence over both tails.
    ci = stats.quantile_test(ratios, q=median, p=0.5, alternative="two-sided").confidence_interval(
        confidence_level=confidence
    )
    return RatioEstimate(
        median=median,
        low=float(ci.low),
        high=float(ci.high),
        confidence=confidence,
        n=int(ratios.size),
        method=PAIRED_METHOD,
    )


def unpaired_ratio(
    reference_times: Sequence[float],
    variant_times: Sequence[float],
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioEstimate:
    """Ratio of medians ``median(ref) / median(var)`` for runs that were not interleaved.

    The CI is a percentile bootstrap resampling both samples independently
    (``scipy.stats.bootstrap(..., paired=False, method="percentile")``).
    Percentile rather than BCa: it respects monotone transformations (the
    interval of the ratio is the interval of the log-ratio exponentiated),
    and BCa's jackknife acceleration is unreliable for a median and returns
    NaN on degenerate (tied) data.  Unlike :func:`paired_ratio` it cannot
    cancel drift, and small-sample coverage is only approximate.  Each
    sample needs at least :func:`min_pairs` rounds; ``seed`` makes it
    deterministic.
    """
    _check_confidence(confidence)
    reference = _as_times("reference_times", reference_times)
    variant = _as_times("variant_times", variant_times)
    needed = min_pairs(confidence)
    smallest = int(min(reference.size, variant.size))
    if smallest < needed:
        raise TooFewRounds(needed, smallest, confidence, what="rounds of each variant")

    def ratio_of_medians(ref: np.ndarray, var: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(ref, axis=axis) / np.median(var, axis=axis)

    median = float(ratio_of_medians(reference, variant))
    result = stats.bootstrap(
        (reference, variant),
        ratio_of_medians,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    # A percentile interval can (pathologically) miss its own point estimate;
    # widen it so the estimate is always inside.
    return RatioEstimate(
        median=median,
        low=min(float(ci.low), median),
        high=max(float(ci.high), median),
        confidence=confidence,
        n=smallest,
        method=UNPAIRED_METHOD,
    )


def memory_ratio(reference_peak_bytes: float, variant_peak_bytes: float) -> float:
    """Peak-memory ratio ``variant / reference`` (lower is better)."""
    for name, value in (("reference_peak_bytes", reference_peak_bytes), ("variant_peak_bytes", variant_peak_bytes)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite, positive number of bytes, got {value!r}")
    return float(variant_peak_bytes) / float(reference_peak_bytes)


# --------------------------------------------------------------------------- verdicts


def judge_speedup(estimate: RatioEstimate, expected: float, tolerance: float) -> Verdict:
    """Compare a speed-up interval (higher is better) with ``expected`` +- ``tolerance``.

    With ``lower = expected * (1 - tolerance)`` and ``upper = expected * (1 + tolerance)``:

    * "regressed": the whole interval is below ``lower`` (``high < lower``);
    * "improved": the whole interval is above ``upper`` (``low > upper``);
    * "ok": the interval lies within the band (``low >= lower and high <= upper``);
    * "inconclusive": the interval straddles ``lower`` or ``upper``.

    For "inconclusive", ``rounds_needed`` assumes the interval shrinks as
    ``1/sqrt(n)`` around the median: for each straddled threshold ``t``,
    ``n * (w / |median - t|)**2`` (at least ``n + 1``) where ``w`` is the
    interval's half-width on the side of ``t`` (the order-statistic interval
    need not be symmetric); the largest over straddled thresholds wins.
    It is ``None`` when the median sits on a threshold or more than
    ``MAX_ROUNDS`` pairs would be needed.
    """
    _check_expectation(expected, tolerance)
    lower = expected * (1 - tolerance)
    upper = expected * (1 + tolerance)
    median, low, high = estimate.median, estimate.low, estimate.high
    measured = f"speed-up {median:.2f}x [{low:.2f}, {high:.2f}]"
    against = f"expected {expected:.2f}x (tolerance {_exact_pct(tolerance)})"
    deviation = median / expected - 1

    if high < lower:
        return Verdict("regressed", expected, tolerance, f"{measured} is {_pct(-deviation)} below {against}")
    if low > upper:
        return Verdict(
            "improved",
            expected,
            tolerance,
            f"{measured} is {_pct(deviation)} above {against}; "
            "record new expectations with --perf-update-baselines",
        )
    if low >= lower and high <= upper:
        side = "below" if deviation < 0 else "above"
        return Verdict("ok", expected, tolerance, f"{measured} is {_pct(abs(deviation))} {side} {against}")

    straddled = []
    if low < lower:  # and high >= lower, else "regressed"
        straddled.append(("regression", lower))
    if high > upper:  # and low <= upper, else "improved"
        straddled.append(("improvement", upper))
    names = " and ".join(f"the {kind} threshold {t:.2f}x" for kind, t in straddled)
    head = (
        f"{measured} vs {against} is inconclusive: "
        f"the {_exact_pct(estimate.confidence)} interval straddles {names}"
    )

    factor = 0.0
    for _, threshold in straddled:
        margin = abs(median - threshold)
        if margin == 0:
            return Verdict(
                "inconclusive", expected, tolerance, f"{head}; cannot decide: the median sits on the threshold"
            )
        width = (median - low) if threshold < median else (high - median)
        factor = max(factor, (width / margin) ** 2)
    # At least one more pair: an interval touching a threshold is not yet decisive.
    needed = max(estimate.n + 1, math.ceil(estimate.n * factor))
    if needed > MAX_ROUNDS:
        return Verdict(
            "inconclusive",
            expected,
            tolerance,
            f"{head}; cannot decide with {MAX_ROUNDS} rounds or fewer (about {needed} needed)",
        )
    return Verdict(
        "inconclusive",
        expected,
        tolerance,
        f"{head}; about {needed} paired rounds would decide (--perf-rounds {needed})",
        rounds_needed=needed,
    )


def judge_memory(measured_ratio: float, expected: float, tolerance: float) -> Verdict:
    """Compare a peak-memory ratio (variant / reference, lower is better) with ``expected``.

    Peak memory is nearly deterministic, so this is a single measurement with
    no interval: "regressed" above ``expected * (1 + tolerance)``, "improved"
    below ``expected * (1 - tolerance)``, else "ok".
    """
    _check_expectation(expected, tolerance)
    if not (math.isfinite(measured_ratio) and measured_ratio > 0):
        raise ValueError(f"measured_ratio must be finite and positive, got {measured_ratio!r}")
    deviation = measured_ratio / expected - 1
    measured = f"peak-memory ratio {measured_ratio:.2f}x"
    against = f"expected {expected:.2f}x (tolerance {_exact_pct(tolerance)})"
    if measured_ratio > expected * (1 + tolerance):
        return Verdict("regressed", expected, tolerance, f"{measured} is {_pct(deviation)} above {against}")
    if measured_ratio < expected * (1 - tolerance):
        return Verdict(
            "improved",
            expected,
            tolerance,
            f"{measured} is {_pct(-deviation)} below {against}; "
            "record new expectations with --perf-update-baselines",
        )
    side = "below" if deviation < 0 else "above"
    return Verdict("ok", expected, tolerance, f"{measured} is {_pct(abs(deviation))} {side} {against}")


def default_tolerance(half_widths: Sequence[float], floor: float = 0.03) -> float:
    """Tolerance from measured noise: ``max(floor, 2 * max(half_widths))``, rounded up to 0.01.

    Reasoning: a false alarm needs the *whole* interval below
    ``expected * (1 - tol)``.  If the benchmark is unchanged and the stored
    expectation is within one half-width ``h`` of the truth, the interval
    (half-width ~``h``) must then miss the truth by more than ``tol - h >= h``,
    far rarer than the interval's own (1 - confidence) / 2 one-sided error.
    ``2 * h`` also keeps an unchanged result's interval inside the band, so it
    reads "ok" rather than "inconclusive".  The floor absorbs run-to-run
    (between-session) variation that a within-session interval cannot see.
    ``half_widths`` are relative (:attr:`RatioEstimate.half_width`), e.g. from
    the runs that recorded the baseline.
    """
    if not (math.isfinite(floor) and 0 <= floor < 1):
        raise ValueError(f"floor must be in [0, 1), got {floor!r}")
    widths = [float(h) for h in half_widths]
    if any(not (math.isfinite(h) and h >= 0) for h in widths):
        raise ValueError(f"half-widths must be finite and non-negative, got {widths}")
    value = max([floor] + [2 * h for h in widths])
    tolerance = math.ceil(round(value * 100, 9)) / 100  # round(...) guards 0.03 * 100 = 3.0000000000000004
    if tolerance >= 1:
        raise ValueError(
            f"measurements too noisy for a tolerance (largest half-width {max(widths):.0%}); run more rounds"
        )
    return tolerance


# --------------------------------------------------------------------------- helpers


def _as_times(name: str, values: Sequence[float]) -> np.ndarray:
    """Validate a 1-D sequence of finite, positive times."""
    times = np.asarray(values, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of times, got shape {times.shape}")
    bad = np.flatnonzero(~(np.isfinite(times) & (times > 0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} must contain only finite, positive times; got {float(times[i])!r} at index {i}")
    return times


def _check_confidence(confidence: float) -> None:
    if not (0 < confidence < 1):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _check_expectation(expected: float, tolerance: float) -> None:
    if not (math.isfinite(expected) and expected > 0):
        raise ValueError(f"expected must be finite and positive, got {expected!r}")
    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")


def _exact_pct(fraction: float) -> str:
    """Format a fraction without rounding it away: 0.95 -> '95%', 0.125 -> '12.5%'."""
    return f"{round(fraction * 100, 6):g}%"


def _pct(fraction: float) -> str:
    """Format a fraction as a percentage: 0.1933 -> '19%', 0.035 -> '3.5%', 0.05 -> '5%'."""
    percent = fraction * 100
    if abs(percent) >= 9.95:
        return f"{percent:.0f}%"
    return f"{round(percent, 1):g}%"
