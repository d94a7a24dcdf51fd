"""The GPU workflow's jobs, sized from the plan: within a pull request's patience on an A100 and an H100, and the
workflow's timeouts hold what the plan predicts on the slowest GPU it knows."""

import math
from pathlib import Path

import pytest
import yaml

from diffperf.gate.rounds import RoundPolicy
from diffperf.models.builtin import builtin_registry
from diffperf.plan.devices import DEVICE_CLASSES
from diffperf.plan.jobs import size_jobs
from diffperf.plan.schedule import plan_run
from diffperf.plan.work import WorkCounter

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60.0


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """The short profile's jobs on each GPU class, counted on meta tensors (a minute at most, once)."""
    counter = WorkCounter("short", cache=tmp_path_factory.mktemp("cache"))
    registry = builtin_registry()
    return {name: size_jobs(plan_run(registry, "short", DEVICE_CLASSES[name], RoundPolicy.for_profile("short"),
                                     counter=counter))
            for name in ("a100", "h100", "h200")}


def test_a_pull_request_is_judged_within_30_minutes_on_an_a100_and_15_on_an_h100(jobs):
    assert jobs["a100"].pull_request <= 30 * MINUTE
    assert jobs["h100"].pull_request <= 15 * MINUTE
    assert jobs["h200"].pull_request <= jobs["h100"].pull_request


def test_main_and_calibration_fit_their_hours(jobs):
    for sizes in jobs.values():
        assert sizes.main <= 60 * MINUTE
        assert sizes.calibration <= 2 * 60 * MINUTE
        assert sizes.ab_budget == sizes.suite_budget / 2 and sizes.suite_budget % MINUTE == 0


def test_the_workflows_timeouts_hold_the_a100s_jobs_and_their_installs(jobs):
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "perf-gpu.yml").read_text())
    installs = 15  # minutes: two virtual environments with torch, and the Hugging Face cache
    a100 = jobs["a100"]
    assert workflow["jobs"]["ab"]["timeout-minutes"] >= math.ceil(a100.pull_request / MINUTE) + installs
    perf = workflow["jobs"]["perf"]["timeout-minutes"]  # an expression: calibration on dispatch, else the suite
    calibration, push = (int(number) for number in perf.split("&&")[-1].replace("}}", "").split("||"))
    assert calibration >= math.ceil(a100.calibration / MINUTE) + installs and calibration <= 120
    assert push >= math.ceil(a100.main / MINUTE) + installs
