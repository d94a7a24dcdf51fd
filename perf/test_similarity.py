"""Every variant still makes the image it made when its baseline was recorded, and the variants
meant to approximate fp32 stay close to the fp32 baseline (thresholds: diffperf.images.similarity)."""

from pathlib import Path

import pytest

from diffperf.images.checks import planned_checks, run_similarity_case, similarity_cases
from diffperf.models.variants import get_variant
from diffperf.render.image_text import comparison_line


def expected_kinds(variant_name: str, recording: bool) -> dict[str, str]:
    """The comparisons the variant's declaration calls for, by label, with their kinds."""
    return {check.label: check.kind for check in planned_checks(get_variant(variant_name), recording)}


@pytest.mark.parametrize(("variant", "scenario"), similarity_cases())
def test_similarity(perf_session, record_property, variant, scenario):
    comparisons = run_similarity_case(perf_session, variant, scenario)  # fails with paths and metrics
    for label, comparison in comparisons.items():
        record_property(f"similarity_{label}", comparison_line(comparison))
    # Every comparison the variant is meant to get was made, under its kind: none silently left out.
    recording = perf_session.options.update_baselines
    assert {label: comparison.kind for label, comparison in comparisons.items()} == expected_kinds(variant, recording)
    if "own" in comparisons:  # the HTML report shows these side by side
        images = Path(perf_session.options.output_dir) / "images"
        for suffix in ("actual", "expected", "diff"):
            assert (images / f"{variant}-{scenario}-{suffix}.png").is_file()
