"""The diffperf suite: `pytest perf` (a package, so its module names never clash with tests/)."""
