"""Every chart of the report and the trend: matplotlib figures (no pyplot, no global state) as PNG bytes.

Callers pass plain data (scenario, label, :class:`~diffperf.history.values.Level`, ...); the
report and the trend only decide what to show.
"""

from __future__ import annotations

import io
from typing import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from diffperf.history.values import SPEEDUP, Level

__all__ = ["STAGE_COLORS", "figure_png", "interval_chart", "memory_chart", "speedup_chart", "stage_chart",
           "trend_chart", "variant_colors"]

STAGE_COLORS = {"text_encoding": "#8da0cb", "denoising": "#fc8d62", "decoding": "#66c2a5"}
MIB = 1024 * 1024
GREY = "#888"


def variant_colors(names: Iterable[str]) -> dict[str, tuple]:
    """A stable colour per variant name (tab10, then tab20)."""
    names = sorted(set(names))
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a Figure to PNG bytes (no timestamp or software tag: the same chart gives the same bytes)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _error_offsets(levels: Sequence[Level], scale: float = 1.0) -> tuple[list[float], list[float]]:
    """Distances from each value down to its low and up to its high (0 without an interval), scaled."""
    lower = [(level.value - level.low) * scale if level.low is not None else 0.0 for level in levels]
    upper = [(level.high - level.value) * scale if level.high is not None else 0.0 for level in levels]
    return lower, upper


# --------------------------------------------------------------------------- one panel per scenario


def _scenario_panels(scenarios: list[str]) -> tuple[Figure, list]:
    """A figure with one horizontal-bar panel per distinct scenario, each as tall as its number of rows."""
    names = list(dict.fromkeys(scenarios))
    heights = [scenarios.count(name) for name in names]
    fig = Figure(figsize=(9, 0.9 + sum(0.42 * h + 0.7 for h in heights)))
    axes = fig.subplots(len(names), 1, squeeze=False, gridspec_kw={"height_ratios": [h + 1 for h in heights]})
    return fig, [(name, ax) for name, (ax,) in zip(names, axes)]


def _label_panel(ax, ys: list[int], labels: list[str], title: str, xlabel: str, legend: bool = True) -> None:
    """Row labels, title, x label, grid and legend of one scenario panel, the same on every chart."""
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="lower right")


def _log_ticks(ax, values: list[float]) -> None:
    """A log x axis with about six plainly labelled ticks spanning ``values`` (and 1 when inside)."""
    low, high = min(values) / 1.04, max(values) * 1.04
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = {float(f"{t:.2g}") for t in np.geomspace(low, high, 6)} | ({1.0} if low < 1 < high else set())
    ax.xaxis.set_major_locator(FixedLocator(sorted(t for t in ticks if low <= t <= high)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def interval_chart(items: list[tuple[str, str, Level]], colors: dict, xlabel: str, scale: float = 1.0,
                   title: str = "") -> bytes:
    """Horizontal bars with error bars from each level's interval, one panel per scenario.

    ``items``: (scenario, row label, level); a row is coloured by its label's first word.
    """
    fig, panels = _scenario_panels([scenario for scenario, _, _ in items])
    for scenario, ax in panels:
        rows = [(label, level) for s, label, level in items if s == scenario]
        ys = list(range(len(rows)))[::-1]
        lower, upper = _error_offsets([level for _, level in rows], scale)
        ax.barh(ys, [level.value * scale for _, level in rows], color=[colors.get(label, GREY) for label, _ in rows],
                alpha=0.85, xerr=[lower, upper], capsize=4, error_kw={"elinewidth": 1.2, "ecolor": "#222"})
        _label_panel(ax, ys, [label for label, _ in rows], scenario or title, xlabel, legend=False)
    fig.tight_layout()
    return figure_png(fig)


def speedup_chart(items: list[tuple[str, str, str, Level, tuple[float, float] | None]], colors: dict) -> bytes:
    """Each speed-up as a point with its interval on a log axis, the expected band shaded grey.

    ``items``: (scenario, variant, row label, level, (lower, upper) band or None).
    """
    fig, panels = _scenario_panels([item[0] for item in items])
    banded = any(item[4] for item in items)
    for scenario, ax in panels:
        rows = [item[1:] for item in items if item[0] == scenario]
        ys = list(range(len(rows)))[::-1]
        lower, upper = _error_offsets([level for _, _, level, _ in rows])
        for y, (variant, _, level, band), below, above in zip(ys, rows, lower, upper):
            ax.errorbar([level.value], [y], xerr=[[below], [above]], fmt="o", color=colors.get(variant, GREY),
                        capsize=4, markersize=6, elinewidth=1.4)
            if band:
                ax.fill_between(list(band), y - 0.42, y + 0.42, color="#999", alpha=0.25, linewidth=0,
                                label="expected ± tolerance" if y == ys[0] else None)
        ends = [level.value - d for (_, _, level, _), d in zip(rows, lower)] + \
               [level.value + d for (_, _, level, _), d in zip(rows, upper)]
        _log_ticks(ax, ends + [edge for *_, band in rows if band for edge in band] + [1.0])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.axvline(1.0, color="#555", linestyle="--", linewidth=0.8)
        _label_panel(ax, ys, [label for _, label, _, _ in rows], scenario or "speed-up",
                     "speed-up over reference (x, log scale)" + ("; grey: expected ± tolerance" if banded else ""),
                     legend=banded)
    fig.tight_layout()
    return figure_png(fig)


def stage_chart(items: list[tuple[str, str, dict[str, float]]]) -> bytes:
    """Stacked bars of each variant's per-stage median times. ``items``: (scenario, variant, {stage: seconds})."""
    fig, panels = _scenario_panels([scenario for scenario, _, _ in items])
    for scenario, ax in panels:
        rows = [(variant, stages) for s, variant, stages in items if s == scenario]
        ys = list(range(len(rows)))[::-1]
        left = np.zeros(len(rows))
        for name in dict.fromkeys(name for _, stages in rows for name in stages):
            widths = np.array([stages.get(name, 0.0) * 1e3 for _, stages in rows])
            ax.barh(ys, widths, left=left, color=STAGE_COLORS.get(name), label=name.replace("_", " "))
            left += widths
        _label_panel(ax, ys, [variant for variant, _ in rows], scenario or "stages", "median ms per stage")
    fig.tight_layout()
    return figure_png(fig)


def memory_chart(items: list[tuple[str, str, float, float | None]], colors: dict) -> bytes:
    """Peak memory bars with the weights' share darker. ``items``: (scenario, variant, peak bytes, weight bytes)."""
    fig, panels = _scenario_panels([scenario for scenario, _, _, _ in items])
    for scenario, ax in panels:
        rows = [item[1:] for item in items if item[0] == scenario]
        ys = list(range(len(rows)))[::-1]
        bar_colors = [colors.get(variant, GREY) for variant, _, _ in rows]
        ax.barh(ys, [peak / MIB for _, peak, _ in rows], color=bar_colors, alpha=0.45, label="peak")
        ax.barh(ys, [min(weights or 0, peak) / MIB for _, peak, weights in rows], color=bar_colors, alpha=0.95,
                label="of which weights")
        _label_panel(ax, ys, [variant for variant, _, _ in rows], scenario or "memory", "MiB")
    fig.tight_layout()
    return figure_png(fig)


# --------------------------------------------------------------------------- trend


def trend_chart(trends) -> bytes:
    """One row of panels (speed-up, latency) per profile/hardware and scenario; change points marked."""
    rows = [(key, scenario) for key in trends.groups for scenario in trends.scenarios(key)]
    colors = variant_colors(s.variant for all_series in trends.series.values() for s in all_series)
    fig = Figure(figsize=(13, 3.4 * max(1, len(rows)) + 0.6))
    axes = fig.subplots(max(1, len(rows)), 2, squeeze=False)
    ci = f"{round(trends.confidence * 100, 6):g}% CI"
    for (key, scenario), (ax_speed, ax_latency) in zip(rows, axes):
        cases = [s for s in trends.series[key] if s.scenario == scenario]
        for series in cases:
            _trend_series(ax_speed, ax_latency, series, colors[series.variant])
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
            _run_axis(ax, trends.groups[key])
    fig.tight_layout()
    return figure_png(fig)


def _trend_series(ax_speed, ax_latency, series, color) -> None:
    """One case's latency and speed-up with their intervals, and a marker where each shift began."""
    _errorbar(ax_latency, [p.index for p in series.points], [p.latency for p in series.points], color,
              series.variant, scale=1e3)
    speed = [p for p in series.points if p.speedup is not None]
    if speed:
        _errorbar(ax_speed, [p.index for p in speed], [p.speedup for p in speed], color,
                  f"{series.variant} vs {series.reference}")
    for point in series.change_points:
        ax, scale = (ax_speed, 1.0) if point.metric == SPEEDUP else (ax_latency, 1e3)
        x = series.index_of(point.run)
        ax.axvline(x - 0.5, color=color, linestyle=":", linewidth=1.4)
        ax.plot([x], [point.shift.after * scale], marker="v", markersize=10, color=color, markeredgecolor="black",
                linestyle="none", label=f"{series.variant}: shift {point.shift.change:+.1%}")


def _errorbar(ax, xs: list[int], levels: list[Level], color, label: str, scale: float = 1.0) -> None:
    lower, upper = _error_offsets(levels, scale)
    ax.errorbar(xs, [level.value * scale for level in levels], yerr=[lower, upper], color=color, label=label,
                marker="o", markersize=4, capsize=3, linewidth=1.3)


def _run_axis(ax, runs) -> None:
    """The x axis of a trend panel: one tick per run, labelled with its commit and date."""
    labels = [f"{run.commit_label}\n{run.when.strftime('%m-%d %H:%M') if run.when else '?'}" for run in runs]
    step = max(1, -(-len(labels) // 10))  # at most about ten labelled runs per panel
    ax.set_xticks(list(range(len(labels))))
    ax.set_xticklabels([label if i % step == 0 else "" for i, label in enumerate(labels)], fontsize=7)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.grid(True, axis="y", alpha=0.3)
