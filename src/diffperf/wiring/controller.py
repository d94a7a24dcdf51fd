"""pytest-xdist's controller (``pytest perf -n N``): schedules every case of a variant on one worker, keeps what each
worker measured, and gives the run's end (diffperf.run_end.RunEnd) the workers' parts as one run.

Imported under pytest-xdist only (diffperf.plugin).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from diffperf.measure.placement import worker_index
from diffperf.measure.workers import reaches_latency_suite
from diffperf.options import PerfOptions
from diffperf.run_end import Measured
from diffperf.wiring import parallel


class XdistController:
    """The controller's plugin object. Built as pytest starts: a one-line ValueError for what cannot work with its
    workers (diffperf.wiring.parallel.check_options, check_room_for), before any worker starts, imports torch and
    collects the suite. ``registry`` gives the run's registry (diffperf.models.registry.Registry)."""

    def __init__(self, options: PerfOptions, config: pytest.Config, registry: Callable):
        workers = parallel.worker_count(config)
        parallel.check_options(options, config, workers)
        if reaches_latency_suite(config.args):  # a run of other tests under -n is none of diffperf's business
            parallel.check_room_for(options, workers)
        self.config = config
        self.registry = registry
        self.worker_parts: dict[str, parallel.WorkerPart] = {}  # what each worker measured, by worker
        self.parts_dir: Path | None = None  # where the workers write their parts of the JSON, when the run writes one
        self._case_group = None  # node id -> its variant's scheduling scope

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """Where the worker writes its part of the JSON, when the run writes one."""
        if not self.config.getoption("benchmark_json", None):
            return
        if self.parts_dir is None:
            self.parts_dir = Path(tempfile.mkdtemp(prefix="diffperf-workers-"))
        node.workerinput[parallel.WORKER_JSON] = str(self.parts_dir / f"{node.gateway.id}.json")

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        """Under ``-n`` (``--dist load``): every case of a variant on one worker."""
        if config.getoption("dist") != "load":
            return None
        return parallel.VariantScheduling(config, log, self.case_group)

    def case_group(self, node_id: str) -> str | None:
        """The scheduling scope of a diffperf case (its variant), None for another test; the registry is built on
        the first parametrized node id."""
        if "[" not in node_id:
            return None
        if self._case_group is None:
            try:
                self._case_group = parallel.case_groups(self.registry())
            except (ValueError, TypeError):  # a declaration that cannot work: the workers say so, in one line
                self._case_group = lambda node_id: None
        return self._case_group(node_id)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """Keep what a worker measured, for the one gate of the run."""
        output = getattr(node, "workeroutput", {}).get(parallel.WORKER_OUTPUT)
        if output is not None:  # by worker: xdist reports an interrupted worker's end twice
            part = parallel.WorkerPart.from_output(output)
            self.worker_parts[part.worker] = part

    @property
    def parts(self) -> list[parallel.WorkerPart]:
        """What each worker measured, in worker order."""
        return [self.worker_parts[worker] for worker in sorted(self.worker_parts, key=worker_index)]

    def measured(self) -> Measured | None:
        """What the workers measured, as one run; None when no worker measured a latency case. A one-line ValueError
        (diffperf.measure.placement.PlacementError) when they were not one host."""
        if not any(part.results for part in self.parts):
            return None
        return parallel.merge_parts(self.parts)

    def merged_json(self) -> dict | None:
        """The workers' parts of the JSON as one document, without verdicts; None when the run writes no JSON or no
        worker wrote its part (--benchmark-disable)."""
        if self.parts_dir is None:
            return None
        return parallel.merge_parts_json(self.parts_dir, self.parts)

    def pytest_unconfigure(self) -> None:
        """The workers' parts of the JSON are gone with the run (merged into its JSON, if any)."""
        if self.parts_dir is not None:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
