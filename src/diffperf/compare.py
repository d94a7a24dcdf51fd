"""Compare saved runs: per variant, the latency change and the speed-up change, with a verdict.

For each ``(variant, scenario)`` present in an older run A and a newer run B of the same profile
and hardware:

Latency change
    From the raw rounds (``stats.data``) of both runs:
    :func:`diffperf.ratios.unpaired_ratio` (A's rounds, B's rounds) estimates the speed factor
    ``median(A) / median(B)`` with a percentile-bootstrap interval; it is shown as the time change
    ``B / A - 1``. :func:`diffperf.ratios.judge_speedup` against 1 with the threshold (default
    5%) gives the verdict: "slower" only when the *whole* interval lies beyond the threshold,
    "no change" when it lies inside it, otherwise "inconclusive". Because a bootstrap interval
    is only approximate with few rounds, "slower"/"faster" also needs a two-sided Mann-Whitney U
    test (exact for small samples) on the two runs' rounds to reject "same distribution" at
    ``1 - confidence``.

Speed-up change
    Each run's speed-up is the median of its per-pair ratios ``reference_i / variant_i``
    (interleaved rounds, drift cancels) with the exact order-statistic interval of
    :func:`diffperf.ratios.paired_ratio`. The change ``median(B's ratios) / median(A's ratios)``
    is estimated from the two independent samples of pair ratios with
    :func:`~diffperf.ratios.unpaired_ratio`, judged like the latency change ("lower" / "higher"
    / "no change" / "inconclusive") and backed by a Mann-Whitney U test on the pair ratios.

Without raw rounds (``--benchmark-autosave`` without ``--benchmark-save-data``) there is no
test: the change of the stored medians is shown with status "untested" and a note saying so.
Within-run intervals cannot see run-to-run (between-session) variation; the threshold is there
to absorb it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from diffperf import ratios
from diffperf.history import SAVE_DATA_HINT, Case, HistoryError, MachineKey, Run, group_by_machine
from diffperf.table import Column, Table, status_cell
from diffperf.table import seconds as _ms
from diffperf.table import signed_change as _signed

__all__ = [
    "CONFIDENCE",
    "THRESHOLD",
    "CaseComparison",
    "Change",
    "Comparison",
    "Level",
    "compare_runs",
    "compare_many",
    "comparison_tables",
    "latency_change",
    "latency_level",
    "speedup_change",
    "speedup_level",
]

CONFIDENCE = 0.95
THRESHOLD = 0.05

LATENCY_WORDS = {"regressed": "slower", "improved": "faster", "ok": "no change", "inconclusive": "inconclusive"}
SPEEDUP_WORDS = {"regressed": "lower", "improved": "higher", "ok": "no change", "inconclusive": "inconclusive"}
REGRESSIONS = ("slower", "lower")


@dataclass(frozen=True)
class Level:
    """One run's value of a metric (latency in seconds, or a speed-up) with its interval."""

    value: float
    low: float | None = None
    high: float | None = None
    interval: str = ""  # "95% CI", "IQR", "gate 95% CI", "" (none)
    n: int | None = None

    def describe(self, fmt) -> str:
        text = fmt(self.value)
        if self.low is not None and self.high is not None:
            text += f" [{fmt(self.low)}, {fmt(self.high)}]"
        return text


@dataclass(frozen=True)
class Change:
    """How a metric changed from the old run to the new one (``ratio`` = new / old)."""

    ratio: float
    low: float | None
    high: float | None
    p_value: float | None
    status: str  # slower|faster (latency), lower|higher (speed-up), no change, inconclusive, untested
    note: str  # one line

    @property
    def tested(self) -> bool:
        return self.status != "untested"


@dataclass
class CaseComparison:
    variant: str
    scenario: str
    reference: str | None
    old_latency: Level
    new_latency: Level
    latency: Change
    old_speedup: Level | None = None
    new_speedup: Level | None = None
    speedup: Change | None = None

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.scenario}" if self.scenario else self.variant

    @property
    def regressions(self) -> list[str]:
        found = []
        if self.latency.status in REGRESSIONS:
            found.append(self.latency.note)
        if self.speedup is not None and self.speedup.status in REGRESSIONS:
            found.append(self.speedup.note)
        return found


@dataclass
class Comparison:
    old: Run
    new: Run
    cases: list[CaseComparison]
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    confidence: float = CONFIDENCE
    threshold: float = THRESHOLD

    @property
    def machine(self) -> MachineKey:
        return self.new.machine

    @property
    def regressions(self) -> list[str]:
        return [f"{case.label}: {text}" for case in self.cases for text in case.regressions]

    @property
    def untested(self) -> int:
        return sum(
            (not case.latency.tested) + (case.speedup is not None and not case.speedup.tested)
            for case in self.cases
        )


# --------------------------------------------------------------------------- per-run levels


def latency_level(case: Case, confidence: float = CONFIDENCE) -> Level:
    """A case's median time with the exact distribution-free CI of the median from raw rounds.

    Without raw rounds (or with too few for the interval) the stored quartiles are the interval
    (``interval == "IQR"``).
    """
    if case.data and len(case.data) >= ratios.min_pairs(confidence):
        data = np.asarray(case.data)
        median = float(np.median(data))
        ci = stats.quantile_test(data, q=median, p=0.5).confidence_interval(confidence_level=confidence)
        return Level(median, float(ci.low), float(ci.high), f"{_pct(confidence)} CI", len(data))
    q1, q3 = case.stats.get("q1"), case.stats.get("q3")
    if isinstance(q1, (int, float)) and isinstance(q3, (int, float)):
        return Level(case.median, float(q1), float(q3), "IQR", case.rounds)
    return Level(case.median, None, None, "", case.rounds)


def speedup_level(case: Case, run: Run | None = None, confidence: float = CONFIDENCE) -> Level | None:
    """A case's speed-up over its reference in one run, with the best interval the file allows.

    Paired raw rounds give :func:`~diffperf.ratios.paired_ratio`'s exact interval; otherwise the
    speed-up gate's stored interval (the file's top-level ``diffperf`` key); otherwise a ratio of
    medians without an interval. None for a case with no reference.
    """
    if case.reference is None:
        return None
    if case.paired and len(case.data) >= ratios.min_pairs(confidence):
        estimate = ratios.paired_ratio(case.reference_rounds, case.data, confidence)
        return Level(estimate.median, estimate.low, estimate.high, f"{_pct(confidence)} CI", estimate.n)
    if run is not None:
        for row in run.gate_rows("speedups"):
            if row.get("variant") == case.variant and row.get("scenario") == case.scenario:
                value = row.get("median", row.get("value"))
                if isinstance(value, (int, float)) and value > 0:
                    low, high = row.get("low"), row.get("high")
                    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                        return Level(float(value), float(low), float(high), "gate CI", row.get("n"))
                    return Level(float(value), interval="gate", n=row.get("n"))
    if case.reference_rounds:
        return Level(float(np.median(case.reference_rounds)) / case.median, interval="", n=None)
    if run is not None:
        reference = run.by_key.get((case.reference, case.scenario))
        if reference is not None:
            return Level(reference.median / case.median)
    return None


# --------------------------------------------------------------------------- changes


def latency_change(old: Case, new: Case, old_label: str = "old run", new_label: str = "new run",
                   confidence: float = CONFIDENCE, threshold: float = THRESHOLD) -> Change:
    """The change of a case's latency between two runs (see the module docstring)."""
    missing = [label for label, case in ((old_label, old), (new_label, new)) if not case.has_raw]
    fallback_ratio = new.median / old.median
    if missing:
        spread = ""
        if all(isinstance(c.stats.get("iqr"), (int, float)) for c in (old, new)):
            spread = f", IQR {_ms(old.stats['iqr'])} -> {_ms(new.stats['iqr'])}"
        return Change(
            fallback_ratio, None, None, None, "untested",
            f"no raw data in {' and '.join(missing)}: no significance test "
            f"(medians {_ms(old.median)} -> {_ms(new.median)}{spread}; {SAVE_DATA_HINT})",
        )
    try:
        estimate = ratios.unpaired_ratio(old.data, new.data, confidence)
    except ratios.TooFewRounds as error:
        return Change(fallback_ratio, None, None, None, "untested", f"no significance test: {error}")
    p_value = float(stats.mannwhitneyu(old.data, new.data, alternative="two-sided").pvalue)
    verdict = ratios.judge_speedup(estimate, 1.0, threshold)
    # estimate is the speed factor old/new; the time ratio new/old is its reciprocal.
    ratio, low, high = 1 / estimate.median, 1 / estimate.high, 1 / estimate.low
    return _change(ratio, low, high, p_value, verdict, LATENCY_WORDS, "latency", confidence, threshold)


def speedup_change(old: Case, new: Case, old_run: Run | None = None, new_run: Run | None = None,
                   confidence: float = CONFIDENCE, threshold: float = THRESHOLD) -> tuple[
                       Level | None, Level | None, Change | None]:
    """Each run's speed-up and the change between them; ``(None, None, None)`` without a reference."""
    if old.reference is None and new.reference is None:
        return None, None, None
    old_level = speedup_level(old, old_run, confidence)
    new_level = speedup_level(new, new_run, confidence)
    if old.reference != new.reference:
        note = f"reference changed from {old.reference} to {new.reference}: speed-ups not comparable"
        ratio = new_level.value / old_level.value if old_level and new_level else float("nan")
        return old_level, new_level, Change(ratio, None, None, None, "untested", note)
    if old_level is None or new_level is None:
        return old_level, new_level, None
    needed = ratios.min_pairs(confidence)
    if not (old.paired and new.paired):
        names = " and ".join(run.label if run is not None else label
                             for label, case, run in (("old run", old, old_run), ("new run", new, new_run))
                             if not case.paired)
        return old_level, new_level, Change(
            new_level.value / old_level.value, None, None, None, "untested",
            f"no raw paired rounds in {names}: no significance test ({SAVE_DATA_HINT})",
        )
    old_ratios = np.asarray(old.reference_rounds) / np.asarray(old.data)
    new_ratios = np.asarray(new.reference_rounds) / np.asarray(new.data)
    if min(old_ratios.size, new_ratios.size) < needed:
        error = ratios.TooFewRounds(needed, int(min(old_ratios.size, new_ratios.size)), confidence)
        return old_level, new_level, Change(
            new_level.value / old_level.value, None, None, None, "untested", f"no significance test: {error}"
        )
    estimate = ratios.unpaired_ratio(new_ratios, old_ratios, confidence)  # median(new) / median(old)
    p_value = float(stats.mannwhitneyu(old_ratios, new_ratios, alternative="two-sided").pvalue)
    verdict = ratios.judge_speedup(estimate, 1.0, threshold)
    change = _change(estimate.median, estimate.low, estimate.high, p_value, verdict, SPEEDUP_WORDS,
                     "speed-up", confidence, threshold)
    return old_level, new_level, change


def _change(ratio, low, high, p_value, verdict, words, what, confidence, threshold) -> Change:
    alpha = 1 - confidence
    status = words[verdict.status]
    measured = f"{what} {_signed(ratio)} [{_signed(low)}, {_signed(high)}], Mann-Whitney p = {p_value:.2g}"
    band = f"the ±{_pct(threshold)} threshold"
    if status in ("slower", "faster", "lower", "higher") and p_value >= alpha:
        return Change(ratio, low, high, p_value, "inconclusive",
                      f"{measured}: interval beyond {band} but not significant (p >= {alpha:.2g})")
    if status == "no change":
        note = f"{measured}: interval within {band}"
    elif status == "inconclusive":
        note = f"{measured}: the {_pct(confidence)} interval straddles {band}"
        if verdict.rounds_needed:
            note += f"; about {verdict.rounds_needed} rounds per run would decide"
    else:
        note = f"{measured}: {status} beyond {band}"
    return Change(ratio, low, high, p_value, status, note)


# --------------------------------------------------------------------------- runs


def compare_runs(old: Run, new: Run, confidence: float = CONFIDENCE, threshold: float = THRESHOLD) -> Comparison:
    """Compare every case the two runs share; :class:`HistoryError` when they share none."""
    old_cases, new_cases = old.by_key, new.by_key
    common = [key for key in new_cases if key in old_cases]
    if not common:
        raise HistoryError(
            f"no variant in common between {old.label} ({_names(old_cases.values())}) "
            f"and {new.label} ({_names(new_cases.values())})"
        )
    cases = []
    for key in common:
        a, b = old_cases[key], new_cases[key]
        old_speedup, new_speedup, speedup = speedup_change(a, b, old, new, confidence, threshold)
        cases.append(CaseComparison(
            variant=b.variant,
            scenario=b.scenario,
            reference=b.reference,
            old_latency=latency_level(a, confidence),
            new_latency=latency_level(b, confidence),
            latency=latency_change(a, b, old.label, new.label, confidence, threshold),
            old_speedup=old_speedup,
            new_speedup=new_speedup,
            speedup=speedup,
        ))
    return Comparison(
        old, new, cases,
        only_old=[case.label for key, case in old_cases.items() if key not in new_cases],
        only_new=[case.label for key, case in new_cases.items() if key not in old_cases],
        confidence=confidence,
        threshold=threshold,
    )


def compare_many(runs: list[Run], confidence: float = CONFIDENCE,
                 threshold: float = THRESHOLD) -> tuple[list[Comparison], list[str]]:
    """Compare each run with the first run of the same profile and hardware; returns (comparisons, warnings)."""
    groups = group_by_machine(runs)
    warnings = []
    if len(groups) > 1:
        warnings.append(
            f"runs from {len(groups)} different profiles/hardware: each is compared only with runs "
            "of the same profile and hardware: "
            + "; ".join(f"{key}: {', '.join(r.label for r in members)}" for key, members in groups.items())
        )
    comparisons = []
    for key, members in groups.items():
        if len(members) < 2:
            if len(groups) > 1:
                warnings.append(f"{members[0].label} ({key}) has no other run of the same profile and hardware")
            continue
        base = members[0]
        comparisons += [compare_runs(base, other, confidence, threshold) for other in members[1:]]
    if not comparisons:
        raise HistoryError(
            "nothing to compare: no two runs share a profile and hardware ("
            + "; ".join(f"{r.label}: {r.machine}" for r in runs) + ")"
        )
    return comparisons, warnings


# --------------------------------------------------------------------------- tables


def comparison_tables(comparison: Comparison) -> list[Table]:
    """The latency table and (when any case has a reference) the speed-up table."""
    c = comparison
    where = f"{c.old.label} ({c.old.commit_label}, {c.old.when_label}) -> {c.new.label} " \
            f"({c.new.commit_label}, {c.new.when_label}); {c.machine}"
    ci = f"{_pct(c.confidence)} CI"
    latency = Table(
        title=f"Latency: {where}",
        columns=[Column("variant"), Column("scenario"), Column("old", "right", min_width=8),
                 Column("new", "right", min_width=8), Column(f"time change [{ci}]", "right", min_width=9),
                 Column("p", "right", wrap=False), Column("verdict", wrap=False, min_width=7)],
    )
    speedup = Table(
        title=f"Speed-up over reference: {where}",
        columns=[Column("variant vs reference"), Column("scenario"),
                 Column(f"old [{ci}]", "right", min_width=8), Column(f"new [{ci}]", "right", min_width=8),
                 Column(f"change [{ci}]", "right", min_width=9),
                 Column("p", "right", wrap=False), Column("verdict", wrap=False, min_width=7)],
    )
    for case in c.cases:
        latency.rows.append([
            case.variant, case.scenario or "-", _ms(case.old_latency.value), _ms(case.new_latency.value),
            _change_text(case.latency), _p(case.latency), status_cell(case.latency.status),
        ])
        if case.latency.status in ("untested", "inconclusive") or case.latency.status in REGRESSIONS:
            latency.notes.append(f"{case.label}: {case.latency.note}")
        if case.speedup is not None or case.old_speedup is not None or case.new_speedup is not None:
            speed = case.speedup
            speedup.rows.append([
                f"{case.variant}\nvs {case.reference or '-'}", case.scenario or "-",
                _speedup_text(case.old_speedup), _speedup_text(case.new_speedup),
                _change_text(speed) if speed else "-", _p(speed) if speed else "-",
                status_cell(speed.status if speed else "untested"),
            ])
            if speed is not None and (speed.status in ("untested", "inconclusive") or speed.status in REGRESSIONS):
                speedup.notes.append(f"{case.label}: {speed.note}")
    summary = _summary([case.latency for case in c.cases])
    latency.notes.append(f"{summary}; threshold ±{_pct(c.threshold)}, verdicts need the whole interval "
                         f"beyond it and Mann-Whitney p < {1 - c.confidence:.2g}")
    if c.only_old:
        latency.notes.append(f"only in {c.old.label}: {', '.join(c.only_old)}")
    if c.only_new:
        latency.notes.append(f"only in {c.new.label}: {', '.join(c.only_new)}")
    tables = [latency]
    if speedup.rows:
        speedup.notes.append(_summary([case.speedup for case in c.cases if case.speedup is not None]))
        tables.append(speedup)
    return tables


def _speedup_text(level: Level | None) -> str:
    if level is None:
        return "-"
    text = f"{level.value:.3f}x"
    if level.low is not None and level.high is not None:
        text += f"\n[{level.low:.3f}, {level.high:.3f}]"
    return text


def _summary(changes: list[Change]) -> str:
    order = ["slower", "lower", "faster", "higher", "no change", "inconclusive", "untested"]
    counts = {status: sum(change.status == status for change in changes) for status in order}
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "nothing compared"


def _change_text(change: Change) -> str:
    if change.ratio != change.ratio:  # NaN
        return "-"
    text = _signed(change.ratio)
    if change.low is not None and change.high is not None:
        text += f"\n[{_signed(change.low)}, {_signed(change.high)}]"
    return text


def _p(change: Change | None) -> str:
    return "-" if change is None or change.p_value is None else f"{change.p_value:.2g}"


def _names(cases) -> str:
    labels = sorted({case.label for case in cases})
    shown = ", ".join(labels[:8]) + (f", ... ({len(labels)} in all)" if len(labels) > 8 else "")
    return shown or "no benchmarks"


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100, 6):g}%"


def _x(value: float) -> str:
    return f"{value:.3f}x"
