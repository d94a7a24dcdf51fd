"""Trends over saved runs (diffperf.history.trend, ``diffperf trend``): values, change points, PNG and HTML."""

from __future__ import annotations

import historydata as hd
import numpy as np
import pytest

from diffperf.cli import main
from diffperf.history.runs import load_runs, run_from_dict
from diffperf.history.trend import build_trends
from diffperf.render.pages import trend_html
from diffperf.history.values import LATENCY, SPEEDUP
from diffperf.render.history_text import trend_tables
from diffperf.render.table import plain_text

SLOWDOWN = 1.2


@pytest.fixture
def files(tmp_path):
    """main (old), same (unchanged, new seed) and slow (distilled 20% slower) runs on disk."""
    return {
        "main": hd.write(tmp_path / "main.json", hd.standard_run(seed=0, when="2026-11-01T10:00:00+00:00")),
        "same": hd.write(tmp_path / "same.json", hd.standard_run(seed=100, commit="2222222bbbbbbb",
                                                                  when="2026-11-02T10:00:00+00:00")),
        "slow": hd.write(tmp_path / "slow.json", hd.standard_run(slowdown=SLOWDOWN, seed=200, commit="3333333ccccccc",
                                                                  when="2026-11-03T10:00:00+00:00")),
    }


def stepped_documents(count: int = 24, step_at: int = 14) -> dict[str, dict]:
    """Daily runs (by file name); distilled gets 25% slower from run ``step_at`` on (1% run-to-run noise)."""
    scales = np.exp(np.random.default_rng(3).normal(0, 0.01, count))
    return {
        f"day{i}.json": hd.standard_run(slowdown=1.25 if i >= step_at else 1.0, seed=i, scale=float(scale),
                                        commit=f"{i:07x}abcdef0", when=f"2026-10-{1 + i:02d}T10:00:00+00:00")
        for i, scale in enumerate(scales)
    }


def stepped_history() -> list:
    return [run_from_dict(document, source=name, label=name) for name, document in stepped_documents().items()]


def test_trend_values_are_chronological(files):
    runs, _ = load_runs([files["slow"], files["main"], files["same"]])
    trends = build_trends(runs)
    (key,) = trends.groups
    assert [run.label for run in trends.groups[key]] == ["main.json", "same.json", "slow.json"]
    distilled = next(s for s in trends.series[key] if s.variant == "distilled")
    assert [p.index for p in distilled.points] == [0, 1, 2]
    assert distilled.points[-1].latency.value / distilled.points[0].latency.value == pytest.approx(SLOWDOWN, rel=0.03)
    assert all(p.speedup.low < p.speedup.value < p.speedup.high for p in distilled.points)
    assert all(series.change_points == [] for series in trends.series[key])  # three runs: too few to tell


def test_change_points_found_in_a_history_with_a_step():
    runs = stepped_history()
    trends = build_trends(runs[::-1])
    (key,) = trends.groups
    by_variant = {series.variant: series for series in trends.series[key]}
    found = by_variant["distilled"].change_points
    assert [(point.metric, point.run.label) for point in found] == [(LATENCY, "day14.json"), (SPEEDUP, "day14.json")]
    assert by_variant["distilled"].index_of(found[0].run) == 14
    assert found[0].shift.change == pytest.approx(0.25, abs=0.02)
    assert by_variant["baseline"].change_points == [] and by_variant["distilled-taesd"].change_points == []
    assert [label for label, _ in trends.change_points(key)] == ["distilled/astronaut"] * 2

    (table,) = trend_tables(trends)
    distilled_row = next(row for row in table.rows if row[0] == "distilled")
    assert distilled_row[-1] == "2"
    assert sum(note.startswith("distilled/astronaut: ") and "day14.json" in note for note in table.notes) == 2
    assert "change points" in plain_text(table)

    page = trend_html(trends, png=b"\x89PNG fake")
    assert 'id="changepoints-table"' in page and page.count("<td>day14.json</td>") >= 2


def test_cli_trend_png_html_and_mixed_warning(files, tmp_path, capsys):
    gpu = hd.write(tmp_path / "gpu.json", hd.standard_run(profile="full", device_name="NVIDIA H100",
                                                           device_type="cuda", when="2026-11-04T10:00:00+00:00"))
    png, page = tmp_path / "out" / "trend.png", tmp_path / "out" / "trend.html"
    assert main(["trend", str(tmp_path), "--out", str(png), "--out", str(page)]) == 0
    captured = capsys.readouterr()
    assert "kept apart" in captured.err and gpu.name in captured.err
    assert "Trend, profile tiny on AMD EPYC (cpu, 2 threads): 3 run(s)" in captured.out
    assert "Trend, profile full on NVIDIA H100 (cuda): 1 run(s)" in captured.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = page.read_text()
    assert "data:image/png;base64," in html and "<table>" in html and "3333333" in html
    assert "http://" not in html and "https://" not in html and "<style>" in html
    assert main(["trend", str(tmp_path), "--out", str(tmp_path / "trend.svg")]) == 2


def test_cli_trend_marks_change_points(tmp_path, capsys):
    for name, document in stepped_documents().items():
        hd.write(tmp_path / name, document)
    png = tmp_path / "trend.png"
    assert main(["trend", str(tmp_path), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.count("distilled/astronaut: ") == 2 and "from day14.json" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_escapes_what_it_shows():
    document = hd.standard_run(commit="<script>alert(1)</script>")
    document["benchmarks"][0]["extra_info"]["variant"] = "<b>base</b>"
    trends = build_trends([run_from_dict(document, source="x.json", label="x<y>.json")])
    page = trend_html(trends, png=b"png")
    assert "<script>" not in page and "&lt;script&gt;" in page and "x&lt;y&gt;.json" in page
    assert "&lt;b&gt;base&lt;/b&gt;" in page


def test_cli_trend_refuses_an_out_it_cannot_write_before_reading_the_runs(files, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory would be")
    out = blocker / "trend.html"
    assert main(["trend", str(files["main"]), "--out", str(tmp_path / "fine.png"), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1  # nothing done before the refusal
    assert captured.err.startswith(f"diffperf trend: --out {out}: ") and ".tmp" not in captured.err
    assert not (tmp_path / "fine.png").exists()
