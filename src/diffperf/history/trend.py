"""Trends: each case's speed-up and latency over saved runs (commits and dates), and where they shifted.

Runs are split by :class:`~diffperf.history.runs.MachineKey` (profile and hardware) and never
mixed; within a group the runs are in chronological order. Each point carries the run's own
interval (:mod:`diffperf.history.values`: the exact CI of the median latency, the IQR without
raw rounds; the paired speed-up's CI or the gate's), and each case's series of per-run values
is searched for change points (:mod:`diffperf.history.changepoints`).

This module builds the data; :mod:`diffperf.render.charts` draws it,
:mod:`diffperf.render.history_text` words it and :func:`diffperf.render.pages.write_trend` lays it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diffperf.history import changepoints
from diffperf.history.runs import MachineKey, Run, comparable_groups, sort_by_time
from diffperf.history.values import CONFIDENCE, Level, latency_level, speedup_level

__all__ = ["Point", "Series", "Trends", "build_trends"]


@dataclass
class Point:
    run: Run
    index: int  # position of the run in its group's chronological order
    latency: Level
    speedup: Level | None


@dataclass
class Series:
    machine: MachineKey
    variant: str
    scenario: str
    reference: str | None
    points: list[Point] = field(default_factory=list)
    change_points: list[changepoints.ChangePoint] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.scenario}" if self.scenario else self.variant

    def index_of(self, run: Run) -> int:
        """The x position of ``run`` in this series' group."""
        return next(point.index for point in self.points if point.run is run)


@dataclass
class Trends:
    groups: dict[MachineKey, list[Run]]  # each group's runs, chronological
    series: dict[MachineKey, list[Series]]
    confidence: float = CONFIDENCE
    max_pvalue: float = changepoints.MAX_PVALUE
    without_raw: list[str] = field(default_factory=list)  # labels of runs saved without raw rounds

    def scenarios(self, machine: MachineKey) -> list[str]:
        return list(dict.fromkeys(series.scenario for series in self.series[machine]))

    def change_points(self, machine: MachineKey) -> list[tuple[str, changepoints.ChangePoint]]:
        """(case label, change point) of every case of ``machine``."""
        return [(series.label, point) for series in self.series[machine] for point in series.change_points]


def build_trends(runs: list[Run], confidence: float = CONFIDENCE, max_pvalue: float = changepoints.MAX_PVALUE) -> Trends:
    """Group runs by profile/hardware, order them by date, collect each case's values and change points."""
    groups = {key: sort_by_time(members) for key, members in comparable_groups(runs).items()}
    series: dict[MachineKey, list[Series]] = {}
    for key, members in groups.items():
        by_case: dict[tuple[str, str], Series] = {}
        for index, run in enumerate(members):
            for case in run.cases:
                entry = by_case.setdefault(case.key, Series(key, case.variant, case.scenario, case.reference))
                entry.reference = entry.reference or case.reference
                entry.points.append(Point(run, index, latency_level(case, confidence),
                                          speedup_level(case, run, confidence)))
        for case_key, entry in by_case.items():
            entry.change_points = changepoints.case_change_points(members, case_key, max_pvalue=max_pvalue)
        series[key] = list(by_case.values())
    without_raw = sorted({run.label for members in groups.values() for run in members
                          if not any(case.has_raw for case in run.cases)})
    return Trends(groups, series, confidence, max_pvalue, without_raw)

