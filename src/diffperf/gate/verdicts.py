"""The speed-up gate: each variant's speed-up over its reference, judged against its expectation.

Each latency case leaves a :class:`CaseResult` with paired rounds. At the end of the run
:func:`evaluate` estimates every speed-up (:func:`~diffperf.stats.ratios.paired_ratio`), widens
its interval by the ratio's calibrated between-process spread
(:func:`~diffperf.stats.ratios.across_processes`), and judges that interval against the stored
band. Peak-memory ratios are judged without an interval. The result is numbers and statuses;
:mod:`diffperf.render` puts them into words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from diffperf.gate.expectations import Expectation, Expectations, case_id
from diffperf.stats import ratios
from diffperf.stats.status import FAILING, Status

CONFIDENCE = 0.95

# Why a row has no verdict (GateRow.reason).
TOO_FEW_ROUNDS = "too few rounds"
NO_EXPECTATION = "no expectation"
NO_SPREAD = "no between-process spread"
REFERENCE_CHANGED = "reference changed"
NOT_MEASURED = "not measured"  # benchmarks disabled: nothing was timed
# A memory ratio left without a verdict because no speed-up of the run could be judged for lack of rounds:
# the gate judges the speed-ups, and memory ratios alone would let a run with too few rounds pass.
NO_SPEEDUP_JUDGED = "no speed-up judged"
INTERRUPTED = "interrupted"  # the run was interrupted: nothing is judged on part of a run


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
    family: str | None = None
    best_stack: bool = False  # a device type's fastest stack: its rows come first
    published: float | None = None  # a published speed-up for this case (diffperf.models.variants.Published)
    published_on: str | None = None  # the GPU it was published for
    confidence: float | None = None  # the look its rounds stopped at (--perf-min-rounds, --perf-max-rounds); None: the run's
    tolerance: float | None = None  # the band the variant or its family declares (Variant.tolerance); None: the record's


@dataclass
class GateRow:
    """One judged ratio (speed-up or memory) of one case: numbers and a status, no prose."""

    kind: str  # "speed-up" | "memory"
    variant: str
    reference: str
    scenario: str
    status: Status  # regressed | improved | ok | inconclusive | unchecked | error
    reason: str | None = None  # why it is unchecked or an error
    value: float | None = None  # median pair ratio (speed-up) or the ratio (memory)
    low: float | None = None  # within-process interval
    high: float | None = None
    judged_low: float | None = None  # the interval the verdict is judged on (between processes included)
    judged_high: float | None = None
    confidence: float | None = None
    n: int | None = None
    expected: float | None = None
    tolerance: float | None = None
    lower: float | None = None  # regressed below, improved above (expected -+ tolerance)
    upper: float | None = None
    resolution: float | None = None  # what the host resolves for this ratio (Expectation.resolves)
    ok_lower: float | None = None  # ok above: expected x (1 - the wider of tolerance and resolution)
    ok_low: float | None = None  # the low end of the one-sided interval the ok edge is tested with
    rounds_needed: int | None = None  # inconclusive: paired rounds that would likely decide
    min_rounds: int | None = None  # too few rounds: the least that gives an interval
    stored_reference: str | None = None  # reference changed: what the expectation was recorded against
    family: str | None = None
    best_stack: bool = False
    published: float | None = None  # CaseResult.published
    published_on: str | None = None

    @property
    def case(self) -> str:
        return case_id(self.variant, self.scenario)

    @property
    def half_width(self) -> float | None:
        if self.value is None or self.low is None:
            return None
        return (self.high - self.low) / 2 / self.value


@dataclass
class GateReport:
    """The gate's verdicts for one run and the expectations they were judged against."""

    expectations: Expectations | None
    rows: list[GateRow] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)  # stored case -> why it did not run
    interrupted: bool = False  # the run was interrupted (Ctrl-C, pytest.exit): nothing judged

    @property
    def regressions(self) -> list[GateRow]:
        return [row for row in self.rows if row.status in FAILING]

    @property
    def failed(self) -> bool:
        return bool(self.regressions)

    @property
    def judged(self) -> list[GateRow]:
        """Rows that got a verdict (any status but unchecked)."""
        return [row for row in self.rows if row.status != Status.UNCHECKED]

    def to_json(self) -> dict:
        source = self.expectations
        return {
            "baseline_key": source.key if source else None,
            "baseline_source": source.source if source else None,
            "closest_host": source.closest_host if source else None,
            "differences": [list(item) for item in source.differences] if source else [],
            "failed": self.failed,
            "judged": len(self.judged),
            "interrupted": self.interrupted,
            "not_run": self.not_run,
            "speedups": [asdict(row) for row in self.rows if row.kind == "speed-up"],
            "memory": [asdict(row) for row in self.rows if row.kind == "memory"],
        }


def evaluate(results: list[CaseResult], expectations: Expectations | None,
             skipped: dict[str, str] | None = None, confidence: float = CONFIDENCE,
             interrupted: bool = False) -> GateReport:
    """Judge every paired case; ``skipped`` maps case ids that did not run to why.

    An ``interrupted`` run is measured but not judged: every row is left unchecked.
    """
    report = GateReport(expectations, interrupted=interrupted)
    measured = set()
    for result in results:
        if result.reference is None:
            continue
        case = case_id(result.variant, result.scenario)
        measured.add(case)
        speedup = expectations.speedups.get(case) if expectations else None
        memory = expectations.memory.get(case) if expectations else None
        report.rows.append(speedup_row(result, speedup, result.confidence or confidence))
        memory_row_ = memory_row(result, memory)
        if memory_row_ is not None:
            report.rows.append(memory_row_)
    if interrupted:
        _leave_unchecked(report.rows, INTERRUPTED)
    elif _speedups_lack_rounds(report.rows):
        _leave_unchecked([row for row in report.rows if row.kind == "memory"], NO_SPEEDUP_JUDGED)
    if expectations is not None:
        not_selected = "not run: the run was interrupted" if interrupted else "not selected in this run"
        for case in sorted(set(expectations.speedups) - measured):
            report.not_run[case] = (skipped or {}).get(case, not_selected)
    return report


def _speedups_lack_rounds(rows: list[GateRow]) -> bool:
    """No speed-up got a verdict, and some got none for lack of rounds."""
    speedups = [row for row in rows if row.kind == "speed-up"]
    return not any(row.status != Status.UNCHECKED for row in speedups) and any(
        row.reason == TOO_FEW_ROUNDS for row in speedups)


def _leave_unchecked(rows: list[GateRow], reason: str) -> None:
    """Withdraw the verdicts of ``rows`` (their numbers and expectations stay, for the reader)."""
    for row in rows:
        if row.status != Status.UNCHECKED:
            row.status, row.reason = Status.UNCHECKED, reason


def speedup_row(result: CaseResult, expectation: Expectation | None, confidence: float = CONFIDENCE) -> GateRow:
    """One speed-up: its within-process estimate, the widened intervals, and the verdict on them
    (:func:`~diffperf.stats.ratios.judge_speedup`) in the band its variant declares or the expectation's
    (:meth:`Expectation.tolerance_for`), never narrower for ``ok`` than what the host resolves
    (:attr:`Expectation.resolves`)."""
    row = GateRow("speed-up", result.variant, result.reference, result.scenario, Status.UNCHECKED, family=result.family,
                  best_stack=result.best_stack, published=result.published, published_on=result.published_on)
    if not ratios.is_paired(len(result.reference_rounds), len(result.variant_rounds)):
        row.reason = NOT_MEASURED
        return row
    try:
        within = ratios.paired_ratio(result.reference_rounds, result.variant_rounds, confidence)
    except ratios.TooFewRounds as error:
        row.reason, row.n, row.min_rounds = TOO_FEW_ROUNDS, error.got, error.needed
        return row
    row.value, row.low, row.high, row.n, row.confidence = within.median, within.low, within.high, within.n, confidence
    if expectation is None:
        row.reason = NO_EXPECTATION
        return row
    if expectation.reference and expectation.reference != result.reference:
        row.status, row.reason, row.stored_reference = Status.ERROR, REFERENCE_CHANGED, expectation.reference
        return row
    if expectation.spread is None:
        row.reason = NO_SPREAD
        return row
    judged = ratios.across_processes(within, expectation.spread)
    ok_within = ratios.paired_ratio(result.reference_rounds, result.variant_rounds, ratios.ok_confidence(confidence))
    ok_judged = ratios.across_processes(ok_within, expectation.spread)
    resolves = expectation.resolves
    verdict = ratios.judge_speedup(judged, expectation.expected, expectation.tolerance_for(result.tolerance), ok_judged,
                                   resolves)
    row.status = verdict.status
    row.judged_low, row.judged_high, row.ok_low = judged.low, judged.high, ok_judged.low
    row.expected, row.tolerance, row.lower, row.upper = verdict.expected, verdict.tolerance, verdict.lower, verdict.upper
    row.resolution, row.ok_lower = resolves, verdict.ok_lower
    row.rounds_needed = ratios.rounds_to_decide(within, judged, verdict, ok_within, ok_judged)
    return row


#: Rounds advised for an inconclusive speed-up at most this many times the rounds it ran: more is advice no one
#: follows (a CPU case of 16 rounds takes about a minute; 500 rounds, half an hour).
ADVICE_FACTOR = 3


def advisable_rounds(row: GateRow) -> int | None:
    """The paired rounds that would likely decide an inconclusive speed-up, when they are within
    :data:`ADVICE_FACTOR` times the rounds it ran; None otherwise (it is inconclusive within the host's noise)."""
    if row.status != Status.INCONCLUSIVE or row.rounds_needed is None or row.n is None:
        return None
    return row.rounds_needed if row.rounds_needed <= ADVICE_FACTOR * row.n else None


@dataclass(frozen=True)
class Resolution:
    """What the host resolves over a run's speed-ups: ``band`` (a fraction) covers ``within`` of ``total`` of them,
    the rest (``wider``: case, band) need more."""

    band: float
    tolerance: float
    within: int
    total: int
    wider: list[tuple[str, float]]


#: The share of a run's speed-ups the host's resolution is stated for; the rest are named with their own.
RESOLUTION_SHARE = 0.8


def resolution(rows: list[GateRow]) -> Resolution | None:
    """The band the host resolves (the wider of the tolerance and :attr:`Expectation.resolves`) in at least
    :data:`RESOLUTION_SHARE` of the judged speed-ups of ``rows``, the widest cases named; None when none was judged
    against a spread."""
    bands = sorted((max(row.tolerance, row.resolution), row.case) for row in rows
                   if row.kind == "speed-up" and row.resolution is not None and row.tolerance is not None)
    if not bands:
        return None
    stated = bands[max(0, math.ceil(RESOLUTION_SHARE * len(bands)) - 1)][0]
    wider = [(case, band) for band, case in bands if band > stated]
    tolerance = min(row.tolerance for row in rows if row.kind == "speed-up" and row.tolerance is not None)
    return Resolution(stated, tolerance, len(bands) - len(wider), len(bands), wider)


def undecided(row: GateRow) -> bool:
    """Whether more rounds could decide the speed-up of ``row``: it is inconclusive and its within-process part,
    the part rounds shrink, keeps it on the band's edge (``rounds_needed``). Cases needing more rounds than a plan
    allows still get them: the estimate assumes the median stays where it is, and with more rounds it moves
    (in simulation, extending only those within reach left a third more cases inconclusive)."""
    return row.status == Status.INCONCLUSIVE and row.rounds_needed is not None


def settled(row: GateRow) -> bool:
    """Whether a case may stop at its early look (``--perf-min-rounds``): its speed-up is ``ok``, or ``inconclusive``
    with no rounds that could decide it (:func:`undecided`) and its median not below the band.

    The early look never ends a case ``regressed`` (nor ``improved``): a case that looks like either gets all its
    rounds and the verdict of the full design, so the look cannot raise the false-alarm rate. A case it stops could
    have been called regressed by its remaining rounds only if its median then fell from the band (or above it) to
    past the lower bound by more than the judged half-width, which is at least the between-process margin.
    """
    if row.status == Status.OK:
        return True
    return row.status == Status.INCONCLUSIVE and row.rounds_needed is None and row.value >= row.lower


def memory_row(result: CaseResult, expectation: Expectation | None) -> GateRow | None:
    """The peak-memory ratio of a case, judged when an expectation is stored; None when not measured."""
    if not result.peak_memory or not result.reference_peak_memory:
        return None
    value = ratios.memory_ratio(result.reference_peak_memory, result.peak_memory)
    row = GateRow("memory", result.variant, result.reference, result.scenario, Status.UNCHECKED, value=value,
                  family=result.family, best_stack=result.best_stack)
    if expectation is None:
        row.reason = NO_EXPECTATION
        return row
    verdict = ratios.judge_memory(value, expectation.expected, expectation.tolerance)
    row.status = verdict.status
    row.expected, row.tolerance, row.lower, row.upper = verdict.expected, verdict.tolerance, verdict.lower, verdict.upper
    return row
