"""End-to-end latency of every declared variant on its family's workloads, paired with its reference."""

from diffperf.suite import test_latency  # noqa: F401  (parametrized by diffperf's plugin)
