"""Where a persistent shift began in a history of saved runs: change points found with ruptures.

Each case's per-run latency and per-run speed-up (:mod:`diffperf.history.values`), in
chronological order within one profile and hardware, is a series; a *change point* is the first
run after which the series' level stays different. The search is ruptures' PELT (exact optimal
segmentation, Killick et al. 2012) on the logarithm of the values with a BIC penalty scaled to
the series' own noise, so it adapts to each series as Apache Otava does; each change point is then
kept only if Welch's t test separates the stretches on either side at ``p < max_pvalue`` by at
least ``min_magnitude``, dropping the weakest first and re-testing its neighbours, the merge step
of Hunter (Fleming et al., ICPE 2023). Otava itself is not used: it pins numpy to 2.2.0.*, scipy
below 1.17 and ruamel.yaml exactly, and pulls cloud SDKs, which a library cannot impose on its
users' environments.

Defaults, and why (measured on synthetic log-normal series; docs/history.md):

* :data:`MAX_PVALUE` = 1e-4: the t test is applied to splits the search chose as the best, so its
  p-value is optimistic; a trend holds about two dozen series per machine.
* :data:`MIN_SEGMENT` = 3 runs: a shift must persist for three runs to be one (a single slow run
  is run-to-run variation, which ``diffperf compare`` judges).
* :data:`MIN_MAGNITUDE` = 0.05: the smallest change ``diffperf compare`` counts (its default
  threshold); a clear shift of 1% in a quiet series is not worth a person's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import ruptures
from scipy import stats

from diffperf.history.runs import Run
from diffperf.history.values import LATENCY, SPEEDUP, metric_series

__all__ = ["MAX_PVALUE", "MIN_MAGNITUDE", "MIN_SEGMENT", "ChangePoint", "Shift", "case_change_points", "find_shifts",
           "segments"]

MAX_PVALUE = 0.0001
MIN_SEGMENT = 3
MIN_MAGNITUDE = 0.05


@dataclass(frozen=True)
class Shift:
    """A persistent shift in a series: the index of the first value after it and the means either side."""

    index: int
    before: float  # mean from the previous shift (or the start) up to this one
    after: float  # mean from this shift up to the next (or the end)
    p_value: float

    @property
    def change(self) -> float:
        """Relative change of the mean: ``after / before - 1``."""
        return self.after / self.before - 1


@dataclass(frozen=True)
class ChangePoint:
    """A shift in one case's per-run latency or speed-up, and the run where it began."""

    metric: str  # values.LATENCY or values.SPEEDUP
    run: Run  # the first run after the shift
    shift: Shift


def find_shifts(values: Sequence[float], max_pvalue: float = MAX_PVALUE, min_magnitude: float = MIN_MAGNITUDE,
                min_segment: int = MIN_SEGMENT) -> list[Shift]:
    """The change points of a series of positive values, in order."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 * min_segment:
        return []
    logs = np.log(values)
    # Noise from neighbouring differences (robust to the shifts themselves): MAD / 0.6745, over sqrt(2).
    noise = float(np.median(np.abs(np.diff(logs) - np.median(np.diff(logs))))) / 0.6745 / math.sqrt(2)
    if noise == 0:
        noise = float(np.std(logs))
    if noise == 0:
        return []  # no variation at all: nothing to split
    penalty = 2 * noise**2 * math.log(values.size)  # BIC for a change of mean in Gaussian noise
    cuts = ruptures.Pelt(model="l2", min_size=min_segment, jump=1).fit(logs.reshape(-1, 1)).predict(pen=penalty)
    return _significant(values, cuts[:-1], max_pvalue, min_magnitude)


def _significant(values: np.ndarray, cuts: list[int], max_pvalue: float, min_magnitude: float) -> list[Shift]:
    """Hunter's merge step: drop the weakest change point until every one is significant and large enough."""
    cuts = list(cuts)
    while cuts:
        shifts = _shifts(values, cuts)
        weakest = max(range(len(shifts)), key=lambda i: shifts[i].p_value)
        if shifts[weakest].p_value < max_pvalue:
            weakest = min(range(len(shifts)), key=lambda i: abs(math.log(shifts[i].after / shifts[i].before)))
            if abs(shifts[weakest].change) >= min_magnitude:
                return shifts
        del cuts[weakest]
    return []


def _shifts(values: np.ndarray, cuts: list[int]) -> list[Shift]:
    bounds = [0, *cuts, values.size]
    found = []
    for start, cut, stop in zip(bounds, bounds[1:], bounds[2:]):
        before, after = values[start:cut], values[cut:stop]
        p_value = float(stats.ttest_ind(np.log(before), np.log(after), equal_var=False).pvalue)
        found.append(Shift(int(cut), float(before.mean()), float(after.mean()), 1.0 if math.isnan(p_value) else p_value))
    return found


def segments(values: Sequence[float], **options) -> list[list[float]]:
    """``values`` cut at its change points: stretches within which runs differ only by run-to-run variation."""
    cuts = [0] + [shift.index for shift in find_shifts(values, **options)] + [len(values)]
    return [list(values[start:stop]) for start, stop in zip(cuts, cuts[1:]) if stop > start]


def case_change_points(runs: list[Run], key: tuple[str, str], **options) -> list[ChangePoint]:
    """Change points of one case's latency and speed-up over ``runs`` (one profile and hardware).

    The search restarts where the runs' identity changes (diffperf.history.identity: another torch,
    another workload, ...): values measured under different identities are never one series.
    """
    found = []
    for metric in (LATENCY, SPEEDUP):
        chosen, values = metric_series(runs, key, metric)
        for start, stop in identity_stretches(chosen):
            found += [ChangePoint(metric, chosen[start + shift.index], shift)
                      for shift in find_shifts(values[start:stop], **options)]
    return found


def identity_stretches(runs: list[Run]) -> list[tuple[int, int]]:
    """(start, stop) of each stretch of consecutive runs of one identity."""
    bounds = [0] + [index for index in range(1, len(runs)) if runs[index].identity != runs[index - 1].identity]
    return list(zip(bounds, bounds[1:] + [len(runs)]))
