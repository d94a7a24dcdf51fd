"""The gate on real runs of the suite (tiny profile, CPU): calibrate, pass unchanged, fail a planted slowdown."""

import json
from pathlib import Path

import pytest

import diffperf.cases.latency  # noqa: F401  (pytester's in-process runs cannot import torch a second time)
from diffperf import cli

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[2] / "perf" / "test_latency.py"


@pytest.mark.slow
def test_calibrated_run_passes_and_a_planted_slowdown_fails(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_latency=SUITE.read_text())
    baselines = tmp_path / "baselines"
    args = ["-k", "distilled-astronaut", "--perf-profile", "tiny", "--perf-device", "cpu", "--perf-rounds", "8",
            "--perf-warmup", "1", "--perf-baselines", str(baselines), "-p", "no:cacheprovider"]

    first = pytester.runpytest(*args, "--perf-update-baselines")
    assert first.parseoutcomes()["passed"] == 1
    folded = " ".join(line.strip() for line in first.outlines)  # the terminal folds long lines at 120 columns
    assert "no calibration for this host" in folded
    assert f"diffperf calibrate --profile tiny --baselines {baselines}" in folded
    first.stdout.fnmatch_lines(["speed-up gate: nothing judged (no expectations for this host)"])
    assert not (baselines / "tiny" / "speedups.json").exists()  # one process never records expectations

    # In-process runs stand in for processes here; `diffperf calibrate` measures fresh ones.
    runs = [tmp_path / f"run-{index}.json" for index in range(5)]
    for path in runs:
        assert pytester.runpytest(*args, f"--benchmark-json={path}", "--perf-no-gate").ret == 0
    assert cli.main(["calibrate", "--from-runs", *map(str, runs), "--baselines", str(baselines)]) == 0
    path = baselines / "tiny" / "speedups.json"
    recorded = json.loads(path.read_text())
    (host,) = recorded["hosts"].values()
    case = host["speedups"]["distilled/astronaut"]
    assert case["reference"] == "baseline" and case["expected"] > 1 and case["processes"] == 5

    unchanged = pytester.runpytest(*args)
    assert unchanged.ret == 0, unchanged.stdout.str()
    unchanged.stdout.fnmatch_lines(["*judged against this host's calibration*", "speed-up gate: passed*"])
    # pytest-benchmark's table, narrowed to fit 120 columns (pytest -v or --benchmark-columns: its own)
    table = [line for line in unchanged.outlines if line.startswith(("Name (time", "latency["))]
    assert table[0].split()[-4:] == ["Min", "Median", "IQR", "Rounds"] and "Outliers" not in table[0]
    assert all(len(line) <= 120 for line in table)

    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    summary = tmp_path / "summary.md"
    slowed = pytester.runpytest(*args, "--perf-plant-slowdown", "distilled=1.0", "--perf-summary", str(summary))
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    assert summary.read_text().startswith("## diffperf speed-up gate: ❌ FAILED")
    assert "**regressed** speed-up `distilled/astronaut`" in summary.read_text()
    assert step_summary.read_text() == summary.read_text()
    slowed.stdout.fnmatch_lines(["*REGRESSED: speed-up distilled/astronaut: *below expected*",
                                 "speed-up gate: FAILED (1 regressed*"])
    assert json.loads(path.read_text()) == recorded  # a run never writes expectations


@pytest.mark.slow
def test_a_gate_that_can_judge_nothing_says_so_and_fails_on_the_users_options(pytester, tmp_path):
    pytester.makepyfile(test_latency=SUITE.read_text())
    args = ["-k", "distilled-astronaut", "--perf-profile", "tiny", "--perf-device", "cpu", "--perf-warmup", "0",
            "--perf-baselines", str(tmp_path / "baselines"), "-p", "no:cacheprovider"]
    few = pytester.runpytest(*args, "--perf-rounds", "3")  # refused before anything runs
    assert few.ret == pytest.ExitCode.USAGE_ERROR
    few.stderr.fnmatch_lines(["ERROR: --perf-rounds 3: fewer than 6 paired rounds give no 95% interval*"])
    missing_key = pytester.runpytest(*args, "--perf-rounds", "6", "--perf-baseline-key", "nope")
    assert missing_key.ret == pytest.ExitCode.USAGE_ERROR
    assert "--perf-baseline-key nope: no such record" in missing_key.stdout.str() + missing_key.stderr.str()
    disabled = pytester.runpytest(*args, "--perf-rounds", "6", "--benchmark-disable")
    assert disabled.ret == 0, disabled.stdout.str()
    disabled.stdout.fnmatch_lines(["speed-up gate: nothing judged (benchmarks disabled: nothing was timed)"])


@pytest.mark.slow
def test_a_no_gate_run_passes_over_an_unreadable_expectations_file(pytester, tmp_path):
    """What `diffperf calibrate`'s processes run: they measure the file's replacement, so they must not read it."""
    pytester.makepyfile(test_latency=SUITE.read_text())
    baselines = tmp_path / "baselines"
    path = baselines / "tiny" / "speedups.json"
    path.parent.mkdir(parents=True)
    path.write_text("{truncated")
    result = pytester.runpytest("-k", "distilled-astronaut", "--perf-profile", "tiny", "--perf-device", "cpu",
                                "--perf-rounds", "6", "--perf-warmup", "0", "--perf-baselines", str(baselines),
                                "-p", "no:cacheprovider", "--perf-no-gate")
    assert result.ret == 0, result.stdout.str()
    assert "could not be read" not in result.stdout.str()
    assert path.read_text() == "{truncated"
