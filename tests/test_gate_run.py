"""The gate on real runs of the suite (tiny profile, CPU): a planted slowdown fails, an unchanged run passes."""

import json
from pathlib import Path

import pytest

import diffperf.cases  # noqa: F401  (pytester's in-process runs cannot import torch a second time)

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "perf" / "test_latency.py"


@pytest.mark.slow
def test_planted_slowdown_fails_the_run_and_an_unchanged_run_passes(pytester, tmp_path):
    pytester.makepyfile(test_latency=SUITE.read_text())
    baselines = tmp_path / "baselines"
    args = ["-k", "distilled-astronaut", "--perf-profile", "tiny", "--perf-device", "cpu", "--perf-rounds", "8",
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

    slowed = pytester.runpytest(*args, "--perf-plant-slowdown", "distilled=0.4")
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    slowed.stdout.fnmatch_lines(["*REGRESSED: speed-up distilled/astronaut: *below expected*", "speed-up gate: FAILED"])
    assert json.loads(path.read_text()) == data  # nothing overwritten without --perf-update-baselines
