"""The best stack's rows come first in the gate's terminal table and Markdown (diffperf.render.gate_text)."""

from __future__ import annotations

from diffperf.gate.verdicts import GateReport, GateRow
from diffperf.render import gate_text
from diffperf.render.gate_text import GateContext, best_first, markdown, terminal_lines

CONTEXT = GateContext(host_key="host", portable_key="portable", path="speedups.json", calibrate_hint="diffperf calibrate")


def row(variant: str, scenario: str, kind: str = "speed-up") -> GateRow:
    return GateRow(kind=kind, variant=variant, reference="baseline", scenario=scenario, status="unchecked",
                   reason="no expectation", value=1.5, low=1.4, high=1.6)


ROWS = [row("bf16", "astronaut"), row("best-cpu", "astronaut"), row("bf16", "vase"), row("best-cpu", "vase"),
        row("best-cpu", "vase", kind="memory")]


def test_best_first_keeps_each_group_in_order():
    ordered = best_first(ROWS)
    assert [(r.variant, r.scenario, r.kind) for r in ordered] == [
        ("best-cpu", "astronaut", "speed-up"), ("best-cpu", "vase", "speed-up"), ("best-cpu", "vase", "memory"),
        ("bf16", "astronaut", "speed-up"), ("bf16", "vase", "speed-up"),
    ]
    assert best_first([row("bf16", "vase")]) == [row("bf16", "vase")]


def test_every_best_stack_is_ordered_first():
    for name in gate_text.BEST_STACKS:
        assert best_first([row("bf16", "vase"), row(name, "vase")])[0].variant == name


def test_terminal_table_and_markdown_show_the_best_stack_first():
    report = GateReport(expectations=None, rows=list(ROWS))
    table = "\n".join(terminal_lines(report, CONTEXT))
    assert table.index("best-cpu vs baseline") < table.index("bf16 vs baseline")
    text = markdown(report, CONTEXT)
    table_rows = [line for line in text.splitlines() if line.startswith("| speed-up") or line.startswith("| memory")]
    assert table_rows[0].startswith("| speed-up | best-cpu vs baseline | astronaut |")
    assert report.rows == ROWS  # the report itself is not reordered
