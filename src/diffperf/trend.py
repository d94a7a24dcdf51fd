"""Trends: each variant's speed-up and latency over saved runs (commits and dates), with intervals.

Runs are split by :class:`~diffperf.history.MachineKey` (profile and hardware) and never mixed:
each profile/hardware and scenario gets its own row of panels. Within a group the runs are in
chronological order; the x axis is the run, labelled with its commit and date.

Intervals: a latency's is the exact 95% CI of its median from the raw rounds (the stored IQR
when the rounds were not saved); a speed-up's is :func:`diffperf.ratios.paired_ratio`'s interval
(or the gate's stored one).
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from diffperf.compare import CONFIDENCE, Level, latency_level, speedup_level
from diffperf.files import atomic_path
from diffperf.history import MachineKey, Run, group_by_machine, mixed_machines_warning, sort_by_time
from diffperf.table import Column, Table
from diffperf.table import seconds as _ms
from diffperf.table import signed_change as _signed

__all__ = ["Point", "Series", "Trends", "build_trends", "figure_png", "trend_html", "trend_png",
           "trend_tables", "variant_colors", "write_output", "write_trend"]


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

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.scenario}" if self.scenario else self.variant


@dataclass
class Trends:
    groups: dict[MachineKey, list[Run]]  # each group's runs, chronological
    series: dict[MachineKey, list[Series]]
    confidence: float = CONFIDENCE
    warnings: list[str] = field(default_factory=list)

    def scenarios(self, machine: MachineKey) -> list[str]:
        return list(dict.fromkeys(series.scenario for series in self.series[machine]))


def build_trends(runs: list[Run], confidence: float = CONFIDENCE) -> Trends:
    """Group runs by profile/hardware, order them by date and collect each case's values."""
    groups = {key: sort_by_time(members) for key, members in group_by_machine(runs).items()}
    warnings = []
    mixed = mixed_machines_warning(groups)
    if mixed:
        warnings.append(mixed)
    series: dict[MachineKey, list[Series]] = {}
    for key, members in groups.items():
        by_case: dict[tuple[str, str], Series] = {}
        for index, run in enumerate(members):
            for case in run.cases:
                entry = by_case.setdefault(case.key, Series(key, case.variant, case.scenario, case.reference))
                entry.reference = entry.reference or case.reference
                entry.points.append(Point(run, index, latency_level(case, confidence),
                                          speedup_level(case, run, confidence)))
        series[key] = list(by_case.values())
    without_raw = sorted({run.label for members in groups.values() for run in members
                          if not any(case.has_raw for case in run.cases)})
    if without_raw:
        warnings.append(f"no raw rounds in {', '.join(without_raw)}: latency bars there are the IQR, "
                        "not a confidence interval")
    return Trends(groups, series, confidence, warnings)


# --------------------------------------------------------------------------- text


def trend_tables(trends: Trends) -> list[Table]:
    """Per profile/hardware: each case's first and latest latency and speed-up."""
    tables = []
    for key, members in trends.groups.items():
        first_run, last_run = members[0], members[-1]
        table = Table(
            title=f"Trend, {key}: {len(members)} run(s) from {first_run.when_label} to {last_run.when_label}",
            columns=[Column("variant"), Column("scenario"), Column("runs", "right"),
                     Column("latency first -> latest", "right"), Column("change", "right"),
                     Column("speed-up first -> latest", "right"), Column("change", "right")],
        )
        for series in trends.series[key]:
            first, last = series.points[0], series.points[-1]
            speed_first = next((p.speedup for p in series.points if p.speedup is not None), None)
            speed_last = next((p.speedup for p in reversed(series.points) if p.speedup is not None), None)
            table.rows.append([
                series.variant, series.scenario or "-", str(len(series.points)),
                f"{_ms(first.latency.value)} -> {_ms(last.latency.value)}",
                _signed(last.latency.value / first.latency.value),
                f"{speed_first.value:.3f}x -> {speed_last.value:.3f}x" if speed_first and speed_last else "-",
                _signed(speed_last.value / speed_first.value) if speed_first and speed_last else "-",
            ])
        table.notes.append(f"first run {first_run.label} ({first_run.commit_label}), "
                           f"latest {last_run.label} ({last_run.commit_label})")
        tables.append(table)
    return tables


# --------------------------------------------------------------------------- charts


def variant_colors(names) -> dict[str, tuple]:
    """A stable colour per variant name (tab10, then tab20)."""
    from matplotlib import colormaps

    names = sorted(set(names))
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def figure_png(fig, dpi: int = 100) -> bytes:
    """Render a matplotlib Figure (no pyplot, no global state) to PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _errorbar(ax, xs, levels, color, label, scale=1.0):
    values = [level.value * scale for level in levels]
    lower = [(level.value - level.low) * scale if level.low is not None else 0 for level in levels]
    upper = [(level.high - level.value) * scale if level.high is not None else 0 for level in levels]
    ax.errorbar(xs, values, yerr=[lower, upper], color=color, label=label, marker="o", markersize=4,
                capsize=3, linewidth=1.3)


def trend_png(trends: Trends) -> bytes:
    """One row of panels (speed-up, latency) per profile/hardware and scenario."""
    from matplotlib.figure import Figure

    rows = [(key, scenario) for key in trends.groups for scenario in trends.scenarios(key)]
    colors = variant_colors(s.variant for all_series in trends.series.values() for s in all_series)
    fig = Figure(figsize=(13, 3.4 * max(1, len(rows)) + 0.6))
    axes = fig.subplots(max(1, len(rows)), 2, squeeze=False)
    ci = f"{round(trends.confidence * 100, 6):g}% CI"
    for (key, scenario), (ax_speed, ax_latency) in zip(rows, axes):
        members = trends.groups[key]
        ticks = list(range(len(members)))
        labels = [f"{run.commit_label}\n{run.when.strftime('%m-%d %H:%M') if run.when else '?'}" for run in members]
        cases = [s for s in trends.series[key] if s.scenario == scenario]
        for series in cases:
            xs = [p.index for p in series.points]
            _errorbar(ax_latency, xs, [p.latency for p in series.points], colors[series.variant],
                      series.variant, scale=1e3)
            speed = [p for p in series.points if p.speedup is not None]
            if speed:
                _errorbar(ax_speed, [p.index for p in speed], [p.speedup for p in speed],
                          colors[series.variant], f"{series.variant} vs {series.reference}")
        where = f"{scenario or 'no scenario'} — {key}"
        ax_speed.set_title(f"speed-up over reference ({ci})\n{where}", fontsize=9)
        ax_latency.set_title(f"latency, median ({ci}; IQR without raw rounds)\n{where}", fontsize=9)
        ax_speed.set_ylabel("speed-up (x)")
        ax_latency.set_ylabel("ms")
        if ax_speed.has_data():
            ax_speed.axhline(1.0, color="0.6", linewidth=0.8, linestyle="--")
            ax_speed.legend(fontsize=7, loc="best")
        else:
            ax_speed.text(0.5, 0.5, "no variant with a reference", ha="center", va="center",
                          transform=ax_speed.transAxes, color="0.4")
        ax_latency.legend(fontsize=7, loc="best")
        for ax in (ax_speed, ax_latency):
            ax.set_xticks(ticks)
            step = max(1, len(ticks) // 12)
            ax.set_xticklabels([label if i % step == 0 else "" for i, label in enumerate(labels)], fontsize=7)
            ax.set_xlim(-0.5, len(ticks) - 0.5)
            ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


# --------------------------------------------------------------------------- html


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; margin: 0.4em 0; }
img.chart { max-width: 100%; border: 1px solid #ddd; }
"""


def trend_html(trends: Trends, png: bytes | None = None) -> str:
    """A self-contained page: the chart (embedded) and every value in tables."""
    png = png if png is not None else trend_png(trends)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>diffperf trend</title>", f"<style>{CSS}</style></head><body>",
        "<h1>diffperf trend</h1>",
    ]
    parts += [f'<p class="warning">{esc(message)}</p>' for message in trends.warnings]
    parts.append(f'<img class="chart" alt="speed-up and latency trend" '
                 f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    for key in trends.groups:
        parts.append(f"<h2>{esc(str(key))}</h2>")
        parts.append("<table><thead><tr><th>variant</th><th>scenario</th><th>run</th><th>commit</th>"
                     "<th>date</th><th>latency median [interval]</th><th>speed-up [interval]</th></tr></thead><tbody>")
        for series in trends.series[key]:
            for point in series.points:
                run = point.run
                speed = (point.speedup.describe(lambda v: f"{v:.3f}x") if point.speedup else "-")
                parts.append(
                    f"<tr><td>{esc(series.variant)}</td><td>{esc(series.scenario or '-')}</td>"
                    f"<td>{esc(run.label)}</td><td>{esc(run.commit_label)}</td><td>{esc(run.when_label)}</td>"
                    f'<td class="num">{esc(point.latency.describe(_ms))} {esc(point.latency.interval)}</td>'
                    f'<td class="num">{esc(speed)}</td></tr>'
                )
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_trend(trends: Trends, out: str | os.PathLike) -> None:
    """Write ``out`` atomically: a PNG chart for ``*.png``, a self-contained page for ``*.html``."""
    out = Path(out)
    write_output(out, trend_png(trends) if out.suffix.lower() == ".png" else trend_html(trends))


def write_output(path: str | os.PathLike, content: bytes | str) -> None:
    """Write a chart (bytes) or a page (text) atomically (:func:`diffperf.files.atomic_path`)."""
    with atomic_path(path) as temp:
        if isinstance(content, bytes):
            temp.write_bytes(content)
        else:
            temp.write_text(content, encoding="utf-8")
