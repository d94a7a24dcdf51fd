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
from pathlib import Path

import pytest

from diffperf.options import PerfOptions, add_options

PLUGIN_NAME = "diffperf-run"


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
    if options.report_dir and not config.getoption("benchmark_json", None):
        Path(options.report_dir).mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = Path(options.report_dir) / "run.json"
    config.pluginmanager.register(DiffperfPlugin(options, config), PLUGIN_NAME)


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
    """One ``pytest perf`` run: its options, its session (built on first use) and the gate's outcome."""

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

    def start_session(self):
        """The run's PerfSession, built on first use (the ``perf_session`` fixture)."""
        if self.session is None:
            from diffperf.session import PerfSession

            try:
                self.session = PerfSession(self.options, self.registry(), self.plan)
            except ValueError as error:
                pytest.exit(f"diffperf: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
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

        if not is_perf_case(metafunc) or self.declaration_error:
            return
        try:
            cases = self.registry().cases()
        except (ValueError, TypeError) as error:  # a declaration that cannot work: said once collection ends
            self.declaration_error = f"diffperf: {error}"
            return
        ids = [f"{variant}-{scenario}" for variant, scenario in cases]
        metafunc.parametrize(("variant", "scenario"), cases, ids=ids)

    def pytest_collection_modifyitems(self, items: list) -> None:
        """Run the perf cases variant by variant across files, so each variant's models are built once."""
        from diffperf.measure.ordering import group_by_variant

        group_by_variant(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.declaration_error:
            pytest.exit(self.declaration_error, returncode=pytest.ExitCode.USAGE_ERROR)
        from diffperf.measure.ordering import variant_of

        self.plan[:] = [variant_of(item) for item in session.items]

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

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C, a stop asked for (``session.shouldstop``) or ``pytest.exit``: the run is judged as interrupted."""
        self.interrupted = True

    def pytest_benchmark_update_json(self, config: pytest.Config, output_json: dict) -> None:
        """Add the gate's verdicts to the JSON, less the cases whose measurement did not finish; with
        --perf-report, write the HTML report beside it."""
        from diffperf.cases.outcome import drop_unfinished_cases

        unfinished = drop_unfinished_cases(output_json)
        if self.session is None or not self.session.results:
            return
        output_json["diffperf"] = {**self.gate_outcome().report.to_json(), "unfinished": unfinished}
        if self.options.report_dir:
            from diffperf.files import write_json_atomic
            from diffperf.render.report import write_report

            directory = Path(self.options.report_dir)
            if Path(config.getoption("benchmark_json")).resolve() != (directory / "run.json").resolve():
                write_json_atomic(directory / "run.json", output_json)
            write_report(output_json, directory / "report.html", images_dir=Path(self.options.output_dir) / "images")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Record image baselines of a completed run; judge the speed-ups, write summaries, fail on a regression."""
        if self.session is None:
            return
        self.baselines_line = self.session.commit_image_baselines(
            completed=session.exitstatus == pytest.ExitCode.OK and not session.shouldfail and not session.shouldstop)
        if not self.session.results:
            return
        outcome = self.gate_outcome()
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

    def throughput_entries(self) -> list[dict]:
        """What each latency case achieved (diffperf.measure.flops.Throughput), as its extra_info records it."""
        return [record.case_info() for record in self.session.throughput] if self.session is not None else []

    def gate_outcome(self):
        """The gate's verdicts, rendered, computed once (pytest-benchmark's JSON may ask first)."""
        if self.outcome is None:
            from diffperf.cases.outcome import judge_session

            self.outcome = judge_session(self.session, self.interrupted)
        return self.outcome
