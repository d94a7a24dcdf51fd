"""The end of a run: verdict lines, Markdown and exit status, including a gate that judged nothing."""

import pytest

from diffperf.gate import expectations
from diffperf.measure.host import Host
from diffperf.options import PerfOptions
from diffperf.run_end import Measured, judge

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


def flat(result) -> str:
    """The gate's lines as one string, folded lines joined (the terminal folds them at 120 columns)."""
    return " ".join(line.strip() for line in result.lines)


def outcome(results, baselines, **options):
    options = PerfOptions(baselines_dir=str(baselines), baselines_given=True, **options)
    return judge(Measured(results, {}, [], HOST, "tiny"), options)


def test_regression_fails_the_run_and_names_the_case(baselines):
    result = outcome([paired_case(1.5, slowdown=0.3)], baselines)
    assert result.exit_code == pytest.ExitCode.TESTS_FAILED
    assert result.lines[-1] == "speed-up gate: FAILED (1 regressed)"
    assert any(line.startswith("  REGRESSED: speed-up distilled/astronaut:") for line in result.lines)
    assert result.markdown.startswith("## diffperf speed-up gate: ❌ FAILED")
    assert f"this host's calibration ({HOST.key}, 10 processes, 2026-11-25)" in flat(result)


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
    assert f"diffperf calibrate --baselines {tmp_path}" in flat(result)
    assert result.exit_code is None


def test_unreadable_expectations_fail_with_one_line(tmp_path):
    path = expectations.expectations_path(tmp_path, "tiny")
    path.parent.mkdir(parents=True)
    path.write_text("{truncated")
    result = outcome([paired_case(1.5)], tmp_path)
    assert result.exit_code == pytest.ExitCode.TESTS_FAILED
    assert "is not valid JSON" in flat(result) and "restore it from git" in flat(result)


def test_no_gate_does_not_read_the_expectations_file(tmp_path):
    """--perf-no-gate (calibration's processes) measures only: the unreadable file calibrating would replace
    must not fail the runs that measure its replacement."""
    path = expectations.expectations_path(tmp_path, "tiny")
    path.parent.mkdir(parents=True)
    path.write_text("{truncated")
    result = outcome([paired_case(1.5, slowdown=0.3)], tmp_path, no_gate=True)
    assert result.exit_code is None
    assert "is not valid JSON" not in flat(result)
    assert path.read_text() == "{truncated"


def test_an_overridden_workload_is_not_judged_against_expectations_for_another(baselines):
    result = outcome([paired_case(1.5, slowdown=0.3)], baselines, steps=1)
    assert result.exit_code is None
    assert result.lines[-1] == "speed-up gate: nothing judged (workload overridden)"


def test_a_record_merged_from_calibrations_of_different_sizes_says_both(baselines):
    expectations.record(baselines, "tiny", "hosts", HOST.key, {"fingerprint": HOST.fingerprint,
                        "calibration": {"processes": 5, "date": "2026-11-25"}},
                        {"tome/astronaut": dict(SPEEDUP, processes=5)}, {})
    result = outcome([paired_case(1.5)], baselines)
    assert f"this host's calibration ({HOST.key}, 5-10 processes, 2026-11-25)" in flat(result)


def test_memory_ratios_alone_judge_nothing_when_the_speedups_lack_rounds(baselines):
    """Peak memory needs no rounds; a run whose speed-ups got no interval must not pass on its memory rows."""
    expectations.record(baselines, "tiny", "hosts", HOST.key, {"fingerprint": HOST.fingerprint}, {},
                        {"distilled/astronaut": {"reference": "baseline", "expected": 0.5, "tolerance": 0.05}})
    result = outcome([paired_case(1.5, slowdown=0.5, n=5)], baselines, rounds=5)
    assert result.lines[-1] == "speed-up gate: nothing judged (5 rounds give no 95% interval, at least 6 needed)"
    assert result.exit_code == pytest.ExitCode.USAGE_ERROR
    assert not result.report.judged and "passed" not in result.markdown


def test_an_interrupted_run_judges_nothing_and_says_so(baselines):
    result = judge(Measured([paired_case(1.5, slowdown=0.3)], {}, [], HOST, "tiny"),
                   PerfOptions(baselines_dir=str(baselines)), interrupted=True)
    assert result.lines[-1] == ("speed-up gate: nothing judged (the run was interrupted: run it to the end to "
                                "judge the speed-ups)")
    assert result.exit_code is None  # pytest's own status (interrupted) stands
    assert "passed" not in result.markdown and "FAILED" not in result.markdown and "interrupted" in result.markdown
    assert result.report.to_json()["interrupted"] and not result.report.judged


def test_an_interrupted_run_says_why_the_cases_it_did_not_reach_did_not_run(baselines):
    result = judge(Measured([], {}, [], HOST, "tiny"), PerfOptions(baselines_dir=str(baselines)), interrupted=True)
    assert result.report.not_run == {"distilled/astronaut": "not run: the run was interrupted"}


def test_a_non_finite_stored_spread_fails_in_one_line_naming_the_entry(baselines):
    path = expectations.expectations_path(baselines, "tiny")
    path.write_text(path.read_text().replace('"between_sd": 0.005', '"between_sd": Infinity'))
    assert "Infinity" in path.read_text()
    result = outcome([paired_case(1.5)], baselines)
    assert result.exit_code == pytest.ExitCode.TESTS_FAILED
    assert f"{HOST.key} speed-up 'distilled/astronaut' has between_sd inf" in flat(result)
    assert "restore it from git or run `diffperf calibrate" in flat(result)
