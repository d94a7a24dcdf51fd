"""Every declared variant still makes the image it made when its baseline was recorded, and the variants
meant to approximate fp32 stay close to their family's fp32 baseline."""

from diffperf.suite import test_similarity  # noqa: F401  (parametrized by diffperf's plugin)
