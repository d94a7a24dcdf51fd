"""--perf-budget in a run: the clock the chosen cases run by, and the cases a slower host leaves out."""

import time

from diffperf.cases.budget import BudgetClock, BudgetedRun
from diffperf.options import PerfOptions
from diffperf.plan.costs import DeviceClass, Rates
from diffperf.plan.schedule import CasePlan, RunPlan, Selection

DEVICE = DeviceClass("test", "a test device", "cpu", Rates({"float32": 1e9}, 0.0), "made up", startup_seconds=5.0,
                     build_seconds_per_parameter=0.0)
CHOSEN = CasePlan("distilled", "astronaut", "sd1", 1, "baseline", None, 2, 10, 16, 12.0, 0.5, 0.5, 1.0, 0.0)
LEFT_OUT = CasePlan("bf16", "vase", "sd1", 2, "baseline", None, 2, 10, 16, 12.0, 1.0, 0.5, 1.0, 0.0)


def budgeted(budget: float, most: float) -> BudgetedRun:
    selection = Selection(budget, (CHOSEN,), (LEFT_OUT,), most - 1.0, most)
    return BudgetedRun(RunPlan(DEVICE, "tiny", (CHOSEN, LEFT_OUT)), selection, [], [], BudgetClock(0.0, {}))


def clock(seconds_left: float, most_seconds: dict) -> BudgetClock:
    return BudgetClock(time.monotonic() + seconds_left, most_seconds)


def test_the_clock_knows_each_chosen_cases_most_seconds_and_why_the_others_did_not_run():
    watch = BudgetClock.of(Selection(90.0, (CHOSEN,), (LEFT_OUT,), 79.0, 80.0), ends=123.0)
    assert watch.ends == 123.0
    assert watch.most_seconds == {("distilled", "astronaut"): CHOSEN.latency_seconds(16)}
    assert watch.left_out_when_chosen == {"bf16/vase": "left out by --perf-budget 90 s (tier 2)"}


def test_a_case_that_would_pass_the_budgets_end_is_left_out_and_named():
    watch = clock(30.0, {("distilled", "astronaut"): 20.0, ("distilled", "vase"): 45.0})
    assert watch.over("distilled", "astronaut") is None
    reason = watch.over("distilled", "vase")
    assert reason.startswith("left out: --perf-budget has ") and reason.endswith("takes up to 45 s")
    assert watch.left_out == ["distilled-vase"]


def test_extra_rounds_get_what_the_chosen_cases_leave_of_the_budget():
    options = PerfOptions(max_rounds=32)
    assert budgeted(90.0, 80.0).options_for_session(options).extra_time == 10.0
    assert budgeted(90.0, 80.0).options_for_session(PerfOptions(max_rounds=32, extra_time=4.0)).extra_time == 4.0
    nothing_left = budgeted(90.0, 90.0).options_for_session(options)
    assert nothing_left.max_rounds is None and nothing_left.extra_time is None
    assert budgeted(90.0, 80.0).options_for_session(PerfOptions()) == PerfOptions()  # no extra rounds asked for


def test_a_host_slower_than_planned_leaves_out_sooner():
    watch = clock(30.0, {("distilled", "astronaut"): 10.0, ("distilled", "vase"): 20.0})
    assert watch.over("distilled", "vase") is None  # 20 s of 30
    watch.ran("distilled", "astronaut", 18.0)  # 1.8 times its prediction
    assert watch.over("distilled", "vase").endswith("takes up to 36 s")
    watch.ran("bf16", "vase", 5.0)  # not a budgeted case: no pace
    assert watch.pace == [1.8]
