"""Per-run values of a case: one number per run for the statistics between runs, and each run's own interval.

Statistics between runs (:mod:`~diffperf.history.compare`, :mod:`~diffperf.history.changepoints`)
take one value per run and case: :func:`run_latency` (the run's median time) and
:func:`run_speedup` (the median of its paired ratios ``reference_i / variant_i``).

:func:`latency_level` and :func:`speedup_level` describe one run's own rounds with an interval.
Such an interval cannot see what changes between processes, so it is shown as information and
never decides a verdict between runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import stats

from diffperf.stats import ratios
from diffperf.history.runs import Case, Run, sort_by_time

__all__ = [
    "CI", "CONFIDENCE", "GATE", "IQR", "LATENCY", "SPEEDUP", "Level", "flop_rate", "gate_level", "gate_row",
    "latency_level", "metric_series", "peak_fraction", "positive", "run_latency", "run_speedup", "run_value",
    "speedup_level", "throughput_info",
]

CONFIDENCE = 0.95

# What a value measures.
LATENCY = "latency"  # seconds, lower is better
SPEEDUP = "speed-up"  # over the reference variant, higher is better

# Where a Level's interval comes from.
CI = "ci"  # the exact distribution-free interval of the median, from the raw rounds
IQR = "iqr"  # the stored quartiles (no raw rounds saved)
GATE = "gate"  # the speed-up gate's stored interval


@dataclass(frozen=True)
class Level:
    """One run's value of a metric with the interval its own rounds give (``kind`` None: no interval)."""

    value: float
    low: float | None = None
    high: float | None = None
    kind: str | None = None  # CI, IQR, GATE or None
    confidence: float | None = None  # of a CI or GATE interval
    n: int | None = None


# --------------------------------------------------------------------------- one number per run


def run_latency(case: Case) -> float:
    """A run's latency of a case: its median time in seconds."""
    return case.median


def run_speedup(case: Case, run: Run | None = None) -> float | None:
    """A run's speed-up of a case: the median of its paired ratios (:func:`~diffperf.stats.ratios.pair_ratios`).

    From the raw paired rounds, else the gate's stored value (the same statistic); None for a
    case without a reference or without either.
    """
    if case.reference is None:
        return None
    if case.paired:
        return float(np.median(ratios.pair_ratios(case.reference_rounds, case.data)))
    stored = _stored_speedup(case, run)
    return stored.value if stored is not None else None


def run_value(case: Case, run: Run, metric: str) -> float | None:
    """:func:`run_latency` or :func:`run_speedup`, by ``metric``."""
    return run_latency(case) if metric == LATENCY else run_speedup(case, run)


def metric_series(runs: list[Run], key: tuple[str, str], metric: str) -> tuple[list[Run], list[float]]:
    """A case's per-run values in chronological order, and the runs they come from (runs without one left out)."""
    chosen, values = [], []
    for run in sort_by_time(runs):
        case = run.by_key.get(key)
        value = run_value(case, run, metric) if case is not None else None
        if value is not None:
            chosen.append(run)
            values.append(value)
    return chosen, values


def throughput_info(case: Case) -> Mapping | None:
    """The case's ``extra_info["throughput"]`` (diffperf.measure.flops.Throughput.to_json), if recorded."""
    info = case.extra_info.get("throughput")
    return info if isinstance(info, Mapping) else None


def flop_rate(case: Case, stage: str = "call") -> float | None:
    """The achieved FLOP/s of a stage (or of the whole call) that the run recorded, else None."""
    info = throughput_info(case)
    achieved = info.get("achieved") if info is not None else None
    return positive(achieved.get(stage)) if isinstance(achieved, Mapping) else None


def peak_fraction(case: Case, stage: str = "call", of: str = "fraction_of_peak") -> float | None:
    """The stage's fraction of the measured peak (``of="fraction_of_datasheet"``: of the datasheet's), else None."""
    info = throughput_info(case)
    fractions = info.get(of) if info is not None else None
    return positive(fractions.get(stage)) if isinstance(fractions, Mapping) else None


def gate_row(run: Run, case: Case, kind: str = "speedups") -> Mapping | None:
    """The speed-up gate's row for ``case`` in ``run`` (``kind``: "speedups" or "memory"), if any."""
    for row in run.gate_rows(kind):
        if row.get("variant") == case.variant and row.get("scenario") == case.scenario:
            return row
    return None


# --------------------------------------------------------------------------- one run's interval


def latency_level(case: Case, confidence: float = CONFIDENCE) -> Level:
    """A case's median time with the exact distribution-free interval of the median of its raw rounds.

    Without raw rounds (or too few for the interval) the stored quartiles are the interval.
    """
    if case.data and len(case.data) >= ratios.min_pairs(confidence):
        data = np.asarray(case.data)
        median = float(np.median(data))
        ci = stats.quantile_test(data, q=median, p=0.5).confidence_interval(confidence_level=confidence)
        return Level(median, float(ci.low), float(ci.high), CI, confidence, len(data))
    q1, q3 = positive(case.stats.get("q1")), positive(case.stats.get("q3"))
    if q1 is not None and q3 is not None:
        return Level(case.median, q1, q3, IQR, None, case.rounds)
    return Level(case.median, n=case.rounds)


def speedup_level(case: Case, run: Run | None = None, confidence: float = CONFIDENCE) -> Level | None:
    """A case's speed-up over its reference in one run, with the best interval the file allows.

    Paired raw rounds give :func:`~diffperf.stats.ratios.paired_ratio`'s exact interval; otherwise
    the gate's stored interval; otherwise a ratio of medians without an interval. None for a case
    without a reference.
    """
    if case.reference is None:
        return None
    if case.paired and len(case.data) >= ratios.min_pairs(confidence):
        estimate = ratios.paired_ratio(case.reference_rounds, case.data, confidence)
        return Level(estimate.median, estimate.low, estimate.high, CI, confidence, estimate.n)
    stored = _stored_speedup(case, run)
    if stored is not None:
        return stored
    if case.reference_rounds:
        return Level(float(np.median(case.reference_rounds)) / case.median)
    reference = run.by_key.get((case.reference, case.scenario)) if run is not None else None
    return Level(reference.median / case.median) if reference is not None else None


def gate_level(row: Mapping) -> Level | None:
    """A gate row's speed-up with its stored within-process interval (None without a value).

    ``value`` is ``median`` in files written before the gate kept numbers only.
    """
    value = positive(row.get("value", row.get("median")))
    if value is None:
        return None
    low, high = positive(row.get("low")), positive(row.get("high"))
    if low is None or high is None:
        return Level(value, n=row.get("n"))
    return Level(value, low, high, GATE, positive(row.get("confidence")), row.get("n"))


def _stored_speedup(case: Case, run: Run | None) -> Level | None:
    row = gate_row(run, case) if run is not None else None
    return gate_level(row) if row is not None else None


def positive(value) -> float | None:
    """``value`` as a float when it is a finite, positive number, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value > 0:
        return float(value)
    return None
