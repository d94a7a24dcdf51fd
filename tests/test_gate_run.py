"""The gate on real runs of the suite (tiny profile, CPU): a planted slowdown fails, an unchanged run passes."""

import json
from pathlib import Path

import pytest

import diffperf.cases  # noqa: F401  (pytester's in-process runs cannot import torch a second time)

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "perf" / "test_latency.py"


@pytest.mark.slow
def test_planted_slowdown_fails_the_run_and_an_unchanged_run_passes(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_latency=SUITE.read_text())
    baselines = tmp_path / "baselines"
    args = ["-k", "distilled-astronaut", "--perf-profile", "tiny", "--perf-device", "cpu", "--perf-rounds", "10",
            "--perf-warmup", "1", "--perf-baselines", str(baselines), "-p", "no:cacheprovider"]

    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=1, deselected=27)
    first.stdout.fnmatch_lines(["*no expected speed-ups for *--perf-update-baselines*", "speed-up gate: passed"])
    assert not baselines.exists()  # a normal run never writes baselines

    recorded = pytester.runpytest(*args, "--perf-update-baselines")
    assert recorded.ret == 0
    path = baselines / "tiny" / "speedups.json"
    data = json.loads(path.read_text())
    (entry,) = data["hardware"].values()
    case = entry["speedups"]["distilled/astronaut"]
    assert case["reference"] == "baseline" and case["expected"] > 1
    # A wide band keeps this test about the verdict, not about this machine's noise.
    case["tolerance"] = 0.15
    path.write_text(json.dumps(data))

    unchanged = pytester.runpytest(*args)
    assert unchanged.ret == 0
    unchanged.stdout.fnmatch_lines(["*speed-up*distilled vs baseline*astronaut*ok*", "speed-up gate: passed"])

    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    summary = tmp_path / "summary.md"
    slowed = pytester.runpytest(*args, "--perf-plant-slowdown", "distilled=1.0", "--perf-summary", str(summary))
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    assert summary.read_text().startswith("## diffperf speed-up gate: ❌ failed")
    assert "**regressed** speed-up `distilled/astronaut`" in summary.read_text()
    assert step_summary.read_text() == summary.read_text()
    slowed.stdout.fnmatch_lines(["*REGRESSED: speed-up distilled/astronaut: *below expected*", "speed-up gate: FAILED"])
    assert json.loads(path.read_text()) == data  # nothing overwritten without --perf-update-baselines
