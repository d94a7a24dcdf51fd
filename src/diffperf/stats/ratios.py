"""Statistics of speed-up ratios: numbers and statuses only (words are :mod:`diffperf.render`'s job).

Three levels of variation, each with its estimator:

* **Within one process.** A case times a *variant* and its *reference* interleaved, with one
  more reference call at the end (R V R V ... R V R), so each variant call is bracketed by the
  reference calls on either side of it and its speed-up ``sqrt(reference[i] * reference[i+1]) /
  variant[i]`` cancels drift that is linear over the three calls, whichever way it goes
  (:func:`pair_ratios`). :func:`paired_ratio` gives the median of those ratios with the exact
  distribution-free interval of the median (order statistics, ``scipy.stats.quantile_test``).
* **Between processes.** Allocator state, kernel choice and thread placement differ between
  processes, so the next process's median lands outside this process's interval more often than
  the interval admits. A calibration over several processes (:func:`process_spread`) measures
  that spread per ratio; :func:`across_processes` widens one run's interval by it, so a run
  never claims more confidence than the next process honours.
* **Between runs of two revisions.** :func:`between_runs` compares per-run values of two sets
  of runs (a pooled t interval on their logarithms), optionally borrowing the run-to-run spread
  of a saved history when a side has a single run.

:func:`judge_speedup` and :func:`judge_memory` turn an interval and an expectation into a status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import stats

from diffperf.stats.status import Status

#: Largest number of rounds :func:`rounds_to_decide` suggests.
MAX_ROUNDS = 10_000

PAIRED = "paired"  # exact order-statistic CI of the median pair ratio (plain pairs R V)
BRACKETED = "bracketed"  # the same, of ratios to the geometric mean of the reference calls around each variant call
UNPAIRED = "unpaired"  # percentile bootstrap of the ratio of medians
ACROSS_PROCESSES = "across processes"  # PAIRED widened by the calibrated between-process spread
BETWEEN_RUNS = "between runs"  # pooled t interval on log per-run values


class TooFewRounds(ValueError):
    """Too few rounds for a distribution-free confidence interval."""

    def __init__(self, needed: int, got: int, confidence: float) -> None:
        self.needed = needed
        self.got = got
        self.confidence = confidence
        super().__init__(f"need at least {needed} rounds for a {confidence:.0%} interval, got {got}")

    def __reduce__(self):  # picklable (e.g. across pytest-xdist workers)
        return (type(self), (self.needed, self.got, self.confidence))


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio with a two-sided confidence interval."""

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


#: The share of clean processes whose speed-up a band :func:`resolvable_tolerance` gives is ``ok`` in.
OK_POWER = 0.8


@dataclass(frozen=True)
class Verdict:
    """A measurement against its expected value: a status and the band it was judged in.

    ``lower`` and ``upper`` are the edges a speed-up is ``regressed`` below and ``improved`` above; ``ok_lower`` is
    the edge a speed-up is shown to be above when it is ``ok`` (equal to ``lower`` unless the host resolves less
    than the tolerance: :func:`judge_speedup`).
    """

    status: Status  # REGRESSED | IMPROVED | OK | INCONCLUSIVE
    expected: float
    tolerance: float
    lower: float  # expected * (1 - tolerance)
    upper: float  # expected * (1 + tolerance)
    ok_lower: float | None = None  # expected * (1 - the wider of the tolerance and the host's resolution)


@dataclass(frozen=True)
class ProcessSpread:
    """How one ratio varies between processes: a calibration over ``processes`` processes.

    ``run_sd`` is the standard deviation of ln(one process's median ratio): what the next
    process will see. ``between_sd`` is what remains of it beyond the processes' own
    within-process noise (``run_sd**2 - within variance``, at least 0).
    """

    expected: float
    run_sd: float
    between_sd: float
    processes: int
    half_width: float  # median within-process relative half-width
    # The host's spreads pooled over all the ratios of its calibration (root mean square): the prior
    # that :func:`between_process_margin` moderates this ratio's own spread toward. None: no prior.
    host_run_sd: float | None = None
    host_between_sd: float | None = None


@dataclass(frozen=True)
class RunChange:
    """A change between two sets of runs: new / old, its interval, a p-value and the degrees of freedom."""

    estimate: RatioEstimate
    p_value: float
    df: int
    standard_error: float = 0.0  # of the log change

    def p_beyond(self, threshold: float) -> float:
        """One-sided p-value that the change goes beyond ``threshold`` on the side its estimate lies.

        The null hypothesis is that the true change new / old lies within ``1 +- threshold`` (on
        that side): a small value says the change is larger than the threshold, not merely nonzero.
        """
        difference = math.log(self.estimate.median)
        bound = math.log(1 + threshold) if difference >= 0 else math.log(1 - threshold)
        excess = abs(difference) - abs(bound)
        if self.standard_error == 0:
            return 0.0 if excess > 0 else 1.0
        return float(stats.t.sf(excess / self.standard_error, self.df))


# --------------------------------------------------------------------------- within one process


@lru_cache(maxsize=None)
def min_pairs(confidence: float = 0.95) -> int:
    """Smallest n for which a distribution-free two-sided CI of the median exists (6 at 95%, 8 at 99%).

    Found by asking ``scipy.stats.quantile_test`` itself, so it always agrees with :func:`paired_ratio`.
    """
    _check_confidence(confidence)
    for n in range(1, 1024):
        ci = stats.quantile_test(np.arange(n, dtype=float), q=0.0, p=0.5).confidence_interval(
            confidence_level=confidence
        )
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return n
    raise ValueError(f"confidence {confidence} is too close to 1")


def is_paired(reference_count: int, variant_count: int) -> bool:
    """Whether rounds of these lengths pair up: plain pairs (equal) or bracketed (one more reference call)."""
    return variant_count > 0 and reference_count in (variant_count, variant_count + 1)


def pair_ratios(reference_times: Sequence[float], variant_times: Sequence[float]) -> np.ndarray:
    """The speed-up of each variant call over the reference calls next to it.

    Bracketed rounds (R V R V ... R V R: one reference call more than variant calls) give
    ``sqrt(reference[i] * reference[i+1]) / variant[i]``: the variant call against the geometric
    mean of the reference calls just before and just after it, which cancels drift that is linear
    over those three calls. Plain pairs (equal lengths, as saved by diffperf before bracketing)
    give ``reference[i] / variant[i]``.
    """
    reference = _as_times("reference_times", reference_times)
    variant = _as_times("variant_times", variant_times)
    if not is_paired(reference.size, variant.size):
        raise ValueError(
            f"paired rounds need as many reference times as variant times, or one more: got {reference.size} "
            f"reference times and {variant.size} variant times"
        )
    if reference.size == variant.size:
        return reference / variant
    return np.sqrt(reference[:-1] * reference[1:]) / variant


def paired_ratio(
    reference_times: Sequence[float], variant_times: Sequence[float], confidence: float = 0.95
) -> RatioEstimate:
    """Median of :func:`pair_ratios`, with an exact distribution-free CI of the median.

    The interval is two order statistics of the ratios chosen from Binomial(n, 1/2)
    (``scipy.stats.quantile_test``): it covers the median ratio with probability at least
    ``confidence`` for any continuous distribution of i.i.d. ratios. Neighbouring bracketed
    ratios share a reference call, so they are not quite independent; what that costs in coverage
    is measured between processes and added by :func:`across_processes`.
    """
    _check_confidence(confidence)
    ratios = pair_ratios(reference_times, variant_times)
    needed = min_pairs(confidence)
    if ratios.size < needed:
        raise TooFewRounds(needed, int(ratios.size), confidence)
    method = PAIRED if len(reference_times) == len(variant_times) else BRACKETED
    median = float(np.median(ratios))
    # The interval depends only on p and alternative, not on q (which only feeds the p-value).
    ci = stats.quantile_test(ratios, q=median, p=0.5, alternative="two-sided").confidence_interval(
        confidence_level=confidence
    )
    return RatioEstimate(median, float(ci.low), float(ci.high), confidence, int(ratios.size), method)


def unpaired_ratio(
    reference_times: Sequence[float], variant_times: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> RatioEstimate:
    """Ratio of medians ``median(reference) / median(variant)`` of samples that were not interleaved.

    Percentile bootstrap resampling both samples independently (``scipy.stats.bootstrap``):
    percentile rather than BCa because it respects monotone transformations and BCa's jackknife
    is unreliable for a median. It cannot cancel drift; coverage is approximate with few rounds.
    """
    _check_confidence(confidence)
    reference = _as_times("reference_times", reference_times)
    variant = _as_times("variant_times", variant_times)
    needed = min_pairs(confidence)
    smallest = int(min(reference.size, variant.size))
    if smallest < needed:
        raise TooFewRounds(needed, smallest, confidence)

    def ratio_of_medians(ref: np.ndarray, var: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(ref, axis=axis) / np.median(var, axis=axis)

    median = float(ratio_of_medians(reference, variant))
    ci = stats.bootstrap(
        (reference, variant), ratio_of_medians, vectorized=True, paired=False, confidence_level=confidence,
        method="percentile", rng=np.random.default_rng(seed),
    ).confidence_interval
    # A percentile interval can (pathologically) miss its own point estimate: keep the estimate inside.
    return RatioEstimate(median, min(float(ci.low), median), max(float(ci.high), median), confidence, smallest,
                         UNPAIRED)


def memory_ratio(reference_peak_bytes: float, variant_peak_bytes: float) -> float:
    """Peak-memory ratio ``variant / reference`` (lower is better)."""
    for name, value in (("reference_peak_bytes", reference_peak_bytes), ("variant_peak_bytes", variant_peak_bytes)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite, positive number of bytes, got {value!r}")
    return float(variant_peak_bytes) / float(reference_peak_bytes)


# --------------------------------------------------------------------------- between processes


def process_spread(estimates: Sequence[RatioEstimate]) -> ProcessSpread:
    """Calibrate one ratio from one :func:`paired_ratio` estimate per process (at least 2 processes).

    The expected value is the median of the processes' medians; ``run_sd`` the sample standard
    deviation of their logarithms; the within-process variance of each is read off its own
    interval (half its log width over the normal quantile of its confidence).
    """
    if len(estimates) < 2:
        raise ValueError(f"a between-process spread needs at least 2 processes, got {len(estimates)}")
    logs = np.log([estimate.median for estimate in estimates])
    run_sd = float(np.std(logs, ddof=1))
    within = [
        (math.log(e.high) - math.log(e.low)) / 2 / stats.norm.ppf((1 + e.confidence) / 2) for e in estimates
    ]
    within_variance = float(np.mean(np.square(within)))
    return ProcessSpread(
        expected=float(np.exp(np.median(logs))),
        run_sd=run_sd,
        between_sd=math.sqrt(max(0.0, run_sd**2 - within_variance)),
        processes=len(estimates),
        half_width=float(np.median([e.half_width for e in estimates])),
    )


def between_process_margin(spread: ProcessSpread, confidence: float = 0.95) -> float:
    """Half-width, in log units, that the between-process spread adds to a run's interval.

    ``t * sqrt(between_sd**2 + run_sd**2 / K)``: the next process's own offset plus the
    uncertainty of the expected value itself, with Student's t for K - 1 degrees of freedom
    because both come from K processes.

    A spread from K processes has only K - 1 degrees of freedom: a handful of processes can agree
    by chance on a ratio that the next process moves by several times as much. With the host's
    pooled spreads, the margin is never narrower than the one from the *moderated* spreads (as
    limma moderates per-gene variances): each variance averaged with the host's pooled one,
    the prior weighed as K - 1 degrees of freedom, and t for 2(K - 1).
    """
    _check_confidence(confidence)
    quantile = (1 + confidence) / 2
    df = max(1, spread.processes - 1)
    margin = float(stats.t.ppf(quantile, df) * math.sqrt(spread.between_sd**2 + spread.run_sd**2 / spread.processes))
    if spread.host_run_sd is None or spread.host_between_sd is None:
        return margin
    between = (spread.between_sd**2 + spread.host_between_sd**2) / 2
    run = (spread.run_sd**2 + spread.host_run_sd**2) / 2
    moderated = float(stats.t.ppf(quantile, 2 * df) * math.sqrt(between + run / spread.processes))
    return max(margin, moderated)


def ok_confidence(confidence: float) -> float:
    """The two-sided confidence of the interval whose low end is the one-sided test of an ``ok`` verdict at the
    level each side of a ``confidence`` interval has (0.90 for 0.95: a one-sided 5% test, as in an equivalence test
    by two one-sided tests)."""
    _check_confidence(confidence)
    return 2 * confidence - 1


def resolvable_tolerance(spread: ProcessSpread, confidence: float = 0.95, power: float = OK_POWER) -> float:
    """The narrowest band below its expected value in which an unchanged speed-up is shown ``ok`` by ``power`` of
    the next processes (4 of 5), at the gate's ``confidence``: what this host resolves for this ratio.

    A clean process is ``ok`` when the low end of its :func:`ok_confidence` interval, across processes, is above
    ``expected * (1 - band)``. That end lies ``h`` below its median: the typical within-process half-width the
    calibration recorded (``spread.half_width``, a 95% interval, scaled to the ok confidence by the normal
    quantiles) combined with :func:`between_process_margin` as :func:`across_processes` combines them. The median
    itself lies below the expected value by more than ``z(power) * s`` in ``1 - power`` of processes, where ``s`` is
    the next process's spread about a value estimated from K processes (:func:`calibrated_run_sd` times
    ``sqrt(1 + 1/K)``). So ``band = 1 - exp(-(h + z(power) * s))``: the minimal detectable effect of the one-sided
    test, for this host's noise. Rounded up to a whole percent.
    """
    _check_confidence(confidence)
    if not 0 < power < 1:
        raise ValueError(f"power must be strictly between 0 and 1, got {power!r}")
    level = ok_confidence(confidence)
    within = math.log1p(spread.half_width) * stats.norm.ppf((1 + level) / 2) / stats.norm.ppf(0.975)
    half = math.hypot(within, between_process_margin(spread, level))
    run_sd, _ = calibrated_run_sd(spread)
    reach = half + stats.norm.ppf(power) * run_sd * math.sqrt(1 + 1 / spread.processes)
    return round_up_percent(-math.expm1(-reach))


def round_up_percent(fraction: float) -> float:
    """Up to the next whole percent (0.031 -> 0.04; 0.03 stays 0.03)."""
    return math.ceil(round(fraction * 100, 6)) / 100


def across_processes(estimate: RatioEstimate, spread: ProcessSpread) -> RatioEstimate:
    """``estimate``'s interval widened by :func:`between_process_margin`, side by side in log units."""
    margin = between_process_margin(spread, estimate.confidence)
    log_median = math.log(estimate.median)
    below = math.hypot(log_median - math.log(estimate.low), margin)
    above = math.hypot(math.log(estimate.high) - log_median, margin)
    return RatioEstimate(
        estimate.median, math.exp(log_median - below), math.exp(log_median + above), estimate.confidence,
        estimate.n, ACROSS_PROCESSES,
    )


# --------------------------------------------------------------------------- between runs


def between_runs(
    old_values: Sequence[float],
    new_values: Sequence[float],
    confidence: float = 0.95,
    history_sd: float | None = None,
    history_df: int = 0,
) -> RunChange | None:
    """The change ``new / old`` of a per-run value (a latency or a speed-up), judged between runs.

    Works on logarithms: the difference of the two sides' means with a pooled t interval whose
    variance pools the deviations within each side (n - 1 degrees of freedom each) and, when
    given, a saved history's run-to-run standard deviation of the log (``history_sd`` with
    ``history_df`` degrees of freedom). Returns None when there are no degrees of freedom at
    all: one run per side and no history cannot separate a change from run-to-run variation.
    """
    _check_confidence(confidence)
    old = np.log(_as_times("old_values", old_values))
    new = np.log(_as_times("new_values", new_values))
    squares = float(np.sum((old - old.mean()) ** 2) + np.sum((new - new.mean()) ** 2))
    df = old.size - 1 + new.size - 1
    if history_sd is not None and history_df > 0:
        squares += history_df * history_sd**2
        df += history_df
    if df == 0:
        return None
    pooled_sd = math.sqrt(squares / df)
    difference = float(new.mean() - old.mean())
    standard_error = pooled_sd * math.sqrt(1 / old.size + 1 / new.size)
    t = stats.t.ppf((1 + confidence) / 2, df)
    if standard_error == 0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        p_value = float(2 * stats.t.sf(abs(difference) / standard_error, df))
    estimate = RatioEstimate(
        math.exp(difference), math.exp(difference - t * standard_error), math.exp(difference + t * standard_error),
        confidence, int(min(old.size, new.size)), BETWEEN_RUNS,
    )
    return RunChange(estimate, p_value, df, standard_error)


def false_alarm_controlled(p_values: Sequence[float], confidence: float = 0.95) -> list[bool]:
    """Which of a family of one-sided tests still reject at ``(1 - confidence) / 2`` when taken together.

    Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``): when nothing
    changed, the chance that any test of the family rejects stays at about the level of one test,
    however many cases a comparison holds; when some did change, the share of false ones among
    those reported is controlled.
    """
    _check_confidence(confidence)
    if not len(p_values):
        return []
    adjusted = stats.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")
    return [bool(value < (1 - confidence) / 2) for value in adjusted]


def calibrated_run_sd(spread: ProcessSpread) -> tuple[float, int]:
    """The run-to-run SD of ln(one process's median ratio) a calibration gives, and its degrees of freedom.

    Moderated toward the host's pooled spread as :func:`between_process_margin` moderates it (the
    two variances averaged, the prior weighed as the ratio's own K - 1 degrees of freedom), so that
    a ratio whose K processes agreed by chance is not taken at face value.
    """
    df = max(1, spread.processes - 1)
    if spread.host_run_sd is None:
        return spread.run_sd, df
    return math.sqrt((spread.run_sd**2 + spread.host_run_sd**2) / 2), 2 * df


def pooled_sd(spreads: Sequence[tuple[float, int]]) -> tuple[float, int] | None:
    """Several (sd, df) estimates of one variance pooled, weighed by their degrees of freedom; None if none."""
    df = sum(count for _, count in spreads)
    if df == 0:
        return None
    return math.sqrt(sum(count * sd**2 for sd, count in spreads) / df), df


def run_to_run_sd(series: Sequence[Sequence[float]]) -> tuple[float, int] | None:
    """Pooled standard deviation of the log of per-run values, and its degrees of freedom.

    ``series`` holds, per case or per group of comparable runs, the values of several runs; each
    contributes ``len - 1`` degrees of freedom. None when none has two runs.
    """
    squares, df = 0.0, 0
    for values in series:
        logs = np.log(_as_times("values", values))
        squares += float(np.sum((logs - logs.mean()) ** 2))
        df += logs.size - 1
    if df == 0:
        return None
    return math.sqrt(squares / df), df


# --------------------------------------------------------------------------- verdicts


def judge_speedup(estimate: RatioEstimate, expected: float, tolerance: float, ok_estimate: RatioEstimate | None = None,
                  resolution: float | None = None) -> Verdict:
    """An interval of a speed-up (higher is better) against ``expected`` +- ``tolerance``: a decision with an
    indifference zone between two edges.

    "regressed" when the whole ``estimate`` interval lies below ``expected * (1 - tolerance)``, "improved" when it
    lies wholly above ``expected * (1 + tolerance)``: a change beyond the tolerance, at ``estimate``'s confidence.
    "ok" when the speed-up is shown to be above ``expected * (1 - band)``, ``band`` being the wider of the tolerance
    and the host's ``resolution`` (:func:`resolvable_tolerance`): the low end of ``ok_estimate`` (the interval at
    :func:`ok_confidence`; ``estimate`` when not given) is above that edge, a one-sided test of non-inferiority. A
    speed-up that may be higher than expected is not in doubt, so the upper side only decides "improved".
    "inconclusive" otherwise: the speed-up may be lower by more than the band, but not surely by more than the
    tolerance.
    """
    _check_expectation(expected, tolerance)
    band = tolerance if resolution is None else max(tolerance, resolution)
    lower, upper, ok_lower = expected * (1 - tolerance), expected * (1 + tolerance), expected * (1 - band)
    low = (ok_estimate or estimate).low
    if estimate.high < lower:
        status = Status.REGRESSED
    elif estimate.low > upper:
        status = Status.IMPROVED
    elif low >= ok_lower:
        status = Status.OK
    else:
        status = Status.INCONCLUSIVE
    return Verdict(status, expected, tolerance, lower, upper, ok_lower)


def rounds_to_decide(within: RatioEstimate, judged: RatioEstimate, verdict: Verdict,
                     ok_within: RatioEstimate | None = None, ok_judged: RatioEstimate | None = None) -> int | None:
    """Paired rounds that would likely decide an inconclusive verdict; None when more rounds cannot.

    Only the within-process part of an interval shrinks with rounds (as ``1/sqrt(n)``); the between-process part
    the judged interval adds does not. A median above the ok edge is decided ``ok`` once the low end of the ok
    interval (``ok_within`` widened to ``ok_judged``; ``within`` and ``judged`` when not given) rises past that
    edge; a median below the regression edge is decided ``regressed`` once the high end of ``judged`` falls below
    it; where both could happen (the host resolves less than the tolerance), the nearer decides. At log distance
    ``d`` from an edge, with within half-width ``w`` and added part ``m`` on that side (``judged = sqrt(w**2 +
    m**2)``), ``n' = n * w**2 / (d**2 - m**2)``. None when the median sits on the edges, when ``m >= d`` (more
    processes in the calibration, not rounds, would help) or beyond :data:`MAX_ROUNDS`.
    """
    if verdict.status != Status.INCONCLUSIVE:
        return None
    log_median = math.log(within.median)
    ok_lower = verdict.ok_lower if verdict.ok_lower is not None else verdict.lower
    sides = []  # (within half-width, judged half-width, distance to the edge) on each side that can decide
    if within.median > ok_lower:
        inner, outer = ok_within or within, ok_judged or judged
        sides.append((log_median - math.log(inner.low), log_median - math.log(outer.low),
                      log_median - math.log(ok_lower)))
    if within.median < verdict.lower:
        sides.append((math.log(within.high) - log_median, math.log(judged.high) - log_median,
                      math.log(verdict.lower) - log_median))
    needs = []
    for w, j, distance in sides:
        added_squared = max(0.0, j**2 - w**2)
        if added_squared < distance**2:
            needs.append(max(within.n + 1, math.ceil(within.n * w**2 / (distance**2 - added_squared))))
    needed = min(needs, default=None)
    return needed if needed is not None and needed <= MAX_ROUNDS else None


def judge_memory(measured_ratio: float, expected: float, tolerance: float) -> Verdict:
    """A peak-memory ratio (variant / reference, lower is better) against ``expected`` +- ``tolerance``.

    One measurement, no interval: "regressed" above the band, "improved" below it, else "ok".
    """
    _check_expectation(expected, tolerance)
    if not (math.isfinite(measured_ratio) and measured_ratio > 0):
        raise ValueError(f"measured_ratio must be finite and positive, got {measured_ratio!r}")
    lower, upper = expected * (1 - tolerance), expected * (1 + tolerance)
    status = Status.REGRESSED if measured_ratio > upper else Status.IMPROVED if measured_ratio < lower else Status.OK
    return Verdict(status, expected, tolerance, lower, upper)


# --------------------------------------------------------------------------- helpers


def _as_times(name: str, values: Sequence[float]) -> np.ndarray:
    """Validate a 1-D sequence of finite, positive values."""
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
