"""Planning a run before anything runs: the work of each call, a cost model per device class, and a time budget."""
