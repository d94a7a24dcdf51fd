"""An interrupted run (Ctrl-C, a stop asked for): nothing judged, and no half-measured case saved as measured."""

import json

import pytest

from diffperf.options import PerfOptions
from diffperf.run_end import RunEnd, drop_unfinished_cases

pytest_plugins = ["pytester"]

# A latency case as pytest-benchmark sees diffperf's (parametrized by variant and scenario), Ctrl-C in its third
# round: pytest-benchmark keeps the two rounds timed, with the empty extra_info of a case that never finished.
HALF_MEASURED = """
import pytest


@pytest.mark.parametrize(("variant", "scenario"), [("distilled", "astronaut")])
def test_latency(benchmark, variant, scenario):
    calls = []

    def call():
        calls.append(None)
        if len(calls) == 3:
            raise KeyboardInterrupt

    benchmark.pedantic(call, rounds=6)
    benchmark.extra_info["variant"] = variant  # what diffperf records once a case's rounds are done
"""


def test_a_case_interrupted_mid_rounds_is_not_saved_as_measured(pytester):
    pytester.makepyfile(test_latency=HALF_MEASURED)
    result = pytester.runpytest_subprocess("--benchmark-json=run.json", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert json.loads((pytester.path / "run.json").read_text())["benchmarks"] == []


def test_only_cases_whose_rounds_finished_are_kept():
    finished = {"name": "test_latency[bf16-vase]", "params": {"variant": "bf16", "scenario": "vase"},
                "extra_info": {"variant": "bf16"}}
    half = {"name": "test_latency[distilled-vase]", "params": {"variant": "distilled", "scenario": "vase"},
            "extra_info": {}}
    plain = {"name": "test_sum", "params": None, "extra_info": {}}  # not diffperf's: kept as it is
    output = {"benchmarks": [finished, half, plain]}
    assert drop_unfinished_cases(output) == ["test_latency[distilled-vase]"]
    assert output["benchmarks"] == [finished, plain]


def test_ctrl_c_makes_the_gate_judge_the_run_as_interrupted(monkeypatch):
    from diffperf import run_end

    measured = object()
    end = RunEnd(PerfOptions(), config=None, measured=lambda: measured)
    asked = []
    monkeypatch.setattr(run_end, "judge",
                        lambda measured, options, interrupted=False: asked.append(interrupted) or "outcome")
    end.pytest_keyboard_interrupt()
    assert end.gate_outcome(measured) == "outcome" and asked == [True]


STOP_AT_THE_SECOND_CASE = """
started = []


def pytest_runtest_setup(item):
    started.append(item)
    if len(started) == 2:
        raise KeyboardInterrupt  # Ctrl-C after the first case
"""


@pytest.mark.slow
def test_ctrl_c_mid_run_judges_nothing_in_the_summary_the_json_and_the_report(pytester, tmp_path):
    import diffperf.cases.latency  # noqa: F401  (pytester's in-process runs cannot import torch a second time)
    from test_gate_run import SUITE

    pytester.makepyfile(test_latency=SUITE.read_text())
    pytester.makeconftest(STOP_AT_THE_SECOND_CASE)
    summary, report = tmp_path / "summary.md", tmp_path / "report"
    result = pytester.runpytest("-k", "distilled-astronaut or distilled-taesd-astronaut", "--perf-profile", "tiny",
                                "--perf-device", "cpu", "--perf-rounds", "6", "--perf-warmup", "0",
                                "--perf-baselines", str(tmp_path / "baselines"), "-p", "no:cacheprovider",
                                "--perf-summary", str(summary), "--perf-report", str(report),
                                no_reraise_ctrlc=True)  # the Ctrl-C of the run inside, not of this one
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["speed-up gate: nothing judged (the run was interrupted: *)"])
    assert "interrupted" in summary.read_text() and "passed" not in summary.read_text()
    saved = json.loads((report / "run.json").read_text())
    assert saved["diffperf"]["interrupted"] and len(saved["benchmarks"]) == 1
    assert "nothing judged: the run was interrupted" in (report / "report.html").read_text()
