"""The suite's latency test: what it holds every case to, with and without --perf-min-rounds and --perf-max-rounds."""

from types import SimpleNamespace

import pytest

import diffperf.suite as suite
from diffperf.gate.rounds import RoundPolicy
from diffperf.gate.verdicts import CaseResult
from diffperf.stats.sequential import SequentialPlan


def run_suite_case(monkeypatch, variant_rounds, plan=None, disabled=False, min_rounds=16):
    result = CaseResult("distilled", "baseline", "vase", [0.1] * variant_rounds,
                        [0.2] * (variant_rounds + 1 if variant_rounds else 0), None, None)
    measured = SimpleNamespace(result=result)  # a Measurement, as far as the suite reads it
    monkeypatch.setattr(suite, "run_latency_case", lambda benchmark, session, variant, scenario: measured)
    session = SimpleNamespace(policy=RoundPolicy(16, min_rounds, warmup=2, sequential=plan), add=lambda kept: kept)
    suite.test_latency(SimpleNamespace(disabled=disabled), session, "distilled", "vase")


def test_a_case_has_its_base_rounds(monkeypatch):
    run_suite_case(monkeypatch, 16)
    with pytest.raises(AssertionError):
        run_suite_case(monkeypatch, 24)
    run_suite_case(monkeypatch, 0, disabled=True)


def test_with_max_rounds_a_case_may_end_at_any_look_of_the_plan_and_no_other_count(monkeypatch):
    plan = SequentialPlan.for_rounds(16, 32)
    for looked in (16, 24, 32):
        run_suite_case(monkeypatch, looked, plan)
    with pytest.raises(AssertionError):
        run_suite_case(monkeypatch, 20, plan)


def test_with_an_early_look_a_case_may_end_there_or_at_its_rounds(monkeypatch):
    for looked in (10, 16):
        run_suite_case(monkeypatch, looked, min_rounds=10)
    run_suite_case(monkeypatch, 24, SequentialPlan.for_rounds(16, 32), min_rounds=10)
    with pytest.raises(AssertionError):
        run_suite_case(monkeypatch, 12, min_rounds=10)
