"""The suite's two cases, parametrized by diffperf's plugin with every declared variant and scenario.

``perf/test_latency.py`` and ``perf/test_similarity.py`` import them; a suite of your own (with your
families and variants declared in its ``conftest.py``: docs/extending.md) does the same::

    from diffperf.suite import test_latency, test_similarity  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

from diffperf.cases.similarity import planned_checks, run_similarity_case
from diffperf.cases.latency import run_latency_case
from diffperf.render.image_text import comparison_line


def test_latency(benchmark, perf_session, variant, scenario):
    """End-to-end latency of one variant on one scenario, paired with its reference (R V R V ... R)."""
    measurement = run_latency_case(benchmark, perf_session, variant, scenario)
    result = perf_session.add(measurement).result  # the session keeps it for the gate
    rounds = len(result.variant_rounds)
    if benchmark.disabled:  # nothing is timed
        assert rounds == 0
    else:  # the early look's, the base rounds, or with --perf-max-rounds one of the plan's later looks
        assert rounds in perf_session.policy.round_counts()
    assert len(result.reference_rounds) == (rounds + 1 if result.reference and rounds else 0)  # R V ... R V R


def test_similarity(perf_session, record_property, variant, scenario):
    """The variant still makes the image it made when its baseline was recorded, and a variant meant to
    approximate fp32 stays close to its family's fp32 baseline (thresholds: diffperf.images.similarity)."""
    comparisons = run_similarity_case(perf_session, variant, scenario)  # fails with paths and metrics
    for label, comparison in comparisons.items():
        record_property(f"similarity_{label}", comparison_line(comparison))
    # Every comparison the variant is meant to get was made, under its kind: none silently left out.
    declared = perf_session.registry.variant(variant)
    expected = planned_checks(declared, perf_session.options.update_baselines,
                              perf_session.registry.family_of(declared).baseline)
    assert {label: comparison.kind for label, comparison in comparisons.items()} == \
        {check.label: check.kind for check in expected}
    if "own" in comparisons:  # the HTML report shows these side by side
        images = Path(perf_session.options.output_dir) / "images"
        for suffix in ("actual", "expected", "diff"):
            assert (images / f"{variant}-{scenario}-{suffix}.png").is_file()
