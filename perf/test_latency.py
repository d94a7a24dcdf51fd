"""End-to-end latency of every variant on both of the documents' workloads, paired with its reference."""

import pytest

from diffperf.measure.cases import latency_cases, run_latency_case


@pytest.mark.parametrize(("variant", "scenario"), latency_cases())
def test_latency(benchmark, perf_session, variant, scenario):
    result = run_latency_case(benchmark, perf_session, variant, scenario)
    rounds = 0 if benchmark.disabled else perf_session.rounds  # disabled: nothing is timed
    assert len(result.variant_rounds) == rounds
    assert len(result.reference_rounds) == (rounds + 1 if result.reference and rounds else 0)  # R V ... R V R
