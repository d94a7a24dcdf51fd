"""The end of a run: verdict lines, Markdown and exit status, including a gate that judged nothing."""

import pytest

from diffperf.gate import expectations
from diffperf.gate.outcome import judge_run
from diffperf.measure.host import Host
from diffperf.options import PerfOptions

from test_verdicts import paired_case

HOST = Host("cpu", "AMD EPYC", "2t", {"arch": "x86_64", "torch": "2.13.0+cpu"})
SPEEDUP = {"reference": "baseline", "expected": 1.5, "tolerance": 0.03, "run_sd": 0.01, "between_sd": 0.005,
           "processes": 10, "half_width": 0.02}


@pytest.fixture
def baselines(tmp_path):
    expectations.record(tmp_path, "tiny", "hosts", HOST.key, {"fingerprint": HOST.fingerprint,
                        "calibration": {"processes": 10, "date": "2026-11-25"}},
                        {"distilled/astronaut": SPEEDUP}, {})
    return tmp_path


def outcome(results, baselines, **options):
    options = PerfOptions(baselines_dir=str(baselines), baselines_given=True, **options)
    return judge_run(results, {}, HOST, "tiny", 12, options)


def test_regression_fails_the_run_and_names_the_case(baselines):
    result = outcome([paired_case(1.5, slowdown=0.3)], baselines)
    assert result.exit_code == pytest.ExitCode.TESTS_FAILED
    assert result.lines[-1] == "speed-up gate: FAILED (1 regressed)"
    assert any(line.startswith("  REGRESSED: speed-up distilled/astronaut:") for line in result.lines)
    assert result.markdown.startswith("## diffperf speed-up gate: ❌ FAILED")
    assert f"this host's calibration ({HOST.key}, 10 processes, 2026-11-25)" in result.lines[0]


def test_no_gate_reports_but_does_not_fail(baselines):
    assert outcome([paired_case(1.5, slowdown=0.3)], baselines, no_gate=True).exit_code is None


def test_unchanged_run_passes(baselines):
    result = outcome([paired_case(1.5)], baselines)
    assert (result.exit_code, result.lines[-1]) == (None, "speed-up gate: passed (1 ok)")


def test_too_few_rounds_judges_nothing_and_is_a_usage_error_when_asked_for(baselines):
    result = outcome([paired_case(1.5, n=3)], baselines, rounds=3)
    assert result.lines[-1] == "speed-up gate: nothing judged (3 rounds give no 95% interval, at least 6 needed)"
    assert result.exit_code == pytest.ExitCode.USAGE_ERROR


def test_no_expectations_judges_nothing_and_says_how_to_calibrate(tmp_path):
    result = outcome([paired_case(1.5)], tmp_path)
    assert result.lines[-1] == "speed-up gate: nothing judged (no expectations for this host)"
    assert f"diffperf calibrate --baselines {tmp_path}" in result.lines[0]
    assert result.exit_code is None


def test_unreadable_expectations_fail_with_one_line(tmp_path):
    path = expectations.expectations_path(tmp_path, "tiny")
    path.parent.mkdir(parents=True)
    path.write_text("{truncated")
    result = outcome([paired_case(1.5)], tmp_path)
    assert result.exit_code == pytest.ExitCode.TESTS_FAILED
    assert "is not valid JSON" in result.lines[0] and "restore it from git" in result.lines[0]


def test_an_overridden_workload_is_not_judged_against_expectations_for_another(baselines):
    result = outcome([paired_case(1.5, slowdown=0.3)], baselines, steps=1)
    assert result.exit_code is None
    assert result.lines[-1] == "speed-up gate: nothing judged (workload overridden)"


def test_a_record_merged_from_calibrations_of_different_sizes_says_both(baselines):
    expectations.record(baselines, "tiny", "hosts", HOST.key, {"fingerprint": HOST.fingerprint,
                        "calibration": {"processes": 5, "date": "2026-11-25"}},
                        {"tome/astronaut": dict(SPEEDUP, processes=5)}, {})
    result = outcome([paired_case(1.5)], baselines)
    assert f"this host's calibration ({HOST.key}, 5-10 processes, 2026-11-25)" in result.lines[0]
