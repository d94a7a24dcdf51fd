"""The pytest plugin (registered through the ``pytest11`` entry point): wires hooks to diffperf.

It stays light: torch and diffusers are imported only when a ``perf`` case asks for the session.
"""

from __future__ import annotations

import pytest

from diffperf.profiles import PROFILE_NAMES

_OPTIONS_KEY = pytest.StashKey["object"]()
_SESSION_KEY = pytest.StashKey["object"]()
_PLAN_KEY = pytest.StashKey[list]()
_LINES_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("diffperf", "diffperf: diffusers performance regression suite")
    group.addoption("--perf-profile", choices=PROFILE_NAMES, default=None,
                    help="models to build: full (SD v1 sizes, random weights; default on CUDA), "
                         "tiny (same structure, scaled down; default on the CPU), hub (real weights)")
    group.addoption("--perf-device", default=None, help="torch device to run on (default: cuda when available, else cpu)")
    group.addoption("--perf-rounds", type=int, default=None,
                    help="timed rounds per case, each paired with a round of its reference (default: 16 on tiny, 10 on full and hub)")
    group.addoption("--perf-warmup", type=int, default=None,
                    help="untimed warm-up calls of the variant and its reference per case (default: 1 on tiny, 3 on full and hub)")
    group.addoption("--perf-variants", default="", help="comma-separated variants to run (default: all that can run)")
    group.addoption("--perf-compile", action="store_true", help="also run the torch.compile variant (slow to build)")
    group.addoption("--perf-baselines", default=None,
                    help="directory of stored baselines (default: baselines/ under the rootdir)")
    group.addoption("--perf-update-baselines", action="store_true",
                    help="record this run's images and speed-ups as the new baselines (atomically)")
    group.addoption("--perf-allow-missing-baselines", action="store_true",
                    help="skip, instead of failing, checks whose baseline is not recorded yet")
    group.addoption("--perf-baseline-key", default=None,
                    help="hardware key of the expected speed-ups to gate against (default: this machine's)")
    group.addoption("--perf-output", default="perf-output",
                    help="directory for this run's artefacts: failing images, summaries (default perf-output/)")
    group.addoption("--perf-summary", default=None, help="write the speed-up gate's Markdown summary to this file")
    group.addoption("--perf-report", default=None, metavar="DIR",
                    help="write this run's JSON (run.json) and HTML report (report.html) to DIR at the end")
    group.addoption("--perf-plant-slowdown", default="", metavar="VARIANT=FRACTION[,...]",
                    help="make a variant's UNet do extra work (e.g. distilled=0.1): shows the gate catches it")
    group.addoption("--perf-model", default=None, help="hub profile: SD v1 pipeline id or directory")
    group.addoption("--perf-distilled-model", default=None, help="hub profile: BK-SDM pipeline id or directory")
    group.addoption("--perf-taesd-model", default=None, help="hub profile: TAESD (AutoencoderTiny) id or directory")


def pytest_configure(config: pytest.Config) -> None:
    from diffperf.options import PerfOptions, parse_slowdowns

    hub_models = {
        key: value
        for key, value in (
            ("model", config.getoption("--perf-model")),
            ("distilled", config.getoption("--perf-distilled-model")),
            ("taesd", config.getoption("--perf-taesd-model")),
        )
        if value
    }
    variants = tuple(name.strip() for name in config.getoption("--perf-variants").split(",") if name.strip())
    try:
        planted = parse_slowdowns(config.getoption("--perf-plant-slowdown"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    options = PerfOptions(
        profile=config.getoption("--perf-profile"),
        device=config.getoption("--perf-device"),
        rounds=config.getoption("--perf-rounds"),
        warmup=config.getoption("--perf-warmup"),
        variants=variants,
        enabled=frozenset({"--perf-compile"} if config.getoption("--perf-compile") else ()),
        hub_models=hub_models,
        baselines_dir=config.getoption("--perf-baselines") or str(config.rootpath / "baselines"),
        update_baselines=config.getoption("--perf-update-baselines"),
        allow_missing_baselines=config.getoption("--perf-allow-missing-baselines"),
        baseline_key=config.getoption("--perf-baseline-key"),
        output_dir=str(config.rootpath / config.getoption("--perf-output")),
        summary_path=config.getoption("--perf-summary"),
        report_dir=config.getoption("--perf-report"),
        planted_slowdowns=planted,
    )
    if variants or planted or options.rounds is not None or options.warmup is not None:
        try:
            options.check()
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
    config.stash[_OPTIONS_KEY] = options
    config.stash[_PLAN_KEY] = []


@pytest.fixture(scope="session")
def perf_session(request: pytest.FixtureRequest):
    """The session's PerfSession: builds each variant once, lazily, and releases it after its last case."""
    config = request.config
    if _SESSION_KEY not in config.stash:
        from diffperf.session import PerfSession

        try:
            session = PerfSession(config.stash[_OPTIONS_KEY])
        except ValueError as error:
            pytest.exit(f"diffperf: {error}", returncode=4)
        session.planned_variants = config.stash[_PLAN_KEY]
        config.stash[_SESSION_KEY] = session
    return config.stash[_SESSION_KEY]


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Run the perf cases variant by variant across files, so each variant's models are built once."""
    from diffperf.ordering import group_by_variant

    group_by_variant(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which variant each case uses, in run order, to release models after their last case."""
    plan = session.config.stash[_PLAN_KEY]
    plan[:] = [getattr(item, "callspec", None) and item.callspec.params.get("variant") for item in session.items]


def pytest_runtest_teardown(item: pytest.Item, nextitem) -> None:
    perf = item.config.stash.get(_SESSION_KEY, None)
    if perf is not None and item in item.session.items:
        perf.finished_case(item.session.items.index(item))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    perf = config.stash.get(_SESSION_KEY, None)
    if perf is not None:
        machine_info["diffperf"] = perf.describe()


def pytest_report_header(config: pytest.Config) -> str | None:
    options = config.stash.get(_OPTIONS_KEY, None)
    if options is None or not any(str(arg).startswith("perf") for arg in config.args):
        return None
    return f"diffperf: profile {options.profile or 'auto (full on CUDA, tiny on CPU)'}, device {options.device or 'auto'}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Judge the speed-ups, record them on request, write summaries, and fail the run on a regression."""
    perf = session.config.stash.get(_SESSION_KEY, None)
    if perf is None or not perf.results:
        return
    from diffperf.reporting import finish_run

    failed, lines = finish_run(perf, session.config)
    session.config.stash[_LINES_KEY] = lines
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES_KEY, None)
    if lines:
        terminalreporter.section("diffperf speed-up gate")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    perf = config.stash.get(_SESSION_KEY, None)
    if perf is not None and perf.results:
        output_json["diffperf"] = perf.gate_report().to_json()
