"""One self-contained HTML page for one run: verdicts, charts, stages, memory, images and history.

``write_report(run, out)`` takes a saved pytest-benchmark JSON file (or the decoded document, e.g.
at the end of a ``pytest perf`` run) and writes one HTML file with its CSS inline and its charts
and images embedded as PNGs, so it can be attached to a CI run or mailed as is:

* the speed-up table with the gate's verdicts (the file's top-level ``diffperf`` key; without
  it, speed-ups are estimated from the raw paired rounds and marked "not gated");
* latency per variant and scenario: median with the exact CI of the median (the IQR when the
  raw rounds were not saved), as a table and a chart;
* the per-stage breakdown; peak memory and its ratio to the reference;
* achieved FLOP/s per stage and the fraction of the device's measured matmul peak, where the
  cases recorded them (:mod:`diffperf.measure.flops`);
* each case's baseline, current and difference images
  (``<images_dir>/<variant>-<scenario>-{expected,actual,diff}.png``; "not recorded" when absent);
* with ``history`` (saved runs), each case's change points over the runs of this profile and
  hardware (:mod:`diffperf.history.changepoints`).

This module gathers the numbers; ``templates/report.html`` lays them out and
:mod:`diffperf.render.charts` draws them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from diffperf.stats import ratios
from diffperf.history import changepoints
from diffperf.history.identity import SETUP
from diffperf.render import charts, pages
from diffperf.render.machine_text import process_settings
from diffperf.history.runs import (
    SAVE_DATA_HINT, Case, HistoryError, Run, load_run, run_from_dict, sort_by_time, without,
)
from diffperf.history.values import (
    CONFIDENCE, Level, gate_level, gate_row, latency_level, positive, speedup_level, throughput_info,
)
from diffperf.render import throughput_text
from diffperf.render.gate_text import by_family, needs_action, noise_line
from diffperf.render.history_text import gate_detail, gate_row_of, gate_summary, ungated_detail

__all__ = ["IMAGE_KINDS", "REPORT_NAME", "SpeedupRow", "build_report", "image_path", "report_path", "speedup_rows",
           "write_report"]

#: (file suffix, caption) of the images shown for each case.
IMAGE_KINDS = (("expected", "baseline"), ("actual", "current"), ("diff", "difference"))
#: The file written when the output named is a directory.
REPORT_NAME = "report.html"
MIB = 1024 * 1024


def write_report(run: str | os.PathLike | Mapping | Run, out_path: str | os.PathLike,
                 images_dir: str | os.PathLike | None = None, confidence: float = CONFIDENCE,
                 history: Iterable[Run] | None = None) -> Path:
    """Write the HTML report of ``run`` (a JSON file path, a decoded document or a Run) atomically.

    ``out_path`` names the file, or a directory to write :data:`REPORT_NAME` in. Raises
    :class:`~diffperf.history.runs.HistoryError` for input that is not pytest-benchmark JSON and for a
    run without a benchmark. Returns the path written.
    """
    if isinstance(run, Run):
        record = run
    elif isinstance(run, Mapping):
        record = run_from_dict(dict(run), source="this run", label="this run")
    else:
        record = load_run(run)
    if not record.cases:
        raise HistoryError(f"{record.source}: no benchmarks in this run, nothing to report: give a run that "
                           "finished at least one case")
    out = report_path(out_path)
    pages.write_output(out, build_report(record, images_dir, confidence, history))
    return out


def report_path(out_path: str | os.PathLike) -> Path:
    """The file to write: ``out_path``, or ``out_path/report.html`` when it is a directory (or ends in a slash)."""
    if Path(out_path).is_dir() or str(out_path).endswith(("/", os.sep)):
        return Path(out_path) / REPORT_NAME
    return Path(out_path)


def image_path(images_dir: str | os.PathLike, variant: str, scenario: str, kind: str) -> Path:
    """Where the report looks for an image: ``<images_dir>/<variant>-<scenario>-<kind>.png``."""
    return Path(images_dir) / f"{variant}-{scenario}-{kind}.png"


def build_report(run: Run, images_dir: str | os.PathLike | None = None, confidence: float = CONFIDENCE,
                 history: Iterable[Run] | None = None) -> str:
    """The report page of ``run`` as an HTML string."""
    cases = list(run.cases)
    colors = charts.variant_colors(case.variant for case in cases)
    return pages.render_page(
        "report.html", run=run, gate_line=_gate_line(run.gate), settings=process_settings(run),
        notices=_notices(run, images_dir), save_data_hint=SAVE_DATA_HINT, attention=_attention_section(run),
        max_pvalue=changepoints.MAX_PVALUE, min_magnitude=changepoints.MIN_MAGNITUDE,
        speedups=_speedup_section(run, confidence, colors), latency=_latency_section(cases, confidence, colors),
        stages=_stage_section(cases), memory=_memory_section(run, cases, colors),
        throughput=_throughput_section(cases),
        images=_image_section(cases, images_dir), history=_history_section(run, history),
    )


# --------------------------------------------------------------------------- what needs attention


def _attention_section(run: Run) -> dict:
    """The verdicts a reader can act on (:func:`~diffperf.render.gate_text.needs_action`), each with its line, and
    one line for the inconclusive speed-ups within the host's noise."""
    rows = [(found, raw) for kind in ("speedups", "memory") for raw in run.gate_rows(kind)
            for found in [gate_row_of(raw)] if found is not None]
    items = [{"status": str(row.status), "kind": row.kind, "case": row.case, "detail": gate_detail(raw)}
             for row, raw in rows if needs_action(row)]
    return {"gated": bool(rows), "actions": items,
            "noise": noise_line([row for row, _ in rows], "marked inconclusive in the table below")}


# --------------------------------------------------------------------------- speed-ups


@dataclass
class SpeedupRow:
    """One speed-up as the report shows it: the gate's numbers, or an estimate from the raw rounds."""

    variant: str
    reference: str
    scenario: str
    level: Level | None
    status: str
    detail: str
    judged: tuple[float, float] | None = None  # the interval the gate judged (between processes included)
    expected: float | None = None
    tolerance: float | None = None
    band: tuple[float, float] | None = None  # expected x (1 -+ tolerance)
    family: str = ""
    best_stack: bool = False


def speedup_rows(run: Run, confidence: float = CONFIDENCE) -> list[SpeedupRow]:
    """The gate's speed-up rows when the file has them, else estimates from the raw paired rounds; grouped by
    family in the order the families ran, each family's best stacks first (as the terminal's table)."""
    rows = run.gate_rows("speedups")
    found = [_gated_row(row) for row in rows] if rows else _estimated_rows(run, confidence)
    return [row for _, members in by_family(found) for row in members]


def _estimated_rows(run: Run, confidence: float) -> list[SpeedupRow]:
    found = []
    for case in run.cases:
        if case.reference is None:
            continue
        try:
            level = speedup_level(case, run, confidence)
        except ValueError as error:  # rounds that are not valid times
            level, detail = None, str(error)
        else:
            detail = ungated_detail(level)
        found.append(SpeedupRow(case.variant, case.reference, case.scenario, level, "not gated", detail,
                                family=str(case.extra_info.get("family") or ""),
                                best_stack=bool(case.extra_info.get("best_stack"))))
    return found


def _gated_row(row: Mapping) -> SpeedupRow:
    """A row of the gate's JSON; files written before it kept numbers only have ``median`` and ``message``."""
    level = gate_level(row)
    expected = positive(row.get("expected"))
    tolerance = row.get("tolerance") if isinstance(row.get("tolerance"), (int, float)) else None
    band = _pair(row.get("lower"), row.get("upper"))
    if band is None and expected is not None and tolerance is not None:  # files without the band's bounds
        band = (expected * (1 - tolerance), expected * (1 + tolerance))
    return SpeedupRow(str(row.get("variant", "?")), str(row.get("reference", "?")), str(row.get("scenario", "")),
                      level, str(row.get("status", "unchecked")), gate_detail(row),
                      _pair(row.get("judged_low"), row.get("judged_high")), expected, tolerance, band,
                      family=str(row.get("family") or ""), best_stack=bool(row.get("best_stack")))


def _speedup_section(run: Run, confidence: float, colors: dict) -> dict:
    rows = speedup_rows(run, confidence)
    tally: dict[str, int] = {}
    for row in rows:
        tally[row.status] = tally.get(row.status, 0) + 1
    # The interval column is headed by the confidence its intervals were computed at.
    confidences = {row.level.confidence for row in rows if row.level is not None and row.level.low is not None}
    items = [(row.scenario, row.variant, f"{row.variant} vs {row.reference}", row.level, row.band)
             for row in rows if row.level is not None]
    return {
        "rows": rows, "tally": tally,
        "confidence": confidences.pop() if len(confidences) == 1 else None,
        "judged": any(row.judged for row in rows),
        "chart": charts.speedup_chart(items, colors) if items else None,
    }


# --------------------------------------------------------------------------- latency, stages, memory


def _latency_section(cases: list[Case], confidence: float, colors: dict) -> dict:
    rows = [(case, latency_level(case, confidence)) for case in cases]
    items = [(case.scenario, case.variant, level) for case, level in rows]
    return {"rows": rows, "confidence": confidence,
            "chart": charts.interval_chart(items, colors, "median latency (ms)", 1e3, "latency") if rows else None}


def _stage_section(cases: list[Case]) -> dict:
    rows = [(case, case.stages) for case in cases if case.stages]
    names = list(dict.fromkeys(name for _, stages in rows for name in stages))
    items = [(case.scenario, case.variant, stages) for case, stages in rows]
    return {"rows": rows, "names": names, "chart": charts.stage_chart(items) if rows else None}


def _memory_section(run: Run, cases: list[Case], colors: dict) -> dict:
    rows = []
    for case in cases:
        peak = case.number("peak_memory")
        if not peak:
            continue
        reference_peak = case.number("reference_peak_memory")
        gate = gate_row(run, case, "memory")
        rows.append({
            "case": case, "peak": peak, "weights": case.number("weight_bytes"),
            "ratio": ratios.memory_ratio(reference_peak, peak) if case.reference and reference_peak else None,
            "status": str(gate.get("status")) if gate else None, "detail": gate_detail(gate) if gate else "",
        })
    items = [(row["case"].scenario, row["case"].variant, row["peak"], row["weights"]) for row in rows]
    return {"rows": rows, "gated": bool(run.gate_rows("memory")), "mib": MIB,
            "chart": charts.memory_chart(items, colors) if rows else None}


def _throughput_section(cases: list[Case]) -> dict:
    """The cases' achieved FLOP/s and fractions of peak, in the words of the terminal summary."""
    table = throughput_text.as_table([case.extra_info for case in cases if throughput_info(case) is not None])
    return {"headers": [column.header for column in table.columns], "rows": table.rows, "method": throughput_text.METHOD}


# --------------------------------------------------------------------------- images, history, notices


def _image_section(cases: list[Case], images_dir) -> dict:
    """Per case with a scenario: each kind's PNG bytes (None when not recorded) and the path looked at."""
    found = []
    for case in cases:
        if not case.scenario:
            continue
        figures = []
        for kind, caption in IMAGE_KINDS:
            path = image_path(images_dir, case.variant, case.scenario, kind) if images_dir is not None else None
            png = path.read_bytes() if path is not None and path.is_file() else None
            figures.append({"kind": kind, "caption": caption, "png": png, "path": str(path or "")})
        found.append((case, figures))
    return {"cases": found, "directory_given": images_dir is not None}


def _history_section(run: Run, history: Iterable[Run] | None) -> dict | None:
    """Change points of each of the run's cases over the history of its profile and hardware, of its setup
    (diffperf.history.identity.SETUP: schema, profile, workload, host) only (None: no history)."""
    if history is None:
        return None
    setup = [run.identity[name] for name in SETUP]
    members = sort_by_time([past for past in without(history, [run]) if past.machine == run.machine
                            and [past.identity[name] for name in SETUP] == setup] + [run])
    points = [(case.label, point) for case in run.cases for point in changepoints.case_change_points(members, case.key)]
    return {"runs": members, "points": points, "cases": len(run.cases)}


def _notices(run: Run, images_dir) -> dict:
    """What the reader must know about the file before reading the numbers."""
    gate = run.gate or {}
    return {
        "without_raw": [case.label for case in run.cases if not case.has_raw],
        "not_gated": run.gate is None and any(case.reference for case in run.cases),
        "problems": _interrupted(gate) + [str(problem) for problem in gate.get("problems", []) or []],
        "missing_images": str(images_dir) if images_dir is not None and not Path(images_dir).is_dir() else None,
    }


def _gate_line(gate: Mapping | None) -> str | None:
    """The gate's outcome in one line; None when the file has no gate section."""
    if gate is None:
        return None
    return "nothing judged: the run was interrupted" if gate.get("interrupted") else gate_summary(gate)


def _interrupted(gate: Mapping) -> list[str]:
    """The warning an interrupted run's report opens with (none for a run that ran to its end)."""
    if not gate.get("interrupted"):
        return []
    unfinished = [str(name) for name in gate.get("unfinished") or []]
    left_out = f"; left out, half measured: {', '.join(unfinished)}" if unfinished else ""
    line = "this run was interrupted: its speed-ups were not judged and the cases it did not reach are missing"
    return [line + left_out]


def _pair(low, high) -> tuple[float, float] | None:
    low, high = positive(low), positive(high)
    return (low, high) if low is not None and high is not None else None
