"""The best stack's rows come first in the gate's terminal table and Markdown (diffperf.render.gate_text)."""

from __future__ import annotations

from diffperf.gate.verdicts import CaseResult, GateReport, GateRow, evaluate
from diffperf.models import sd1
from diffperf.models.builtin import builtin_registry
from diffperf.render.gate_text import GateContext, best_first, markdown, terminal_lines

CONTEXT = GateContext(host_key="host", portable_key="portable", path="speedups.json", calibrate_hint="diffperf calibrate")
BEST_STACK = "best-cpu"


def row(variant: str, scenario: str, kind: str = "speed-up") -> GateRow:
    return GateRow(kind=kind, variant=variant, reference="baseline", scenario=scenario, status="unchecked",
                   reason="no expectation", value=1.5, low=1.4, high=1.6, family="sd1",
                   best_stack=variant == BEST_STACK)


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
    """Each declared best stack's gate rows (speed-up and memory) come before another variant's: the gate's
    rows carry ``Variant.best_stack`` from the case's result, and the order follows it."""
    assert [variant.name for variant in sd1.VARIANTS if variant.best_stack] == ["best-cpu", "best-gpu"]
    registry = builtin_registry()
    other = registry.variant("bf16")
    assert not other.best_stack
    for best in (variant for variant in registry.variants.values() if variant.best_stack):
        results = [CaseResult(declared.name, declared.reference, "vase", [1.0] * 8, [1.5] * 9, 100, 200,
                              family=declared.family, best_stack=declared.best_stack) for declared in (other, best)]
        rows = evaluate(results, expectations=None).rows
        assert [(r.variant, r.kind) for r in rows] == [(other.name, "speed-up"), (other.name, "memory"),
                                                       (best.name, "speed-up"), (best.name, "memory")]
        assert [(r.variant, r.kind) for r in best_first(rows)] == [(best.name, "speed-up"), (best.name, "memory"),
                                                                   (other.name, "speed-up"), (other.name, "memory")]


def test_terminal_table_and_markdown_show_the_best_stack_first():
    report = GateReport(expectations=None, rows=list(ROWS))
    table = "\n".join(terminal_lines(report, CONTEXT))
    assert table.index("best-cpu vs baseline") < table.index("bf16 vs baseline")
    text = markdown(report, CONTEXT)
    table_rows = [line for line in text.splitlines() if line.startswith("| speed-up") or line.startswith("| memory")]
    assert table_rows[0].startswith("| speed-up | best-cpu vs baseline | astronaut |")
    assert report.rows == ROWS  # the report itself is not reordered
