"""Achieved throughput in words: FLOPs per call, FLOP/s per stage and the fraction of the device's peak.

It reads what a latency case records in ``extra_info`` (``"flops"`` and ``"throughput"``, from
:mod:`diffperf.measure.flops`), so the terminal summary, the Markdown summary, the HTML report and
``diffperf compare`` say the same things; nothing here computes a statistic (and nothing imports torch).
"""

from __future__ import annotations

from typing import Mapping

from diffperf.render.table import Column, Table, markdown_table, plain_text

TITLE = "diffperf throughput"
CALL = "call"  # the whole call's entry beside the stages' in extra_info["throughput"]
METHOD = ("FLOPs: torch.utils.flop_counter over one untimed call per case (matmuls, convolutions and attention, "
          "2 per multiply-add); FLOP/s: those FLOPs over the timed rounds' median times; peak: the best dense "
          "n x n matmul at the variant's precision, measured in this process on this device")


def _scaled(value: float, unit: str) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(value) >= factor:
            return f"{value / factor:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def flop_count(value: float | None) -> str:
    """1.6064e12 -> '1.6 TFLOP'; None -> '-'."""
    return "-" if value is None else _scaled(value, "FLOP")


def flop_rate(value: float | None) -> str:
    """4.52e10 -> '45.2 GFLOP/s'; None -> '-'."""
    return "-" if value is None else _scaled(value, "FLOP/s")


def fraction(value: float | None) -> str:
    """0.384 -> '38%', 0.0123 -> '1.2%'; None -> '-'."""
    if value is None:
        return "-"
    return f"{value * 100:.0f}%" if value >= 0.095 else f"{value * 100:.2g}%"


def stage_names(entries: list[Mapping]) -> list[str]:
    """The stages the entries' rates are given for, in recorded order (the whole call left out)."""
    names = (name for entry in entries for name in entry["throughput"].get("achieved", {}) if name != CALL)
    return list(dict.fromkeys(names))


def cells(entry: Mapping, stages: list[str]) -> dict[str, str]:
    """One case's numbers in words, by column name: a latency case's ``extra_info`` (or the same keys)."""
    flops, throughput = entry.get("flops") or {}, entry["throughput"]
    achieved = throughput.get("achieved") or {}
    of_peak = throughput.get("fraction_of_peak") or {}
    of_datasheet = throughput.get("fraction_of_datasheet") or {}
    peak = throughput.get("peak") or {}
    row = {"variant": str(entry.get("variant", "?")), "scenario": str(entry.get("scenario") or "-"),
           "precision": str(throughput.get("precision", "-")), "FLOP per call": flop_count(flops.get("total")),
           "per UNet call": flop_count(flops.get("unet_per_call"))}
    row.update({stage.replace("_", " "): flop_rate(achieved.get(stage)) for stage in stages})
    row.update({
        "whole call": flop_rate(achieved.get(CALL)),
        "call / peak": fraction(of_peak.get(CALL)),
        "denoising / peak": fraction(of_peak.get("denoising")),
        "measured peak": f"{flop_rate(peak['measured'])} (n={peak.get('matmul_size')})" if peak.get("measured")
        else "-",
        "datasheet peak": f"{flop_rate(peak['datasheet'])} (call {fraction(of_datasheet.get(CALL))})"
        if peak.get("datasheet") else "-",
    })
    return row


COMPACT = ("variant", "scenario", "FLOP per call", "whole call", "denoising", "call / peak", "denoising / peak")
"""The columns a terminal shows by default (they fit 120 columns); ``-v`` shows every stage and both peaks."""


def as_table(entries: list[Mapping], columns: tuple[str, ...] | None = None) -> Table:
    """One row per latency case that counted its FLOPs (entries without ``"throughput"`` are left out).

    ``columns`` keeps only those (in that order); ``None`` keeps them all.
    """
    entries = [entry for entry in entries if isinstance(entry.get("throughput"), Mapping)]
    stages = stage_names(entries)
    rows = [cells(entry, stages) for entry in entries]
    headers = list(rows[0]) if rows else []
    if columns is not None:
        headers = [header for header in columns if header in headers]
    left = ("variant", "scenario", "precision")
    return Table("achieved FLOP/s per stage and fraction of the device's dense matmul peak",
                 [Column(header, "left" if header in left else "right") for header in headers],
                 [[row[header] for header in headers] for row in rows], [METHOD])


def terminal_lines(entries: list[Mapping], verbose: bool = False) -> list[str]:
    """Plain aligned text, for the terminal summary and CI logs (empty when nothing was counted).

    By default the :data:`COMPACT` columns and the peak in one line; ``verbose`` (``pytest -v``): every column.
    """
    table = as_table(entries, None if verbose else COMPACT)
    if not table.rows:
        return []
    if not verbose:
        table.notes.append(_peaks(entries) + "; pytest -v shows every stage")
    return plain_text(table).splitlines()


def _peaks(entries: list[Mapping]) -> str:
    """'peak: 136.1 GFLOP/s (float32), 358.1 GFLOP/s (bfloat16)': the measured peaks the fractions are of."""
    peaks: dict[str, str] = {}
    for entry in entries:
        throughput = entry.get("throughput")
        if isinstance(throughput, Mapping) and (throughput.get("peak") or {}).get("measured"):
            peaks.setdefault(str(throughput.get("precision", "-")), flop_rate(throughput["peak"]["measured"]))
    return "peak: " + (", ".join(f"{rate} ({precision})" for precision, rate in peaks.items()) or "not measured")


def markdown(entries: list[Mapping]) -> str:
    """A Markdown section to follow the gate's (--perf-summary, $GITHUB_STEP_SUMMARY); empty when nothing was counted."""
    table = as_table(entries)
    return f"\n## {TITLE}\n\n{markdown_table(table)}\n" if table.rows else ""
