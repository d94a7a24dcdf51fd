"""Throughput in words (diffperf.render.throughput_text): the terminal lines and the Markdown section."""

from diffperf.measure.flops import CallFlops, MatmulPeak, Throughput
from diffperf.render.throughput_text import flop_count, flop_rate, fraction, markdown, terminal_lines


def entry(variant: str = "distilled", datasheet: float | None = None) -> dict:
    flops = CallFlops({"text_encoding": 2_000_000_000, "denoising": 30_000_000_000, "decoding": 8_000_000_000}, 5)
    return Throughput(variant, "astronaut", "float32", flops, {"text_encoding": 0.1, "denoising": 0.5, "decoding": 0.2},
                      0.8, MatmulPeak("float32", 100e9, 1024, datasheet)).case_info()


def test_units():
    assert flop_count(1_606_437_879_808) == "1.6 TFLOP" and flop_count(None) == "-"
    assert flop_rate(45.2e9) == "45.2 GFLOP/s" and flop_rate(989.5e12) == "989.5 TFLOP/s"
    assert fraction(0.384) == "38%" and fraction(0.0123) == "1.2%" and fraction(None) == "-"


def test_terminal_lines_one_row_per_case():
    lines = terminal_lines([entry(), entry("baseline"), {"variant": "plain", "scenario": "x"}], verbose=True)
    header = lines[1].split()
    assert header[:3] == ["variant", "scenario", "precision"] and "denoising" in header
    rows = [line for line in lines if line.startswith(("distilled", "baseline"))]
    assert len(rows) == 2
    assert "40.0 GFLOP" in rows[0] and "60.0 GFLOP/s" in rows[0] and "50.0 GFLOP/s" in rows[0]
    assert "60%" in rows[0] and "100.0 GFLOP/s (n=1024)" in rows[0]
    assert any(line.strip().startswith("FLOPs: torch.utils.flop_counter") for line in lines)
    assert terminal_lines([]) == [] and markdown([{"variant": "plain"}]) == ""


def test_markdown_section_with_the_datasheet_beside_the_measured_peak():
    text = markdown([entry(datasheet=400e9)])
    assert text.startswith("\n## diffperf throughput\n")
    row = next(line for line in text.splitlines() if line.startswith("| distilled"))
    assert row.endswith("| 400.0 GFLOP/s (call 12%) |")
