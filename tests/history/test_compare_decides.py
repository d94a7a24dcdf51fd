"""compare decides where the data allow: a calibrated host's spread for one-run speed-ups, moderated variances."""

from __future__ import annotations


import historydata as hd
import pytest

from diffperf.cli import NOTHING_TESTED, main
from diffperf.gate import expectations
from diffperf.history import compare
from diffperf.history.compare import calibrated_spreads, compare_runs, compare_sides
from diffperf.history.runs import run_from_dict

HOST_KEY = "cpu-amd-epyc-2t-55e82777"
CALIBRATED = {"reference": "baseline", "expected": 1.5, "tolerance": 0.03, "run_sd": 0.02, "between_sd": 0.01,
              "processes": 10, "half_width": 0.02, "host_run_sd": 0.025, "host_between_sd": 0.01}


def on_host(document: dict) -> dict:
    document["machine_info"]["diffperf"]["host_key"] = HOST_KEY
    return document


def run(document: dict, label: str):
    return run_from_dict(document, source=label, label=label)


@pytest.fixture
def baselines(tmp_path):
    expectations.record(tmp_path / "baselines", "tiny", "hosts", HOST_KEY, {"calibration": {"processes": 10}},
                        {"distilled/astronaut": dict(CALIBRATED),
                         "distilled-taesd/astronaut": dict(CALIBRATED, reference="distilled", expected=1.2)}, {})
    return tmp_path / "baselines"


def test_one_run_per_side_on_a_calibrated_host_decides_the_speed_ups(baselines):
    old = run(on_host(hd.standard_run(seed=0)), "old.json")
    calibration = calibrated_spreads([old], baselines)
    assert set(calibration) == {"distilled/astronaut", "distilled-taesd/astronaut"}
    sd, df = calibration["distilled/astronaut"]
    assert df == 18 and sd == pytest.approx(((0.02**2 + 0.025**2) / 2) ** 0.5)

    slowed = run(on_host(hd.standard_run(slowdown=1.3, seed=100, scale=1.2)), "slow.json")
    distilled = {case.variant: case for case in compare_runs(old, slowed, calibration=calibration).cases}["distilled"]
    assert distilled.speedup.status == compare.LOWER and distilled.speedup.priors == (compare.CALIBRATION,)
    assert distilled.latency.status == compare.UNTESTED  # latency has no calibrated spread: it needs --history

    unchanged = run(on_host(hd.standard_run(seed=200, scale=1.2)), "unchanged.json")
    comparison = compare_runs(old, unchanged, calibration=calibration)
    assert comparison.regressed == []
    assert all(case.speedup.priors == (compare.CALIBRATION,) for case in comparison.cases if case.speedup)


def test_another_host_or_an_uncalibrated_one_borrows_nothing(baselines):
    other = on_host(hd.standard_run(seed=0))
    other["machine_info"]["diffperf"]["host_key"] = "cpu-intel-2t-00000000"
    assert calibrated_spreads([run(other, "a.json")], baselines) == {}
    assert calibrated_spreads([run(on_host(hd.standard_run(seed=0)), "a.json")], baselines.parent / "none") == {}


def test_two_runs_that_agree_by_chance_are_not_taken_at_face_value():

    documents = hd.process_runs(2, seed=0, run_cv=0.03)
    documents[1]["benchmarks"][1] = documents[0]["benchmarks"][1]  # distilled: the two base runs agree exactly
    base = [run(document, f"base{i}.json") for i, document in enumerate(documents)]
    head = [run(hd.standard_run(seed=500), "head.json")]
    change = {case.variant: case for case in compare_sides(base, head).cases}["distilled"].speedup
    assert change.priors == (compare.ALL_CASES,) and (change.history_df, change.df) == (1, 2)
    assert change.low < change.ratio < change.high  # an interval, not a point


def test_fail_on_regression_with_nothing_testable_has_its_own_exit_status(tmp_path, baselines, capsys):
    old = hd.write(tmp_path / "old.json", on_host(hd.standard_run(seed=0)))
    slow = hd.write(tmp_path / "slow.json", on_host(hd.standard_run(slowdown=1.3, seed=100)))
    empty = tmp_path / "no-baselines"
    assert main(["compare", str(old), str(slow), "--fail-on-regression", "--baselines", str(empty)]) == NOTHING_TESTED
    assert "no change could be tested" in capsys.readouterr().err
    assert main(["compare", str(old), str(slow), "--fail-on-regression", "--baselines", str(baselines)]) == 1
