"""--perf-budget in a run: what the session is told of the chosen cases, and the cases a slower host leaves out."""

import time
from types import SimpleNamespace

from diffperf.cases.budget import BudgetedRun
from diffperf.options import PerfOptions
from diffperf.plan.costs import DeviceClass, Rates
from diffperf.plan.schedule import CasePlan, RunPlan, Selection
from diffperf.session import PerfSession

DEVICE = DeviceClass("test", "a test device", "cpu", Rates({"float32": 1e9}, 0.0), "made up", startup_seconds=5.0,
                     build_seconds_per_parameter=0.0)
CHOSEN = CasePlan("distilled", "astronaut", "sd1", 1, "baseline", None, 2, 10, 16, 12.0, 0.5, 0.5, 1.0, 0.0)
LEFT_OUT = CasePlan("bf16", "vase", "sd1", 2, "baseline", None, 2, 10, 16, 12.0, 1.0, 0.5, 1.0, 0.0)


def budgeted(budget: float, most: float, ends: float = 0.0) -> BudgetedRun:
    selection = Selection(budget, (CHOSEN,), (LEFT_OUT,), most - 1.0, most)
    return BudgetedRun(RunPlan(DEVICE, "tiny", (CHOSEN, LEFT_OUT)), selection, [], [], ends)


def stub_session() -> SimpleNamespace:
    return SimpleNamespace(budget_end=None, case_most_seconds={}, skipped={}, left_out_by_budget=[], budget_pace=[])


def test_the_session_knows_each_chosen_cases_most_seconds_and_why_the_others_did_not_run():
    session = stub_session()
    budgeted(90.0, 80.0, ends=123.0).bind(session)
    assert session.budget_end == 123.0
    assert session.case_most_seconds == {("distilled", "astronaut"): CHOSEN.latency_seconds(16)}
    assert session.skipped == {"bf16/vase": "left out by --perf-budget 90 s (tier 2)"}


def test_a_case_that_would_pass_the_budgets_end_is_left_out_and_named():
    session = stub_session()
    session.budget_end = time.monotonic() + 30.0
    session.case_most_seconds = {("distilled", "astronaut"): 20.0, ("distilled", "vase"): 45.0}
    assert PerfSession.over_budget(session, "distilled", "astronaut") is None
    reason = PerfSession.over_budget(session, "distilled", "vase")
    assert reason.startswith("left out: --perf-budget has ") and reason.endswith("takes up to 45 s")
    assert session.left_out_by_budget == ["distilled-vase"]
    session.budget_end = None  # no budget: nothing is left out
    assert PerfSession.over_budget(session, "distilled", "vase") is None


def test_extra_rounds_get_what_the_chosen_cases_leave_of_the_budget():
    options = PerfOptions(max_rounds=32)
    assert budgeted(90.0, 80.0).options_for_session(options).extra_time == 10.0
    assert budgeted(90.0, 80.0).options_for_session(PerfOptions(max_rounds=32, extra_time=4.0)).extra_time == 4.0
    nothing_left = budgeted(90.0, 90.0).options_for_session(options)
    assert nothing_left.max_rounds is None and nothing_left.extra_time is None
    assert budgeted(90.0, 80.0).options_for_session(PerfOptions()) == PerfOptions()  # no extra rounds asked for


def test_a_host_slower_than_planned_leaves_out_sooner():
    session = stub_session()
    session.budget_end = time.monotonic() + 30.0
    session.case_most_seconds = {("distilled", "astronaut"): 10.0, ("distilled", "vase"): 20.0}
    assert PerfSession.over_budget(session, "distilled", "vase") is None  # 20 s of 30
    PerfSession.case_ran(session, "distilled", "astronaut", 18.0)  # 1.8 times its prediction
    assert PerfSession.over_budget(session, "distilled", "vase").endswith("takes up to 36 s")
    PerfSession.case_ran(session, "bf16", "vase", 5.0)  # not a budgeted case: no pace
    assert session.budget_pace == [1.8]
