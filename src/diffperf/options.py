"""The ``--perf-*`` options: declared once, read once into a frozen, checked value.

Importing this module stays light (no torch): the plugin is loaded by every pytest run in an
environment where diffperf is installed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from diffperf.models.plants import KINDS, PERTURBATION, Plants
from diffperf.models.profiles import PROFILE_NAMES, check_profile_name, default_profile_name
from diffperf.models.workloads import RESOLUTION_MULTIPLE, is_resolution

# The gate judges at 95%, and the early look as it does: the fewest paired rounds with such an interval of the
# median (diffperf.stats.ratios.min_pairs), a number here so that reading the options imports no statistics.
MIN_LOOK_ROUNDS = 6

DEVICE_TYPES = ("cpu", "cuda")
# The hub profile's older options, each a --perf-hub key; refused on another profile, which would ignore them.
HUB_MODEL_OPTIONS = {"--perf-model": "sd1", "--perf-distilled-model": "sd1.bk-sdm-small",
                     "--perf-taesd-model": "sd1.taesd"}


def add_options(parser) -> None:
    """Declare the ``--perf-*`` options on pytest's parser."""
    group = parser.getgroup("diffperf", "diffperf: diffusers performance regression suite")
    group.addoption("--perf-profile", choices=PROFILE_NAMES, default=None,
                    help="models to build: full (SD v1 sizes, random weights; default on CUDA), "
                         "tiny (same structure, scaled down; default on the CPU), hub (real weights)")
    group.addoption("--perf-device", default=None, help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    group.addoption("--perf-rounds", type=int, default=None,
                    help="timed rounds per case, each paired with a round of its reference "
                         "(default: 16 on tiny, 10 on full and hub; at least 6 for a verdict)")
    group.addoption("--perf-min-rounds", type=int, default=None, metavar="N",
                    help="an early look after N rounds: a case whose speed-up is then within its band, or whose "
                         "band edge no rounds can settle with its median not below the band, stops there; the "
                         "others get all their rounds (docs/gate.md; default: 10 on tiny, the rounds elsewhere and "
                         "when --perf-rounds is given)")
    group.addoption("--perf-max-rounds", type=int, default=None, metavar="N",
                    help="rounds only where undecided: a case whose speed-up is still inconclusive after its rounds "
                         "gets more, in stages, up to N in all; each look spends part of the 5%% error "
                         "(docs/gate.md; default: no extra rounds)")
    group.addoption("--perf-extra-time", type=float, default=None, metavar="SECONDS",
                    help="with --perf-max-rounds: the most time a process spends on extra rounds, all its cases "
                         "together (under -n: each worker)")
    group.addoption("--perf-budget", default=None, metavar="DURATION",
                    help="fit the run into DURATION (e.g. 15m, 90s): tier 1 (each family's fp32 baseline, best stack, "
                         "students and tiny autoencoders, published variants) first, then the rest while it fits, by "
                         "the plan's predicted times (diffperf plan); what is left out is named; a budget that cannot "
                         "hold tier 1 is refused before anything runs")
    group.addoption("--perf-warmup", type=int, default=None,
                    help="untimed warm-up calls of the variant and its reference per case "
                         "(default: 2 on tiny, 3 on full and hub)")
    group.addoption("--perf-variants", default="", help="comma-separated variants to run (default: all that can run)")
    group.addoption("--perf-steps", type=int, default=None, metavar="N",
                    help="denoising steps of every scenario, instead of the profile's (recorded in extra_info)")
    group.addoption("--perf-resolution", type=int, default=None, metavar="PX",
                    help=f"image width and height in pixels, a multiple of {RESOLUTION_MULTIPLE}, instead of the "
                         "profile's (recorded in extra_info)")
    group.addoption("--perf-compile", action="store_true", help="also run the torch.compile variant (slow to build)")
    group.addoption("--perf-speedups", action="store_true",
                    help="also run the variants that are opt-in on this device (docs/variants.md)")
    group.addoption("--perf-baselines", default=None,
                    help="directory of stored baselines (default: baselines/ under the rootdir)")
    group.addoption("--perf-update-baselines", action="store_true",
                    help="record this run's images as the new image baselines (expected speed-ups are "
                         "recorded by `diffperf calibrate`, across several processes)")
    group.addoption("--perf-allow-missing-baselines", action="store_true",
                    help="skip, instead of failing, checks whose baseline is not recorded yet")
    group.addoption("--perf-baseline-key", default=None,
                    help="judge against this record of speedups.json instead of this host's")
    group.addoption("--perf-no-gate", action="store_true",
                    help="measure only: do not read the expected speed-ups (speedups.json) and never fail the "
                         "run on the speed-up gate (what `diffperf calibrate` runs its processes with)")
    group.addoption("--perf-output", default=None,
                    help="directory for this run's artefacts: failing images (default perf-output/)")
    group.addoption("--perf-summary", default=None, help="write the speed-up gate's Markdown summary to this file")
    group.addoption("--perf-report", default=None, metavar="DIR",
                    help="write this run's JSON (run.json) and HTML report (report.html) to DIR")
    group.addoption("--perf-plant-slowdown", default="", metavar="VARIANT=FRACTION[,...]",
                    help="make a variant's denoiser (UNet or transformer) do extra work (e.g. distilled=0.1; "
                         "*=0.15: every variant's): shows the gate catches it")
    group.addoption("--perf-plant-memory", default="", metavar="VARIANT=FRACTION[,...]",
                    help="make a variant's pipeline hold FRACTION of its UNet weights' bytes more during each call "
                         "(e.g. *=0.06: every variant's): shows the memory gate catches it")
    group.addoption("--perf-plant-perturbation", default="", metavar="VARIANT=RELATIVE[,...]",
                    help="multiply a variant's UNet weights by 1 + RELATIVE x N(0, 1), seeded (e.g. distilled=1e-3): "
                         "shows the image checks catch a change of the numbers")
    group.addoption("--perf-hub", action="append", default=[], metavar="FAMILY[.COMPONENT]=ID",
                    help="hub profile: where a family's pipeline (sdxl=./sdxl-dir) or one component "
                         "(sdxl.vae=madebyollin/sdxl-vae-fp16-fix) comes from: a hub id or directory (repeatable)")
    group.addoption("--perf-model", default=None, help="hub profile: SD v1 pipeline id or directory (--perf-hub sd1=ID)")
    group.addoption("--perf-distilled-model", default=None,
                    help="hub profile: BK-SDM pipeline id or directory (--perf-hub sd1.bk-sdm-small=ID)")
    group.addoption("--perf-taesd-model", default=None,
                    help="hub profile: TAESD (AutoencoderTiny) id or directory (--perf-hub sd1.taesd=ID)")


@dataclass(frozen=True)
class PerfOptions:
    """The ``--perf-*`` options, parsed and checked; paths are absolute."""

    profile: str | None = None  # None: full on CUDA, tiny on the CPU
    device: str | None = None  # None: cuda when available
    rounds: int | None = None  # None: the profile's default
    min_rounds: int | None = None  # --perf-min-rounds; None: the profile's default (the rounds with --perf-rounds)
    warmup: int | None = None  # None: the profile's default
    max_rounds: int | None = None  # --perf-max-rounds; None: no extra rounds
    extra_time: float | None = None  # --perf-extra-time: seconds of extra rounds per run; None: no limit
    budget: float | None = None  # --perf-budget, in seconds; None: no budget
    variants: tuple[str, ...] = ()  # empty: all
    steps: int | None = None  # None: the profile's steps
    resolution: int | None = None  # None: the profile's resolution
    enabled: frozenset[str] = frozenset()  # opt-in flags given, e.g. {"--perf-compile"}
    hub_models: dict = field(default_factory=dict)  # {"sd1": ID, "sdxl.vae": ID}: diffperf.models.zoo.HubSource
    baselines_dir: str = "baselines"
    update_baselines: bool = False  # the only way a run writes image baselines
    allow_missing_baselines: bool = False
    baseline_key: str | None = None  # None: this host's record, else its class's portable bands
    no_gate: bool = False
    output_dir: str = "perf-output"
    summary_path: str | None = None
    report_dir: str | None = None
    plants: Plants = Plants()  # --perf-plant-*: changes planted on purpose (none in a normal run)
    baselines_given: bool = False  # --perf-baselines was passed: hints repeat it
    benchmarks_disabled: bool = False  # --benchmark-disable: nothing is timed, so nothing needs rounds
    # --perf-output was passed: probed up front (the default is not: every pytest run loads the plugin, and a
    # run that writes nothing there must not need a writable working directory)
    output_given: bool = False

    @classmethod
    def from_config(cls, config) -> "PerfOptions":
        """Read the options from pytest's config; relative paths are taken from the invocation directory.

        Raises a one-line ValueError for anything that cannot work.
        """
        here = Path(config.invocation_params.dir)

        def path(value: str | None) -> str | None:
            return None if value is None else str((here / os.path.expanduser(value)).resolve())

        profile = config.getoption("--perf-profile")
        hub_models = {}
        for option, key in HUB_MODEL_OPTIONS.items():
            value = config.getoption(option)
            if value and profile != "hub":
                raise ValueError(f"{option} {value}: only the hub profile loads weights, and this run's is "
                                 f"{profile or 'the default (full on CUDA, tiny on the CPU)'}: add --perf-profile hub")
            if value:
                hub_models[key] = value
        # --perf-hub is taken whatever the profile: the GPU workflow passes DIFFPERF_HUB's entries to every run.
        hub_models.update(parse_hub_models(config.getoption("--perf-hub")))
        baselines = config.getoption("--perf-baselines")
        output = config.getoption("--perf-output")
        options = cls(
            profile=profile,
            device=config.getoption("--perf-device"),
            rounds=config.getoption("--perf-rounds"),
            min_rounds=config.getoption("--perf-min-rounds"),
            warmup=config.getoption("--perf-warmup"),
            max_rounds=config.getoption("--perf-max-rounds"),
            extra_time=config.getoption("--perf-extra-time"),
            budget=parse_duration("--perf-budget", config.getoption("--perf-budget")),
            variants=parse_variants(config.getoption("--perf-variants")),
            steps=config.getoption("--perf-steps"),
            resolution=config.getoption("--perf-resolution"),
            enabled=frozenset(flag for flag in ("--perf-compile", "--perf-speedups")
                              if config.getoption(flag)),
            hub_models=hub_models,
            baselines_dir=path(baselines) if baselines else str(config.rootpath / "baselines"),
            update_baselines=config.getoption("--perf-update-baselines"),
            allow_missing_baselines=config.getoption("--perf-allow-missing-baselines"),
            baseline_key=config.getoption("--perf-baseline-key"),
            no_gate=config.getoption("--perf-no-gate"),
            output_dir=path(output or "perf-output"),
            summary_path=path(config.getoption("--perf-summary")),
            report_dir=path(config.getoption("--perf-report")),
            plants=Plants.parsed({kind: config.getoption(kind.option) for kind in KINDS}),
            baselines_given=baselines is not None,
            benchmarks_disabled=benchmarks_disabled(config),
            output_given=output is not None,
        )
        options.check()
        return options

    def check(self) -> None:
        """Raise a one-line ValueError for an unknown profile, device or variant, a bad count or an unwritable path."""
        if self.profile is not None:
            check_profile_name(self.profile)
        if self.device is not None:
            check_device_name(self.device)
        self.plants.check()
        if self.update_baselines and self.plants.of_kind(PERTURBATION):
            raise ValueError("--perf-update-baselines with --perf-plant-perturbation: a perturbed variant's images "
                             "are not its own; record baselines without it")
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"--perf-rounds must be at least 1, got {self.rounds}")
        if self.rounds is not None and self.rounds < MIN_LOOK_ROUNDS and not (self.no_gate or self.benchmarks_disabled):
            raise ValueError(f"--perf-rounds {self.rounds}: fewer than {MIN_LOOK_ROUNDS} paired rounds give no 95% "
                             f"interval, so no speed-up could be judged: give --perf-rounds {MIN_LOOK_ROUNDS} or more "
                             "(or --perf-no-gate to measure without judging)")
        if self.min_rounds is not None and self.min_rounds < MIN_LOOK_ROUNDS:
            raise ValueError(f"--perf-min-rounds must be at least {MIN_LOOK_ROUNDS} (the fewest rounds with a 95% "
                             f"interval), got {self.min_rounds}")
        if self.min_rounds is not None and self.rounds is not None and self.min_rounds > self.rounds:
            raise ValueError(f"--perf-min-rounds {self.min_rounds} is more than --perf-rounds {self.rounds}: the early "
                             "look comes before the last round")
        if self.max_rounds is not None and self.rounds is not None and self.max_rounds < self.rounds:
            raise ValueError(f"--perf-max-rounds {self.max_rounds} is fewer than --perf-rounds {self.rounds}: give at "
                             f"least {self.rounds}")
        if self.max_rounds is not None:  # the looks it plans must each give an interval
            from diffperf.gate.rounds import RoundPolicy  # statistics: only with --perf-max-rounds

            RoundPolicy.for_profile(self.resolved_profile(self.resolved_device()), rounds=self.rounds,
                                    max_rounds=self.max_rounds)
        if self.extra_time is not None and (self.max_rounds is None or not self.extra_time > 0):
            raise ValueError("--perf-extra-time needs --perf-max-rounds and a positive number of seconds")
        if self.warmup is not None and self.warmup < 0:
            raise ValueError(f"--perf-warmup must be 0 or more, got {self.warmup}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--perf-steps must be at least 1, got {self.steps}")
        if self.resolution is not None and not is_resolution(self.resolution):
            raise ValueError(f"--perf-resolution must be a positive multiple of {RESOLUTION_MULTIPLE} pixels "
                             f"(an 8x8 latent at least), got {self.resolution}")
        if self.update_baselines and self.workload_overrides:  # they would replace the profile's own images
            given = " ".join(f"--perf-{name} {value}" for name, value in self.workload_overrides.items())
            raise ValueError(f"--perf-update-baselines with {given}: the image baselines hold the profile's own "
                             "workload, and every run reads them; record them without --perf-steps and "
                             "--perf-resolution")
        if self.profile == "hub":  # only the hub profile loads from them
            for key, source in self.hub_models.items():
                check_hub_source(key, source)
        if self.summary_path:
            check_writable_file("--perf-summary", self.summary_path)
        if os.environ.get("GITHUB_STEP_SUMMARY"):  # appended to where it is, as GitHub's actions do
            check_writable_file("GITHUB_STEP_SUMMARY", os.environ["GITHUB_STEP_SUMMARY"], append=True)
        if self.report_dir:
            check_writable_directory("--perf-report", self.report_dir)
        if self.output_given:
            check_writable_directory("--perf-output", self.output_dir)
        if self.update_baselines:
            check_writable_directory("--perf-baselines", self.baselines_dir)
        elif self.baselines_given:  # only read: it need not exist yet
            check_directory("--perf-baselines", self.baselines_dir)

    def check_names(self, registry) -> None:
        """One-line ValueError for a variant, family or component the run's registry does not declare."""
        for name in sorted(set(self.variants) | self.plants.variant_names()):
            registry.variant(name)
        for key in sorted(self.hub_models):
            family, _, component = key.partition(".")
            try:
                declared = registry.family(family)
                if component:
                    declared.component(component)
            except ValueError as error:
                raise ValueError(f"--perf-hub {key}: {error}") from None

    def resolved_device(self):
        """The torch device to run on; a one-line ValueError when it cannot be used here."""
        import torch

        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(check_device_name(self.device))
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--perf-device {self.device}: no CUDA device is available (use cpu)")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ValueError(
                    f"--perf-device {self.device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
                )
        return device

    def resolved_profile(self, device) -> str:
        return check_profile_name(self.profile or default_profile_name(device.type == "cuda"))

    @property
    def workload_overrides(self) -> dict:
        """The workload options given (``{"steps": 1, "resolution": 64}``), empty when none."""
        return {name: value for name, value in (("steps", self.steps), ("resolution", self.resolution))
                if value is not None}

    @property
    def baselines_hint(self) -> str:
        """The options a "record it with ..." hint must repeat so it records where this run reads."""
        return f" --perf-baselines {self.baselines_dir}" if self.baselines_given else ""


def check_device_name(name: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; a one-line ValueError for anything else (gpu, mps, ...)."""
    kind, _, index = name.partition(":")
    if kind not in DEVICE_TYPES or (index and not (kind == "cuda" and index.isdigit())):
        raise ValueError(f"--perf-device {name}: diffperf runs on cpu or cuda[:N]; use one of those")
    return name


def check_hub_source(key: str, source: str) -> None:
    """One line unless ``source`` (of ``--perf-hub KEY=SOURCE``) is a directory or shaped like a hub id, which is
    looked up only when its model is loaded (diffperf.models.family.is_local)."""
    from diffperf.models.family import is_local

    if is_local(source) and not Path(os.path.expanduser(source)).is_dir():
        raise ValueError(f"--perf-hub {key}={source}: no such directory, and not a hub id (OWNER/NAME): give a "
                         "directory saved with save_pretrained, or a hub id")


def benchmarks_disabled(config) -> bool:
    """Whether pytest-benchmark times nothing in this run (``--benchmark-disable`` without ``--benchmark-enable``)."""
    return bool(config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False))


def check_writable_file(option: str, value: str, append: bool = False) -> None:
    """One line unless ``value`` can be written the way diffperf writes it, found out by writing there.

    By default the file is replaced as :func:`diffperf.files.atomic_path` does (a temporary file beside
    it, its directory made when missing); with ``append`` it is opened for appending where it is, as
    GitHub's step summary is, and no directory is made. The probe removes what it creates and leaves an
    existing file as it was. ``os.access`` would not do: root passes every check it makes, yet cannot
    write in /proc or on a read-only mount.
    """
    path = Path(value).absolute()
    try:
        if path.is_dir():
            raise ValueError(f"{option} {value} is a directory: give a file name")
        if not append:
            _probe_directory(option, value, path.parent)
            return
        existed = path.exists()
        with path.open("a"):
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise _unwritable(option, value, error) from None


def check_directory(option: str, value: str) -> None:
    """One line when ``value`` is a file or could not be made (a file stands where a directory above it
    would be). Writes nothing: for directories a run only reads."""
    path = Path(value).absolute()
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{option} {value} is a file: give a directory")
        _missing_directories(option, value, path)
    except OSError as error:
        raise ValueError(f"{option} {value} cannot be read ({error.strerror or error}): "
                         "give a directory you can read") from None


def check_suite(suite: str) -> None:
    """One line unless ``suite`` is what pytest loads declarations from: a directory (its conftest.py files) or a
    Python file (a conftest.py, or a test module beside one). Imports nothing: said before a suite is collected."""
    path = Path(suite)
    if not path.exists():
        raise ValueError(f"suite {suite} does not exist: give the directory of its conftest.py")
    if not (path.is_dir() or path.suffix == ".py"):
        raise ValueError(f"suite {suite} is neither a directory nor a Python file: give the directory of its "
                         "conftest.py")


def check_writable_directory(option: str, value: str) -> None:
    """One line unless a file can be written in ``value``, found out by making the missing directories and
    a temporary file in it, then removing all of them."""
    check_directory(option, value)
    _probe_directory(option, value, Path(value).absolute())


def _probe_directory(option: str, value: str, directory: Path) -> None:
    made: list[Path] = []
    try:
        for folder in _missing_directories(option, value, directory):
            folder.mkdir()
            made.append(folder)
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".diffperf-probe-")
        os.close(handle)
        os.unlink(temp)
    except OSError as error:
        raise _unwritable(option, value, error) from None
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # another process wrote there meanwhile: its files stay
                folder.rmdir()


def _missing_directories(option: str, value: str, directory: Path) -> list[Path]:
    """The directories to make, outermost first, for ``directory`` to exist; one line when a file is in the way."""
    missing = []
    while not directory.exists():
        missing.insert(0, directory)
        directory = directory.parent
    if not directory.is_dir():
        raise ValueError(f"{option} {value}: {directory} is a file, so the directory cannot be created")
    return missing


def _unwritable(option: str, value: str, error: OSError) -> ValueError:
    return ValueError(f"{option} {value} cannot be written ({error.strerror or error}): give a path you can write")


def parse_duration(option: str, text: str | None) -> float | None:
    """``"15m"``, ``"90s"``, ``"1.5h"`` or plain seconds -> seconds (None for None); a one-line ValueError naming
    ``option`` otherwise."""
    if text is None:
        return None
    value = str(text).strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600}.get(value[-1:])
    try:
        seconds = float(value[:-1] if unit else value) * (unit or 1)
    except ValueError:
        raise ValueError(f"{option} {text}: write a duration such as 15m, 90s or 1.5h") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{option} {text}: a duration must be positive and finite")
    return seconds


def parse_variants(text: str) -> tuple[str, ...]:
    """``"baseline,distilled"`` -> ``("baseline", "distilled")``; ``""`` (the option left out) -> ``()``, every variant;
    a one-line ValueError for an empty name (``","``, ``"a,,b"``), which would otherwise select them all."""
    if not text:
        return ()
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ValueError(f"--perf-variants {text!r} has an empty name: write variant names separated by commas, "
                         "e.g. baseline,distilled (leave the option out to run them all)")
    return names


def parse_hub_models(items: list[str]) -> dict[str, str]:
    """``["sdxl=./dir", "sdxl.vae=ID"]`` -> ``{"sdxl": "./dir", "sdxl.vae": "ID"}`` (one-line ValueError otherwise)."""
    found = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key.strip() or not value.strip():
            raise ValueError(f"--perf-hub {item!r}: write FAMILY=ID or FAMILY.COMPONENT=ID, e.g. sdxl=./sdxl-dir")
        found[key.strip()] = value.strip()
    return found
