"""The speed-up gate: each variant's speed-up over its reference, judged against expectations.

Each latency case leaves a :class:`CaseResult` with paired rounds (reference and variant
interleaved). At the end of the run the gate estimates every speed-up with a 95% interval
(:mod:`diffperf.ratios`), compares it with the expected speed-up stored for this hardware
(:mod:`diffperf.expectations`) and fails the run only when a whole interval lies below the
tolerance band. Peak-memory ratios are judged the same way, without an interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from diffperf import ratios
from diffperf.expectations import Expectation, HardwareExpectations, case_id
from diffperf.table import Column, Table, plain_text, status_cell

CONFIDENCE = 0.95
DEFAULT_MEMORY_TOLERANCE = {"cpu": 0.5, "cuda": 0.05}  # CPU peak RSS growth is allocator-noisy
MIN_TOLERANCE = 0.03


@dataclass
class CaseResult:
    """What one latency case measured, for the gate."""

    variant: str
    reference: str | None
    scenario: str
    variant_rounds: list[float]
    reference_rounds: list[float]
    peak_memory: int | None
    reference_peak_memory: int | None


@dataclass
class GateRow:
    """One judged ratio (speed-up or memory) of one case."""

    kind: str  # "speed-up" | "memory"
    variant: str
    reference: str
    scenario: str
    status: str  # regressed | improved | ok | inconclusive | unchecked | error
    message: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    expected: float | None = None
    tolerance: float | None = None
    rounds_needed: int | None = None
    half_width: float | None = None


@dataclass
class GateReport:
    note: str  # where the expectations came from
    key: str | None
    rows: list[GateRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # e.g. stored variants that did not run

    @property
    def regressions(self) -> list[GateRow]:
        return [row for row in self.rows if row.status in ("regressed", "error")]

    @property
    def failed(self) -> bool:
        return bool(self.regressions)

    def to_json(self) -> dict:
        return {
            "baseline_key": self.key,
            "note": self.note,
            "failed": self.failed,
            "problems": self.problems,
            "speedups": [asdict(row) for row in self.rows if row.kind == "speed-up"],
            "memory": [asdict(row) for row in self.rows if row.kind == "memory"],
        }


def _speedup_row(result: CaseResult, expectation: Expectation | None) -> GateRow:
    row = GateRow("speed-up", result.variant, result.reference, result.scenario, "unchecked", "")
    try:
        estimate = ratios.paired_ratio(result.reference_rounds, result.variant_rounds, CONFIDENCE)
    except ratios.TooFewRounds as error:
        row.message = f"no verdict: {error}"
        return row
    row.value, row.low, row.high, row.n = estimate.median, estimate.low, estimate.high, estimate.n
    row.half_width = estimate.half_width
    interval = f"{estimate.median:.3f}x [{estimate.low:.3f}, {estimate.high:.3f}]"
    if expectation is None:
        row.message = f"speed-up {interval}: no expectation stored for this case"
        return row
    if expectation.reference and expectation.reference != result.reference:
        row.status = "error"
        row.message = (
            f"the stored expectation is against {expectation.reference}, the variant now runs against "
            f"{result.reference}: re-record with `pytest perf --perf-update-baselines`"
        )
        return row
    verdict = ratios.judge_speedup(estimate, expectation.expected, expectation.tolerance)
    row.status, row.message = verdict.status, verdict.message
    row.expected, row.tolerance, row.rounds_needed = expectation.expected, expectation.tolerance, verdict.rounds_needed
    return row


def _memory_row(result: CaseResult, expectation: Expectation | None) -> GateRow | None:
    if not result.peak_memory or not result.reference_peak_memory:
        return None
    value = ratios.memory_ratio(result.reference_peak_memory, result.peak_memory)
    row = GateRow("memory", result.variant, result.reference, result.scenario, "unchecked", "", value=value)
    if expectation is None:
        row.message = f"peak memory {value:.3f}x of {result.reference}: no expectation stored"
        return row
    verdict = ratios.judge_memory(value, expectation.expected, expectation.tolerance)
    row.status, row.message = verdict.status, verdict.message
    row.expected, row.tolerance = expectation.expected, expectation.tolerance
    return row


def evaluate(
    results: list[CaseResult],
    expectations: HardwareExpectations | None,
    note: str,
    skipped: dict[str, str] | None = None,
) -> GateReport:
    """Judge every paired case; ``skipped`` maps case ids that did not run to why."""
    report = GateReport(note=note, key=expectations.key if expectations else None)
    measured = set()
    for result in results:
        if result.reference is None:
            continue
        case = case_id(result.variant, result.scenario)
        measured.add(case)
        speedup = expectations.speedups.get(case) if expectations else None
        memory = expectations.memory.get(case) if expectations else None
        report.rows.append(_speedup_row(result, speedup))
        memory_row = _memory_row(result, memory)
        if memory_row is not None:
            report.rows.append(memory_row)
    if expectations is not None:
        for case in sorted(set(expectations.speedups) - measured):
            why = (skipped or {}).get(case, "not selected in this run")
            report.problems.append(f"{case} has a stored expectation but did not run ({why})")
    return report


def new_expectations(report: GateReport, device_type: str) -> tuple[dict, dict, list[str]]:
    """Expectations to record from this run: measured medians, tolerances from measured noise.

    Returns the speed-up and memory tables and one line per case too noisy to record.
    """
    speedups, memory, refused = {}, {}, []
    for row in report.rows:
        if row.value is None:
            continue
        case = case_id(row.variant, row.scenario)
        if row.kind == "speed-up":
            try:
                tolerance = ratios.default_tolerance([row.half_width], floor=MIN_TOLERANCE)
            except ValueError as error:
                refused.append(f"not recorded {case}: {error}")
                continue
            speedups[case] = {
                "reference": row.reference,
                "expected": round(row.value, 4),
                "tolerance": tolerance,
                "half_width": round(row.half_width, 4),
                "rounds": row.n,
            }
        else:
            memory[case] = {
                "reference": row.reference,
                "expected": round(row.value, 4),
                "tolerance": DEFAULT_MEMORY_TOLERANCE.get(device_type, 0.1),
            }
    return speedups, memory, refused


# ---- rendering ---------------------------------------------------------------------------------

def _cells(row: GateRow) -> list[str]:
    if row.value is None:
        measured = "-"
    elif row.low is not None:
        measured = f"{row.value:.3f}x [{row.low:.3f}, {row.high:.3f}]"
    else:
        measured = f"{row.value:.3f}x"
    expected = "-" if row.expected is None else f"{row.expected:.3f}x ±{row.tolerance:.0%}"
    return [row.kind, f"{row.variant} vs {row.reference}", row.scenario, measured, expected, row.status]


def _worth_a_line(row: GateRow) -> bool:
    """Verdicts that need a reader's attention, and ratios that got no verdict for lack of rounds."""
    return row.status in ("regressed", "error", "improved", "inconclusive") or row.message.startswith("no verdict")


HEADER = ["ratio", "variant", "scenario", "measured [95% CI]", "expected", "verdict"]


def as_table(report: GateReport) -> Table:
    """The verdicts as a :class:`diffperf.table.Table` (rich on a terminal, plain text in CI logs)."""
    notes = [f"{row.status.upper()}: {row.kind} {row.variant}/{row.scenario}: {row.message}"
             for row in report.rows if _worth_a_line(row)]
    notes += [f"note: {problem}" for problem in report.problems]
    rows = [[*_cells(row)[:-1], status_cell(row.status)] for row in report.rows]
    return Table(report.note, [Column(header) for header in HEADER], rows, notes)


def terminal_lines(report: GateReport) -> list[str]:
    """Plain aligned text: readable in a terminal and in CI logs alike."""
    verdict = "speed-up gate: FAILED" if report.failed else "speed-up gate: passed"
    return plain_text(as_table(report)).splitlines() + [verdict]


def markdown(report: GateReport) -> str:
    """The gate as a Markdown section (for --perf-summary and $GITHUB_STEP_SUMMARY)."""
    verdict = "❌ failed" if report.failed else "✅ passed"
    lines = [f"## diffperf speed-up gate: {verdict}", "", report.note, ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report.rows]
    details = [f"- **{row.status}** {row.kind} `{row.variant}/{row.scenario}`: {row.message}"
               for row in report.rows if _worth_a_line(row)]
    details += [f"- {problem}" for problem in report.problems]
    if details:
        lines += [""] + details
    return "\n".join(lines) + "\n"
