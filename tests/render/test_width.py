"""What a run prints fits a 120-column terminal or CI log by default (diffperf.render.table.WIDTH)."""

from __future__ import annotations

from diffperf.gate.expectations import PORTABLE, Expectations
from diffperf.gate.verdicts import GateReport, GateRow
from diffperf.measure.flops import CallFlops, MatmulPeak, Throughput
from diffperf.models.builtin import builtin_registry
from diffperf.render import gate_text, throughput_text
from diffperf.render.table import WIDTH

CONTEXT = gate_text.GateContext(
    host_key="cpu-intel-r-xeon-r-processor-2t-dcb3c204", portable_key="cpu-x86-64-avx512-bf16-2t",
    path="baselines/tiny/speedups.json", calibrate_hint="diffperf calibrate --profile tiny --baselines baselines")


def longest_variants() -> list:
    variants = sorted(builtin_registry().variants.values(), key=lambda v: len(v.name) + len(v.reference or ""))
    return variants[-6:]


def test_the_gate_fits_with_the_longest_names_and_every_kind_of_line():
    rows = []
    for variant in longest_variants():
        for status in ("regressed", "inconclusive", "improved", "ok"):
            rows.append(GateRow("speed-up", variant.name, variant.reference, "astronaut-xl", status, value=1.1843,
                                low=1.0401, high=1.2589, judged_low=1.0382, judged_high=1.2621, expected=1.1836,
                                tolerance=0.03, lower=1.148, upper=1.219, rounds_needed=690, family=variant.family))
        rows.append(GateRow("memory", variant.name, variant.reference, "astronaut-xl", "ok", value=0.786,
                            expected=0.786, tolerance=0.05, lower=0.75, upper=0.83, family=variant.family))
    not_run = {f"{variant.name}/{scenario}": f"{variant.name} is opt-in on cpu (no faster on the tiny CPU profile): "
               "pass --perf-speedups" for variant in builtin_registry().variants.values()
               for scenario in ("astronaut", "vase")}
    differences = [("torch", "2.13.0+cpu", "2.14.1+cpu"), ("model_name", "AMD EPYC 9R14 96-Core Processor",
                                                              "Intel(R) Xeon(R) Platinum 8488C")] * 4
    expectations = Expectations("cpu-x86-64-avx512-bf16-2t", PORTABLE, {"processes": 15}, {}, {},
                                closest_host="cpu-amd-epyc-2t-55e82777", differences=differences)
    lines = gate_text.terminal_lines(GateReport(expectations, rows, not_run), CONTEXT)
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, "\n".join(too_wide)
    assert sum("not run, though expected" in line for line in lines) == 1  # one line per reason, not per case
    assert any("segmind-vega-taesdxl" in line and "REGRESSED" in line for line in lines)


def throughput_entry(variant: str) -> dict:
    flops = CallFlops({"text_encoding": 2e9, "denoising": 30e12, "decoding": 8e12}, 5)
    return Throughput(variant, "astronaut-xl", "bfloat16", flops, {"text_encoding": 0.1, "denoising": 0.5,
                      "decoding": 0.2}, 0.8, MatmulPeak("bfloat16", 358.1e9, 2048, 989.5e12)).case_info()


def test_throughput_is_compact_by_default_and_whole_with_verbose():
    entries = [throughput_entry(variant.name) for variant in longest_variants()]
    compact = throughput_text.terminal_lines(entries)
    assert max(len(line) for line in compact) <= WIDTH, "\n".join(compact)
    assert compact[1].split()[:2] == ["variant", "scenario"] and "358.1 GFLOP/s (bfloat16)" in "\n".join(compact)
    verbose = throughput_text.terminal_lines(entries, verbose=True)
    assert "text encoding" in verbose[1] and "datasheet peak" in verbose[1]  # every column, however wide
