"""End-to-end latency of every variant on both of the documents' workloads."""

import pytest

from diffperf.cases import latency_cases, run_latency_case


@pytest.mark.parametrize(("variant", "scenario"), latency_cases())
def test_latency(benchmark, perf_session, variant, scenario):
    info = run_latency_case(benchmark, perf_session, variant, scenario)
    assert benchmark.stats.stats.rounds == perf_session.rounds
    assert all(seconds > 0 for seconds in info["reference_rounds"])
