"""The suite's cases: what one latency or similarity case does, and what a run's end decides."""
