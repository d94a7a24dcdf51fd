"""The speed-up gate on synthetic paired rounds: verdicts are numbers and statuses."""

import math

import numpy as np
import pytest

from diffperf.gate import verdicts
from diffperf.gate.expectations import HOST, Expectation, Expectations
from diffperf.stats.ratios import ProcessSpread, between_process_margin

SPREAD = ProcessSpread(expected=1.5, run_sd=0.01, between_sd=0.005, processes=10, half_width=0.01)


def paired_case(speedup, slowdown=0.0, n=12, noise=0.01, seed=0, variant="distilled", scenario="astronaut"):
    """Reference and variant rounds with a shared drift, the variant ``speedup`` times faster."""
    rng = np.random.default_rng(seed)
    drift = 1 + 0.05 * np.sin(np.arange(n))  # shared by both members of a pair
    reference = 0.2 * drift * np.exp(rng.normal(0, noise, n))
    variant_times = 0.2 / speedup * (1 + slowdown) * drift * np.exp(rng.normal(0, noise, n))
    return verdicts.CaseResult(variant, "baseline", scenario, list(variant_times), list(reference), 100, 200)


def stored(expected=1.5, tolerance=0.05, memory=0.5, spread=SPREAD):
    return Expectations(
        key="cpu-test-2t-00000000",
        source=HOST,
        calibration={"processes": 10},
        speedups={"distilled/astronaut": Expectation("baseline", expected, tolerance, spread)},
        memory={"distilled/astronaut": Expectation("baseline", memory, 0.1)},
    )


def row_of(report, kind="speed-up"):
    return next(row for row in report.rows if row.kind == kind)


@pytest.mark.parametrize("slowdown", [0.10, 0.20, 0.30])
def test_planted_slowdown_fails_the_gate(slowdown):
    report = verdicts.evaluate([paired_case(1.5, slowdown)], stored())
    row = row_of(report)
    assert row.status == "regressed"
    assert report.failed
    assert row.judged_high < row.lower == pytest.approx(1.5 * 0.95)
    assert row.value == pytest.approx(1.5 / (1 + slowdown), rel=0.02)


def test_unchanged_run_passes_and_the_judged_interval_holds_the_between_process_part():
    row = row_of(verdicts.evaluate([paired_case(1.5)], stored()))
    assert row.status == "ok"
    assert row.low <= 1.5 <= row.high
    margin = between_process_margin(SPREAD)
    assert math.log(row.value / row.judged_low) == pytest.approx(math.hypot(math.log(row.value / row.low), margin))
    assert row.judged_low < row.low and row.judged_high > row.high


def test_a_wide_between_process_spread_turns_a_confident_regression_into_inconclusive():
    wide = ProcessSpread(expected=1.5, run_sd=0.06, between_sd=0.06, processes=10, half_width=0.01)
    case = paired_case(1.5, slowdown=0.10)
    assert row_of(verdicts.evaluate([case], stored(spread=SPREAD))).status == "regressed"
    row = row_of(verdicts.evaluate([case], stored(spread=wide)))
    assert row.status == "inconclusive"
    assert row.rounds_needed is None  # more rounds cannot beat the between-process spread


def test_a_case_settles_early_only_within_its_band_or_on_an_edge_no_rounds_can_settle_from_inside():
    wide = ProcessSpread(expected=1.5, run_sd=0.06, between_sd=0.06, processes=10, half_width=0.01)
    cases = {  # (slowdown, spread) -> settled
        (0.0, SPREAD): True,  # ok
        (0.10, SPREAD): False,  # regressed: the full rounds judge it
        (-0.3, SPREAD): False,  # improved: not claimed early either
        (0.03, wide): True,  # inconclusive, median inside the band, the between-process part past its edge
        (0.10, wide): False,  # the same, median below the band: a suspected regression gets its rounds
    }
    for (slowdown, spread), expected in cases.items():
        row = row_of(verdicts.evaluate([paired_case(1.5, slowdown=slowdown)], stored(spread=spread)))
        assert verdicts.settled(row) is expected, (slowdown, row.status, row.value, row.lower)
    unchecked = row_of(verdicts.evaluate([paired_case(1.5)], None))
    assert not verdicts.settled(unchecked)
    undecided = verdicts.evaluate([paired_case(1.5, n=6, noise=0.05)], stored())  # rounds could decide it
    assert verdicts.undecided(row_of(undecided)) and not verdicts.settled(row_of(undecided))


def test_faster_run_is_improved_and_does_not_fail():
    report = verdicts.evaluate([paired_case(1.5, slowdown=-0.3)], stored())
    assert row_of(report).status == "improved"
    assert not report.failed


def test_too_few_rounds_gives_no_verdict_and_the_numbers_to_fix_it():
    report = verdicts.evaluate([paired_case(1.5, n=4)], stored())
    row = row_of(report)
    assert (row.status, row.reason, row.n, row.min_rounds) == ("unchecked", verdicts.TOO_FEW_ROUNDS, 4, 6)
    # The memory ratio needs no rounds, but a run whose speed-ups cannot be judged judges nothing.
    memory = row_of(report, "memory")
    assert (memory.status, memory.reason, memory.expected) == ("unchecked", verdicts.NO_SPEEDUP_JUDGED, 0.5)
    assert not report.failed and report.judged == []


def test_nothing_timed_is_not_measured():
    case = paired_case(1.5)
    case.variant_rounds, case.reference_rounds = [], []  # --benchmark-disable: nothing was timed
    row = row_of(verdicts.evaluate([case], stored()))
    assert (row.status, row.reason) == ("unchecked", verdicts.NOT_MEASURED)


def test_memory_ratio_regression_fails():
    case = paired_case(1.5)
    case.peak_memory = 200  # lost the memory saving: ratio 1.0 against expected 0.5
    row = row_of(verdicts.evaluate([case], stored()), kind="memory")
    assert row.status == "regressed"
    assert row.value == pytest.approx(1.0)


def test_no_expectations_gates_nothing():
    report = verdicts.evaluate([paired_case(1.5, slowdown=0.5)], None)
    assert {row.status for row in report.rows} == {"unchecked"}
    assert {row.reason for row in report.rows} == {verdicts.NO_EXPECTATION}
    assert not report.failed and not report.judged


def test_expectation_without_spread_is_not_judged():
    row = row_of(verdicts.evaluate([paired_case(1.5, slowdown=0.5)], stored(spread=None)))
    assert (row.status, row.reason) == ("unchecked", verdicts.NO_SPREAD)


def test_stored_case_that_did_not_run_is_reported():
    other = paired_case(1.5, scenario="vase")
    report = verdicts.evaluate([other], stored(), skipped={"distilled/astronaut": "needs a CUDA GPU"})
    assert report.not_run == {"distilled/astronaut": "needs a CUDA GPU"}


def test_reference_changed_since_recording_is_an_error():
    case = paired_case(1.5)
    case.reference = "fp16"
    row = row_of(verdicts.evaluate([case], stored()))
    assert (row.status, row.reason, row.stored_reference) == ("error", verdicts.REFERENCE_CHANGED, "baseline")


def test_json_has_numbers_and_the_source():
    report = verdicts.evaluate([paired_case(1.5, 0.3)], stored())
    document = report.to_json()
    assert document["failed"] is True and document["baseline_key"] == "cpu-test-2t-00000000"
    assert document["baseline_source"] == HOST
    (speedup,) = document["speedups"]
    assert speedup["status"] == "regressed" and speedup["judged_high"] < speedup["lower"]
    assert "message" not in speedup


NOISY = ProcessSpread(expected=1.5, run_sd=0.03, between_sd=0.015, processes=10, half_width=0.06)


def test_a_noisy_host_shows_ok_within_what_it_resolves_and_regressed_stays_at_the_tolerance():
    expectation = stored(tolerance=0.03, spread=NOISY).speedups["distilled/astronaut"]
    assert expectation.resolves > 0.03  # this host cannot resolve +-3%
    clean = row_of(verdicts.evaluate([paired_case(1.5, slowdown=0.02, n=16, noise=0.03)], stored(tolerance=0.03, spread=NOISY)))
    assert clean.status == "ok" and clean.judged_low < clean.lower  # a 95% interval past the 3% edge, yet ok
    assert clean.ok_lower == pytest.approx(1.5 * (1 - expectation.resolves))
    assert clean.ok_low >= clean.ok_lower and clean.resolution == expectation.resolves
    slow = row_of(verdicts.evaluate([paired_case(1.5, slowdown=0.25, n=16)], stored(tolerance=0.03, spread=NOISY)))
    assert slow.status == "regressed" and slow.lower == pytest.approx(1.5 * 0.97)


def test_a_declared_tolerance_replaces_the_host_s_and_never_narrows_portable_bands():
    case = paired_case(1.5, slowdown=0.08)
    case.tolerance = 0.10
    row = row_of(verdicts.evaluate([case], stored(tolerance=0.03)))
    assert row.tolerance == 0.10 and row.status == "ok"
    portable = Expectation("baseline", 1.5, 0.08, SPREAD, floor=True)
    assert portable.tolerance_for(0.02) == 0.08 and portable.tolerance_for(0.12) == 0.12
    assert portable.tolerance_for(None) == 0.08


def test_rounds_are_advised_only_within_reach():
    row = verdicts.GateRow("speed-up", "v", "r", "s", "inconclusive", n=16, rounds_needed=40)
    assert verdicts.advisable_rounds(row) == 40
    row.rounds_needed = 530
    assert verdicts.advisable_rounds(row) is None
    row.status, row.rounds_needed = "ok", 20
    assert verdicts.advisable_rounds(row) is None


def test_resolution_states_the_band_of_most_speed_ups_and_names_the_wider():
    rows = [verdicts.GateRow("speed-up", f"v{i}", "r", "s", "ok", tolerance=0.03, resolution=band)
            for i, band in enumerate([0.02, 0.07, 0.08, 0.08, 0.09, 0.09, 0.09, 0.09, 0.11, 0.17])]
    found = verdicts.resolution(rows + [verdicts.GateRow("memory", "m", "r", "s", "ok", tolerance=0.05)])
    assert (found.band, found.within, found.total) == (0.09, 8, 10)
    assert found.wider == [("v8/s", 0.11), ("v9/s", 0.17)]
    quiet = verdicts.resolution([verdicts.GateRow("speed-up", "v", "r", "s", "ok", tolerance=0.03, resolution=0.02)])
    assert (quiet.band, quiet.within, quiet.wider) == (0.03, 1, [])
    assert verdicts.resolution([]) is None
