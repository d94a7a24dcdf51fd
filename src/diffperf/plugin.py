"""The pytest plugin (the ``pytest11`` entry point): declares the options and hooks, registers one plugin object.

:class:`DiffperfPlugin` holds the frozen options and the run's state and wires pytest's and
pytest-benchmark's hooks to diffperf. It stays light: torch and diffusers are imported only when
a test asks for diffperf's cases (``variant`` and ``scenario`` with ``perf_session``).

The cases come from the run's registry of families and variants, filled through the
``pytest_diffperf_declare`` hook (diffperf.hookspec): diffperf declares its own families below,
and a ``conftest.py`` or an installed plugin declares more the same way (docs/extending.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from diffperf.models.noise import warning_filter_lines, quiet_known_log_lines
from diffperf.options import PerfOptions, add_options

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
    if hasattr(config, "workerinput") or config.getoption("dist", "no") != "no":  # pytest-xdist
        _configure_xdist(options, config)
    config.pluginmanager.register(DiffperfPlugin(options, config), PLUGIN_NAME)


def _configure_xdist(options: PerfOptions, config: pytest.Config) -> None:
    """A worker writes its part of the JSON where the controller asked; the controller refuses what cannot
    work with several workers (diffperf.cases.parallel)."""
    from diffperf.cases import parallel

    if parallel.is_worker(config):
        config.option.benchmark_json = parallel.worker_json(config)
        return
    workers = parallel.worker_count(config)
    try:
        parallel.check_options(options, config, workers)
        parallel.check_room_for(options, workers)  # before any worker starts, imports torch and collects
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


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
    """One ``pytest perf`` run: its options, its session (built once its cases are collected) and the gate's
    outcome."""

    def __init__(self, options: PerfOptions, config: pytest.Config):
        self.options = options
        self.config = config
        self._registry = None  # diffperf.models.registry.Registry, once a perf suite is collected
        self.declaration_error = None  # a pytest_diffperf_declare that cannot work, in one line
        self.session = None  # diffperf.session.PerfSession, once a perf case asks for it
        self.plan: list[str | None] = []  # the variant of each collected case, in run order
        self.outcome = None  # diffperf.cases.outcome.GateOutcome, at the end of the run
        self.baselines_line = None  # what happened to the image baselines a run recorded
        self.interrupted = False  # Ctrl-C or a stop before the end: nothing is judged
        self.worker = hasattr(config, "workerinput")  # a pytest-xdist worker: the controller judges
        self.placement = None  # a worker's device (diffperf.measure.placement.Placement), once placed
        self.worker_parts = {}  # the controller's: each worker's diffperf.cases.parallel.WorkerPart, by worker
        self.parts_dir = None  # the controller's: where the workers write their parts of the JSON
        self._case_group = None  # the controller's: node id -> its variant's scheduling scope (diffperf.cases.parallel)
        self.parallel_error = None  # the controller's: why the workers' parts could not be judged as one run
        self.budgeted = None  # --perf-budget: what it chose (diffperf.cases.budget.BudgetedRun), once collected

    def start_session(self):
        """The run's PerfSession, built once the cases are collected and checked before anything is measured
        (PerfSession.check_run); on a pytest-xdist worker built on first use (the ``perf_session`` fixture), unchecked:
        xdist reports a worker's stop as a crash, so what the checks find there is left to the controller's gate."""
        if self.session is None:
            from diffperf.gate.expectations import ExpectationsError
            from diffperf.session import PerfSession

            try:
                options = self.options
                if self.worker:  # its own GPU or CPU cores, before anything is built
                    from diffperf.cases import parallel

                    options, self.placement = parallel.place_worker(options, self.config)
                if self.budgeted is not None:
                    options = self.budgeted.options_for_session(options)
                session = PerfSession(options, self.registry(), self.plan)
            except ValueError as error:
                pytest.exit(f"diffperf: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
            try:
                if not self.worker:
                    session.check_run()
            except ExpectationsError as error:  # in the gate's words, with its exit status
                from diffperf.cases.outcome import unreadable_expectations

                line, status = unreadable_expectations(str(error), session.profile_name, options)
                pytest.exit(f"diffperf: {line}", returncode=status)
            except ValueError as error:
                pytest.exit(f"diffperf: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
            if self.budgeted is not None:
                self.budgeted.bind(session)
            self.session = session
        return self.session

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
        from diffperf.measure.ordering import is_perf_case
        from diffperf.models.names import case_name

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
        from diffperf.measure.ordering import group_by_variant, variant_of

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
        from diffperf.measure.ordering import variant_of

        self.plan[:] = [variant_of(item) for item in session.items]
        if self.worker and any(self.plan):
            from diffperf.cases import parallel

            parallel.enable_benchmarks(self.config)
        elif any(self.plan) and not self.config.option.collectonly:  # what cannot work stops the run here
            self.start_session()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """pytest-xdist's controller: where the worker writes its part of the JSON, when the run writes one."""
        if not self.config.getoption("benchmark_json", None):
            return
        import tempfile

        from diffperf.cases import parallel

        if self.parts_dir is None:
            self.parts_dir = Path(tempfile.mkdtemp(prefix="diffperf-workers-"))
        node.workerinput[parallel.WORKER_JSON] = str(self.parts_dir / f"{node.gateway.id}.json")

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        """pytest-xdist's controller, under ``-n`` (``--dist load``): every case of a variant on one worker."""
        if config.getoption("dist") != "load":
            return None
        from diffperf.cases import parallel

        return parallel.VariantScheduling(config, log, self.case_group)

    def case_group(self, node_id: str) -> str | None:
        """The scheduling scope of a diffperf case (its variant), None for another test; the registry is built on
        the first parametrized node id."""
        if "[" not in node_id:
            return None
        if self._case_group is None:
            from diffperf.cases import parallel

            try:
                self._case_group = parallel.case_groups(self.registry())
            except (ValueError, TypeError):  # a declaration that cannot work: the workers say so, in one line
                self._case_group = lambda node_id: None
        return self._case_group(node_id)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """pytest-xdist's controller: keep what a worker measured, for the one gate of the run."""
        from diffperf.cases import parallel

        output = getattr(node, "workeroutput", {}).get(parallel.WORKER_OUTPUT)
        if output is not None:  # by worker: xdist reports an interrupted worker's end twice
            part = parallel.WorkerPart.from_output(output)
            self.worker_parts[part.worker] = part

    @property
    def parts(self) -> list:
        """The controller's: what each worker measured, in worker order (empty without -n)."""
        from diffperf.measure.placement import worker_index

        return [self.worker_parts[worker] for worker in sorted(self.worker_parts, key=worker_index)]

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
            if self.placement is not None:
                machine_info["diffperf"]["placement"] = self.placement.describe()

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C, a stop asked for (``session.shouldstop``) or ``pytest.exit``: the run is judged as interrupted."""
        self.interrupted = True

    def pytest_benchmark_update_json(self, config: pytest.Config, output_json: dict) -> None:
        """Add the gate's verdicts to the JSON, less the cases whose measurement did not finish; with
        --perf-report, write the HTML report beside it."""
        from diffperf.cases.outcome import drop_unfinished_cases

        unfinished = drop_unfinished_cases(output_json)
        if self.worker:  # its part of the run: the controller judges and reports
            output_json["diffperf"] = {"unfinished": unfinished}
            return
        if self.session is None or not self.session.results:
            return
        output_json["diffperf"] = {**self.gate_outcome().report.to_json(), "unfinished": unfinished}
        self.write_report(output_json)

    def write_report(self, output_json: dict) -> None:
        """With --perf-report: the run's JSON (when written elsewhere) and its HTML report in the report directory."""
        if not self.options.report_dir:
            return
        from diffperf.files import write_json_atomic
        from diffperf.render.report import write_report

        directory = Path(self.options.report_dir)
        if Path(self.config.getoption("benchmark_json")).resolve() != (directory / "run.json").resolve():
            write_json_atomic(directory / "run.json", output_json)
        write_report(output_json, directory / "report.html", images_dir=Path(self.options.output_dir) / "images")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the image baselines the passing cases recorded; judge the speed-ups, write summaries, fail on a
        regression.

        A pytest-xdist worker sends what it measured to the controller instead, which judges every worker's
        cases at once and writes the run's one JSON."""
        if self.worker:
            if self.session is not None:
                from diffperf.cases import parallel

                part = parallel.WorkerPart.of(self.session, self.placement, self.interrupted)
                self.config.workeroutput[parallel.WORKER_OUTPUT] = part.to_output()
            return
        if self.session is not None:
            self.baselines_line = self.session.commit_image_baselines(
                completed=session.exitstatus == pytest.ExitCode.OK and not session.shouldfail
                and not session.shouldstop)
        if not self.results():
            return
        try:
            outcome = self.gate_outcome()
        except ValueError as error:  # under -n, workers that were not one host: nothing can be judged as one run
            self.parallel_error = str(error)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.write_merged_json(None)  # what was measured is kept, without verdicts
            return
        if self.parts:
            self.write_merged_json(outcome)
        if outcome.exit_code is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = outcome.exit_code
        from diffperf.files import write_text_atomic
        from diffperf.render import throughput_text

        markdown = outcome.markdown + throughput_text.markdown(self.throughput_entries())
        if self.options.summary_path:
            write_text_atomic(self.options.summary_path, markdown)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with Path(step_summary).open("a") as stream:  # GitHub's file: append, as actions do
                stream.write(markdown)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.baselines_line:
            terminalreporter.write_line(f"diffperf: {self.baselines_line}")
        if self.session is not None and self.session.left_out_by_budget:
            terminalreporter.write_line(f"diffperf: --perf-budget reached before these cases: "
                                        f"{', '.join(self.session.left_out_by_budget)} (left out)")
        if self.parallel_error:
            terminalreporter.write_line(f"diffperf: {self.parallel_error}")
        if self.outcome is None:
            return
        terminalreporter.section("diffperf speed-up gate")
        for line in self.outcome.lines:
            terminalreporter.write_line(line)
        from diffperf.render import throughput_text

        lines = throughput_text.terminal_lines(self.throughput_entries(), self.config.getoption("verbose") > 0)
        if lines:
            terminalreporter.section(throughput_text.TITLE)
            for line in lines:
                terminalreporter.write_line(line)

    def results(self) -> list:
        """What the latency cases measured: this process's, or under -n every worker's."""
        if self.parts:
            return [result for part in self.parts for result in part.results]
        return self.session.results if self.session is not None else []

    def throughput_entries(self) -> list[dict]:
        """What each latency case achieved (diffperf.measure.flops.Throughput), as its extra_info records it."""
        if self.parts:
            return [entry for part in self.parts for entry in part.throughput]
        return [record.case_info() for record in self.session.throughput] if self.session is not None else []

    def gate_outcome(self):
        """The gate's verdicts, rendered, computed once (pytest-benchmark's JSON may ask first)."""
        if self.outcome is None:
            from diffperf.cases import outcome

            if self.parts:
                self.outcome = outcome.judge_parts(self.parts, self.options, self.interrupted)
            else:
                self.outcome = outcome.judge_session(self.session, self.interrupted)
        return self.outcome

    def write_merged_json(self, gate) -> None:
        """Under -n: the workers' parts of the JSON as one run, with the gate's verdicts (``gate``, None: none could be
        made), where the run writes it."""
        target = self.config.getoption("benchmark_json", None)
        if not target or self.parts_dir is None:
            return
        from diffperf.cases import parallel
        from diffperf.files import write_json_atomic

        output_json = parallel.merge_parts_json(self.parts_dir, self.parts)
        if output_json is None:  # no worker wrote its part (--benchmark-disable)
            return
        verdicts = gate.report.to_json() if gate is not None else {"error": self.parallel_error}
        output_json["diffperf"] = {**verdicts, "unfinished": output_json["diffperf"]["unfinished"]}
        write_json_atomic(target, output_json)
        if gate is not None:
            self.write_report(output_json)

    def pytest_unconfigure(self) -> None:
        """The controller's: the workers' parts of the JSON are gone with the run (merged into its JSON, if any)."""
        if self.parts_dir is not None:
            import shutil

            shutil.rmtree(self.parts_dir, ignore_errors=True)
