"""The pytest plugin (the ``pytest11`` entry point): declares the options and hooks and registers the run's plugin
objects, which do the work.

* :class:`DiffperfPlugin`, in every process: the run's registry, its collected cases and their order, its session
  (diffperf.session.PerfSession), started through the process's start (diffperf.wiring.start), and what the session
  records in pytest-benchmark's ``machine_info``.
* :class:`diffperf.run_end.RunEnd` where the run is judged (without ``-n``, or on pytest-xdist's controller): the
  gate's verdicts, the report, the JSON and the summaries.
* Under pytest-xdist, :class:`diffperf.wiring.controller.XdistController` on the controller and
  :class:`diffperf.wiring.worker.XdistWorker` on each worker.

It stays light: torch and diffusers are imported only when a test asks for diffperf's cases (``variant`` and
``scenario`` with ``perf_session``).

The cases come from the run's registry of families and variants, filled through the
``pytest_diffperf_declare`` hook (diffperf.hookspec): diffperf declares its own families below,
and a ``conftest.py`` or an installed plugin declares more the same way (docs/extending.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from diffperf.models.noise import warning_filter_lines, quiet_known_log_lines
from diffperf.options import PerfOptions, add_options
from diffperf.run_end import RunEnd
from diffperf.wiring.start import CheckedStart

PLUGIN_NAME = "diffperf-run"
LOADED = time.monotonic()  # when pytest loaded the plugin, a second or two into the process: a budget counts from here


def pytest_addhooks(pluginmanager) -> None:
    from diffperf import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)  # first, so that the user's variants can refer to the built-in ones
def pytest_diffperf_declare(registry) -> None:
    """diffperf's own families (SD v1, SDXL), declared through the hook users declare theirs with."""
    from diffperf.models import builtin  # torch and diffusers: only once a perf suite is collected

    builtin.declare(registry)


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads --benchmark-json (--perf-report sets it)
def pytest_configure(config: pytest.Config) -> None:
    """Read the options and register the plugin objects of this process's part in the run."""
    try:
        options = PerfOptions.from_config(config)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    _narrow_benchmark_tables(config)
    for line in warning_filter_lines():  # the libraries' known, harmless warnings (diffperf.models.noise)
        config.addinivalue_line("filterwarnings", line)
    quiet_known_log_lines()
    if options.report_dir and not config.getoption("benchmark_json", None):
        Path(options.report_dir).mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = Path(options.report_dir) / "run.json"
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: it measures its part, the controller judges
        from diffperf.wiring.worker import XdistWorker

        worker = XdistWorker(config)
        config.pluginmanager.register(worker)
        config.pluginmanager.register(DiffperfPlugin(options, config, start=worker), PLUGIN_NAME)
        return
    plugin = DiffperfPlugin(options, config, start=CheckedStart())
    if config.getoption("dist", "no") != "no":  # pytest-xdist's controller: it judges what the workers measured
        from diffperf.wiring.controller import XdistController

        try:
            controller = XdistController(options, config, plugin.registry)
        except ValueError as error:  # what cannot work with several workers, before any starts
            raise pytest.UsageError(str(error)) from None
        config.pluginmanager.register(controller)
        config.pluginmanager.register(RunEnd(options, config, controller.measured, controller.merged_json))
    else:
        config.pluginmanager.register(RunEnd(options, config, plugin.measured))
    config.pluginmanager.register(plugin, PLUGIN_NAME)


BENCHMARK_COLUMNS = ["min", "median", "iqr", "rounds"]
"""pytest-benchmark's columns by default, so that its tables fit 120 columns; ``-v`` or ``--benchmark-columns``: its own."""


def _narrow_benchmark_tables(config: pytest.Config) -> None:
    """pytest-benchmark's tables narrowed to :data:`BENCHMARK_COLUMNS` and short names, unless the user chose."""
    given = " ".join(str(arg) for arg in config.invocation_params.args)
    if config.getoption("verbose") > 0 or not hasattr(config.option, "benchmark_columns"):
        return
    if "--benchmark-columns" not in given:
        config.option.benchmark_columns = list(BENCHMARK_COLUMNS)
    if "--benchmark-name" not in given:
        config.option.benchmark_name = "short"


@pytest.fixture(scope="session")
def perf_session(request: pytest.FixtureRequest):
    """The run's PerfSession: builds each variant once, lazily, and releases it after its last case."""
    return request.config.pluginmanager.get_plugin(PLUGIN_NAME).start_session()


class DiffperfPlugin:
    """One process's part in a ``pytest perf`` run: its options, registry, collected cases and session.

    ``start`` is how this process starts its session (diffperf.wiring.start): checked as soon as the cases are
    collected, or on a pytest-xdist worker placed on its own device and built on first use."""

    def __init__(self, options: PerfOptions, config: pytest.Config, start):
        self.options = options
        self.config = config
        self.start = start
        self._registry = None  # diffperf.models.registry.Registry, once a perf suite is collected
        self.declaration_error = None  # a pytest_diffperf_declare that cannot work, in one line
        self.session = None  # diffperf.session.PerfSession, once started
        self.plan: list[str | None] = []  # the variant of each collected case, in run order
        self.budgeted = None  # --perf-budget: what it chose (diffperf.cases.budget.BudgetedRun), once collected
        self.baselines_line = None  # what happened to the image baselines a run recorded

    def start_session(self):
        """The run's PerfSession, built once, through this process's start."""
        if self.session is None:
            from diffperf.session import PerfSession

            try:
                options = self.start.session_options(self.options)
                budget = None
                if self.budgeted is not None:
                    options, budget = self.budgeted.options_for_session(options), self.budgeted.clock
                session = PerfSession(options, self.registry(), self.plan, budget)
            except ValueError as error:
                pytest.exit(f"diffperf: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
            self.start.started(session)
            self.session = session
        return self.session

    def measured(self):
        """What this process's session measured (diffperf.run_end.Measured), None before it starts."""
        return self.session.measured() if self.session is not None else None

    def registry(self):
        """The run's families and variants: diffperf's and every ``pytest_diffperf_declare`` implementation's.

        Historic: a conftest.py registered later still declares into this registry when it is loaded.
        """
        if self._registry is None:
            from diffperf.models.registry import Registry

            registry = Registry()
            self.config.hook.pytest_diffperf_declare.call_historic(kwargs={"registry": registry})
            registry.check()
            self._registry = registry
        return self._registry

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize diffperf's cases: every test using ``perf_session`` with ``variant`` and ``scenario``
        arguments gets one case per declared variant and scenario of its family, variant by variant."""
        from diffperf.models.names import case_name
        from diffperf.wiring.ordering import is_perf_case

        if not is_perf_case(metafunc) or self.declaration_error:
            return
        try:
            cases = self.registry().cases()
        except (ValueError, TypeError) as error:  # a declaration that cannot work: said once collection ends
            self.declaration_error = f"diffperf: {error}"
            return
        ids = [case_name(variant, scenario) for variant, scenario in cases]
        metafunc.parametrize(("variant", "scenario"), cases, ids=ids)

    def pytest_collection_modifyitems(self, items: list) -> None:
        """Run the perf cases variant by variant across files, so each variant's models are built once; with
        --perf-budget, keep the cases it holds (diffperf.cases.budget)."""
        from diffperf.wiring.ordering import group_by_variant, variant_of

        group_by_variant(items)
        if self.options.budget is None or self.declaration_error or not any(map(variant_of, items)):
            return
        from diffperf.cases.budget import BudgetError, budgeted
        from diffperf.render.plan_text import budget_error_line

        try:
            self.budgeted = budgeted(self.options, self.registry(), items, LOADED)
        except BudgetError as error:
            raise pytest.UsageError(f"diffperf: {budget_error_line(error)}") from None
        except ValueError as error:
            raise pytest.UsageError(f"diffperf: {error}") from None
        if self.budgeted.deselected:
            self.config.hook.pytest_deselected(items=self.budgeted.deselected)
            items[:] = self.budgeted.kept

    def pytest_report_collectionfinish(self) -> list[str]:
        """--perf-budget: what it holds and what it left out, named, before anything runs."""
        if self.budgeted is None:
            return []
        from diffperf.render.plan_text import budget_line

        return [f"diffperf: {budget_line(self.budgeted.selection, self.budgeted.plan.device.name)}"]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.declaration_error:
            pytest.exit(self.declaration_error, returncode=pytest.ExitCode.USAGE_ERROR)
        from diffperf.wiring.ordering import variant_of

        self.plan[:] = [variant_of(item) for item in session.items]
        if any(self.plan) and not self.config.option.collectonly:
            self.start.cases_collected(self.start_session)

    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        if self.session is not None and item in item.session.items:
            self.session.finished_case(item.session.items.index(item))

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if not any(str(arg).startswith("perf") for arg in config.args):
            return None
        options = self.options
        return f"diffperf: profile {options.profile or 'auto (full on CUDA, tiny on CPU)'}, device {options.device or 'auto'}"

    def pytest_benchmark_update_machine_info(self, machine_info: dict) -> None:
        if self.session is not None:
            machine_info["diffperf"] = self.session.describe()
            machine_info["diffperf"]["wall_seconds"] = time.monotonic() - LOADED  # what diffperf plan --fit-run reads

    @pytest.hookimpl(tryfirst=True)  # before the gate can change the exit status the baselines' line reads
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the image baselines the passing cases recorded (diffperf.cases.similarity)."""
        if self.session is None:
            return
        from diffperf.cases.similarity import commit_image_baselines

        completed = session.exitstatus == pytest.ExitCode.OK and not session.shouldfail and not session.shouldstop
        self.baselines_line = commit_image_baselines(self.session, completed)

    @pytest.hookimpl(tryfirst=True)  # before the gate's section (diffperf.run_end.RunEnd)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.baselines_line:
            terminalreporter.write_line(f"diffperf: {self.baselines_line}")
        if self.budgeted is not None and self.budgeted.clock.left_out:
            terminalreporter.write_line(f"diffperf: --perf-budget reached before these cases: "
                                        f"{', '.join(self.budgeted.clock.left_out)} (left out)")
