"""Compare saved runs: each case's latency and speed-up change, judged against run-to-run variation.

The rounds of one process share its allocator state, kernel choices and thread placement, so they
are not independent draws of what the next process measures: two unchanged runs minutes apart
can differ by far more than either run's own interval admits. Every verdict here is therefore
between runs, on one value per run (:mod:`diffperf.history.values`): the run's median latency of
a case, and its median paired speed-up.

* Several runs per side: :func:`diffperf.stats.ratios.between_runs`, a pooled t interval on the
  logarithms of the per-run values.
* A spread from a few runs is never taken at face value: it is pooled with a prior, weighed by
  the prior's degrees of freedom, as the gate moderates its spreads. The priors: the run-to-run
  spread of the same case and metric in saved ``history`` runs of the same profile and hardware
  (:func:`diffperf.stats.ratios.run_to_run_sd` over the history's stretches between change points,
  so that a real shift in the history does not pass for noise); for a speed-up, the calibrated
  between-process spread of the runs' host (``calibration``: its record in
  ``baselines/<profile>/speedups.json``, :func:`diffperf.stats.ratios.calibrated_run_sd`); and where
  neither exists, the spread of all the comparison's cases of that metric pooled, weighed as the
  case's own degrees of freedom (one case's two runs can agree by chance; two dozen cases rarely do). With one run per side and no prior
  the change is untested (:data:`ONE_RUN_PER_SIDE`): nothing can separate a change from
  run-to-run variation.

The change is new / old (for latency the time ratio: above 1 is slower), judged by
:func:`diffperf.stats.ratios.judge_speedup` against 1 +- ``threshold``: slower / faster (latency)
or lower / higher (speed-up) only when the whole interval lies beyond the threshold **and** that
holds among all the changes of the comparison taken together (Benjamini-Hochberg over every
tested latency and speed-up: a comparison of 24 cases would otherwise report about one change
in twenty by chance), "no change" when it lies within, "inconclusive" otherwise. Results are numbers, statuses and reason codes;
:mod:`diffperf.render.history_text` puts them into words.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from diffperf.stats import ratios
from diffperf.stats.status import Status
from diffperf.gate.expectations import HOST, ExpectationsError, expectations_path, load_file, parse_record
from diffperf.history import identity
from diffperf.history.changepoints import segments
from diffperf.history.runs import Case, HistoryError, MachineKey, Run, comparable_groups, group_by_machine, without
from diffperf.history.values import (
    CONFIDENCE, LATENCY, SPEEDUP, Level, flop_rate, latency_level, metric_series, peak_fraction, run_value,
    speedup_level,
)

__all__ = [
    "CONFIDENCE", "THRESHOLD", "CaseComparison", "Change", "Comparison", "Side", "compare_many", "compare_runs",
    "compare_sides", "history_spread",
]

THRESHOLD = 0.05

# Statuses of a change.
SLOWER, FASTER = Status.SLOWER, Status.FASTER  # latency
LOWER, HIGHER = Status.LOWER, Status.HIGHER  # speed-up
NO_CHANGE, INCONCLUSIVE, UNTESTED = Status.NO_CHANGE, Status.INCONCLUSIVE, Status.UNTESTED
NOT_COMPARABLE = Status.NOT_COMPARABLE  # asv's "x": the case's scenario differs between the sides (Change.differs)
REGRESSIONS = (SLOWER, LOWER)

# Where a change's run-to-run spread came from besides its own runs (Change.priors).
HISTORY, CALIBRATION, ALL_CASES = "history", "calibration", "all cases"

# Why a change is untested (Change.reason).
ONE_RUN_PER_SIDE = "one run per side"  # and no history: a change cannot be told from run-to-run variation
SHORT_HISTORY = "short history"  # one run per side, and the history has fewer than two comparable runs of the case
NO_SPEEDUP = "no speed-up"  # a side has no run with paired raw rounds (or a gate value)
REFERENCE_CHANGED = "reference changed"  # the sides measure the speed-up against different variants

# judge_speedup's statuses for a ratio new / old: a higher time is a slower run, a higher speed-up a better one.
_STATUS = {
    LATENCY: {Status.REGRESSED: FASTER, Status.IMPROVED: SLOWER, Status.OK: NO_CHANGE, Status.INCONCLUSIVE: INCONCLUSIVE},
    SPEEDUP: {Status.REGRESSED: LOWER, Status.IMPROVED: HIGHER, Status.OK: NO_CHANGE, Status.INCONCLUSIVE: INCONCLUSIVE},
}


@dataclass(frozen=True)
class Side:
    """One side's per-run values of a metric; with a single run, also that run's own interval."""

    values: tuple[float, ...]
    within: Level | None = None  # information only: it cannot see run-to-run variation

    @property
    def value(self) -> float:
        """The geometric mean of the per-run values (the centre of the test on logarithms)."""
        return float(np.exp(np.mean(np.log(self.values))))

    @property
    def runs(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Change:
    """How a per-run value changed between the sides: numbers, a status and why it is untested."""

    metric: str  # LATENCY or SPEEDUP
    ratio: float  # new / old (NaN when not comparable)
    status: Status  # slower|faster (latency), lower|higher (speed-up), no change, inconclusive, untested, not comparable
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    df: int | None = None  # degrees of freedom of the run-to-run spread
    history_df: int = 0  # of which from priors (the saved history, the host's calibration, all cases pooled)
    priors: tuple[str, ...] = ()  # which: HISTORY, CALIBRATION, ALL_CASES
    reason: str | None = None  # untested: ONE_RUN_PER_SIDE, SHORT_HISTORY, NO_SPEEDUP, REFERENCE_CHANGED
    p_beyond: float | None = None  # one-sided p that it goes beyond the threshold (RunChange.p_beyond)
    # Beyond the threshold in this case alone, but not among all the comparison's changes taken together.
    not_among_all: bool = False
    differs: tuple[identity.Difference, ...] = ()  # NOT_COMPARABLE: the scenario fields that differ

    @property
    def tested(self) -> bool:
        return self.status not in (UNTESTED, NOT_COMPARABLE)

    @property
    def regressed(self) -> bool:
        return self.status in REGRESSIONS


@dataclass
class CaseComparison:
    variant: str
    scenario: str
    reference: str | None  # the new side's reference variant
    old_latency: Side
    new_latency: Side
    latency: Change
    old_speedup: Side | None = None
    new_speedup: Side | None = None
    speedup: Change | None = None
    old_reference: str | None = None
    # Achieved FLOP/s of the whole call, per run (information only: it moves with latency, judged above).
    old_flop_rate: Side | None = None
    new_flop_rate: Side | None = None
    new_peak_fraction: float | None = None  # the new side's mean fraction of its measured peak

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.scenario}" if self.scenario else self.variant

    @property
    def changes(self) -> list[Change]:
        return [self.latency] + ([self.speedup] if self.speedup is not None else [])


@dataclass
class Comparison:
    old_runs: list[Run]
    new_runs: list[Run]
    cases: list[CaseComparison]
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    confidence: float = CONFIDENCE
    threshold: float = THRESHOLD
    history_runs: int | None = None  # saved runs of this machine offered as history (None: no history given)
    software: list[identity.Difference] = field(default_factory=list)  # what differs between the sides' software

    @property
    def machine(self) -> MachineKey:
        return self.new_runs[0].machine

    @property
    def regressed(self) -> list[tuple[CaseComparison, Change]]:
        return [(case, change) for case in self.cases for change in case.changes if change.regressed]

    @property
    def untested(self) -> list[Change]:
        return [change for case in self.cases for change in case.changes if change.status == UNTESTED]


# --------------------------------------------------------------------------- comparing


def compare_sides(old_runs: Iterable[Run], new_runs: Iterable[Run], confidence: float = CONFIDENCE,
                  threshold: float = THRESHOLD, history: Iterable[Run] | None = None,
                  calibration: Mapping[str, tuple[float, int]] | None = None) -> Comparison:
    """Compare every case both sides measured; the sides' runs must share one profile and hardware.

    ``history``: saved runs whose run-to-run spread moderates the sides' own (only runs of the
    same profile and hardware, and not the sides' own files, count). ``calibration``: each
    speed-up's calibrated run-to-run (sd, df) on the runs' host, by case label
    (:func:`calibrated_spreads`). :class:`HistoryError` when the sides share no case or mix
    profiles and hardware.
    """
    old_runs, new_runs = list(old_runs), list(new_runs)
    if not old_runs or not new_runs:
        raise HistoryError("each side needs at least one run")
    machine = _one_machine(old_runs + new_runs)
    software = _comparable_sides(old_runs, new_runs)
    old_cases, new_cases = _cases_by_key(old_runs), _cases_by_key(new_runs)
    common = [key for key in new_cases if key in old_cases]
    if not common:
        raise HistoryError(f"no variant in common between {_side_name(old_runs)} ({_names(old_cases)}) "
                           f"and {_side_name(new_runs)} ({_names(new_cases)})")
    past = None
    if history is not None:
        base = old_runs[0].identity  # the history stands for the base side's run-to-run variation
        past = [run for run in without(history, old_runs + new_runs)
                if run.machine == machine and run.identity == base]
    priors = _Priors(past, dict(calibration or {}), {
        metric: _all_cases_spread([old_cases[key] for key in common] + [new_cases[key] for key in common], metric)
        for metric in (LATENCY, SPEEDUP)})
    cases = _control_false_alarms(
        [_compare_case(old_cases[key], new_cases[key], priors, confidence, threshold) for key in common], confidence)
    return Comparison(
        old_runs, new_runs, cases,
        only_old=[_label(key) for key in old_cases if key not in new_cases],
        only_new=[_label(key) for key in new_cases if key not in old_cases],
        confidence=confidence, threshold=threshold, history_runs=None if past is None else len(past),
        software=software,
    )


def _comparable_sides(old_runs: list[Run], new_runs: list[Run]) -> list[identity.Difference]:
    """Refuse sides that cannot be compared (a :class:`HistoryError` naming the field, as asv's "x"); return
    the software fields that differ between them (a change the comparison is about, said in its notes)."""
    for name, runs in (("base", old_runs), ("head", new_runs)):
        for run in runs[1:]:
            differs = runs[0].identity.differences(run.identity)
            if differs:
                field_name, first, other = differs[0]
                raise HistoryError(f"not comparable: the {name} side's runs {runs[0].label} and {run.label} differ in "
                                   f"{field_name} ({first} vs {other}): a side's runs must measure the same thing")
    _check_one_setup(old_runs[0], new_runs[0])
    return old_runs[0].identity.differences(new_runs[0].identity, identity.SOFTWARE)


def _check_one_setup(old: Run, new: Run) -> None:
    """A :class:`HistoryError` naming the first :data:`~diffperf.history.identity.SETUP` field the runs differ in."""
    differs = old.identity.differences(new.identity, identity.SETUP)
    if differs:
        field_name, old_value, new_value = differs[0]
        raise HistoryError(f"not comparable: {old.label} and {new.label} differ in {field_name} "
                           f"({old_value} vs {new_value}); compare runs of one {field_name}")


def compare_runs(old: Run, new: Run, confidence: float = CONFIDENCE, threshold: float = THRESHOLD,
                 history: Iterable[Run] | None = None,
                 calibration: Mapping[str, tuple[float, int]] | None = None) -> Comparison:
    """One run against another: :func:`compare_sides` with one run per side."""
    return compare_sides([old], [new], confidence, threshold, history, calibration)


def calibrated_spreads(runs: Iterable[Run], baselines_dir: str | Path) -> dict[str, tuple[float, int]]:
    """Each speed-up's calibrated run-to-run (sd, df) on the runs' host, by case label; empty when the runs
    come from several hosts, or from one without its own record in ``baselines_dir``.

    Only the host's own record counts (its fingerprint is the runs'): portable bands stand for a
    class of hosts, whose spread is not this host's. :class:`HistoryError` when the file, or the host's record
    in it, cannot be read.
    """
    keys = {str((run.machine_info.get("diffperf") or {}).get("host_key")) for run in runs}
    profiles = {run.machine.profile for run in runs}
    if len(keys) != 1 or len(profiles) != 1 or keys == {"None"}:
        return {}
    (key,), (profile,) = keys, profiles
    path = expectations_path(baselines_dir, profile)
    if not path.exists():
        return {}
    try:
        record = load_file(path, profile)["hosts"].get(key)
        found = None if record is None else parse_record(path, key, record, HOST)
    except ExpectationsError as error:
        raise HistoryError(f"{error}: restore it from git, repair it with diffperf calibrate, or give --baselines a "
                           "directory whose speedups.json reads") from None
    if found is None:
        return {}
    return {name: ratios.calibrated_run_sd(entry.spread) for name, entry in found.speedups.items()
            if entry.spread is not None}


def compare_many(runs: list[Run], confidence: float = CONFIDENCE, threshold: float = THRESHOLD,
                 history: Iterable[Run] | None = None,
                 calibration: Mapping[str, tuple[float, int]] | None = None) -> list[Comparison]:
    """Each run against the first run of the same profile and hardware.

    :class:`HistoryError` when no two runs share a profile and hardware, or (naming the field) when those that
    do differ in schema, workload or host.
    """
    history = None if history is None else list(history)
    comparisons = [
        compare_runs(members[0], other, confidence, threshold, history, calibration)
        for members in comparable_groups(runs).values() for other in members[1:]
    ]
    if not comparisons:
        for members in group_by_machine(runs).values():
            if len(members) > 1:  # runs of one profile and hardware, each of another schema, workload or host
                _check_one_setup(members[0], members[1])
        raise HistoryError("nothing to compare: no two runs share a profile and hardware ("
                           + "; ".join(f"{run.label}: {run.machine}" for run in runs) + ")")
    return comparisons


# --------------------------------------------------------------------------- one case


Sided = list[tuple[Run, Case]]  # one side's runs that have the case


@dataclass(frozen=True)
class _Priors:
    """What moderates a case's own run-to-run spread (see the module's docstring)."""

    history: list[Run] | None
    calibration: dict[str, tuple[float, int]]
    all_cases: dict[str, tuple[float, int] | None]

    def of(self, metric: str, key: tuple[str, str], own_df: int) -> list[tuple[float, int, str]]:
        """(sd, df, source) of each prior for one case's metric; ``own_df``: the degrees of freedom of its runs."""
        found = []
        if self.history is not None and (spread := history_spread(self.history, key, metric)) is not None:
            found.append((*spread, HISTORY))
        label = f"{key[0]}/{key[1]}" if key[1] else key[0]
        if metric == SPEEDUP and label in self.calibration:
            found.append((*self.calibration[label], CALIBRATION))
        if not found and own_df > 0 and self.all_cases.get(metric) is not None:
            # Weighed as the case's own degrees of freedom: its variance averaged with the pooled one, as the
            # gate moderates a ratio's spread toward its host's (diffperf.stats.ratios.between_process_margin).
            found.append((self.all_cases[metric][0], own_df, ALL_CASES))
        return found


def _all_cases_spread(sides: list[Sided], metric: str) -> tuple[float, int] | None:
    """The run-to-run spread of ``metric`` pooled over every case's side that has several runs."""
    series = []
    for pairs in sides:
        values = [value for run, case in pairs if (value := run_value(case, run, metric)) is not None]
        if len(values) > 1:
            series.append(values)
    return ratios.run_to_run_sd(series) if series else None


def _compare_case(old: Sided, new: Sided, priors: _Priors, confidence: float,
                  threshold: float) -> CaseComparison:
    key = new[0][1].key
    old_latency, new_latency = _side(old, LATENCY, confidence), _side(new, LATENCY, confidence)
    differs = identity.definition_differences(old[0][1].extra_info, new[0][1].extra_info)
    if differs:  # another scenario under the same name: nothing of it can be compared
        return CaseComparison(key[0], key[1], new[-1][1].reference, old_latency, new_latency,
                              Change(LATENCY, new_latency.value / old_latency.value, NOT_COMPARABLE,
                                     differs=tuple(differs)), old_reference=old[-1][1].reference)
    result = CaseComparison(
        variant=key[0], scenario=key[1], reference=new[-1][1].reference, old_reference=old[-1][1].reference,
        old_latency=old_latency, new_latency=new_latency,
        latency=_change(LATENCY, old_latency, new_latency, priors, key, confidence, threshold),
        old_flop_rate=_rates(old), new_flop_rate=_rates(new), new_peak_fraction=_mean_fraction(new),
    )
    references = {case.reference for _, case in old + new}
    if references == {None}:
        return result
    result.old_speedup, result.new_speedup = _side(old, SPEEDUP, confidence), _side(new, SPEEDUP, confidence)
    if len(references) > 1:
        result.speedup = Change(SPEEDUP, _ratio(result.old_speedup, result.new_speedup), UNTESTED,
                                reason=REFERENCE_CHANGED)
    elif result.old_speedup is None or result.new_speedup is None:
        result.speedup = Change(SPEEDUP, _ratio(result.old_speedup, result.new_speedup), UNTESTED, reason=NO_SPEEDUP)
    else:
        result.speedup = _change(SPEEDUP, result.old_speedup, result.new_speedup, priors, key, confidence,
                                 threshold)
    return result


def _side(pairs: Sided, metric: str, confidence: float) -> Side | None:
    """Per-run values of one side; None when no run of the side has one (a speed-up without paired rounds)."""
    values = [value for run, case in pairs if (value := run_value(case, run, metric)) is not None]
    if not values:
        return None
    within = None
    if len(pairs) == 1:
        run, case = pairs[0]
        within = latency_level(case, confidence) if metric == LATENCY else speedup_level(case, run, confidence)
    return Side(tuple(values), within)


def _rates(pairs: Sided) -> Side | None:
    """One side's achieved FLOP/s per run; None when no run of the side recorded it."""
    values = [rate for _, case in pairs if (rate := flop_rate(case)) is not None]
    return Side(tuple(values)) if values else None


def _mean_fraction(pairs: Sided) -> float | None:
    fractions = [value for _, case in pairs if (value := peak_fraction(case)) is not None]
    return float(np.mean(fractions)) if fractions else None


def _change(metric: str, old: Side, new: Side, priors: _Priors, key: tuple[str, str],
            confidence: float, threshold: float) -> Change:
    """The change new / old of one metric, judged between runs, the runs' own spread moderated by the priors."""
    found = priors.of(metric, key, old.runs - 1 + new.runs - 1)
    prior = ratios.pooled_sd([(sd, df) for sd, df, _ in found])
    prior_sd, prior_df = prior if prior is not None else (None, 0)
    change = ratios.between_runs(old.values, new.values, confidence, prior_sd, prior_df)
    if change is None:
        return Change(metric, new.value / old.value, UNTESTED,
                      reason=ONE_RUN_PER_SIDE if priors.history is None else SHORT_HISTORY)
    estimate = change.estimate
    verdict = ratios.judge_speedup(estimate, 1.0, threshold)
    return Change(metric, estimate.median, _STATUS[metric][verdict.status], estimate.low, estimate.high,
                  change.p_value, change.df, prior_df, priors=tuple(source for _, _, source in found),
                  p_beyond=change.p_beyond(threshold))


def _control_false_alarms(cases: list[CaseComparison], confidence: float) -> list[CaseComparison]:
    """Keep a change beyond the threshold only if it stays so among all the tested changes together."""
    tested = [(case, index, change) for case in cases for index, change in enumerate(case.changes)
              if change.p_beyond is not None]
    kept = ratios.false_alarm_controlled([change.p_beyond for _, _, change in tested], confidence)
    for (case, index, change), keep in zip(tested, kept):
        if change.status in (SLOWER, FASTER, LOWER, HIGHER) and not keep:
            demoted = dataclasses.replace(change, status=INCONCLUSIVE, not_among_all=True)
            if index == 0:
                case.latency = demoted
            else:
                case.speedup = demoted
    return cases


def history_spread(history: list[Run], key: tuple[str, str], metric: str) -> tuple[float, int] | None:
    """Run-to-run (sd, df) of a case's log per-run values in ``history`` (one profile and hardware).

    Pooled over the stretches between the history's change points, so that a real shift in the
    history does not pass for run-to-run variation. None with fewer than two runs in a stretch.
    """
    _, values = metric_series(history, key, metric)
    return ratios.run_to_run_sd(segments(values)) if values else None


# --------------------------------------------------------------------------- helpers


def _one_machine(runs: list[Run]) -> MachineKey:
    groups = group_by_machine(runs)
    if len(groups) > 1:
        raise HistoryError("the runs come from different profiles/hardware and cannot be compared: "
                           + "; ".join(f"{key} ({', '.join(r.label for r in members)})"
                                       for key, members in groups.items()))
    return next(iter(groups))


def _cases_by_key(runs: list[Run]) -> dict[tuple[str, str], Sided]:
    found: dict[tuple[str, str], Sided] = {}
    for run in runs:
        for case in run.cases:
            found.setdefault(case.key, []).append((run, case))
    return found


def _ratio(old: Side | None, new: Side | None) -> float:
    return new.value / old.value if old is not None and new is not None else math.nan


def _side_name(runs: list[Run]) -> str:
    return runs[0].label if len(runs) == 1 else f"{len(runs)} runs"


def _label(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}" if key[1] else key[0]


def _names(cases: dict) -> str:
    labels = sorted(_label(key) for key in cases)
    return (", ".join(labels[:8]) + (f", ... ({len(labels)} in all)" if len(labels) > 8 else "")) or "no benchmarks"
