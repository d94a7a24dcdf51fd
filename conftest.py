"""Repository-level pytest configuration.

The diffperf plugin itself is registered through the ``pytest11`` entry point (pyproject.toml),
so ``pytest perf`` needs no flags; this file holds what only this repository's own runs need.
"""
