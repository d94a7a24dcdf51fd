"""--perf-plant-perturbation: a known change of a variant's numbers, which the image checks must catch."""

from pathlib import Path

import pytest

import diffperf.cases.similarity  # noqa: F401  (pytester's in-process runs cannot import torch a second time)
import diffperf.models.builtin  # noqa: F401  (nor transformers' lazily imported models)
import diffperf.session  # noqa: F401
from diffperf.models.plants import Plants
from diffperf.options import PerfOptions

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[2] / "perf" / "test_similarity.py"


@pytest.mark.slow
def test_a_planted_perturbation_fails_the_image_check_and_is_never_recorded(pytester, tmp_path):
    pytester.makepyfile(test_planted_similarity=SUITE.read_text())
    args = ["-k", "baseline-astronaut and not xl", "--perf-profile", "tiny", "--perf-device", "cpu",
            "--perf-baselines", str(tmp_path / "baselines"), "--perf-output", str(tmp_path / "output"),
            "-p", "no:cacheprovider"]
    assert pytester.runpytest(*args, "--perf-update-baselines").parseoutcomes()["passed"] == 1
    assert pytester.runpytest(*args).parseoutcomes()["passed"] == 1  # unchanged: the same image
    perturbed = pytester.runpytest(*args, "--perf-plant-perturbation", "baseline=1e-3")
    assert perturbed.parseoutcomes()["failed"] == 1
    perturbed.stdout.fnmatch_lines(["*baseline-astronaut vs its own baseline*FAIL*"])
    refused = pytester.runpytest(*args, "--perf-plant-perturbation", "baseline=1e-3", "--perf-update-baselines")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR


def test_a_perturbation_must_be_a_small_relative_size():
    with pytest.raises(ValueError, match="--perf-plant-perturbation baseline=2.0: the relative size must be between"):
        PerfOptions(plants=Plants.of(perturbation={"baseline": 2.0})).check()
