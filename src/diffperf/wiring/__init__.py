"""pytest's side of a run: which collected tests are diffperf's cases and their order, how a process starts its
session, and the pytest-xdist controller and worker, each a plugin object of its own (diffperf.plugin registers them
by mode)."""
