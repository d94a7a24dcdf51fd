"""Every variant still makes the image it made when its baseline was recorded, and the variants
meant to approximate fp32 stay close to the fp32 baseline (thresholds: diffperf.similarity)."""

import pytest

from diffperf.image_checks import run_similarity_case, similarity_cases


@pytest.mark.parametrize(("variant", "scenario"), similarity_cases())
def test_similarity(perf_session, record_property, variant, scenario):
    comparisons = run_similarity_case(perf_session, variant, scenario)  # fails with paths and metrics
    for label, comparison in comparisons.items():
        record_property(f"similarity_{label}", comparison.summary())
    assert all(comparison.passed for comparison in comparisons.values())
