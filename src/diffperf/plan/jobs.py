"""The GPU workflow's jobs sized from the plan (.github/workflows/perf-gpu.yml, docs/getting-started.md).

Every job on a GPU runs the ``short`` profile's suite with one budget, the suite's: what its tier 1
takes at most on this GPU, rounded up to a minute. So a pull request, main and the calibration
measure the same cases, and a faster GPU gets a shorter job.

* pull request: the head's suite (images and the calibrated gate) in the suite's budget, then
  ``diffperf ab`` (2 alternating processes per side) in half of it, spread over its processes,
  comparing what fits them, in tier order;
* push to main: the suite in its budget, appended to the history;
* calibration: ``diffperf calibrate`` over 5 processes of the suite's budget each, then one run
  recording the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diffperf.plan.schedule import RunPlan

AB_PROCESSES = 2  # per side
CALIBRATE_PROCESSES = 5


@dataclass(frozen=True)
class JobSizes:
    """Each job's budget and predicted wall time in seconds (measuring only: the installs come on top)."""

    device: str
    suite_budget: float
    ab_budget: float
    calibrate_budget: float

    @property
    def pull_request(self) -> float:
        return self.suite_budget + self.ab_budget

    @property
    def main(self) -> float:
        return self.suite_budget

    @property
    def calibration(self) -> float:
        return self.calibrate_budget + self.suite_budget

    def to_json(self) -> dict:
        return {"device": self.device, "suite_budget": self.suite_budget, "ab_budget": self.ab_budget,
                "calibrate_budget": self.calibrate_budget, "pull_request": self.pull_request, "main": self.main,
                "calibration": self.calibration}


def size_jobs(plan: RunPlan) -> JobSizes:
    """The jobs' budgets on ``plan``'s device (a plan of the ``short`` profile with no early look: the budgets hold
    every round)."""
    first = [case for case in plan.running if case.tier == 1]
    suite = 60.0 * math.ceil(plan.predicted(first, most=True) / 60.0)
    return JobSizes(plan.device.name, suite, suite / 2, suite * CALIBRATE_PROCESSES)
