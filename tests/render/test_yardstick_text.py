"""A regressed 'baseline vs yardstick' row says that every pipeline of the family got slower (or holds more)."""

from __future__ import annotations

from diffperf.gate.verdicts import GateRow
from diffperf.render.gate_text import GateContext, row_line
from diffperf.stats.status import Status

CONTEXT = GateContext(host_key="host", portable_key="portable", path="speedups.json", calibrate_hint="diffperf calibrate")


def judged(reference: str, kind: str = "speed-up", value: float = 0.17) -> GateRow:
    return GateRow(kind, "baseline", reference, "astronaut", Status.REGRESSED, value=value, low=0.16, high=0.18,
                   judged_low=0.155, judged_high=0.182, expected=0.2, tolerance=0.03, lower=0.194, upper=0.206,
                   family="sd1")


def test_a_slower_baseline_against_its_yardstick_names_every_pipeline_of_the_family():
    line = row_line(judged("yardstick"), CONTEXT)
    assert line.startswith("speed-up 0.17x, across processes [0.15, 0.18], is 15% below expected 0.20x")
    assert "every pipeline of sd1 got slower against torch's own kernels" in line


def test_a_baseline_that_holds_more_memory_says_every_variant_likely_does():
    line = row_line(judged("yardstick", kind="memory", value=0.23), CONTEXT)
    assert "peak-memory ratio 0.23x is 15% above expected 0.20x" in line
    assert "every variant of sd1 likely holds more" in line


def test_an_ordinary_regression_says_nothing_of_the_family():
    assert "every" not in row_line(judged("distilled"), CONTEXT)
