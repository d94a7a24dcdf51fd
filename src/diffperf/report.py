"""One self-contained HTML page for one run: verdicts, charts, stages, memory and images.

``write_report(run, out_path, images_dir=None)`` takes a saved pytest-benchmark JSON file (or the
already decoded document, e.g. at the end of a ``pytest perf`` run) and writes a single HTML file
with inline CSS, charts as embedded PNGs (matplotlib, error bars from the intervals) and the
images embedded too, so it can be attached to a CI run or mailed as is:

* the speed-up table with the gate's verdicts (the file's top-level ``diffperf`` key; without
  it, the speed-ups are estimated from the raw paired rounds and marked "not gated");
* latency per variant and scenario: median with the exact 95% CI of the median (the IQR when the
  raw rounds were not saved), as a table and a chart;
* the per-stage breakdown (text encoding, denoising, decoding medians);
* peak memory and its ratio to the reference;
* for each variant and scenario, its baseline, current and difference images, found as
  ``<images_dir>/<variant>-<scenario>-{expected,actual,diff}.png``; a missing one reads
  "not recorded".
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from diffperf import ratios
from diffperf.compare import CONFIDENCE, Level, latency_level, speedup_level
from diffperf.history import SAVE_DATA_HINT, Case, Run, load_run, run_from_dict
from diffperf.table import seconds
from diffperf.trend import figure_png, variant_colors, write_output

__all__ = ["IMAGE_KINDS", "SpeedupRow", "build_report", "image_path", "speedup_rows", "write_report"]

#: (file suffix, column heading) of the images shown for each case.
IMAGE_KINDS = (("expected", "baseline"), ("actual", "current"), ("diff", "difference"))
STAGE_NAMES = ("text_encoding", "denoising", "decoding")
STAGE_COLORS = {"text_encoding": "#8da0cb", "denoising": "#fc8d62", "decoding": "#66c2a5"}
MIB = 1024 * 1024


def write_report(run: str | os.PathLike | Mapping | Run, out_path: str | os.PathLike,
                 images_dir: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of ``run`` (a JSON file path, a decoded document or a Run) atomically.

    Raises :class:`diffperf.history.HistoryError` for input that is not pytest-benchmark JSON.
    Returns the path written.
    """
    if isinstance(run, Run):
        record = run
    elif isinstance(run, Mapping):
        record = run_from_dict(dict(run), source="this run", label="this run")
    else:
        record = load_run(run)
    out_path = Path(out_path)
    write_output(out_path, build_report(record, images_dir))
    return out_path


def image_path(images_dir: str | os.PathLike, variant: str, scenario: str, kind: str) -> Path:
    """Where the report looks for an image: ``<images_dir>/<variant>-<scenario>-<kind>.png``."""
    return Path(images_dir) / f"{variant}-{scenario}-{kind}.png"


# --------------------------------------------------------------------------- speed-up rows


@dataclass
class SpeedupRow:
    variant: str
    reference: str
    scenario: str
    level: Level | None
    expected: float | None
    tolerance: float | None
    status: str
    message: str


def speedup_rows(run: Run, confidence: float = CONFIDENCE) -> list[SpeedupRow]:
    """The gate's speed-up rows when the file has them, else estimates from the raw paired rounds."""
    rows = []
    gate_rows = run.gate_rows("speedups")
    if gate_rows:
        for row in gate_rows:
            value = row.get("median", row.get("value"))
            low, high = row.get("low"), row.get("high")
            level = None
            if _number(value):
                level = Level(float(value), float(low) if _number(low) else None,
                              float(high) if _number(high) else None, "gate CI", row.get("n"))
            rows.append(SpeedupRow(
                str(row.get("variant", "?")), str(row.get("reference", "?")), str(row.get("scenario", "")),
                level, row.get("expected") if _number(row.get("expected")) else None,
                row.get("tolerance") if _number(row.get("tolerance")) else None,
                str(row.get("status", "unchecked")), str(row.get("message", "")),
            ))
        return rows
    for case in run.cases:
        if case.reference is None:
            continue
        try:
            level = speedup_level(case, run, confidence)
        except (ratios.TooFewRounds, ValueError) as error:
            level, message = None, str(error)
        else:
            message = ("no gate results in this file: not judged" if level is not None and level.low is not None
                       else f"no paired raw rounds: ratio of medians, no interval ({SAVE_DATA_HINT})")
        rows.append(SpeedupRow(case.variant, case.reference, case.scenario, level, None, None,
                               "not gated", message))
    return rows


# --------------------------------------------------------------------------- html


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1em; margin: 1em 0 0.4em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.meta th { text-align: right; font-weight: normal; color: #555; background: none; }
.status { font-weight: 600; padding: 0.05em 0.45em; border-radius: 3px; white-space: nowrap; }
.status-regressed, .status-error { background: #fbd5d5; color: #8a1010; }
.status-improved { background: #d4f3d4; color: #16631d; }
.status-ok { background: #e4eefc; color: #1b3f7a; }
.status-inconclusive { background: #fff1c2; color: #6b5200; }
.status-unchecked, .status-not-gated { background: #eee; color: #555; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; margin: 0.4em 0; }
.note { color: #555; font-size: 0.85em; }
img.chart { max-width: 100%; border: 1px solid #e3e3e3; }
.images { display: flex; gap: 0.8em; flex-wrap: wrap; }
.images figure { margin: 0; }
.images figcaption { font-size: 0.8em; color: #555; text-align: center; }
.images img, .missing { width: 256px; height: 256px; object-fit: contain; border: 1px solid #ccc;
                        background: #fafafa; image-rendering: pixelated; }
.missing { display: flex; align-items: center; justify-content: center; color: #999; font-size: 0.9em; }
"""


def build_report(run: Run, images_dir: str | os.PathLike | None = None, confidence: float = CONFIDENCE) -> str:
    """The report page of ``run`` as an HTML string."""
    esc = html.escape
    cases = list(run.cases)
    warnings = _warnings(run, images_dir)
    speedups = speedup_rows(run, confidence)
    latencies = [(case, latency_level(case, confidence)) for case in cases]
    colors = variant_colors(case.variant for case in cases)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>diffperf report: {esc(run.label)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>diffperf report</h1>",
        _meta_table(run),
    ]
    parts += [f'<p class="warning">{esc(message)}</p>' for message in warnings]

    # Speed-ups
    parts.append('<h2 id="speedups">Speed-ups over the reference</h2>')
    if speedups:
        counts = {}
        for row in speedups:
            counts[row.status] = counts.get(row.status, 0) + 1
        parts.append("<p>" + " ".join(f"{_status(status)} &times;{n}" for status, n in counts.items()) + "</p>")
        parts.append(_speedup_table(speedups))
        parts.append(_img(_speedup_chart(speedups, colors), "speed-up chart with confidence intervals"))
    else:
        parts.append('<p class="note">No variant in this run has a reference variant: no speed-ups.</p>')

    # Latency
    parts.append('<h2 id="latency">Latency</h2>')
    parts.append(_latency_table(latencies))
    parts.append(_img(_interval_chart([(c.scenario, c.variant, lvl) for c, lvl in latencies], colors,
                                      "median latency (ms)", 1e3, "latency"),
                      "latency chart with confidence intervals"))

    # Stages
    staged = [(case, case.stages) for case in cases if case.stages]
    parts.append('<h2 id="stages">Per-stage breakdown</h2>')
    if staged:
        parts.append(_stage_table(staged))
        parts.append(_img(_stage_chart(staged), "per-stage latency breakdown"))
    else:
        parts.append('<p class="note">No per-stage timings in this file.</p>')

    # Memory
    parts.append('<h2 id="memory">Peak memory</h2>')
    memory_cases = [case for case in cases if case.number("peak_memory")]
    if memory_cases:
        parts.append(_memory_table(run, memory_cases))
        parts.append(_img(_memory_chart(memory_cases, colors), "peak memory chart"))
        parts.append('<p class="note">Peak memory is one deterministic measurement per case: no interval.</p>')
    else:
        parts.append('<p class="note">No peak memory recorded in this file.</p>')

    # Images
    parts.append('<h2 id="images">Images: baseline, current, difference</h2>')
    parts.append(_images_section([case for case in cases if case.scenario], images_dir))
    parts.append(f'<p class="note">Generated by diffperf from {esc(run.source)}.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _warnings(run: Run, images_dir) -> list[str]:
    warnings = []
    without = [case.label for case in run.cases if not case.has_raw]
    if without:
        warnings.append(f"no raw rounds for {', '.join(without)}: latency intervals are the IQR and "
                        f"speed-ups have no interval ({SAVE_DATA_HINT})")
    if run.gate is None and any(case.reference for case in run.cases):
        warnings.append("no speed-up gate results in this file: speed-ups are estimated, not judged")
    for problem in (run.gate or {}).get("problems", []) or []:
        warnings.append(str(problem))
    if images_dir is not None and not Path(images_dir).is_dir():
        warnings.append(f"images directory {images_dir} does not exist: no images recorded")
    return warnings


def _meta_table(run: Run) -> str:
    esc = html.escape
    rows = [
        ("run", run.source),
        ("commit", f"{run.commit or 'unknown'}" + (" (uncommitted changes)" if run.dirty else "")
         + (f" on {run.branch}" if run.branch else "")),
        ("date", run.when_label),
        ("profile and hardware", str(run.machine)),
    ]
    if run.versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items())))
    if run.gate is not None:
        rows.append(("speed-up gate", f"{run.gate.get('note') or ''} (baseline key {run.gate.get('baseline_key')})"))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


def _status(status: str) -> str:
    css = status.replace(" ", "-")
    return f'<span class="status status-{html.escape(css)}">{html.escape(status)}</span>'


def _table(headers: list[str], rows: list[list[str]], table_id: str, numeric: set[int] = frozenset()) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _speedup_table(rows: list[SpeedupRow]) -> str:
    esc = html.escape
    cells = []
    for row in rows:
        level = row.level
        cells.append([
            esc(row.variant), esc(row.reference), esc(row.scenario),
            f"{level.value:.3f}x" if level else "-",
            f"[{level.low:.3f}, {level.high:.3f}]" if level and level.low is not None else "-",
            f"{row.expected:.3f}x" if row.expected is not None else "-",
            f"±{row.tolerance:.0%}" if row.tolerance is not None else "-",
            _status(row.status), esc(row.message),
        ])
    return _table(["variant", "reference", "scenario", "speed-up", f"{_pct(CONFIDENCE)} CI", "expected",
                   "tolerance", "verdict", "detail"], cells, "speedups", {3, 4, 5, 6})


def _latency_table(latencies: list[tuple[Case, Level]]) -> str:
    esc = html.escape
    cells = []
    for case, level in latencies:
        interval = f"[{seconds(level.low)}, {seconds(level.high)}]" if level.low is not None else "-"
        extra = case.extra_info
        cells.append([
            esc(case.variant), esc(case.scenario or "-"), esc(seconds(level.value)), esc(interval),
            esc(level.interval or "-"), str(case.rounds),
            esc(" ".join(f"{k} {extra[k]}" for k in ("images", "steps", "resolution", "dtype") if k in extra)),
        ])
    return _table(["variant", "scenario", "median", "interval", "interval kind", "rounds", "workload"],
                  cells, "latency", {2, 3, 5})


def _stage_table(staged) -> str:
    names = list(dict.fromkeys(name for _, stages in staged for name in stages))
    cells = []
    for case, stages in staged:
        total = sum(stages.values())
        cells.append([html.escape(case.variant), html.escape(case.scenario or "-")]
                     + [html.escape(seconds(stages[n])) + (f" ({stages[n] / total:.0%})" if total else "")
                        if n in stages else "-" for n in names]
                     + [html.escape(seconds(total)), html.escape(seconds(case.median))])
    headers = ["variant", "scenario"] + [n.replace("_", " ") for n in names] + ["sum of stages", "whole call"]
    return _table(headers, cells, "stages", set(range(2, len(headers))))


def _memory_table(run: Run, cases: list[Case]) -> str:
    gate = {(r.get("variant"), r.get("scenario")): r for r in run.gate_rows("memory")}
    cells = []
    for case in cases:
        peak = case.number("peak_memory")
        weights = case.number("weight_bytes")
        reference_peak = case.number("reference_peak_memory")
        ratio = "-"
        if case.reference and reference_peak:
            ratio = f"{ratios.memory_ratio(reference_peak, peak):.2f}x of {html.escape(case.reference)}"
        row = gate.get((case.variant, case.scenario))
        cells.append([
            html.escape(case.variant), html.escape(case.scenario or "-"), f"{peak / MIB:.1f}",
            f"{weights / MIB:.1f}" if weights else "-", ratio,
        ] + ([_status(str(row.get("status"))) if row else "-",
              html.escape(str(row.get("message", ""))) if row else ""] if gate else []))
    headers = ["variant", "scenario", "peak MiB", "weights MiB", "vs reference"]
    return _table(headers + (["verdict", "detail"] if gate else []), cells, "memory", {2, 3, 4})


def _images_section(cases: list[Case], images_dir) -> str:
    if not cases:
        return '<p class="note">No variant/scenario cases in this file.</p>'
    esc = html.escape
    parts = []
    if images_dir is None:
        parts.append('<p class="note">No images directory was given: every image reads "not recorded".</p>')
    for case in cases:
        figures = []
        for kind, caption in IMAGE_KINDS:
            path = image_path(images_dir, case.variant, case.scenario, kind) if images_dir is not None else None
            if path is not None and path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                body = f'<img alt="{esc(case.label)} {caption}" src="data:image/png;base64,{data}">'
            else:
                body = f'<div class="missing" title="{esc(str(path) if path else "")}">not recorded</div>'
            figures.append(f"<figure>{body}<figcaption>{caption} ({esc(kind)})</figcaption></figure>")
        parts.append(f'<h3>{esc(case.variant)} &middot; {esc(case.scenario)}</h3>'
                     f'<div class="images">{"".join(figures)}</div>')
    return "\n".join(parts)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<p><img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


# --------------------------------------------------------------------------- charts


def _scenarios(items) -> list[str]:
    return list(dict.fromkeys(item[0] for item in items))


def _scenario_panels(items):
    """A figure with one horizontal-bar panel per scenario, each as tall as its number of rows."""
    from matplotlib.figure import Figure

    scenarios = _scenarios(items)
    heights = [sum(1 for item in items if item[0] == s) for s in scenarios]
    fig = Figure(figsize=(9, 0.9 + sum(0.42 * h + 0.7 for h in heights)))
    axes = fig.subplots(len(scenarios), 1, squeeze=False, gridspec_kw={"height_ratios": [h + 1 for h in heights]})
    return fig, [(scenario, ax) for scenario, (ax,) in zip(scenarios, axes)]


def _interval_chart(items: list[tuple[str, str, Level]], colors, xlabel: str, scale: float, kind: str,
                    bands: dict | None = None, reference_line: float | None = None, dots: bool = False) -> bytes:
    """Horizontal bars (or, with ``dots``, points on a log axis) per scenario panel, error bars
    from each level's interval."""
    fig, panels = _scenario_panels(items)
    for scenario, ax in panels:
        rows = [(label, level) for s, label, level in items if s == scenario]
        ys = list(range(len(rows)))[::-1]
        values = [level.value * scale for _, level in rows]
        lower = [(level.value - level.low) * scale if level.low is not None else 0 for _, level in rows]
        upper = [(level.high - level.value) * scale if level.high is not None else 0 for _, level in rows]
        names = [label for label, _ in rows]
        bar_colors = [colors.get(n.split(" vs ")[0], "#888") for n in names]
        if dots:  # ratios: a point with its interval on a log axis, no bar from zero
            for y, value, lo, hi, color in zip(ys, values, lower, upper, bar_colors):
                ax.errorbar([value], [y], xerr=[[lo], [hi]], fmt="o", color=color, capsize=4, markersize=6,
                            elinewidth=1.4)
            _log_ticks(ax, [v - lo for v, lo in zip(values, lower)] + [v + hi for v, hi in zip(values, upper)]
                       + ([reference_line] if reference_line else []))
            ax.set_ylim(-0.6, len(rows) - 0.4)
        else:
            ax.barh(ys, values, color=bar_colors, alpha=0.85, xerr=[lower, upper], capsize=4,
                    error_kw={"elinewidth": 1.2, "ecolor": "#222"})
        for y, name in zip(ys, names):
            band = (bands or {}).get((scenario, name))
            if band:
                ax.fill_between([band[0], band[1]], y - 0.42, y + 0.42, color="#999", alpha=0.25, linewidth=0,
                                label="expected ± tolerance" if y == ys[0] else None)
        if reference_line is not None:
            ax.axvline(reference_line, color="#555", linestyle="--", linewidth=0.8)
        _label_panel(ax, ys, names, scenario or kind, xlabel, legend=bool(bands))
    fig.tight_layout()
    return figure_png(fig)


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
    """A log x axis with about six plainly labelled ticks spanning ``values``."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    low, high = min(values), max(values)
    low, high = low / 1.04, high * 1.04
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = sorted({float(f"{t:.2g}") for t in np.geomspace(low, high, 6)} | {1.0} if low < 1 < high else
                   {float(f"{t:.2g}") for t in np.geomspace(low, high, 6)})
    ax.xaxis.set_major_locator(FixedLocator([t for t in ticks if low <= t <= high]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def _speedup_chart(rows: list[SpeedupRow], colors) -> bytes:
    items = [(row.scenario, f"{row.variant} vs {row.reference}", row.level) for row in rows if row.level]
    bands = {
        (row.scenario, f"{row.variant} vs {row.reference}"):
            (row.expected * (1 - row.tolerance), row.expected * (1 + row.tolerance))
        for row in rows if row.level and row.expected is not None and row.tolerance is not None
    }
    label = "speed-up over reference (x, log scale)" + ("; grey: expected ± tolerance" if bands else "")
    return _interval_chart(items, colors, label,
                           1.0, "speed-up", bands=bands, reference_line=1.0, dots=True)


def _stage_chart(staged) -> bytes:
    items = [(case.scenario, case.variant, stages) for case, stages in staged]
    fig, panels = _scenario_panels(items)
    for scenario, ax in panels:
        rows = [(variant, stages) for s, variant, stages in items if s == scenario]
        ys = list(range(len(rows)))[::-1]
        left = [0.0] * len(rows)
        names = list(dict.fromkeys(n for _, stages in rows for n in stages))
        for name in names:
            widths = [stages.get(name, 0.0) * 1e3 for _, stages in rows]
            ax.barh(ys, widths, left=left, color=STAGE_COLORS.get(name), label=name.replace("_", " "))
            left = [a + b for a, b in zip(left, widths)]
        _label_panel(ax, ys, [variant for variant, _ in rows], scenario or "stages", "median ms per stage")
    fig.tight_layout()
    return figure_png(fig)


def _memory_chart(cases: list[Case], colors) -> bytes:
    items = [(case.scenario, case) for case in cases]
    fig, panels = _scenario_panels(items)
    for scenario, ax in panels:
        rows = [case for s, case in items if s == scenario]
        ys = list(range(len(rows)))[::-1]
        peaks = [case.number("peak_memory") / MIB for case in rows]
        weights = [min(case.number("weight_bytes") or 0, case.number("peak_memory")) / MIB for case in rows]
        ax.barh(ys, peaks, color=[colors.get(case.variant, "#888") for case in rows], alpha=0.45,
                label="peak")
        ax.barh(ys, weights, color=[colors.get(case.variant, "#888") for case in rows], alpha=0.95,
                label="of which weights")
        _label_panel(ax, ys, [case.variant for case in rows], scenario or "memory", "MiB")
    fig.tight_layout()
    return figure_png(fig)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100, 6):g}%"
