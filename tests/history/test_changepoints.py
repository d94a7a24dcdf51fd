"""Change points in histories of saved runs (diffperf.history.changepoints: ruptures PELT and a significance step)."""

from __future__ import annotations

import historydata as hd
import numpy as np
import pytest

from diffperf.history.changepoints import MAX_PVALUE, case_change_points, find_shifts, segments
from diffperf.history.runs import run_from_dict
from diffperf.history.values import LATENCY, SPEEDUP


def noisy(n: int, level: float = 1.0, cv: float = 0.02, seed: int = 0) -> list[float]:
    return [float(x) for x in level * np.exp(np.random.default_rng(seed).normal(0.0, cv, n))]


@pytest.mark.parametrize("length, step_at", [(20, 10), (40, 27), (60, 45), (90, 12)])
def test_a_planted_step_is_found_where_it_began(length, step_at):
    values = noisy(step_at, seed=length) + noisy(length - step_at, 1.15, seed=length + 1)
    (shift,) = find_shifts(values)
    assert shift.index == step_at
    assert shift.before == pytest.approx(np.mean(values[:step_at]))
    assert shift.after == pytest.approx(np.mean(values[step_at:]))
    assert shift.change == pytest.approx(0.15, abs=0.02)
    assert shift.p_value < MAX_PVALUE


def test_two_steps_are_two_change_points():
    values = noisy(15, seed=1) + noisy(15, 0.8, seed=2) + noisy(15, 1.0, seed=3)
    assert [shift.index for shift in find_shifts(values)] == [15, 30]
    assert [round(shift.change, 1) for shift in find_shifts(values)] == [-0.2, 0.2]


@pytest.mark.parametrize("seed", range(10))
def test_a_flat_noisy_series_has_no_change_point(seed):
    assert find_shifts(noisy(60, cv=0.05, seed=seed)) == []


def test_small_shifts_and_short_series_are_not_reported():
    values = noisy(20, cv=0.002, seed=4) + noisy(20, 1.02, cv=0.002, seed=5)  # clear, but 2% < MIN_MAGNITUDE
    assert find_shifts(values) == []
    assert [shift.index for shift in find_shifts(values, min_magnitude=0.01)] == [20]
    assert find_shifts([1.0, 2.0]) == [] and find_shifts([]) == []
    assert find_shifts([1.0] * 30) == []  # no variation at all: nothing to split


def test_segments_cut_at_the_change_points():
    values = noisy(12, seed=6) + noisy(8, 1.3, seed=7)
    assert [len(part) for part in segments(values)] == [12, 8]
    assert segments(noisy(10, seed=8)) == [noisy(10, seed=8)]


def test_case_change_points_name_the_run_and_metric():
    """distilled gets 25% slower from the 13th run on: its latency and its speed-up shift there, nothing else."""
    documents = [hd.standard_run(slowdown=1.25 if i >= 12 else 1.0, seed=i, scale=float(s), commit=f"{i:07x}abcdef0",
                                 when=f"2026-11-{1 + i:02d}T10:00:00+00:00")
                 for i, s in enumerate(np.exp(np.random.default_rng(9).normal(0, 0.01, 20)))]
    runs = [run_from_dict(document, source=f"r{i}.json", label=f"r{i}.json") for i, document in enumerate(documents)]
    runs = runs[::-1]  # any order: the series are chronological
    found = case_change_points(runs, ("distilled", "astronaut"))
    assert [(point.metric, point.run.label) for point in found] == [(LATENCY, "r12.json"), (SPEEDUP, "r12.json")]
    assert found[0].shift.change == pytest.approx(0.25, abs=0.02)
    assert found[1].shift.change == pytest.approx(1 / 1.25 - 1, abs=0.02)
    assert case_change_points(runs, ("baseline", "astronaut")) == []
