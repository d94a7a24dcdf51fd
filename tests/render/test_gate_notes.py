"""The gate's words: lines only for verdicts a reader can act on, and what the host resolves."""

from diffperf.gate.expectations import HOST, Expectation, Expectations
from diffperf.gate.verdicts import GateReport, GateRow
from diffperf.render.gate_text import GateContext, markdown, source_line, terminal_lines
from diffperf.stats.ratios import ProcessSpread

CONTEXT = GateContext("cpu-test-2t-00000000", "cpu-x86_64-2t", "baselines/tiny/speedups.json",
                      "diffperf calibrate")


def row(variant, status, rounds_needed=None, resolution=0.09, value=1.45):
    return GateRow("speed-up", variant, "baseline", "vase", status, value=value, low=1.38, high=1.52,
                   judged_low=1.36, judged_high=1.55, confidence=0.95, n=16, expected=1.5, tolerance=0.03,
                   lower=1.455, upper=1.545, resolution=resolution, ok_lower=1.5 * (1 - resolution), ok_low=1.37,
                   rounds_needed=rounds_needed)


def report(*rows):
    spread = ProcessSpread(1.5, 0.03, 0.01, 10, 0.06)
    expectations = Expectations("cpu-test-2t-00000000", HOST, {"date": "2026-12-01"},
                                {f"{r.variant}/vase": Expectation("baseline", 1.5, 0.03, spread) for r in rows}, {})
    return GateReport(expectations, list(rows))


def test_inconclusive_speed_ups_no_rounds_in_reach_decide_get_one_line_not_one_each():
    found = report(row("a", "ok"), row("b", "inconclusive", 530), row("c", "inconclusive"), row("d", "inconclusive", 30))
    text = "\n".join(terminal_lines(found, CONTEXT))
    assert "530" not in text  # advice no one can follow is never printed
    assert "2 speed-ups inconclusive within this host's noise (b/vase, c/vase): see --perf-summary" in text
    assert "INCONCLUSIVE: speed-up d/vase:" in text and "--perf-rounds 30" in text
    assert "INCONCLUSIVE: speed-up b/vase" not in text and "INCONCLUSIVE: speed-up c/vase" not in text
    summary = markdown(found, CONTEXT)
    assert "<details><summary>2 inconclusive within this host's noise</summary>" in summary
    assert "`b/vase`" in summary and "530" not in summary


def test_a_clean_run_prints_no_per_case_note():
    text = "\n".join(terminal_lines(report(row("a", "ok"), row("b", "ok")), CONTEXT))
    assert "OK:" not in text and "INCONCLUSIVE" not in text and "within this host's noise" not in text


def test_the_first_line_says_what_this_host_resolves():
    rows = [row(f"v{i}", "ok", resolution=band) for i, band in enumerate([0.08, 0.09, 0.09, 0.09, 0.11])]
    line = source_line(report(*rows), CONTEXT)
    assert line.startswith("judged against this host's calibration (cpu-test-2t-00000000")
    assert line.endswith("; this host resolves changes of 9% or more in 4 of 5 speed-ups (v4/vase 11%)")
    quiet = source_line(report(row("a", "ok", resolution=0.02)), CONTEXT)
    assert quiet.endswith("; it resolves the ±3% band in all 1 speed-ups")
