"""A pytest-xdist worker (``pytest perf -n N``): its own device, its part of the JSON, what it measured sent to the
controller (diffperf.wiring.parallel).

Imported under pytest-xdist only (diffperf.plugin).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from diffperf.options import PerfOptions
from diffperf.run_end import drop_unfinished_cases
from diffperf.wiring import parallel


class XdistWorker:
    """A worker's plugin object, and the start of its session (diffperf.wiring.start): placed on a device of its own,
    built on first use and not checked (xdist reports a worker's stop as a crash, so what the checks find there is left
    to the controller's gate). It writes its part of the JSON where the controller asked and sends the controller
    what it measured (:class:`diffperf.wiring.parallel.WorkerPart`)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.placement = None  # its device (diffperf.measure.placement.Placement), once placed
        self.session = None  # its diffperf.session.PerfSession, once started
        self.interrupted = False
        config.option.benchmark_json = parallel.worker_json(config)

    def session_options(self, options: PerfOptions) -> PerfOptions:
        """The options measuring on this worker's own GPU or CPU cores, placed before anything is built."""
        options, self.placement = parallel.place_worker(options, self.config)
        return options

    def started(self, session) -> None:
        self.session = session

    def cases_collected(self, start_session: Callable[[], object]) -> None:
        """Switch pytest-benchmark back on (it switches itself off under xdist): the worker measures on a device of its
        own. The session is built when a case first asks for it."""
        parallel.enable_benchmarks(self.config)

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    @pytest.hookimpl(trylast=True)  # after diffperf's own machine_info
    def pytest_benchmark_update_machine_info(self, machine_info: dict) -> None:
        if self.placement is not None and "diffperf" in machine_info:
            machine_info["diffperf"]["placement"] = self.placement.describe()

    def pytest_benchmark_update_json(self, config: pytest.Config, output_json: dict) -> None:
        """Its part of the run, less the cases whose measurement did not finish: the controller judges and reports."""
        output_json["diffperf"] = {"unfinished": drop_unfinished_cases(output_json)}

    def pytest_sessionfinish(self) -> None:
        """Send the controller what this worker measured, for the run's one gate."""
        if self.session is None:
            return
        part = parallel.WorkerPart.of(self.session.measured(), self.placement, self.interrupted)
        self.config.workeroutput[parallel.WORKER_OUTPUT] = part.to_output()
