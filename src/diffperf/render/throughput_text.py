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


def as_table(entries: list[Mapping]) -> Table:
    """One row per latency case that counted its FLOPs (entries without ``"throughput"`` are left out)."""
    entries = [entry for entry in entries if isinstance(entry.get("throughput"), Mapping)]
    stages = stage_names(entries)
    rows = [cells(entry, stages) for entry in entries]
    headers = list(rows[0]) if rows else []
    columns = [Column(header, "left" if index < 3 else "right") for index, header in enumerate(headers)]
    return Table("achieved FLOP/s per stage and fraction of the device's dense matmul peak", columns,
                 [list(row.values()) for row in rows], [METHOD])


def terminal_lines(entries: list[Mapping]) -> list[str]:
    """Plain aligned text, for the terminal summary and CI logs (empty when nothing was counted)."""
    table = as_table(entries)
    return plain_text(table).splitlines() if table.rows else []


def markdown(entries: list[Mapping]) -> str:
    """A Markdown section to follow the gate's (--perf-summary, $GITHUB_STEP_SUMMARY); empty when nothing was counted."""
    table = as_table(entries)
    return f"\n## {TITLE}\n\n{markdown_table(table)}\n" if table.rows else ""
