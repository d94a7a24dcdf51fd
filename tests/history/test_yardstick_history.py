"""Everything slower, on a host whose own speed moved too: only 'baseline vs yardstick' says so, in compare and
trend alike (the yardstick: diffperf.measure.yardstick)."""

from __future__ import annotations

import historydata as hd
import numpy as np

from diffperf.history import compare
from diffperf.history.compare import compare_sides
from diffperf.history.runs import run_from_dict
from diffperf.history.trend import build_trends
from diffperf.render.history_text import comparison_tables, trend_tables
from diffperf.render.table import plain_text


def runs(count: int, everything: float, seed: int, day: int) -> list:
    """``count`` processes; each at its own host speed (+-10%); ``everything`` multiplies both pipelines' times,
    not the yardstick's."""
    speeds = np.exp(np.random.default_rng(seed).normal(0.0, 0.10, count))
    documents = [hd.run([
        hd.paired_case("baseline", "astronaut", "yardstick", 0.180 * everything * speed, 0.040 * speed, seed=seed + i,
                       peak_memory=42_000_000, reference_peak_memory=4_000_000),
        hd.paired_case("distilled", "astronaut", "baseline", 0.120 * everything * speed, 0.180 * everything * speed,
                       seed=seed + 50 + i),
    ], when=f"2026-11-{day + i:02d}T10:00:00+00:00") for i, speed in enumerate(speeds)]
    return [run_from_dict(document, source=f"{seed}-{i}.json") for i, document in enumerate(documents)]


def test_everything_slower_lowers_only_the_baseline_against_its_yardstick():
    comparison = compare_sides(runs(4, 1.0, seed=0, day=1), runs(4, 1.15, seed=100, day=10))
    cases = {case.variant: case for case in comparison.cases}
    assert cases["baseline"].reference == "yardstick"
    assert cases["baseline"].speedup.status == compare.LOWER
    assert cases["distilled"].speedup.status == compare.NO_CHANGE
    assert [(case.label, change.metric) for case, change in comparison.regressed if change.metric == "speed-up"] == [
        ("baseline/astronaut", "speed-up")]
    text = "\n".join(plain_text(table) for table in comparison_tables(comparison))
    assert "baseline" in text and "vs yardstick" in text


def test_trend_finds_the_step_in_the_baseline_against_its_yardstick_only():
    history = runs(8, 1.0, seed=0, day=1) + runs(8, 1.15, seed=100, day=10)
    trends = build_trends(history)
    series = {series.variant: series for members in trends.series.values() for series in members}
    assert series["baseline"].reference == "yardstick"
    assert [point.metric for point in series["baseline"].change_points] == ["speed-up"]
    assert series["distilled"].change_points == []
    text = "\n".join(plain_text(table) for table in trend_tables(trends))
    assert "baseline/astronaut: speed-up -13" in text
