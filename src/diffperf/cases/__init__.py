"""The suite's cases: what one latency or similarity case does, a suite's declared registry, and the cases a
--perf-budget keeps."""
